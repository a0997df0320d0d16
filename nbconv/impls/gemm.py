"""im2col + BLAS GEMM convolution (ranks 1-3, both layouts, groups) and 1x1 convolution as one GEMM.

The im2col workspace is tiled over output rows (n, od, oh) under a byte cap, so a large image
never lowers all at once: `im2col_plan` gives the tiling and the peak extra memory. Padding is
done while lowering (out-of-bounds taps are written as zeros), so the input is never copied.
Every GEMM is split over Numba's threads (by rows, or by the inner dimension when it has few
rows), each calling single-threaded BLAS (`par_dot`, run under `threads.blas_single()`):
BLAS's own pool never wakes. Its workers
busy-wait after a call (~0.1 s, OpenBLAS's default): measured, the next Numba kernel or torch
call in that window ran 9-60x slower, which skewed the tuner's and the benchmark's timings.
Tolerance 1e-4 (float32). Measured max rel error vs the float64 reference: im2col 3.7e-7 and
1x1 9e-8 over the property draws; 4.3e-7 at C=512 (3x3, inputs in [-1, 1]).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from nbconv.tuner.registry import register

from .. import threads
from ..spec import Problem
from .arrays5d import check_array, three
from .nchw_pointwise import subsample
from .parallel import numba_threads
from .scratch import scratch


@njit(cache=True, parallel=True)
def par_dot(a, b, out, nthreads):
    """out = a @ b over up to `nthreads` Numba threads (2-D C-contiguous arrays).

    Tall `a`: its rows are split. Few rows (a 1x1 layer on a 7x7 map, a dense layer on a small
    batch): the inner dimension is split instead, each thread multiplies a copy of its columns
    of `a` by its rows of `b`, and the partial products are summed: a 25-row GEMM per thread
    ran at half the speed of a 49-row one split this way. The thread count comes from the
    caller: numba.get_num_threads() in compiled code would make every caller uncacheable."""
    m, k = a.shape
    n = b.shape[1]
    if m >= 32 * nthreads or k < 128 * nthreads:
        parts = max(1, min(nthreads, m // 16))
        step = -(-m // parts)
        for t in prange(parts):
            r0 = t * step
            r1 = min(m, r0 + step)
            if r0 < r1:
                np.dot(a[r0:r1], b, out[r0:r1])
        return
    step = -(-k // nthreads)
    part = np.empty((nthreads, m, n), out.dtype)
    for t in prange(nthreads):
        k0 = t * step
        k1 = min(k, k0 + step)
        np.dot(np.ascontiguousarray(a[:, k0:k1]), b[k0:k1], part[t])
    for i in range(m):
        for j in range(n):
            s = part[0, i, j]
            for t in range(1, nthreads):
                s += part[t, i, j]
            out[i, j] = s


def _lower_nhwc_py(x, col, r0, r1, c0, cg, kd_, kh_, kw_, sd, sh, sw, dd, dh, dw, pd, ph, pw,
                od_, oh_, ow_):
    """Rows r0..r1 of (n, od, oh) into col ((r1-r0)*OW, K*Cg); zeros outside the input."""
    n_, d_, h_, w_, c_ = x.shape
    x4 = x.reshape(n_, d_, h_, w_ * c_)
    for r in prange(r0, r1):
        n = r // (od_ * oh_)
        od = (r // oh_) % od_
        oh = r % oh_
        for ow in range(ow_):
            cr = col[(r - r0) * ow_ + ow]
            k = 0
            iw0 = ow * sw - pw
            # all KW taps in bounds, undilated, one group: one contiguous run of KW*C values
            run = dw == 1 and cg == c_ and iw0 >= 0 and iw0 + kw_ <= w_
            for a in range(kd_):
                i_d = od * sd - pd + a * dd
                for bb in range(kh_):
                    i_h = oh * sh - ph + bb * dh
                    if run and 0 <= i_d < d_ and 0 <= i_h < h_:
                        xs = x4[n, i_d, i_h, iw0 * c_:(iw0 + kw_) * c_]
                        cs = cr[k:k + kw_ * c_]
                        for q in range(kw_ * c_):
                            cs[q] = xs[q]
                        k += kw_ * c_
                        continue
                    for cc in range(kw_):
                        i_w = iw0 + cc * dw
                        if 0 <= i_d < d_ and 0 <= i_h < h_ and 0 <= i_w < w_:
                            xr = x[n, i_d, i_h, i_w]
                            for c in range(cg):
                                cr[k + c] = xr[c0 + c]
                        else:
                            for c in range(cg):
                                cr[k + c] = 0
                        k += cg


# Parallel lowering pays only on big tiles: a parallel launch costs tens of microseconds.
_lower_nhwc_par = njit(cache=True, parallel=True)(_lower_nhwc_py)
_lower_nhwc_ser = njit(cache=True)(_lower_nhwc_py)
_PAR_MIN_ELEMS = 1 << 16


@njit(cache=True)
def _im2col_nhwc(x, wg, b, y2, kd_, kh_, kw_, sd, sh, sw, dd, dh, dw, pd, ph, pw,
                 od_, oh_, ow_, tile_rows, nthreads):
    """x (N,D,H,W,C); wg (G, K*Cg, Fg); y2 (N*OD*OH*OW, F). Returns the number of tiles.

    The lowering and then the GEMM (par_dot) run on Numba's threads.
    """
    n_, d_, h_, w_, c_ = x.shape
    g_, kc, fg = wg.shape
    cg = c_ // g_
    rows = n_ * od_ * oh_
    col = np.empty((tile_rows * ow_, kc), x.dtype)
    tmp = np.empty((tile_rows * ow_ if g_ > 1 else 0, fg), x.dtype)
    tiles = 0
    for r0 in range(0, rows, tile_rows):
        r1 = min(rows, r0 + tile_rows)
        pix = (r1 - r0) * ow_
        p0 = r0 * ow_
        for g in range(g_):
            if pix * kc >= _PAR_MIN_ELEMS:
                _lower_nhwc_par(x, col, r0, r1, g * cg, cg, kd_, kh_, kw_, sd, sh, sw, dd, dh, dw,
                                pd, ph, pw, od_, oh_, ow_)
            else:
                _lower_nhwc_ser(x, col, r0, r1, g * cg, cg, kd_, kh_, kw_, sd, sh, sw, dd, dh, dw,
                                pd, ph, pw, od_, oh_, ow_)
            if g_ == 1:
                out = y2[p0:p0 + pix]
                par_dot(col[:pix], wg[0], out, nthreads)
            else:
                out = tmp[:pix]
                par_dot(col[:pix], wg[g], out, nthreads)
                for i in range(pix):
                    for f in range(fg):
                        y2[p0 + i, g * fg + f] = out[i, f]
        for i in range(p0, p0 + pix):
            for f in range(y2.shape[1]):
                y2[i, f] += b[f]
        tiles += 1
    return tiles


@njit(cache=True)
def _im2col_nchw(x, wt, b, y3, kd_, kh_, kw_, sd, sh, sw, dd, dh, dw, pd, ph, pw,
                 od_, oh_, ow_, tile_rows, nthreads):
    """x (N,C,D,H,W); wt (G, Fg, Cg*K) with (c, kd, kh, kw) order; y3 (N, F, OD*OH*OW)."""
    n_, c_, d_, h_, w_ = x.shape
    g_, fg, kc = wt.shape
    cg = c_ // g_
    rows = od_ * oh_
    tile_rows = min(tile_rows, rows)
    col = np.empty((kc, tile_rows * ow_), x.dtype)
    tmp = np.empty((fg, tile_rows * ow_), x.dtype)
    tiles = 0
    for n in range(n_):
        for r0 in range(0, rows, tile_rows):
            r1 = min(rows, r0 + tile_rows)
            pix = (r1 - r0) * ow_
            for g in range(g_):
                k = 0
                for c in range(cg):
                    for a in range(kd_):
                        for bb in range(kh_):
                            for cc in range(kw_):
                                for r in range(r0, r1):
                                    i_d = (r // oh_) * sd - pd + a * dd
                                    i_h = (r % oh_) * sh - ph + bb * dh
                                    q = (r - r0) * ow_
                                    if 0 <= i_d < d_ and 0 <= i_h < h_:
                                        for ow in range(ow_):
                                            i_w = ow * sw - pw + cc * dw
                                            if 0 <= i_w < w_:
                                                col[k, q + ow] = x[n, g * cg + c, i_d, i_h, i_w]
                                            else:
                                                col[k, q + ow] = 0
                                    else:
                                        for ow in range(ow_):
                                            col[k, q + ow] = 0
                                k += 1
                if pix == col.shape[1]:
                    cv = col
                    out = tmp
                else:
                    cv = np.ascontiguousarray(col[:, :pix])
                    out = np.empty((fg, pix), x.dtype)
                par_dot(wt[g], cv, out, nthreads)
                p0 = r0 * ow_
                for f in range(fg):
                    bf = b[g * fg + f]
                    for i in range(pix):
                        y3[n, g * fg + f, p0 + i] = out[f, i] + bf
            tiles += 1
    return tiles


# -- Python wrappers ---------------------------------------------------------------

def _as5(p: Problem, shape):
    """Pad a rank-1..3 spatial tuple to 3 entries (leading size-1 axes)."""
    return (1,) * (3 - p.rank) + tuple(shape)


def _geometry(p: Problem):
    k = _as5(p, p.kernel)
    s = _as5(p, p.strides)
    d = _as5(p, p.dilation)
    lo = (0,) * (3 - p.rank) + tuple(lo for lo, _ in p.pads)
    o = _as5(p, p.out_spatial)
    return k, s, d, lo, o


def im2col_plan(p: Problem, cap_mb: float) -> dict:
    """Tiling and peak extra memory of the im2col path under a workspace cap (MiB)."""
    item = np.dtype(p.dtype).itemsize
    k, _, _, _, o = _geometry(p)
    kc = math.prod(k) * (p.in_channels // p.groups)
    fg = p.out_channels // p.groups
    rows = p.batch * o[0] * o[1] if p.channels_last else o[0] * o[1]
    per_row = o[2] * kc * item
    tile_rows = int(max(1, min(rows, (cap_mb * 2 ** 20) // max(per_row, 1))))
    tiles = -(-rows // tile_rows) * (1 if p.channels_last else p.batch)
    col = tile_rows * o[2] * kc * item
    tmp = tile_rows * o[2] * fg * item if (p.groups > 1 or not p.channels_last) else 0
    weights = math.prod(k) * p.in_channels * fg * item   # the re-laid-out weight copy
    return {"tile_rows": tile_rows, "tiles": tiles, "col_bytes": col,
            "peak_extra_bytes": col + 2 * tmp + weights}


# Filled by the last im2col call: the plan and the tile count the kernel actually ran.
last_run: dict = {}


def _applies_im2col(p: Problem):
    if p.op != "conv" or not 1 <= p.rank <= 3:
        return "im2col: conv of rank 1-3 only"
    return True


im2col_gemm_configs = [{"cap_mb": 1}, {"cap_mb": 4}, {"cap_mb": 32}]


@register("conv", applies=_applies_im2col, configs=im2col_gemm_configs, tolerance=1e-4,
          priority=10)
def im2col_gemm(x, w, b, p: Problem, cap_mb=32):
    x = check_array("x", x, p.input_shape, p)
    w = check_array("w", w, p.weight_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    if not cap_mb > 0:
        raise ValueError(f"im2col_gemm: `cap_mb` must be > 0. Received: cap_mb={cap_mb!r}")
    k, s, d, lo, o = _geometry(p)
    g = p.groups
    cg, fg = p.in_channels // g, p.out_channels // g
    plan = im2col_plan(p, cap_mb)
    y = np.empty(p.output_shape, p.dtype)
    if p.channels_last:
        x5 = x.reshape(p.batch, *_as5(p, p.spatial), p.in_channels)
        # (*k, Cg, G, Fg) -> (G, K*Cg, Fg): row order (kd, kh, kw, c) matches the lowering.
        wg = np.ascontiguousarray(np.moveaxis(w.reshape(-1, cg, g, fg), 2, 0).reshape(g, -1, fg))
        with threads.blas_single():
            tiles = _im2col_nhwc(x5, wg, b, y.reshape(-1, p.out_channels), *k, *s, *d, *lo, *o,
                                 plan["tile_rows"], numba_threads())
    else:
        x5 = x.reshape(p.batch, p.in_channels, *_as5(p, p.spatial))
        # (K, Cg, G, Fg) -> (G, Fg, Cg, K): row order (c, kd, kh, kw).
        w4 = w.reshape(-1, cg, g, fg)
        wt = np.ascontiguousarray(np.transpose(w4, (2, 3, 1, 0)).reshape(g, fg, -1))
        with threads.blas_single():
            tiles = _im2col_nchw(x5, wt, b, y.reshape(p.batch, p.out_channels, -1), *k, *s, *d, *lo,
                                 *o, plan["tile_rows"], numba_threads())
    last_run.clear()
    last_run.update(plan, tiles_run=int(tiles), key=p.key())
    return y


def _applies_1x1(p: Problem):
    if p.op != "conv" or not 1 <= p.rank <= 3:
        return "1x1: conv of rank 1-3 only"
    if any(k != 1 for k in p.kernel):
        return f"1x1: kernel must be all ones, got {p.kernel}"
    if any(lo or hi for lo, hi in p.pads):
        return "1x1: no padding"
    if p.groups != 1:
        return "1x1: groups == 1 only"
    return True


def _prepare_1x1(w, b, p: Problem):
    """The weights as the GEMM reads them: (C, F) for channels_last, (F, C) for channels_first."""
    w2 = check_array("w", w, p.weight_shape, p).reshape(p.in_channels, p.out_channels)
    return w2 if p.channels_last else np.ascontiguousarray(w2.T)


@register("conv", applies=_applies_1x1, tolerance=1e-4, priority=30, prepare=_prepare_1x1)
def gemm_1x1(x, w, b, p: Problem, prepared=None):
    """One GEMM, no lowering: a strided 1x1 reads a subsampled copy of x (channels_first: made
    in parallel, plane by plane, by `nchw_pointwise.subsample`)."""
    x = check_array("x", x, p.input_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    wg = _prepare_1x1(w, b, p) if prepared is None else prepared
    strided = any(s != 1 for s in p.strides)
    y = np.empty(p.output_shape, p.dtype)
    if p.channels_last:
        sub = tuple(slice(0, o * s, s) for o, s in zip(p.out_spatial, p.strides, strict=True))
        xs = np.ascontiguousarray(x[(slice(None), *sub, slice(None))]) if strided else x
        y2 = y.reshape(-1, p.out_channels)
        with threads.blas_single():
            par_dot(xs.reshape(-1, p.in_channels), wg, y2, numba_threads())
        y2 += b
    else:
        xs = x
        if strided:
            xs = scratch("gemm_1x1_x", (p.batch, p.in_channels, *three(p.out_spatial, 1)), p.dtype)
            subsample(x.reshape(p.batch, p.in_channels, *three(p.spatial, 1)), xs, *three(p.strides, 1),
                      1, 1, 1, 1, 1, 1)
        y3 = y.reshape(p.batch, p.out_channels, -1)
        x3 = xs.reshape(p.batch, p.in_channels, -1)
        with threads.blas_single():
            for n in range(p.batch):
                par_dot(wg, x3[n], y3[n], numba_threads())
        y3 += b.reshape(1, -1, 1)
    return y
