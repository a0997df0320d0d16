"""Max and average pooling row by row, at the memory's pace: ranks 1-3, both layouts, dilation 1.

Per output row, a vertical pass reduces the kd x kh input rows the window covers into one row
buffer (contiguous loads and a contiguous store: the loop vectorises in either layout), then a
horizontal pass reduces kw neighbours of that buffer per output cell: over channel vectors in
channels_last, over the row with stride sw in channels_first (sw 1 and 2 have loops of their own
with a constant stride, which the vectoriser handles). Each input row is read once per output row
that needs it and stays in cache in between. Work is split into chunks of output rows
(channels_last) or whole channel planes (channels_first), so buffers are allocated once per chunk.

Pads are not values: max ignores them, average divides by the in-bounds count. Max keeps NaN as
NumPy does. Average sums kd*kh*kw values in the data's dtype. Tolerances: max 1e-6 (exact in
practice: it picks an input value), average 1e-5 (measured max rel error 1.2e-7 in the tests).

`maxpool_global` / `avgpool_global`: the window is the whole spatial extent (Keras's global
pooling). channels_last reduces (N, P, C) over P into channel blocks (both threads busy even at
batch 1); channels_first reduces each channel's contiguous run of P values: max through 16 lanes, average
as one float64 sum that may be reassociated (so it vectorises). Average accumulates in float64 in
both layouts (long sums), which is free at memory speed.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from nbconv.tuner.registry import register

from ..spec import Problem
from .arrays5d import applies_common, check_array, three, view5

_ROWS = 8           # output rows per work item (channels_last)
_CBLK = 256         # channels per work item of the global channels_last reduction
_LANES = 16


@njit(cache=True, inline="always")
def _comb(a, v, is_max):
    if is_max:
        return v if ((v > a) | (v != v)) else a
    return a + v


@njit(cache=True, inline="always")
def _fold(dst, src, n, is_max):
    """dst[:n] = max or sum of dst and src; the branch is outside the loop so each loop vectorises."""
    if is_max:
        for i in range(n):
            v = src[i]
            a = dst[i]
            dst[i] = v if ((v > a) | (v != v)) else a
    else:
        for i in range(n):
            dst[i] += src[i]


@njit(cache=True, inline="always")
def _fold_at(dst, src, off, n, is_max):
    """dst[:n] = max or sum of dst and src[off:off + n]."""
    if is_max:
        for i in range(n):
            v = src[off + i]
            a = dst[i]
            dst[i] = v if ((v > a) | (v != v)) else a
    else:
        for i in range(n):
            dst[i] += src[off + i]


@njit(cache=True, parallel=True)
def _rows_last(x, out, kd, kh, kw, sd, sh, sw, pd, ph, pw, is_max):
    """x (N, D, H, W, C) -> out (N, OD, OH, OW, C)."""
    n_, d_, h_, w_, c_ = x.shape
    _, od_, oh_, ow_, _ = out.shape
    chunks = (oh_ + _ROWS - 1) // _ROWS
    init = -np.inf if is_max else 0.0
    for t in prange(n_ * od_ * chunks):
        ch = t % chunks
        r = t // chunks
        od = r % od_
        n = r // od_
        buf = np.empty(w_ * c_, x.dtype)
        fd = od * sd - pd
        d0, d1 = max(0, -fd), min(kd, d_ - fd)
        for oh in range(ch * _ROWS, min(oh_, (ch + 1) * _ROWS)):
            fh = oh * sh - ph
            h0, h1 = max(0, -fh), min(kh, h_ - fh)
            vert = max(d1 - d0, 0) * max(h1 - h0, 0)
            if vert == 0:                   # a window of pads only (explicit pads >= the window)
                for i in range(w_ * c_):
                    buf[i] = init
            first = True
            for jd in range(d0, d1):
                for jh in range(h0, h1):
                    row = x[n, fd + jd, fh + jh].reshape(w_ * c_)
                    if first:
                        buf[:] = row
                        first = False
                    else:
                        _fold(buf, row, w_ * c_, is_max)
            for ow in range(ow_):
                fw = ow * sw - pw
                w0, w1 = max(0, -fw), min(kw, w_ - fw)
                o = out[n, od, oh, ow]
                if w1 <= w0:
                    o[:] = init
                else:
                    o[:] = buf[(fw + w0) * c_:(fw + w0 + 1) * c_]
                for jw in range(w0 + 1, w1):
                    _fold_at(o, buf, (fw + jw) * c_, c_, is_max)
                if not is_max:
                    cnt = vert * max(w1 - w0, 0)
                    scale = 1.0 / cnt if cnt > 0 else np.nan
                    for c in range(c_):
                        o[c] = o[c] * scale


@njit(cache=True, parallel=True)
def _rows_first(x, out, kd, kh, kw, sd, sh, sw, pd, ph, pw, is_max):
    """x (N, C, D, H, W) -> out (N, C, OD, OH, OW)."""
    n_, c_, d_, h_, w_ = x.shape
    _, _, od_, oh_, ow_ = out.shape
    init = -np.inf if is_max else 0.0
    for t in prange(n_ * c_ * od_):
        od = t % od_
        r = t // od_
        c = r % c_
        n = r // c_
        buf = np.empty(w_, x.dtype)
        acc = np.empty(ow_, x.dtype)
        fd = od * sd - pd
        d0, d1 = max(0, -fd), min(kd, d_ - fd)
        for oh in range(oh_):
            fh = oh * sh - ph
            h0, h1 = max(0, -fh), min(kh, h_ - fh)
            for i in range(w_):
                buf[i] = init
            for jd in range(d0, d1):
                for jh in range(h0, h1):
                    _fold(buf, x[n, c, fd + jd, fh + jh], w_, is_max)
            for i in range(ow_):
                acc[i] = init
            for jw in range(kw):
                off = jw - pw                                   # input column of ow is ow*sw + off
                lo = max(0, (-off + sw - 1) // sw)
                hi = min(ow_, (w_ - 1 - off) // sw + 1) if w_ - 1 - off >= 0 else 0
                if is_max:
                    if sw == 2:
                        for ow in range(lo, hi):
                            v = buf[2 * ow + off]
                            a = acc[ow]
                            acc[ow] = v if ((v > a) | (v != v)) else a
                    else:
                        for ow in range(lo, hi):
                            v = buf[ow * sw + off]
                            a = acc[ow]
                            acc[ow] = v if ((v > a) | (v != v)) else a
                elif sw == 2:
                    for ow in range(lo, hi):
                        acc[ow] += buf[2 * ow + off]
                else:
                    for ow in range(lo, hi):
                        acc[ow] += buf[ow * sw + off]
            o = out[n, c, od, oh]
            vert = max(d1 - d0, 0) * max(h1 - h0, 0)
            for ow in range(ow_):
                if is_max:
                    o[ow] = acc[ow]
                else:
                    fw = ow * sw - pw
                    cnt = vert * max(min(kw, w_ - fw) - max(0, -fw), 0)
                    o[ow] = acc[ow] / cnt if cnt > 0 else np.nan


@njit(cache=True, parallel=True)
def _global_last(x, out, is_max):
    """x (N, P, C) -> out (N, C)."""
    n_, p_, c_ = x.shape
    nb = (c_ + _CBLK - 1) // _CBLK
    for t in prange(n_ * nb):
        n = t // nb
        c0 = (t % nb) * _CBLK
        m = min(_CBLK, c_ - c0)
        if is_max:
            acc = np.empty(m, x.dtype)
            for c in range(m):
                acc[c] = -np.inf
            for q in range(p_):
                xr = x[n, q, c0:]
                for c in range(m):
                    acc[c] = _comb(acc[c], xr[c], True)
            for c in range(m):
                out[n, c0 + c] = acc[c]
        else:
            sacc = np.zeros(m, np.float64)
            for q in range(p_):
                xr = x[n, q, c0:]
                for c in range(m):
                    sacc[c] += xr[c]
            for c in range(m):
                out[n, c0 + c] = sacc[c] / p_


@njit(cache=True, parallel=True)
def _global_first_max(x, out):
    """x (R, P) -> out (R,): the max of each contiguous row, through _LANES lanes (NaN kept);
    rows go in chunks of 64 so the lane buffer is allocated once per chunk."""
    r_, p_ = x.shape
    full = p_ - p_ % _LANES
    chunks = (r_ + 63) // 64
    for t in prange(chunks):
        lane = np.empty(_LANES, x.dtype)
        for r in range(t * 64, min(r_, (t + 1) * 64)):
            xr = x[r]
            for q in range(_LANES):
                lane[q] = -np.inf
            for base in range(0, full, _LANES):
                for q in range(_LANES):
                    v = xr[base + q]
                    a = lane[q]
                    lane[q] = v if ((v > a) | (v != v)) else a
            a = -np.inf
            for q in range(_LANES):
                a = _comb(a, lane[q], True)
            for i in range(full, p_):
                a = _comb(a, xr[i], True)
            out[r] = a


@njit(cache=True, parallel=True, fastmath={"reassoc"})
def _global_first_sum(x, out):
    """x (R, P) -> out (R,): the mean of each contiguous row, summed in float64 ('reassoc' lets
    the sum vectorise; nothing else is relaxed, so NaN and Inf propagate)."""
    r_, p_ = x.shape
    for r in prange(r_):
        xr = x[r]
        s = 0.0
        for i in range(p_):
            s += np.float64(xr[i])
        out[r] = s / p_


def _applies_rows(p: Problem):
    ok = applies_common(p)
    if ok is not True:
        return f"pool_rows: {ok}"
    if p.op not in ("maxpool", "avgpool") or p.in_channels != p.out_channels:
        return "pool_rows: pooling (channels kept) only"
    if any(d != 1 for d in p.dilation):
        return f"pool_rows: dilation 1 only, got {p.dilation}"
    return True


def _applies_global(p: Problem):
    ok = _applies_rows(p)
    if ok is not True:
        return ok.replace("pool_rows", "pool_global")
    if tuple(p.kernel) != tuple(p.spatial) or any(lo or hi for lo, hi in p.pads):
        return (f"pool_global: the window must be the whole input, unpadded "
                f"(kernel {p.kernel}, spatial {p.spatial})")
    return True


def _rows(x, p: Problem, is_max: bool):
    x = check_array("x", x, p.input_shape, p)
    out = np.empty(p.output_shape, x.dtype)
    x5, out5 = view5(x, p), view5(out, p, out=True)
    args = (*three(p.kernel, 1), *three(p.strides, 1), *(lo for lo, _ in three(p.pads, (0, 0))), is_max)
    (_rows_last if p.channels_last else _rows_first)(x5, out5, *args)
    return out


def _global(x, p: Problem, is_max: bool):
    x = check_array("x", x, p.input_shape, p)
    out = np.empty(p.output_shape, x.dtype)
    n, c, size = p.batch, p.in_channels, int(np.prod(p.spatial))
    if p.channels_last:
        _global_last(x.reshape(n, size, c), out.reshape(n, c), is_max)
    else:
        (_global_first_max if is_max else _global_first_sum)(x.reshape(n * c, size), out.reshape(n * c))
    return out


@register("maxpool", applies=_applies_rows, tolerance=1e-6, priority=8)
def maxpool_rows(x, p: Problem):
    return _rows(x, p, True)


@register("avgpool", applies=_applies_rows, tolerance=1e-5, priority=8)
def avgpool_rows(x, p: Problem):
    return _rows(x, p, False)


@register("maxpool", applies=_applies_global, tolerance=1e-6, priority=9)
def maxpool_global(x, p: Problem):
    return _global(x, p, True)


@register("avgpool", applies=_applies_global, tolerance=1e-5, priority=9)
def avgpool_global(x, p: Problem):
    return _global(x, p, False)
