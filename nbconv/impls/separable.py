"""Separable convolution (op "separable": depthwise, no bias, then 1x1), ranks 1-2.

Three candidates: `separable_fused` computes, per block of output rows, the depthwise result for
all channels into a small per-item buffer (L1/L2-sized) and multiplies it at once by the
pointwise weights with a register tile (`simd`), so the intermediate never goes to memory;
`separable_unfused` is the two tuned convs (`nbconv.ops.conv` on the two steps, each decided by
the tuner as a conv of its own), so the tuner can still pick today's path; `separable_direct`
is the two direct convs, the fallback. The fused kernel runs channels_last with multiplier 1 and
channel counts in whole vectors; channels_first calls go through a layout copy each way.
Tolerance 1e-4 (sums in channel order, float32 intermediate as in the unfused path).
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from nbconv.tuner.registry import register

from ..spec import Problem, separable_steps
from . import direct
from .arrays5d import applies_common, check_array
from .layout import to_channels_first, to_channels_last
from .simd import (
    SOURCE_HASH,
    lanes,
    tile_fill,
    tile_fma_bcast,
    tile_fma_elem,
    tile_fma_run,
    tile_new,
    tile_store,
)
from .tiled import _rows


@functools.cache
def _kernel(wb, fb, fc, simd_source=SOURCE_HASH):
    """One compile per (wb pixels per tile, fb pointwise filters per tile, fc depthwise channels
    per tile): closure constants, as in tiled.py."""
    @njit(parallel=True, cache=True)
    def kernel(x, wd, wp, b, y, rows, sh, sw, dh, dw, ph, pw):
        """x (N,H,W,C); wd (KH,KW,C); wp (C,F); b (F,); y (N,OH,OW,F); C % fc == F % fb == 0.
        A work item is `rows` output rows of one image."""
        if not simd_source:       # never true: keeps the hash among the closure's cells
            return
        n_, h_, w_, c_ = x.shape
        kh_, kw_, _ = wd.shape
        _, oh_, ow_, f_ = y.shape
        x1, wd1, wp1, y1 = x.reshape(-1), wd.reshape(-1), wp.reshape(-1), y.reshape(-1)
        zero = np.zeros(fc, x.dtype)
        nq = kh_ * kw_
        xoffs = np.empty(nq, np.int64)
        for bb in range(kh_):
            for cc in range(kw_):
                xoffs[bb * kw_ + cc] = (bb * dh * w_ + cc * dw) * c_
        nblk = (oh_ + rows - 1) // rows
        ntw = (ow_ + wb - 1) // wb
        # pixels of the buffer: the block's, plus one tile of slack for whole-tile stores and loads
        cap = rows * ow_ + wb
        for t in prange(n_ * nblk):
            n = t // nblk
            oh0 = (t % nblk) * rows
            nr = min(rows, oh_ - oh0)
            mid = np.zeros(cap * c_, x.dtype)
            # depthwise: whole tiles are stored, so a row's last tile spills into the next row's
            # first pixels, which that row (computed after it) overwrites
            for c0 in range(0, c_, fc):
                for r in range(nr):
                    i_h0 = (oh0 + r) * sh - ph
                    for tw in range(ntw):
                        ow0 = tw * wb
                        nrow = min(wb, ow_ - ow0)
                        acc = tile_new(wb, fc, x1)
                        tile_fill(acc, wb, fc, zero, 0)
                        i_w0 = ow0 * sw - pw
                        if (nrow == wb and i_h0 >= 0 and i_h0 + (kh_ - 1) * dh < h_ and i_w0 >= 0
                                and i_w0 + (wb - 1) * sw + (kw_ - 1) * dw < w_):
                            base = ((n * h_ + i_h0) * w_ + i_w0) * c_ + c0
                            if sw == 1 and dw == 1:
                                for q in range(0, nq, kw_):    # up to 3 taps of a row a pass
                                    cc = 0
                                    while cc < kw_:
                                        xq, wq = base + xoffs[q + cc], (q + cc) * c_ + c0
                                        if kw_ - cc >= 3:
                                            tile_fma_run(acc, wb, fc, 3, x1, xq, c_, wd1, wq, c_)
                                            cc += 3
                                        elif kw_ - cc == 2:
                                            tile_fma_run(acc, wb, fc, 2, x1, xq, c_, wd1, wq, c_)
                                            cc += 2
                                        else:
                                            tile_fma_run(acc, wb, fc, 1, x1, xq, c_, wd1, wq, c_)
                                            cc += 1
                            else:
                                for q in range(nq):
                                    tile_fma_elem(acc, wb, fc, x1, base + xoffs[q], sw * c_, wd1,
                                                  q * c_ + c0, 0, wb)
                        else:
                            for bb in range(kh_):
                                i_h = i_h0 + bb * dh
                                if i_h < 0 or i_h >= h_:
                                    continue
                                row = (n * h_ + i_h) * w_
                                for cc in range(kw_):
                                    off = cc * dw - pw
                                    lo, hi = _rows(w_, ow0, nrow, sw, off)
                                    if lo < hi:
                                        tile_fma_elem(acc, wb, fc, x1, (row + ow0 * sw + off) * c_ + c0,
                                                      sw * c_, wd1, (bb * kw_ + cc) * c_ + c0, lo, hi)
                        tile_store(acc, wb, fc, mid, (r * ow_ + ow0) * c_ + c0, c_, wb, 0)
            # pointwise: the block's pixels as one run, in tiles of wb
            total = nr * ow_
            yo = (n * oh_ + oh0) * ow_ * f_
            for f0 in range(0, f_, fb):
                for p0 in range(0, total, wb):
                    acc = tile_new(wb, fb, y1)
                    tile_fill(acc, wb, fb, b, f0)
                    for c in range(c_):
                        tile_fma_bcast(acc, wb, fb, mid, p0 * c_ + c, c_, wp1, c * f_ + f0, 0, wb)
                    tile_store(acc, wb, fb, y1, yo + p0 * f_ + f0, f_, min(wb, total - p0), 0)
    return kernel


# (pointwise vectors per tile row, pixels per tile): at most 24 of the 32 vector registers
_SHAPES = ((4, 6), (2, 8))
MID_BYTES = 32 << 10      # the per-item buffer stays about this size (L1: 48 KiB a core here)


def _block_rows(p: Problem, budget: int = MID_BYTES) -> int:
    ow, oh = p.out_spatial[-1], (p.out_spatial[0] if p.rank == 2 else 1)
    row = ow * p.in_channels * np.dtype(p.dtype).itemsize
    return max(1, min(oh, budget // row))


def _depthwise_block(c: int, wb: int, lane: int) -> int:
    """Channels per depthwise tile: the most whole vectors (at most 4) dividing c with the tile
    in 24 registers."""
    for nv in (4, 3, 2, 1):
        if nv * wb <= 24 and c % (nv * lane) == 0:
            return nv * lane
    return lane


def _configs(p: Problem):
    lane = lanes(np.dtype(p.dtype).itemsize)
    out = [{"wb": wb, "fb": nv * lane, "rows": _block_rows(p)} for nv, wb in _SHAPES
           if p.out_channels % (nv * lane) == 0]
    return out or [{"wb": 8, "fb": lane, "rows": _block_rows(p)}]


def _applies_fused(p: Problem):
    ok = _applies(p)
    if ok is not True:
        return f"separable_fused: {ok}"
    if p.multiplier != 1:
        return f"separable_fused: depth multiplier 1 only, got {p.multiplier}"
    lane = lanes(np.dtype(p.dtype).itemsize)
    if p.in_channels % lane or p.out_channels % lane:
        return (f"separable_fused: in_channels and out_channels must be multiples of {lane} for "
                f"{p.dtype} vectors, got {p.in_channels} and {p.out_channels}")
    if p.batch < 1:
        return "separable_fused: batch must be >= 1"
    return True


def _applies(p: Problem):
    if p.op != "separable":
        return "separable op only"
    if p.rank not in (1, 2):
        return f"rank 1 or 2 only (the separable layers'), got {p.rank}"
    return applies_common(p)


def _check(x, depthwise, pointwise, b, p: Problem):
    shapes = p.arg_shapes
    return tuple(check_array(name, a, s, p) for name, a, s in
                 zip(("x", "depthwise", "pointwise", "b"), (x, depthwise, pointwise, b), shapes, strict=True))


@functools.lru_cache(maxsize=1024)
def _steps(p: Problem):
    """The two conv Problems of p, the same objects every call (ops' fast path keys on them)."""
    return separable_steps(p)


def _conv_weights(depthwise, pointwise, b, p: Problem):
    """`prepare` of the two-conv candidates: the convs' arrays (depthwise kernel as (*k, 1, C*M),
    a zero bias, the pointwise kernel), made once per weights so that the convs' own prepared
    caches see the same arrays every call."""
    depthwise = check_array("depthwise", depthwise, p.weight_shape, p)
    pointwise = check_array("pointwise", pointwise, p.arg_shapes[2], p)
    dw, pw = _steps(p)
    return np.array(depthwise.reshape(dw.weight_shape)), np.zeros(dw.out_channels, p.dtype), pointwise


@register("separable", applies=_applies_fused, configs=_configs, tolerance=1e-4, priority=30)
def separable_fused(x, depthwise, pointwise, b, p: Problem, wb=6, fb=None, rows=None):
    lane = lanes(np.dtype(p.dtype).itemsize)
    fb = _configs(p)[0]["fb"] if fb is None else fb
    rows = _block_rows(p) if rows is None else rows
    if not (isinstance(wb, int) and 1 <= wb <= 16):
        raise ValueError(f"separable_fused: `wb` must be an int in [1, 16]. Received: wb={wb!r}")
    if not (isinstance(fb, int) and fb > 0 and fb % lane == 0 and p.out_channels % fb == 0):
        raise ValueError(f"separable_fused: `fb` must be a positive multiple of {lane} dividing "
                         f"{p.out_channels} filters. Received: fb={fb!r}")
    if not (isinstance(rows, int) and rows >= 1):
        raise ValueError(f"separable_fused: `rows` must be an int >= 1. Received: rows={rows!r}")
    x, depthwise, pointwise, b = _check(x, depthwise, pointwise, b, p)
    two = p.rank == 2
    c, f = p.in_channels, p.out_channels
    h, w = p.spatial if two else (1, *p.spatial)
    oh, ow = p.out_spatial if two else (1, *p.out_spatial)
    kh, kw = p.kernel if two else (1, *p.kernel)
    sh, sw = p.strides if two else (1, *p.strides)
    dh, dw = p.dilation if two else (1, *p.dilation)
    ph, pw = (p.pads[0][0], p.pads[1][0]) if two else (0, p.pads[0][0])
    xl = x if p.channels_last else to_channels_last(x, p)
    y = np.empty((p.batch, oh, ow, f), p.dtype)
    kernel = _kernel(wb, fb, _depthwise_block(c, wb, lane))
    kernel(xl.reshape(p.batch, h, w, c), depthwise.reshape(kh, kw, c), pointwise.reshape(c, f), b, y, rows,
           sh, sw, dh, dw, ph, pw)
    y = y.reshape(p.with_(layout="channels_last").output_shape)
    return y if p.channels_last else to_channels_first(y, p)


def _two_convs(conv, x, depthwise, pointwise, b, p: Problem, prepared):
    """The depthwise step then the pointwise one, each as `conv(x, w, b, problem)`."""
    x, depthwise, pointwise, b = _check(x, depthwise, pointwise, b, p)
    kd, zero, kp = _conv_weights(depthwise, pointwise, b, p) if prepared is None else prepared
    dw, pw = _steps(p)
    return conv(conv(x, kd, zero, dw), kp, b, pw)


@register("separable", applies=_applies, tolerance=1e-4, priority=20, prepare=_conv_weights)
def separable_unfused(x, depthwise, pointwise, b, p: Problem, prepared=None):
    from .. import ops  # (ops imports this package: the two convs are decided there)
    return _two_convs(ops.conv, x, depthwise, pointwise, b, p, prepared)


# The direct pair only serves small Problems: beyond this it runs 3-5x slower than the others,
# and measuring it after separable_unfused (whose first call tunes its two convs) would spend
# the tuner's shape budget, leaving the decision provisional.
DIRECT_MAX_FLOPS = 1e7


def _applies_direct(p: Problem):
    ok = _applies(p)
    if ok is True and p.flops() > DIRECT_MAX_FLOPS:
        return f"separable_direct: small Problems only ({p.flops():.3g} FLOPs > {DIRECT_MAX_FLOPS:g})"
    return ok


@register("separable", applies=_applies_direct, tolerance=1e-5, priority=0, prepare=_conv_weights)
def separable_direct(x, depthwise, pointwise, b, p: Problem, prepared=None):
    return _two_convs(direct.conv_direct, x, depthwise, pointwise, b, p, prepared)
