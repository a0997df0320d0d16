"""Legacy `.h5` full-model files as Keras 3 writes them (`model.save("m.h5")`): root attributes
`model_config` and `keras_version`, weights under `model_weights/<layer>/` in `weight_names` order.
The same allowlist and HDF5 checks as `.keras`; Keras 2 / tf-keras files are refused for now."""
from __future__ import annotations

import json

import numpy as np

from .keras_config import LoadError, check_weights, model_from_config

MAX_CONFIG_CHARS = 64 << 20


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


def load_legacy_h5(h5py, f, check_tree, max_weights):
    check_tree(h5py, f)
    version = _text(f.attrs.get("keras_version", ""))
    if not version.startswith("3."):
        raise LoadError(f"Legacy `.h5` files from Keras {version or '1'} are not supported yet: only files "
                        "written by Keras 3.")
    raw = f.attrs.get("model_config")
    if raw is None:
        raise LoadError("This `.h5` file holds weights only (no `model_config`).")
    raw = _text(raw)
    if len(raw) > MAX_CONFIG_CHARS:
        raise LoadError("The model config is too large.")
    model = model_from_config(_with_modules(json.loads(raw)), max_weights)
    weights = f.get("model_weights")
    if not isinstance(weights, h5py.Group):
        raise LoadError("The `.h5` file has no `model_weights` group.")
    names = {la.name for la in model.layers}
    extra = set(weights.keys()) - names - {"top_level_model_weights"}
    if extra:
        raise LoadError(f"Weights file: groups {sorted(extra)[:10]} belong to no layer of the config.")
    for layer in model.layers:
        group = weights.get(layer.name)
        wnames = [] if group is None else [_text(n) for n in np.asarray(group.attrs.get("weight_names", []))]
        if len(wnames) != len(layer.weights):
            raise LoadError(f"Layer '{layer.name}' (class {type(layer).__name__!r}): the file has "
                            f"{len(wnames)} weights, its config implies {len(layer.weights)}.")
        values = []
        for name, w in zip(wnames, layer.weights, strict=True):
            bad = name.startswith("/") or ".." in name.split("/")
            if bad or not isinstance(group.get(name), h5py.Dataset):
                raise LoadError(f"Layer '{layer.name}': bad weight name {name!r}.")
            ds = group[name]
            if tuple(ds.shape) != w.shape:
                raise LoadError(f"Layer '{layer.name}' (class {type(layer).__name__!r}): weight {name} has "
                                f"shape {tuple(ds.shape)}; its config implies {w.shape}.")
            values.append(np.asarray(ds[()]))
        check_weights(layer, values)
    return model
