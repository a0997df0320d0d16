"""The one float64 NumPy oracle every kernel is tested against.

Independent of the kernels: strided window views over an explicitly padded copy.
Takes arrays in the Problem's layout and Keras's weight layouts; returns float64.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .spec import Problem, effective_kernel, separable_steps


def _to_last(x, p: Problem):
    return x if p.channels_last else np.moveaxis(x, 1, -1)


def _from_last(y, p: Problem):
    return y if p.channels_last else np.moveaxis(y, -1, 1)


def _windows(x_last, p: Problem, fill):
    """(N, *out, C, *k) view of the padded channels_last input, strided and dilated."""
    r = p.rank
    xp = np.pad(x_last, [(0, 0), *p.pads, (0, 0)], constant_values=fill)
    ke = [effective_kernel(k, d) for k, d in zip(p.kernel, p.dilation, strict=True)]
    win = sliding_window_view(xp, ke, axis=tuple(range(1, r + 1)))
    sl = (slice(None),) + tuple(slice(None, o * s, s) for o, s in zip(p.out_spatial, p.strides, strict=True))
    win = win[sl + (slice(None),) + tuple(slice(None, None, d) for d in p.dilation)]
    return win[(slice(None),) + tuple(slice(None, o) for o in p.out_spatial)]


def conv(x, w, b, p: Problem):
    """Grouped, strided, dilated cross-correlation; w is (*k, C/groups, F), b is (F,) or None."""
    x = _to_last(np.asarray(x, np.float64), p)
    w = np.asarray(w, np.float64)
    r, g = p.rank, p.groups
    cg, fg = p.in_channels // g, p.out_channels // g
    win = _windows(x, p, 0.0)                       # (N, *out, C, *k)
    win = win.reshape(*win.shape[:r + 1], g, cg, *p.kernel)
    wk = np.moveaxis(w, (r, r + 1), (0, 1))         # (Cg, F, *k)
    wk = wk.reshape(cg, g, fg, *p.kernel)
    letters = "uvw"[:r]
    y = np.einsum(f"n...gc{letters},cgf{letters}->n...gf", win, wk, optimize=True)
    y = y.reshape(*y.shape[:r + 1], p.out_channels)
    if b is not None:
        y = y + np.asarray(b, np.float64)
    return _from_last(y, p)


def pool(x, p: Problem):
    """Max or average pooling; padded cells are not values (max ignores them, avg divides by the
    number of real cells in each window)."""
    x = _to_last(np.asarray(x, np.float64), p)
    r = p.rank
    axes = tuple(range(-r, 0))
    if p.op == "maxpool":
        y = _windows(x, p, -np.inf).max(axis=axes)
    else:
        total = _windows(x, p, 0.0).sum(axis=axes)
        ones = np.ones((1, *p.spatial, 1))
        count = _windows(ones, p, 0.0).sum(axis=axes)
        y = total / count
    return _from_last(y, p)


def local(x, w, b, p: Problem):
    """Locally connected: w is (P, *k, C, F) (one filter bank per output position), b (P, F) or None."""
    x = _to_last(np.asarray(x, np.float64), p)
    r = p.rank
    win = _windows(x, p, 0.0)                       # (N, *out, C, *k)
    n_pos = int(np.prod(p.out_spatial))
    win = win.reshape(p.batch, n_pos, p.in_channels, *p.kernel)
    wk = np.asarray(w, np.float64)                  # (P, *k, C, F)
    letters = "uvw"[:r]
    y = np.einsum(f"npc{letters},p{letters}cf->npf", win, wk, optimize=True)
    if b is not None:
        y = y + np.asarray(b, np.float64)
    y = y.reshape(p.batch, *p.out_spatial, p.out_channels)
    return _from_last(y, p)


def dense(x, w, b, p: Problem | None = None):
    y = np.asarray(x, np.float64) @ np.asarray(w, np.float64)
    if b is not None:
        y = y + np.asarray(b, np.float64)
    return y


def separable(x, depthwise, pointwise, b, p: Problem):
    """Depthwise (kernel (*k, C, M), no bias) then 1x1 conv (kernel (*1, C*M, F)), all in float64."""
    dw, pw = separable_steps(p)
    mid = conv(x, np.asarray(depthwise, np.float64).reshape(dw.weight_shape), None, dw)
    return conv(mid, pointwise, b, pw)


def run(op: str, p: Problem, *arrays):
    """Dispatch by op name, with the kernels' argument order: (x, w, b), (x,) for pooling,
    (x, depthwise, pointwise, b) for separable."""
    if op in ("maxpool", "avgpool"):
        return pool(arrays[0], p)
    if op == "separable":
        return separable(*arrays[:4], p)
    return {"conv": conv, "local": local, "dense": dense}[op](*arrays[:3], p)


def rel_error(y, ref) -> float:
    """Max absolute error relative to the output's largest magnitude (spec for tolerances)."""
    y = np.asarray(y, np.float64)
    ref = np.asarray(ref, np.float64)
    if y.shape != ref.shape:
        return float("inf")
    if ref.size == 0:
        return 0.0
    finite = np.isfinite(ref)
    same_cells = np.array_equal(finite, np.isfinite(y))
    if not same_cells or not np.array_equal(ref[~finite], y[~finite], equal_nan=True):
        return float("inf")
    if not finite.any():
        return 0.0
    scale = max(float(np.abs(ref[finite]).max()), 1e-30)
    return float(np.abs(y[finite] - ref[finite]).max() / scale)
