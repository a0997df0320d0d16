"""`nbconv tune --model`: the model to tune (a saved .keras/.h5 file or package.module:attr) and the
kernel Problems one run of it makes per batch size (nbconv.commands prints the decisions)."""
from __future__ import annotations

import importlib
import os


def load_model_target(target: str):
    """A model from a .keras/.h5 file (nbconv.models.load_model) or package.module:attr."""
    if target.endswith((".keras", ".h5", ".hdf5")) or os.path.isfile(target):
        from .models import LoadError, load_model
        try:
            return load_model(target)
        except (OSError, LoadError, ImportError) as e:
            raise SystemExit(f"nbconv: cannot load model {target!r}: {e}") from None
    mod_name, _, attr = target.partition(":")
    if not attr:
        raise SystemExit("nbconv: --model must look like package.module:attr, or be a .keras/.h5 file. "
                         f"Received: {target!r}")
    try:
        obj = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as e:
        raise SystemExit(f"nbconv: cannot load model {target!r}: {e}") from None
    if not hasattr(obj, "layers") and callable(obj):
        obj = obj()
    if not hasattr(obj, "layers"):
        raise SystemExit(f"nbconv: {target!r} is not a model with `.layers`")
    return obj


def model_problems(model, a):
    """(layer name, op, Problem) of every kernel call of one run of the model per batch size."""
    from . import commands as c
    from . import ops
    batches = a.batch if isinstance(a.batch, tuple) else (a.batch,)
    if a.input_shape:
        shape = c.ints(a.input_shape, "--input-shape")
    else:
        shape = getattr(model, "input_shape", None)
        if not shape or not isinstance(shape[0], (int, type(None))) or None in shape[1:]:
            raise SystemExit("nbconv: --model needs --input-shape (batch first), e.g. 1,128,128,3")
        shape = (1, *shape[1:])
    if not hasattr(model, "_nodes"):          # a Sequential: layer by layer, named
        return [item for b in batches for item in c._problems_of_layers(
            model.layers, c._random_input((b or shape[0], *shape[1:]), a.dtype))]
    owner = {id(p): layer.name for layer in model.layers for p in _layer_problems(layer)}
    found = []
    for b in c.progress(list(batches), "tuning the model", unit="batch"):
        with ops.recording() as seen:
            model(c._random_input((b or shape[0], *shape[1:]), a.dtype))
        owner.update({id(p): layer.name for layer in model.layers for p in _layer_problems(layer)})
        found += [(owner.get(id(p), "?"), op, p) for op, p in seen]
    unique = {(op, p.key()): (name, op, p) for name, op, p in reversed(found)}
    return list(reversed(unique.values()))


def _layer_problems(layer):
    for p in getattr(layer, "_problems", {}).values():
        yield from (p if isinstance(p, tuple) else (p,))
