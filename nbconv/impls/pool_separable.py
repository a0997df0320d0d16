"""Separable pooling: one 1-D pass per spatial axis (max and average), ranks 1-3, both layouts.

A box window is the product of its axis windows, so pooling axis by axis costs kd + kh + kw per
output instead of kd * kh * kw: it wins on large windows. Each pass sees its data as
(outer, L, inner) and its inner loop runs over the contiguous `inner` axis (channels, or whole
pooled rows), so it vectorises. Pads are not values: max ignores them, average divides each pass
by its in-bounds count (the product of the per-axis counts is the window's count). Max keeps
NaN like NumPy. No BLAS: Numba's threads have the cores.
Tolerances: max 1e-6 (exact in practice), average 1e-5 (measured 1.1e-7).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from nbconv.tuner.registry import register

from ..spec import Problem


@njit(cache=True, parallel=True)
def _pool_axis(x, out, k, s, d, pad, is_max):
    """x (A, L, B) -> out (A, OL, B), pooling along L."""
    a_, l_, b_ = x.shape
    _, ol_, _ = out.shape
    for t in prange(a_ * ol_):
        a = t // ol_
        o = t % ol_
        first = o * s - pad
        j0 = 0 if first >= 0 else (-first + d - 1) // d
        j1 = min(k, (l_ - first + d - 1) // d) if l_ > first else 0
        j1 = max(j0, j1)
        acc = np.empty(b_, x.dtype)   # local: aliases nothing, so the loops vectorise
        for i in range(b_):
            acc[i] = -np.inf if is_max else 0.0
        for j in range(j0, j1):
            xr = x[a, first + j * d]
            if is_max:
                for i in range(b_):
                    v = xr[i]
                    c = acc[i]
                    acc[i] = v if (v > c or v != v) else c
            else:
                for i in range(b_):
                    acc[i] += xr[i]
        orow = out[a, o]
        if is_max:
            for i in range(b_):
                orow[i] = acc[i]
        else:
            cnt = j1 - j0
            for i in range(b_):
                orow[i] = acc[i] / cnt if cnt > 0 else np.nan


def _applies(p: Problem):
    if p.op not in ("maxpool", "avgpool") or not 1 <= p.rank <= 3:
        return "separable pooling: pooling of rank 1-3 only"
    if p.in_channels != p.out_channels:
        return "separable pooling: channels are kept"
    if not p.valid():
        return f"separable pooling: empty output {p.out_spatial}"
    if all(k == 1 for k in p.kernel):
        return "separable pooling: nothing to separate for a 1-cell window"
    return True


def _separable(x, p: Problem, is_max: bool):
    r = p.rank
    cur = x
    shape = list(p.input_shape)
    first_axis = 1 if p.channels_last else 2
    for ax in range(r - 1, -1, -1):           # innermost spatial axis first: shrinks the data early
        axis = first_axis + ax
        k, s, d = p.kernel[ax], p.strides[ax], p.dilation[ax]
        lo = p.pads[ax][0]
        out_shape = list(shape)
        out_shape[axis] = p.out_spatial[ax]
        if k == 1 and s == 1 and lo == 0 and p.out_spatial[ax] == shape[axis]:
            continue
        a = int(np.prod(shape[:axis]))
        b = int(np.prod(shape[axis + 1:]))
        out = np.empty(out_shape, p.dtype)
        _pool_axis(cur.reshape(a, shape[axis], b), out.reshape(a, out_shape[axis], b),
                   k, s, d, lo, is_max)
        cur, shape = out, out_shape
    if cur is x:
        cur = x.copy()
    return cur


@register("maxpool", applies=_applies, tolerance=1e-6, priority=5)
def maxpool_separable(x, p: Problem):
    return _separable(x, p, True)


@register("avgpool", applies=_applies, tolerance=1e-5, priority=5)
def avgpool_separable(x, p: Problem):
    return _separable(x, p, False)
