"""`load_model(path)` for Keras 3 `.keras` archives and `from_keras(model)` for in-memory models.

Safe by construction: zip members are read into memory (never extracted), with caps on their number
and sizes; the config goes through keras_config's allowlist; in model.weights.h5 only hard links to
groups and contiguous/chunked float datasets are followed, and each dataset must have exactly the
shape the config implies before it is read.
"""
from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np

from .keras_config import (
    DEFAULT_MAX_WEIGHTS,
    LoadError,
    check_weights,
    layer_weight_groups,
    model_from_config,
)
from .keras_dtypes import bfloat16_to_float32
from .keras_legacy import load_legacy_h5

MAX_MEMBERS = 64
MAX_CONFIG_BYTES = 64 << 20
MAX_RATIO = 100          # uncompressed / compressed size of a zip member (Keras's own cap)
MAX_H5_OBJECTS = 200_000
_FLOATS = {np.dtype("float16"), np.dtype("float32"), np.dtype("float64")}
_INTS = {np.dtype("int32"), np.dtype("int64")}  # scalars only: Normalization's `count`


def _member_names_ok(infos):
    names = [i.filename for i in infos]
    if len(names) > MAX_MEMBERS:
        raise LoadError(f"The archive has {len(names)} members (at most {MAX_MEMBERS}).")
    if len(set(names)) != len(names):
        raise LoadError("The archive has duplicate member names.")
    for n in names:
        parts = n.replace("\\", "/").split("/")
        if n.startswith(("/", "\\")) or ".." in parts or ":" in n or "\x00" in n:
            raise LoadError(f"Unsafe member name in the archive: {n!r}")


def _read_member(archive, name, cap):
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise LoadError(f"The archive has no {name!r}: not a Keras 3 `.keras` file.") from None
    if info.file_size > cap or info.file_size > MAX_RATIO * max(info.compress_size, 1) + 4096:
        raise LoadError(f"Member {name!r} is too large or compressed too much ({info.file_size} bytes from "
                        f"{info.compress_size}).")
    with archive.open(info) as f:
        data = f.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise LoadError(f"Member {name!r} does not have the size its header declares.")
    return data


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("Loading `.keras` files needs h5py: pip install 'nbconv[keras]'") from None
    return h5py


