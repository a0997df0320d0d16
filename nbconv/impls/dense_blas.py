"""Dense layer as one BLAS GEMM (numpy's matmul, all BLAS threads), bias added in place."""
from __future__ import annotations

import numpy as np

from tuner.registry import register

from ..spec import Problem
from .views import check_array


def _applies(p: Problem):
    if p.op != "dense" or p.rank != 0:
        return "dense_blas: dense (rank 0) only"
    return True


@register("dense", "blas_gemm", applies=_applies, tolerance=1e-4, priority=10)
def dense_blas(x, w, b, p: Problem):
    x = check_array("x", x, p.input_shape, p)
    w = check_array("w", w, p.weight_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    y = np.empty(p.output_shape, p.dtype)
    np.matmul(x, w, out=y)
    y += b
    return y
