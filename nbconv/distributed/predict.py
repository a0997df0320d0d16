"""A model over a `dask.array` chunked along the batch axis: a lazy `dask.array` of its outputs.

Each block runs `model.predict` on the worker that holds it, with that worker's own tuning
decisions. The model travels once per worker: it is one `dask.delayed` value in the graph that
every block depends on (Dask sends a dependency to a worker once and keeps it there). The
output's dtype, chunks and meta are given to `map_blocks`, so Dask never calls the model on a
dummy array to guess them (which would compile kernels for a 0-d problem).
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
        return model.predict(np.ascontiguousarray(x), batch_size=batch_size)


def output_shape(model, input_shape: tuple) -> tuple:
    """The model's output shape for `input_shape` (batch axis included), from the layers' own
    shape arithmetic: nothing is run."""
    shape = tuple(input_shape)
    for layer in model.layers:
        shape = tuple(layer.compute_output_shape(shape))
    return shape


def predict_dask(model, x, batch_size=None):
    da = require("dask.array")
    dask = require("dask")
    if x.ndim == 0:
        raise ValueError("Argument `x` must have a batch axis. Received a scalar.")
    if not model.layers:
        raise ValueError(f"Sequential model '{model.name}' has no layers: add some before calling it.")
    if not model.built:
        model.build((None, *x.shape[1:]))
    x = x.rechunk({axis: -1 for axis in range(1, x.ndim)})      # blocks split the batch only
    out = output_shape(model, (None, *x.shape[1:]))
    dtype = np.dtype(model.layers[-1].dtype)
    chunks = (x.chunks[0], *((int(d),) for d in out[1:]))
    kw = {}
    if len(out) < x.ndim:
        kw["drop_axis"] = list(range(len(out), x.ndim))
    elif len(out) > x.ndim:
        kw["new_axis"] = list(range(x.ndim, len(out)))
    shared = dask.delayed(model, pure=True)
    return da.map_blocks(predict_block, x, shared, batch_size, dtype=dtype, chunks=chunks,
                         meta=np.empty((0,) * len(out), dtype), **kw)
