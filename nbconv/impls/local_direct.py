"""Direct locally-connected layer (unshared weights), every rank, both layouts.

Weights are canonical (P, *k, C_in, F) with output positions row-major, bias (P, F); pads are
explicit zero pads (the layer already turned LC `same` into k//2-left pairs), so the wrapper
zero-pads a copy and the kernel has no bounds checks. One parallel item per (batch, position);
the innermost loop runs over the contiguous filters of that position's weight bank.
channels_first inputs are transposed to channels_last first: permuting the (much larger) weights
instead would cost more than moving the input. float32 accumulates in float32; tolerance 1e-5,
measured max rel error over the property tests' draws 2.1e-7.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from nbconv.tuner.registry import register

from ..spec import Problem
from .arrays5d import applies_common, check_array, three, view5, zero_pad5

TOLERANCE = 1e-5


@njit(cache=True, parallel=True, fastmath={"contract"})
def _local_last(xp, w, b, out, sd, sh, sw, dd, dh, dw):
    """xp (N, D, H, W, C) padded; w (P, KD, KH, KW, C, F); b (P, F); out (N, OD, OH, OW, F)."""
    n_, od_, oh_, ow_, f_ = out.shape
    npos, kd_, kh_, kw_, c_, _ = w.shape
    for t in prange(n_ * npos):
        pos = t % npos
        n = t // npos
        ow = pos % ow_
        r = pos // ow_
        oh = r % oh_
        od = r // oh_
        acc = np.empty(f_, out.dtype)  # local accumulator: aliases nothing, so loops vectorise
        for f in range(f_):
            acc[f] = b[pos, f]
        for kd in range(kd_):
            for kh in range(kh_):
                for kw in range(kw_):
                    i, j, k = od * sd + kd * dd, oh * sh + kh * dh, ow * sw + kw * dw
                    for c in range(c_):
                        v = xp[n, i, j, k, c]
                        for f in range(f_):
                            acc[f] += v * w[pos, kd, kh, kw, c, f]
        for f in range(f_):
            out[n, od, oh, ow, f] = acc[f]


def _applies(p: Problem):
    ok = applies_common(p)
    if ok is not True:
        return ok
    if p.groups != 1:
        return f"locally-connected layers have no groups; got groups={p.groups}"
    return True


@register("local", applies=_applies, configs=[{}], tolerance=TOLERANCE, priority=0)
def local_direct(x, w, b, p: Problem) -> np.ndarray:
    """Locally-connected layer of any rank 1-3, either layout; returns p.output_shape."""
    x = check_array("x", x, p.input_shape, p)
    w = check_array("w", w, p.weight_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    last = p.with_(layout="channels_last")
    if not p.channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    xp = zero_pad5(view5(x, last), last)
    kd, kh, kw = three(p.kernel, 1)
    w6 = w.reshape(w.shape[0], kd, kh, kw, p.in_channels, p.out_channels)
    out = np.empty(last.output_shape, x.dtype)
    _local_last(xp, w6, b, view5(out, last, out=True), *three(p.strides, 1), *three(p.dilation, 1))
    if not p.channels_last:
        out = np.ascontiguousarray(np.moveaxis(out, -1, 1))
    return out