def _check_tree(h5py, group, count=None):
    """Every link under `group` is a hard link to a group or a plain float dataset."""
    count = count if count is not None else [0]
    for key in group:
        count[0] += 1
        if count[0] > MAX_H5_OBJECTS:
            raise LoadError("The weights file holds too many objects.")
        link = group.get(key, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise LoadError(f"Weights file: {group.name}/{key} is a {type(link).__name__}; only hard links "
                            "are followed.")
        obj = group.get(key)
        if isinstance(obj, h5py.Group):
            _check_tree(h5py, obj, count)
        elif isinstance(obj, h5py.Dataset):
            if obj.is_virtual or obj.external:
                raise LoadError(f"Weights file: {obj.name} is a virtual or external dataset.")
            if obj.dtype not in _FLOATS and not (obj.dtype in _INTS and obj.shape == ()) and not _bf16(obj):
                raise LoadError(f"Weights file: {obj.name} has dtype {obj.dtype}; "
                                "float16/32/64 or bfloat16 only.")
        else:
            raise LoadError(f"Weights file: {group.name}/{key} is neither a group nor a dataset.")


def _bf16(ds):
    """Keras writes bfloat16 as 2-byte opaque data tagged with the attribute dtype="bfloat16"."""
    tag = ds.attrs.get("dtype") if ds.dtype.kind == "V" and ds.dtype.itemsize == 2 else None
    return tag in ("bfloat16", b"bfloat16")


def _layer_values(h5py, layers_group, group_name, layer):
    n = len(layer.weights)
    if group_name not in layers_group:
        if n:
            raise LoadError(f"Weights file: no group for layer '{layer.name}' ({group_name}).")
        return []
    g = layers_group[group_name]
    vars_ = g.get("vars")
    names = sorted(vars_.keys()) if isinstance(vars_, h5py.Group) else []
    if names != sorted(str(i) for i in range(n)) or set(g.keys()) - {"vars"}:
        raise LoadError(f"Weights file: layer '{layer.name}' ({group_name}) has entries {names} and "
                        f"{sorted(set(g.keys()) - {'vars'})}; its config implies {n} variables.")
    values = []
    for i, w in enumerate(layer.weights):
        ds = vars_[str(i)]
        if tuple(ds.shape) != w.shape:  # before reading: a dataset is never larger than implied
            raise LoadError(f"Layer '{layer.name}' (class {type(layer).__name__!r}): variable {i} has shape "
                            f"{tuple(ds.shape)}; its config implies {w.shape}.")
        values.append(bfloat16_to_float32(ds[()]) if _bf16(ds) else np.asarray(ds[()]))
    return values


def _load_weights(model, data):
    h5py = _h5py()
    with h5py.File(io.BytesIO(data), "r") as f:
        _check_tree(h5py, f)
        layers_group = f.get("layers")
        if not isinstance(layers_group, h5py.Group):
            raise LoadError("Weights file: no `layers` group (tf.keras 2.13–2.15 files are not supported).")
        expected = set()
        for group_name, layer in layer_weight_groups(model):
            expected.add(group_name)
            check_weights(layer, _layer_values(h5py, layers_group, group_name, layer))
        extra = set(layers_group.keys()) - expected
        if extra:
            raise LoadError(f"Weights file: groups {sorted(extra)[:10]} belong to no layer of the config.")


def load_model(path, max_weights=DEFAULT_MAX_WEIGHTS):
    """An nbconv model from a Keras 3 `.keras` file; LoadError for anything malformed or refused."""
    legacy = str(os.fspath(path)).endswith((".h5", ".hdf5"))
    if not legacy and not str(os.fspath(path)).endswith(".keras"):
        raise LoadError(f"nbconv loads Keras 3 `.keras` (and Keras 3 legacy `.h5`) files. Received: {path}")
    try:
        if legacy:
            h5py = _h5py()
            with open(path, "rb") as fh, h5py.File(fh, "r") as f:  # a file object: no driver tricks
                return load_legacy_h5(h5py, f, _check_tree, max_weights)
        with zipfile.ZipFile(path) as archive:
            _member_names_ok(archive.infolist())
            config = _read_member(archive, "config.json", MAX_CONFIG_BYTES)
            weights = _read_member(archive, "model.weights.h5", max_weights * 8 + (1 << 20))
        model = model_from_config(json.loads(config), max_weights)
        _load_weights(model, weights)
        return model
    except (LoadError, ImportError, FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except RecursionError as e:
        raise LoadError("The model config is nested too deeply.") from e
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, UnicodeDecodeError, json.JSONDecodeError,
            OSError, ValueError, TypeError, KeyError, NotImplementedError, RuntimeError, OverflowError) as e:
        raise LoadError(f"Malformed Keras file {os.fspath(path)!r}: {type(e).__name__}: {e}") from e


def from_keras(keras_model, max_weights=DEFAULT_MAX_WEIGHTS):
    """An nbconv model from an in-memory Keras 3 model (read through get_config/get_weights only)."""
    cls_name = type(keras_model).__name__
    try:  # as Keras writes it to config.json: tuples become lists, and nothing but JSON passes
        inner = json.loads(json.dumps(keras_model.get_config()))
    except (TypeError, ValueError) as e:
        raise LoadError(f"The model's config is not plain JSON: {e}") from e
    config = {"module": "keras", "class_name": cls_name, "config": inner}
    model = model_from_config(config, max_weights)
    theirs = {layer.name: layer for layer in keras_model.layers}
    for layer in model.layers:
        if layer.name not in theirs:
            raise LoadError(f"Layer '{layer.name}' is not in the Keras model's `layers`.")
        check_weights(layer, [np.asarray(w) for w in theirs[layer.name].get_weights()])
    return model
