"""A model over a `dask.array` chunked along the batch axis: a lazy `dask.array` of its outputs.

Both model kinds: `Sequential` and the Functional `Model` with one input and one output (a block
is one array in, one array out; several inputs would need their blocks aligned, so they are
refused with the rule named). Each block runs `model.predict` on the worker that holds it, with
that worker's own tuning decisions. The model travels once per worker: it is one `dask.delayed`
value in the graph that every block depends on (Dask sends a dependency to a worker once and
keeps it there). The output's dtype, chunks and meta come from the layers' own shape arithmetic
(`compute_output_shape`) and are given to `map_blocks`, so Dask never calls the model on a dummy
array to guess them (which would compile kernels for a 0-d problem).
"""
from __future__ import annotations

import threading

import numpy as np

from . import require

# Numba's workqueue threading layer aborts the process when two Python threads run parallel
# kernels at once, and Dask's default local scheduler is threaded: blocks computed in one process
# take turns (each still runs on all of Numba's threads). A fleet worker has one thread anyway.
_ONE_AT_A_TIME = threading.Lock()


def predict_block(x, model, batch_size):
    with _ONE_AT_A_TIME:
        out = model.predict(np.ascontiguousarray(x), batch_size=batch_size)
    return out[0] if isinstance(out, list) else out     # a Functional model's [output]


def _functional(model) -> bool:
    from nbconv.functional import Model
    return isinstance(model, Model)


def output_shape(model, input_shape: tuple) -> tuple:
    """The model's output shape for `input_shape` (batch axis included), from the layers' own
    shape arithmetic: nothing is run."""
    if not _functional(model):
        shape = tuple(input_shape)
        for layer in model.layers:
            shape = tuple(layer.compute_output_shape(shape))
        return shape
    from nbconv.layers import InputLayer
    shapes = {id(model.inputs[0]): tuple(input_shape)}

    def of(args):           # the shapes of a node's arguments, nested as symbolic_call gives them
        return [of(a) for a in args] if isinstance(args, (list, tuple)) else shapes[id(args)]
    for node in model._nodes:
        if not isinstance(node.layer, InputLayer):
            shapes[id(node.output)] = tuple(node.layer.compute_output_shape(of(node.args)))
    return shapes[id(model.outputs[0])]


def _check(model, x, batch_size):
    """Bad input is refused here, before any graph is built; returns the single dask array."""
    if _functional(model) and (len(model.inputs) != 1 or len(model.outputs) != 1):
        raise ValueError(f"predict over a dask.array needs a model with one input and one output "
                         f"(a block is one array in, one array out). Model '{model.name}' has "
                         f"{len(model.inputs)} inputs and {len(model.outputs)} outputs: call it on "
                         "numpy arrays, or map_blocks it yourself")
    if isinstance(x, (list, tuple)):
        if len(x) != 1:
            raise ValueError("predict over dask arrays takes one input (a block is one array in, one "
                             f"array out). Received: {len(x)} inputs")
        x = x[0]
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size <= 0):
        raise ValueError(f"Argument `batch_size` must be a positive int. Received: batch_size={batch_size}")
    if x.ndim == 0:
        raise ValueError("Argument `x` must have a batch axis. Received a scalar.")
    if _functional(model):
        want = model.inputs[0].shape
        if x.ndim != len(want) or any(d is not None and d != s for d, s in zip(want[1:], x.shape[1:],
                                                                                strict=True)):
            raise ValueError(f"Input of model '{model.name}' is incompatible: expected shape {want}, "
                             f"found shape={x.shape}")
        return x
    if not model.layers:
        raise ValueError(f"Sequential model '{model.name}' has no layers: add some before calling it.")
    if not model.built:
        model.build((None, *x.shape[1:]))
    return x


def predict_dask(model, x, batch_size=None):
    da = require("dask.array")
    dask = require("dask")
    listed = _functional(model) and isinstance(model._nested_outputs, (list, tuple))
    x = _check(model, x, batch_size)
    x = x.rechunk({axis: -1 for axis in range(1, x.ndim)})      # blocks split the batch only
    out = output_shape(model, (None, *x.shape[1:]))
    dtype = np.dtype(model.outputs[0].dtype if _functional(model) else model.layers[-1].dtype)
    chunks = (x.chunks[0], *((int(d),) for d in out[1:]))
    kw = {}
    if len(out) < x.ndim:
        kw["drop_axis"] = list(range(len(out), x.ndim))
    elif len(out) > x.ndim:
        kw["new_axis"] = list(range(x.ndim, len(out)))
    shared = dask.delayed(model, pure=True)
    y = da.map_blocks(predict_block, x, shared, batch_size, dtype=dtype, chunks=chunks,
                      meta=np.empty((0,) * len(out), dtype), **kw)
    return [y] if listed else y
