"""Max and average pooling one window row at a time: ranks 1-3, both layouts, dilation 1; and
global pooling (the window is the whole spatial extent).

channels_last: per output row, each in-bounds window row (d, h) adds to every output cell its
kw neighbouring channel vectors, in one pass over the channels (kw 2 and 3 fused into one
expression), written on the first window row and folded in after: no buffer. kw and the
first/fold choice are literals in the inlined loops (run-time values there made them 2-3x
slower) and the cells are indexed in 2-D, not through a view per cell (reference counting).
channels_first: per output row, a vertical pass reduces the window's input rows into one row
buffer (contiguous, vectorises), then a horizontal pass reduces kw neighbours with stride sw
(sw 1 and 2 have loops of their own); work items are whole channel planes.

Pads are not values: max ignores them, average divides by the in-bounds count (channels_last
adds each window row's sum already multiplied by 1/count, so no division pass follows; measured
max rel error 1.2e-7, tolerance 1e-5). Max keeps NaN as NumPy does (tolerance 1e-6; exact).

`maxpool_global` / `avgpool_global`: channels_last reduces (N, P, C) over P in channel blocks
(both threads busy even at batch 1); channels_first reduces each channel's contiguous run of P
values: max through 16 lanes, average as one float64 sum that may be reassociated (so it
vectorises). Average accumulates in float64 in both layouts (long sums).

The channels_last and global kernels have a serial and a parallel driver (config `parallel`;
the parallel one gives each thread one contiguous range of the serial one's items): a parallel
launch costs about 5 us on one thread and 10-30 us on two (measured on the shared 2-core
machine), more than a small pooling call takes; the tuner measures both.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from nbconv.tuner.registry import register

from ..spec import Problem
from .arrays5d import applies_common, check_array, three
from .parallel import numba_threads

_CBLK = 256         # channels per work item of the global channels_last reduction
_RBLK = 64          # rows per work item of the global channels_first reduction
_LANES = 16
CONFIGS = [{"parallel": False}, {"parallel": True}]


@njit(cache=True, inline="always")
def _mx(a, v):
    return v if ((v > a) | (v != v)) else a


@njit(cache=True, inline="always")
def _taps_last(o, ow, r, col, k, n, is_max, first, s):
    """Output cell o[ow] (of an output row (OW, C)) from window row r (W, C), columns
    col..col+k-1: written when `first`, else folded in; average terms are multiplied by s (1 / the
    window's in-bounds count). 2-D indexing, not per-cell views: a view per cell costs reference
    counting that made the loop 4x slower."""
    if k == 2:
        if is_max:
            if first:
                for c in range(n):
                    o[ow, c] = _mx(r[col, c], r[col + 1, c])
            else:
                for c in range(n):
                    o[ow, c] = _mx(o[ow, c], _mx(r[col, c], r[col + 1, c]))
        elif first:
            for c in range(n):
                o[ow, c] = (r[col, c] + r[col + 1, c]) * s
        else:
            for c in range(n):
                o[ow, c] += (r[col, c] + r[col + 1, c]) * s
        return
    if k == 3:
        if is_max:
            if first:
                for c in range(n):
                    o[ow, c] = _mx(_mx(r[col, c], r[col + 1, c]), r[col + 2, c])
            else:
                for c in range(n):
                    o[ow, c] = _mx(o[ow, c], _mx(_mx(r[col, c], r[col + 1, c]), r[col + 2, c]))
        elif first:
            for c in range(n):
                o[ow, c] = (r[col, c] + r[col + 1, c] + r[col + 2, c]) * s
        else:
            for c in range(n):
                o[ow, c] += (r[col, c] + r[col + 1, c] + r[col + 2, c]) * s
        return
    for j in range(k):
        if is_max:
            if first and j == 0:
                for c in range(n):
                    o[ow, c] = r[col, c]
            else:
                for c in range(n):
                    o[ow, c] = _mx(o[ow, c], r[col + j, c])
        elif first and j == 0:
            for c in range(n):
                o[ow, c] = r[col, c] * s
        else:
            for c in range(n):
                o[ow, c] += r[col + j, c] * s


@njit(cache=True)
def _cell_any(o, ow, r, col, k, n, is_max, first, s):
    """_taps_last with run-time k and first (not inlined: border cells and uncommon windows)."""
    _taps_last(o, ow, r, col, k, n, is_max, first, s)


@njit(cache=True, inline="always")
def _cells_last(o, r, k, sw, pw, vert, is_max, first, fused):
    """Every output cell of row o (OW, C) from window row r (W, C). Called with literal k (2, 3),
    first and fused=True, so each interior cell's loop is specialised (a run-time k or first in
    the loop's function made it 2-3x slower); border cells go through _cell_any."""
    w_, c_ = r.shape
    for ow in range(o.shape[0]):
        fw = ow * sw - pw
        w0, w1 = max(0, -fw), min(k, w_ - fw)
        if w1 > w0:
            s = r.dtype.type(1.0 / (vert * (w1 - w0)))
            if fused and w1 - w0 == k:
                _taps_last(o, ow, r, fw, k, c_, is_max, first, s)
            else:
                _cell_any(o, ow, r, fw + w0, w1 - w0, c_, is_max, first, s)


@njit(cache=True)
def _row_last(x, out, t, kd, kh, kw, sd, sh, sw, pd, ph, pw, is_max):
    """Output row t of out (N, OD, OH, OW, C) from x (N, D, H, W, C)."""
    _, d_, h_, w_, c_ = x.shape
    _, od_, oh_, ow_, _ = out.shape
    oh = t % oh_
    od = (t // oh_) % od_
    n = t // (oh_ * od_)
    o = out[n, od, oh]
    fd, fh = od * sd - pd, oh * sh - ph
    d0, d1 = max(0, -fd), min(kd, d_ - fd)
    h0, h1 = max(0, -fh), min(kh, h_ - fh)
    vert = max(d1 - d0, 0) * max(h1 - h0, 0)
    first = True
    for jd in range(d0, d1):
        for jh in range(h0, h1):
            r = x[n, fd + jd, fh + jh]
            if kw == 2:
                if first:
                    _cells_last(o, r, 2, sw, pw, vert, is_max, True, True)
                else:
                    _cells_last(o, r, 2, sw, pw, vert, is_max, False, True)
            elif kw == 3:
                if first:
                    _cells_last(o, r, 3, sw, pw, vert, is_max, True, True)
                else:
                    _cells_last(o, r, 3, sw, pw, vert, is_max, False, True)
            else:
                _cells_last(o, r, kw, sw, pw, vert, is_max, first, False)
            first = False
    for ow in range(ow_):                   # windows of pads only (explicit pads >= the window)
        fw = ow * sw - pw
        if vert == 0 or min(kw, w_ - fw) <= max(0, -fw):
            for c in range(c_):
                o[ow, c] = -np.inf if is_max else np.nan


@njit(cache=True, inline="always")
def _fold_row(dst, src, n, is_max):
    """dst[:n] = max or sum of dst and src; the branch is outside the loop so each loop vectorises."""
    if is_max:
        for i in range(n):
            v = src[i]
            a = dst[i]
            dst[i] = v if ((v > a) | (v != v)) else a
    else:
        for i in range(n):
            dst[i] += src[i]


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
                    _fold_row(buf, x[n, c, fd + jd, fh + jh], w_, is_max)
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


@njit(cache=True)
def _rows_ser(x, out, t0, t1, kd, kh, kw, sd, sh, sw, pd, ph, pw, is_max):
    for t in range(t0, t1):
        _row_last(x, out, t, kd, kh, kw, sd, sh, sw, pd, ph, pw, is_max)


@njit(cache=True, parallel=True)
def _rows_par(x, out, t0, t1, nt, kd, kh, kw, sd, sh, sw, pd, ph, pw, is_max):
    """_rows_ser over the threads: one contiguous range of rows per thread."""
    step = (t1 - t0 + nt - 1) // nt
    for i in prange(nt):
        _rows_ser(x, out, t0 + i * step, min(t1, t0 + (i + 1) * step),
                  kd, kh, kw, sd, sh, sw, pd, ph, pw, is_max)


@njit(cache=True)
def _global_last(x, out, t, is_max):
    """Channel block t of out (N, C) from x (N, P, C)."""
    n_, p_, c_ = x.shape
    nb = (c_ + _CBLK - 1) // _CBLK
    n = t // nb
    c0 = (t % nb) * _CBLK
    m = min(_CBLK, c_ - c0)
    o = out[n, c0:c0 + m]
    if is_max:
        for c in range(m):
            o[c] = -np.inf
        for q in range(p_):
            xr = x[n, q, c0:c0 + m]
            for c in range(m):
                o[c] = _mx(o[c], xr[c])
    else:
        acc = np.zeros(m, np.float64)
        for q in range(p_):
            xr = x[n, q, c0:c0 + m]
            for c in range(m):
                acc[c] += xr[c]
        for c in range(m):
            o[c] = acc[c] / p_


@njit(cache=True, fastmath={"reassoc"})
def _global_first(x, out, t, is_max):
    """Rows t * _RBLK... of out (R,) from x (R, P): the max of each contiguous row through _LANES
    lanes (NaN kept), or its mean summed in float64 ('reassoc' lets the sum vectorise; nothing else
    is relaxed, so NaN and Inf propagate; max never reassociates: its select is not an fadd)."""
    r_, p_ = x.shape
    full = p_ - p_ % _LANES
    lane = np.empty(_LANES, x.dtype)
    for r in range(t * _RBLK, min(r_, (t + 1) * _RBLK)):
        xr = x[r]
        if is_max:
            for q in range(_LANES):
                lane[q] = -np.inf
            for base in range(0, full, _LANES):
                for q in range(_LANES):
                    lane[q] = _mx(lane[q], xr[base + q])
            a = -np.inf
            for q in range(_LANES):
                a = _mx(a, lane[q])
            for i in range(full, p_):
                a = _mx(a, xr[i])
            out[r] = a
        else:
            s = 0.0
            for i in range(p_):
                s += np.float64(xr[i])
            out[r] = s / p_


@njit(cache=True)
def _global_ser(x3, out2, x2, out1, t0, t1, last, is_max):
    for t in range(t0, t1):
        if last:
            _global_last(x3, out2, t, is_max)
        else:
            _global_first(x2, out1, t, is_max)


@njit(cache=True, parallel=True)
def _global_par(x3, out2, x2, out1, t0, t1, nt, last, is_max):
    """_global_ser over the threads: one contiguous range of items per thread."""
    step = (t1 - t0 + nt - 1) // nt
    for i in prange(nt):
        _global_ser(x3, out2, x2, out1, t0 + i * step, min(t1, t0 + (i + 1) * step), last, is_max)


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


_PLANS: dict = {}   # (id(Problem), global) -> (Problem, plan): a decided call rebuilds none of the shapes


def _plan(p: Problem, is_global: bool):
    """(output shape, input view shape(s), output view shape(s), kernel arguments) of Problem p."""
    hit = _PLANS.get((id(p), is_global))
    if hit is not None and hit[0] is p:
        return hit[1]
    n, c, last = p.batch, p.in_channels, p.channels_last
    if is_global:
        size = int(np.prod(p.spatial))
        items = n * -(-c // _CBLK) if last else -(-(n * c) // _RBLK)
        plan = (p.output_shape, (n, size, c) if last else (1, 1, 1), (n, c) if last else (1, 1),
                (1, 1) if last else (n * c, size), (1,) if last else (n * c,), items, last)
    else:
        sp, osp = three(p.spatial, 1), three(p.out_spatial, 1)
        x5 = (n, *sp, c) if last else (n, c, *sp)
        o5 = (n, *osp, c) if last else (n, c, *osp)
        pads = tuple(lo for lo, _ in three(p.pads, (0, 0)))
        args = (*three(p.kernel, 1), *three(p.strides, 1), *pads)
        plan = (p.output_shape, x5, o5, n * osp[0] * osp[1], args)
    if len(_PLANS) > 256:
        _PLANS.clear()
    _PLANS[id(p), is_global] = (p, plan)
    return plan


def _rows(x, p: Problem, is_max: bool, parallel: bool):
    x = check_array("x", x, p.input_shape, p)
    shape, x5, o5, rows, args = _plan(p, False)
    out = np.empty(shape, x.dtype)
    if not p.channels_last:
        _rows_first(x.reshape(x5), out.reshape(o5), *args, is_max)
    elif parallel:
        _rows_par(x.reshape(x5), out.reshape(o5), 0, rows, numba_threads(), *args, is_max)
    else:
        _rows_ser(x.reshape(x5), out.reshape(o5), 0, rows, *args, is_max)
    return out


def _row_configs(p: Problem):
    """Serial and parallel for channels_last; channels_first has its parallel kernel only."""
    return CONFIGS if p.channels_last else CONFIGS[1:]


_DUMMY: dict = {}


def _dummies(dtype):
    """Placeholder arrays for the layout a global call does not use (one compile serves both)."""
    hit = _DUMMY.get(dtype)
    if hit is None:
        hit = _DUMMY[dtype] = tuple(np.zeros(s, dtype) for s in ((1, 1, 1), (1, 1), (1, 1), (1,)))
    return hit


def _global(x, p: Problem, is_max: bool, parallel: bool):
    x = check_array("x", x, p.input_shape, p)
    shape, xs, os_, x2s, o1s, items, last = _plan(p, True)
    out = np.empty(shape, x.dtype)
    d = _dummies(x.dtype)
    if last:
        args = (x.reshape(xs), out.reshape(os_), d[2], d[3])
    else:
        args = (d[0], d[1], x.reshape(x2s), out.reshape(o1s))
    if parallel:
        _global_par(*args, 0, items, numba_threads(), last, is_max)
    else:
        _global_ser(*args, 0, items, last, is_max)
    return out


@register("maxpool", applies=_applies_rows, configs=_row_configs, tolerance=1e-6, priority=8)
def maxpool_rows(x, p: Problem, parallel: bool = True):
    return _rows(x, p, True, parallel)


@register("avgpool", applies=_applies_rows, configs=_row_configs, tolerance=1e-5, priority=8)
def avgpool_rows(x, p: Problem, parallel: bool = True):
    return _rows(x, p, False, parallel)


@register("maxpool", applies=_applies_global, configs=CONFIGS, tolerance=1e-6, priority=9)
def maxpool_global(x, p: Problem, parallel: bool = True):
    return _global(x, p, True, parallel)


@register("avgpool", applies=_applies_global, configs=CONFIGS, tolerance=1e-5, priority=9)
def avgpool_global(x, p: Problem, parallel: bool = True):
    return _global(x, p, False, parallel)
