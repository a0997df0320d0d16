"""Legacy `.h5` full-model files: root attributes `model_config` and `keras_version`, weights under
`model_weights/<layer>/` in `weight_names` order.

Keras 3 files (`model.save("m.h5")`) load as they are; Keras 1, Keras 2 and tf-keras 2.x files go
through nbconv.legacy: their configs become Keras 3 configs and their weights are converted as Keras 2
did (Keras 1 layouts, Theano's flipped kernels). The same allowlist and HDF5 checks apply to both, and
every dataset's shape is checked against the config before it is read."""
from __future__ import annotations

import json

import numpy as np

from .keras_config import LoadError, check_weights, model_from_config

MAX_CONFIG_CHARS = 64 << 20
MAX_ATTR_CHUNKS = 1000


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _with_modules(config):
    """Keras 3's legacy writer omits `module`: the entries are Keras's built-in layers or nothing."""
    config = dict(config, module="keras")
    inner = config.get("config")
    if isinstance(inner, dict) and isinstance(inner.get("layers"), list):
        inner["layers"] = [dict(e, module="keras.layers", registered_name=None) if isinstance(e, dict)
                           and "module" not in e else e for e in inner["layers"]]
    return config


def _names(group, attr):
    """A string-list attribute, whole or in the chunks `attr0`, `attr1`... that Keras 2 wrote."""
    if attr in group.attrs:
        chunks = [group.attrs[attr]]
    else:
        chunks = []
        while f"{attr}{len(chunks)}" in group.attrs and len(chunks) < MAX_ATTR_CHUNKS:
            chunks.append(group.attrs[f"{attr}{len(chunks)}"])
    out = []
    for chunk in chunks:
        values = np.asarray(chunk)
        if values.size and values.dtype.kind not in "SUO" or values.ndim > 1:
            raise LoadError(f"Weights file: attribute `{attr}` of {group.name} is not a list of names.")
        out += [_text(v) for v in values.ravel()]
    return out


def _dataset(h5py, group, layer, name):
    bad = name.startswith("/") or ".." in name.split("/")
    if bad or not isinstance(group.get(name), h5py.Dataset):
        raise LoadError(f"Layer '{layer.name}': bad weight name {name!r}.")
    return group[name]


def _load_keras3_weights(h5py, weights, model):
    names = {la.name for la in model.layers}
    extra = set(weights.keys()) - names - {"top_level_model_weights"}
    if extra:
        raise LoadError(f"Weights file: groups {sorted(extra)[:10]} belong to no layer of the config.")
    for layer in model.layers:
        group = weights.get(layer.name)
        wnames = [] if group is None else _names(group, "weight_names")
        if len(wnames) != len(layer.weights):
            raise LoadError(f"Layer '{layer.name}' (class {type(layer).__name__!r}): the file has "
                            f"{len(wnames)} weights, its config implies {len(layer.weights)}.")
        values = []
        for name, w in zip(wnames, layer.weights, strict=True):
            ds = _dataset(h5py, group, layer, name)
            if tuple(ds.shape) != w.shape:
                raise LoadError(f"Layer '{layer.name}' (class {type(layer).__name__!r}): weight {name} has "
                                f"shape {tuple(ds.shape)}; its config implies {w.shape}.")
            values.append(np.asarray(ds[()]))
        check_weights(layer, values)


def _load_keras2_weights(h5py, weights, model):
    """Keras 2's order-based loading, also requiring the layer names to agree."""
    from .legacy.weights import preprocess, shape_only
    version = _text(weights.attrs.get("keras_version", "1"))  # Keras 1 wrote neither on this group
    backend = weights.attrs.get("backend")
    backend = None if backend is None else _text(backend)
    listed = _names(weights, "layer_names")
    extra = set(weights.keys()) - set(listed)
    if extra:
        raise LoadError(f"Weights file: groups {sorted(extra)[:10]} are not in `layer_names`.")
    saved = []
    for name in listed:
        group = weights.get(name)
        if not isinstance(group, h5py.Group):
            raise LoadError(f"Weights file: no group for layer {name!r} of `layer_names`.")
        wnames = _names(group, "weight_names")
        if wnames:
            saved.append((name, group, wnames))
    layers = [la for la in model.layers if la.weights]
    if [s[0] for s in saved] != [la.name for la in layers]:
        raise LoadError(f"Weights file: the layers with weights {[s[0] for s in saved][:20]} are not the "
                        f"config's {[la.name for la in layers][:20]}.")
    for (_, group, wnames), layer in zip(saved, layers, strict=True):
        where = f"Layer '{layer.name}' (class {type(layer).__name__!r})"
        if len(wnames) != len(layer.weights):
            raise LoadError(f"{where}: the file has {len(wnames)} weights, its config implies "
                            f"{len(layer.weights)}.")
        datasets = [_dataset(h5py, group, layer, n) for n in wnames]
        shapes = [tuple(ds.shape) for ds in datasets]
        try:  # the conversion run on shapes alone: nothing is read before the shapes agree
            fake = [shape_only(s) for s in shapes]
            converted = [v.shape for v in preprocess(layer, fake, version, backend)]
        except ValueError as e:
            raise LoadError(f"{where}: weight shapes {shapes}: {e}") from e
        implied = [w.shape for w in layer.weights]
        if converted != implied:
            raise LoadError(f"{where}: weight shapes {shapes} in the file (Keras {version}, backend "
                            f"{backend}) do not give the {implied} its config implies.")
        check_weights(layer, preprocess(layer, [np.asarray(ds[()]) for ds in datasets], version, backend))


def load_legacy_h5(h5py, f, check_tree, max_weights):
    check_tree(h5py, f)
    version = _text(f.attrs.get("keras_version", ""))
    if version and not version.startswith(("1.", "2.", "3.")):
        raise LoadError(f"Legacy `.h5` files from Keras {version} are not supported: only Keras 1, 2 and 3.")
    raw = f.attrs.get("model_config")
    if raw is None:
        raise LoadError("This `.h5` file holds weights only (no `model_config`).")
    raw = _text(raw)
    if len(raw) > MAX_CONFIG_CHARS:
        raise LoadError("The model config is too large.")
    weights = f.get("model_weights")
    if not isinstance(weights, h5py.Group):
        raise LoadError("The `.h5` file has no `model_weights` group.")
    if version.startswith("3."):
        model = model_from_config(_with_modules(json.loads(raw)), max_weights)
        _load_keras3_weights(h5py, weights, model)
    else:
        from .legacy.config import model_config
        model = model_from_config(model_config(json.loads(raw)), max_weights)
        _load_keras2_weights(h5py, weights, model)
    return model
