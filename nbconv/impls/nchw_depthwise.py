"""Register-tiled depthwise convolution straight on channels_first (NCHW) arrays, ranks 1-3.

groups == in_channels, any channel multiplier (output channel f reads input channel f // M). A
Numba worker owns a run of input planes (n, c). Per plane it first copies the plane into its own
buffer, zero-padded and column-phase-split (`_fill`: unit-stride runs, no edge tests, rows padded
to whole row tiles); the buffer stays in cache while the taps read it, so no padded copy of the
whole input goes through memory (that copy was half the time at stride 2). Then, per `wb` output
rows, it keeps a (wb, fb) tile in vector registers, fb output columns wide: each tap adds one
contiguous input vector run per row times that tap's weight, repeated fb times in `prepare` so
the multiply is a plain vector one; at stride 1 with KH 3 or 5 the KH taps of a column share
their input rows (`tile_fma_run`: wb + KH - 1 loads instead of wb * KH). The output is
written in place (its right edge by masked stores): no layout copy. Tolerance 1e-4 (a sum of
at most KD*KH*KW products).
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit, prange

from nbconv.tuner.registry import register

from ..spec import Problem
from .arrays5d import applies_common, check_array, three
from .nchw_tiled import best_tiles, check_tile
from .parallel import numba_threads
from .scratch import aligned_empty, scratch
from .simd import lanes, tile_fill, tile_fma_elem, tile_fma_run, tile_new, tile_store
from .simd_masked import SOURCE_HASH, copy_vector, lanes_of, split_vector2, tile_store_cols
from .tiled import STREAM_MIN_BYTES


@njit(cache=True)
def _fill(x1, src0, d_, h_, w_, s1, dst0, dp_, hp_, sw_, wq_, pd, ph, pw):
    """s1[dst0 + ((dp*SW + r)*Hp + hp)*Wq + q] = x[dp - pd, hp - ph, q*SW + r - pw] where that
    lies in x, for the plane of x starting at x1[src0]: the plane with its columns split into SW
    phases, so that every tap reads unit-stride runs. The padding around it is left alone: the
    worker zeroes its buffer once, and every plane of a call writes the same places."""
    lane = lanes_of(s1)
    if sw_ == 2:
        _fill2(x1, src0, d_, h_, w_, s1, dst0, dp_, hp_, wq_, pd, ph, pw, lane)
        return
    for r in range(sw_):
        # columns q with 0 <= q*sw + off < w_: [lo, hi)
        off = r - pw
        lo = 0 if off >= 0 else min(wq_, (-off + sw_ - 1) // sw_)
        hi = 0 if w_ - 1 - off < 0 else min(wq_, (w_ - 1 - off) // sw_ + 1)
        for i_d in range(max(0, -pd), min(d_, dp_ - pd)):
            for i_h in range(max(0, -ph), min(h_, hp_ - ph)):
                o = dst0 + (((i_d + pd) * sw_ + r) * hp_ + i_h + ph) * wq_ + lo
                src = src0 + (i_d * h_ + i_h) * w_ + off + lo * sw_
                if sw_ == 1:
                    for q in range(0, hi - lo, lane):
                        copy_vector(s1, o + q, x1, src + q, hi - lo - q)
                else:
                    # views from start offsets: non-negative indices, so no wraparound tests
                    run, xs = s1[o:], x1[src:]
                    for q in range(hi - lo):
                        run[q] = xs[q * sw_]


@njit(cache=True)
def _fill2(x1, src0, d_, h_, w_, s1, dst0, dp_, hp_, wq_, pd, ph, pw, lane):
    """`_fill` at column stride 2: input column j goes to phase (j + pw) % 2, column (j + pw) // 2;
    from the first column of phase 0 on, pairs of columns split into both phases at once."""
    j0 = pw % 2
    q0 = (j0 + pw) // 2
    n = min(w_ - j0, 2 * (wq_ - q0))        # columns from j0 that land inside the rows
    for i_d in range(max(0, -pd), min(d_, dp_ - pd)):
        for i_h in range(max(0, -ph), min(h_, hp_ - ph)):
            o = dst0 + ((i_d + pd) * 2 * hp_ + i_h + ph) * wq_
            src = src0 + (i_d * h_ + i_h) * w_
            if j0 and q0 - 1 < wq_:          # column 0 is the only one before j0
                s1[o + hp_ * wq_ + q0 - 1] = x1[src]
            for k in range(0, (n + 1) // 2, lane):
                split_vector2(s1, o + q0 + k, o + hp_ * wq_ + q0 + k, x1, src + j0 + 2 * k, n - 2 * k)


@functools.cache
def _kernel(wb, fb, stream, run, simd_source=SOURCE_HASH):
    taps = max(run, 1)             # a valid literal for tile_fma_run even where run is 0

    @njit(parallel=True, cache=True)
    def kernel(x, xs, wr, br, y, m, kd_, kh_, kw_, sd, sh, dd, dh, dw, pd, ph, pw):
        """x (N, C, D, H, W); xs (NW, Dp, SW, Hp, Wq) one buffer per worker for a plane in the
        layout of `_fill`; wr (F, KD*KH*KW, fb) and br (F, fb): every weight and bias repeated
        fb times; y (N, F, OD, OH, OW); F = C * m."""
        if not simd_source:       # never true: keeps the hash among the closure's cells
            return
        n_, c_, d_, h_, w_ = x.shape
        nw_, dp_, sw_, hp_, wq_ = xs.shape
        _, f_, od_, oh_, ow_ = y.shape
        nwt = (ow_ + fb - 1) // fb
        nrb = (oh_ + wb - 1) // wb
        nk = kd_ * kh_ * kw_
        xoffs = np.empty(nk, np.int64)
        q = 0
        for a in range(kd_):
            for bb in range(kh_):
                for cc in range(kw_):
                    xoffs[q] = ((a * dd * sw_ + (cc * dw) % sw_) * hp_ + bb * dh) * wq_ + (cc * dw) // sw_
                    q += 1
        x1, s1, w1, b1, y1 = x.reshape(-1), xs.reshape(-1), wr.reshape(-1), br.reshape(-1), y.reshape(-1)
        size = dp_ * sw_ * hp_ * wq_
        rstep = sh * wq_                  # from one output row's input row to the next's
        planes = n_ * c_
        # a worker owns a run of input planes (n, c) and its own buffer, which stays in cache
        # from the copy to the taps: no global padded copy goes through memory
        for wk in prange(nw_):
            s1[wk * size:(wk + 1) * size] = 0
            for pl in range(planes * wk // nw_, planes * (wk + 1) // nw_):
                c = pl % c_
                n = pl // c_
                _fill(x1, pl * d_ * h_ * w_, d_, h_, w_, s1, wk * size, dp_, hp_, sw_, wq_, pd, ph, pw)
                for f in range(c * m, c * m + m):
                    for od in range(od_):
                        for rb in range(nrb):
                            oh0 = rb * wb
                            nr = min(wb, oh_ - oh0)
                            base = wk * size + (od * sd * sw_ * hp_ + oh0 * sh) * wq_
                            yo = (((n * f_ + f) * od_ + od) * oh_ + oh0) * ow_
                            for ct in range(nwt):
                                acc = tile_new(wb, fb, y1)
                                tile_fill(acc, wb, fb, b1, f * fb)
                                xo = base + ct * fb
                                if run:
                                    # the KH taps of a column share input rows: each row's
                                    # vector is loaded once for all of them
                                    for a in range(kd_):
                                        for cc in range(kw_):
                                            q = a * kh_ * kw_ + cc
                                            tile_fma_run(acc, wb, fb, taps, s1, xo + xoffs[q], wq_, w1,
                                                         (f * nk + q) * fb, kw_ * fb)
                                else:
                                    for q in range(nk):
                                        tile_fma_elem(acc, wb, fb, s1, xo + xoffs[q], rstep, w1,
                                                      (f * nk + q) * fb, 0, wb)
                                ow0 = ct * fb
                                if ow0 + fb <= ow_:
                                    tile_store(acc, wb, fb, y1, yo + ow0, ow_, nr, stream)
                                else:
                                    tile_store_cols(acc, wb, fb, y1, yo + ow0, ow_, nr, ow_ - ow0)
    return kernel


# (output rows per tile, vectors per tile row): 16 accumulator registers; two shapes, two compiles
# per dtype.
_SHAPES = ((8, 2), (16, 1))


# kernel heights whose stride-1 rows run through tile_fma_run (one compile each); others load
# one input vector per tap and row
_RUN_HEIGHTS = (3, 5)


def _run_taps(p: Problem) -> int:
    """KH where the rows of a tile and the KH taps of a column walk the same input rows, else 0."""
    kh, sh, dh = three(p.kernel, 1)[1], three(p.strides, 1)[1], three(p.dilation, 1)[1]
    return kh if kh in _RUN_HEIGHTS and sh == dh == 1 else 0


def _configs(p: Problem):
    oh, ow = three(p.out_spatial, 1)[1:]
    itemsize = np.dtype(p.dtype).itemsize
    out = best_tiles(_SHAPES, oh, ow, lanes(itemsize))
    # streaming stores need every row to start on a vector boundary
    if ow % lanes(itemsize) == 0 and math.prod(p.output_shape) * itemsize >= STREAM_MIN_BYTES:
        out.append(dict(out[0], stream=True))
    return out


def _applies(p: Problem):
    ok = applies_common(p)
    if ok is not True:
        return f"nchw_depthwise: {ok}"
    if p.op != "conv":
        return "nchw_depthwise: conv only"
    if p.channels_last:
        return "nchw_depthwise: channels_first only"
    if p.batch < 1 or p.in_channels < 1:
        return "nchw_depthwise: batch and channels must be >= 1"
    if p.groups != p.in_channels or p.out_channels % p.in_channels:
        return (f"nchw_depthwise: groups must equal in_channels (depthwise); got groups={p.groups}, "
                f"in={p.in_channels}, out={p.out_channels}")
    return True


def _prepare(w, b, p: Problem, wb=8, fb=32, stream=False):
    """(weights (F, KD*KH*KW, fb), bias (F, fb)), each value repeated fb times (stream: the
    config's store mode, which the weights do not depend on)."""
    check_tile("nchw_depthwise", p, wb, fb)
    w = check_array("w", w, p.weight_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    wf = np.ascontiguousarray(w.reshape(-1, p.out_channels).T)          # (F, taps)
    return (np.ascontiguousarray(np.repeat(wf[:, :, None], fb, axis=2)),
            np.ascontiguousarray(np.repeat(b[:, None], fb, axis=1)))


# above depthwise_tiled (45), which takes channels_first through two layout copies: measured
# first when a tuning budget runs short, and first by priority where nothing is measured
@register("conv", applies=_applies, configs=_configs, tolerance=1e-4, priority=46, prepare=_prepare)
def nchw_depthwise(x, w, b, p: Problem, wb=8, fb=32, stream=False, prepared=None):
    check_tile("nchw_depthwise", p, wb, fb)
    if not isinstance(stream, bool):
        raise TypeError(f"nchw_depthwise: `stream` must be a bool. Received: stream={stream!r}")
    x = check_array("x", x, p.input_shape, p)
    wr, br = _prepare(w, b, p, wb, fb) if prepared is None else prepared
    sd, sh, sw = three(p.strides, 1)
    dd, dh, dw = three(p.dilation, 1)
    kd, kh, kw = three(p.kernel, 1)
    od, oh, ow = three(p.out_spatial, 1)
    (pd, _), (ph, _), (pw, _) = three(p.pads, (0, 0))
    dp_ = (od - 1) * sd + (kd - 1) * dd + 1
    hp_ = (-(-oh // wb) * wb - 1) * sh + (kh - 1) * dh + 1       # whole row tiles: no row tests
    nw = max(1, min(numba_threads(), p.batch * p.in_channels))
    lane = lanes(np.dtype(p.dtype).itemsize)
    wq = -(-ow // fb) * fb + -(-((kw - 1) * dw // sw) // lane) * lane      # rows of whole vectors
    xs = scratch("nchw_depthwise_x", (nw, dp_, sw, hp_, wq), p.dtype)
    # streaming stores write whole aligned vectors: rows must be whole vectors wide
    stream = stream and ow % lane == 0
    y = aligned_empty(p.output_shape, p.dtype) if stream else np.empty(p.output_shape, p.dtype)
    kernel = _kernel(wb, fb, int(stream), _run_taps(p))
    kernel(x.reshape(p.batch, p.in_channels, *three(p.spatial, 1)), xs, wr, br,
           y.reshape(p.batch, p.out_channels, od, oh, ow), p.out_channels // p.in_channels,
           kd, kh, kw, sd, sh, dd, dh, dw, pd, ph, pw)
    return y
