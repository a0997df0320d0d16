"""Dense layer as one GEMM split by rows over Numba's threads (single-threaded BLAS each, so
BLAS's own pool never wakes: see gemm.py), bias added in place."""
from __future__ import annotations

import numpy as np

from nbconv.tuner.registry import register

from .. import threads
from ..spec import Problem
from .arrays5d import check_array
from .gemm import par_dot
from .parallel import numba_threads


def _applies(p: Problem):
    if p.op != "dense" or p.rank != 0:
        return "dense_blas: dense (rank 0) only"
    return True


@register("dense", applies=_applies, tolerance=1e-4, priority=10)
def dense_blas(x, w, b, p: Problem):
    x = check_array("x", x, p.input_shape, p)
    w = check_array("w", w, p.weight_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    y = np.empty(p.output_shape, p.dtype)
    with threads.blas_single():
        par_dot(x, w, y, numba_threads())
    y += b
    return y
