"""Locally-connected layer as a batched GEMM: one (N, K*C) @ (K*C, F) product per output position.

Each Numba worker takes a position, gathers its (N, K*C) patch (zeros outside the input, so the
input is never padded) and multiplies it with the position's weight bank through BLAS: the bank
is read once for the whole batch. BLAS runs on one thread inside prange (nbconv.threads policy).
channels_first is transposed to channels_last and back (the weights are far larger than x).
Tolerance 1e-4; measured max rel error 1.4e-7 over the property draws.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from nbconv.tuner.registry import register

from .. import threads
from ..spec import Problem
from .arrays5d import check_array, three


@njit(cache=True, parallel=True)
def _local_gemm_run(x, w, b, y, out_dims, kd_, kh_, kw_, sd, sh, sw, dd, dh, dw, pd, ph, pw):
    """x (N,D,H,W,C); w (P, K*C, F); b (P, F); y (N, P, F); out_dims (OD, OH, OW)."""
    n_, d_, h_, w_, c_ = x.shape
    npos, kc, f_ = w.shape
    oh_, ow_ = out_dims[1], out_dims[2]
    for pos in prange(npos):
        ow = pos % ow_
        oh = (pos // ow_) % oh_
        od = pos // (ow_ * oh_)
        patch = np.empty((n_, kc), x.dtype)
        for n in range(n_):
            k = 0
            for a in range(kd_):
                i_d = od * sd - pd + a * dd
                for bb in range(kh_):
                    i_h = oh * sh - ph + bb * dh
                    for cc in range(kw_):
                        i_w = ow * sw - pw + cc * dw
                        if 0 <= i_d < d_ and 0 <= i_h < h_ and 0 <= i_w < w_:
                            xr = x[n, i_d, i_h, i_w]
                            for c in range(c_):
                                patch[n, k + c] = xr[c]
                        else:
                            for c in range(c_):
                                patch[n, k + c] = 0
                        k += c_
        out = np.dot(patch, w[pos])
        for n in range(n_):
            for f in range(f_):
                y[n, pos, f] = out[n, f] + b[pos, f]


def _applies(p: Problem):
    if p.op != "local" or not 1 <= p.rank <= 3:
        return "local_gemm: locally-connected of rank 1-3 only"
    if p.groups != 1:
        return f"local_gemm: no groups (groups={p.groups})"
    if any(lo < 0 or hi < 0 for lo, hi in p.pads):
        return f"local_gemm: pads must be non-negative, got {p.pads}"
    return True


@register("local", applies=_applies, tolerance=1e-4, priority=10)
def local_gemm(x, w, b, p: Problem):
    x = check_array("x", x, p.input_shape, p)
    w = check_array("w", w, p.weight_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    xl = x if p.channels_last else np.ascontiguousarray(np.moveaxis(x, 1, -1))
    x5 = xl.reshape(p.batch, *three(p.spatial, 1), p.in_channels)
    npos = w.shape[0]
    w3 = w.reshape(npos, -1, p.out_channels)
    y = np.empty((p.batch, npos, p.out_channels), p.dtype)
    out_dims = np.array(three(p.out_spatial, 1), np.int64)
    with threads.blas_single():
        _local_gemm_run(x5, w3, b, y, out_dims, *three(p.kernel, 1), *three(p.strides, 1),
                        *three(p.dilation, 1), *three([lo for lo, _ in p.pads], 0))
    y = y.reshape(p.batch, *p.out_spatial, p.out_channels)
    return y if p.channels_last else np.ascontiguousarray(np.moveaxis(y, -1, 1))
