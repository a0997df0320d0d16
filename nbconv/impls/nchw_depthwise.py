"""Register-tiled depthwise convolution straight on channels_first (NCHW) arrays, ranks 1-3.

groups == in_channels, any channel multiplier (output channel f reads input channel f // M). A
Numba worker owns output planes (n, f) and, per `wb` output rows, keeps a (wb, fb) tile in
vector registers, fb output columns wide: each tap adds one contiguous input vector run per
row times that tap's weight, repeated fb times in `prepare` so the multiply is a plain vector
one. The input goes through the zero-padded, column-phase-split copy of `nchw_tiled` (unit-stride
runs, no edge tests; its rows are padded to whole row tiles), the output is written in place:
no layout copy. Tolerance 1e-4 (a sum of at most KD*KH*KW products).
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from nbconv.tuner.registry import register

from ..spec import Problem
from .arrays5d import applies_common, check_array, three
from .nchw_tiled import best_tiles, check_tile, split_pad
from .scratch import scratch
from .simd import SOURCE_HASH, lanes, tile_fill, tile_fma_elem, tile_new, tile_store


@functools.cache
def _kernel(wb, fb, simd_source=SOURCE_HASH):
    @njit(parallel=True, cache=True)
    def kernel(xq, wr, br, y, m, kd_, kh_, kw_, sd, sh, sw, dd, dh, dw):
        """xq (N, C, Dp, Hp, SW, Wq); wr (F, KD*KH*KW, fb) and br (F, fb): every weight and bias
        repeated fb times; y (N, F, OD, OH, OW); F = C * m."""
        if not simd_source:       # never true: keeps the hash among the closure's cells
            return
        n_, c_, dp_, hp_, sw_, wq_ = xq.shape
        _, f_, od_, oh_, ow_ = y.shape
        nwt = (ow_ + fb - 1) // fb
        nrb = (oh_ + wb - 1) // wb
        nk = kd_ * kh_ * kw_
        xoffs = np.empty(nk, np.int64)
        q = 0
        for a in range(kd_):
            for bb in range(kh_):
                for cc in range(kw_):
                    xoffs[q] = ((a * dd * hp_ + bb * dh) * sw_ + (cc * dw) % sw_) * wq_ + (cc * dw) // sw_
                    q += 1
        x1, w1, b1, y1 = xq.reshape(-1), wr.reshape(-1), br.reshape(-1), y.reshape(-1)
        rstep = sh * sw_ * wq_            # from one output row's input row to the next's
        # a worker owns whole planes: a row block's work (a few hundred multiply-adds at
        # stride 2) is too small to carry its own loop set-up and buffer
        for t in prange(n_ * f_ * od_):
            od = t % od_
            f = (t // od_) % f_
            n = t // (od_ * f_)
            tmp = np.empty(wb * fb, y.dtype)
            for rb in range(nrb):
                oh0 = rb * wb
                nr = min(wb, oh_ - oh0)
                base = (((n * c_ + f // m) * dp_ + od * sd) * hp_ + oh0 * sh) * sw_ * wq_
                yo = (((n * f_ + f) * od_ + od) * oh_ + oh0) * ow_
                for ct in range(nwt):
                    acc = tile_new(wb, fb, y1)
                    tile_fill(acc, wb, fb, b1, f * fb)
                    xo = base + ct * fb
                    for q in range(nk):
                        tile_fma_elem(acc, wb, fb, x1, xo + xoffs[q], rstep, w1, (f * nk + q) * fb, 0, wb)
                    ow0 = ct * fb
                    if ow0 + fb <= ow_:
                        tile_store(acc, wb, fb, y1, yo + ow0, ow_, nr, 0)
                    else:
                        tile_store(acc, wb, fb, tmp, 0, fb, nr, 0)
                        for i in range(nr):
                            for j in range(ow_ - ow0):
                                y1[yo + i * ow_ + ow0 + j] = tmp[i * fb + j]
    return kernel


# (output rows per tile, vectors per tile row): 16 accumulator registers; two shapes, two compiles
# per dtype.
_SHAPES = ((8, 2), (16, 1))


def _configs(p: Problem):
    oh, ow = three(p.out_spatial, 1)[1:]
    return best_tiles(_SHAPES, oh, ow, lanes(np.dtype(p.dtype).itemsize))


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


def _prepare(w, b, p: Problem, wb=8, fb=32):
    """(weights (F, KD*KH*KW, fb), bias (F, fb)), each value repeated fb times."""
    check_tile("nchw_depthwise", p, wb, fb)
    w = check_array("w", w, p.weight_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    wf = np.ascontiguousarray(w.reshape(-1, p.out_channels).T)          # (F, taps)
    return (np.ascontiguousarray(np.repeat(wf[:, :, None], fb, axis=2)),
            np.ascontiguousarray(np.repeat(b[:, None], fb, axis=1)))


@register("conv", applies=_applies, configs=_configs, tolerance=1e-4, priority=42, prepare=_prepare)
def nchw_depthwise(x, w, b, p: Problem, wb=8, fb=32, prepared=None):
    check_tile("nchw_depthwise", p, wb, fb)
    x = check_array("x", x, p.input_shape, p)
    wr, br = _prepare(w, b, p, wb, fb) if prepared is None else prepared
    sd, sh, sw = three(p.strides, 1)
    dd, dh, dw = three(p.dilation, 1)
    kd, kh, kw = three(p.kernel, 1)
    od, oh, ow = three(p.out_spatial, 1)
    (pd, _), (ph, _), (pw, _) = three(p.pads, (0, 0))
    dp_ = (od - 1) * sd + (kd - 1) * dd + 1
    hp_ = (-(-oh // wb) * wb - 1) * sh + (kh - 1) * dh + 1       # whole row tiles: no row tests
    wq = -(-ow // fb) * fb + ((kw - 1) * dw) // sw
    xq = scratch("nchw_depthwise_x", (p.batch, p.in_channels, dp_, hp_, sw, wq), p.dtype)
    split_pad(x.reshape(p.batch, p.in_channels, *three(p.spatial, 1)), xq, pd, ph, pw, sw)
    y = np.empty(p.output_shape, p.dtype)
    _kernel(wb, fb)(xq, wr, br, y.reshape(p.batch, p.out_channels, od, oh, ow),
                    p.out_channels // p.in_channels, kd, kh, kw, sd, sh, sw, dd, dh, dw)
    return y
