"""Register-tiled grouped convolution on channels_last arrays, few channels per group, ranks 1-3.

ResNeXt-like layers have 4-8 output channels per group: a vector of output channels spans
several groups, so the dense tiles (one broadcast input value per step for the whole vector)
do not apply, and a tile over one group's channels would leave most lanes idle. Here a Numba
worker owns `wb` output columns of one output row and one vector of output channels; per
pixel it loads the input channels of the vector's groups once and `simd_groups` shuffles input
channel i of each group into that group's lanes (every lane useful). At stride 1, dilation 1
and three taps a row, each loaded input column serves all three taps. Taps outside the input
are skipped per column: no padding copy. Weights are laid out (F blocks, KD, KH, KW, Cg, lanes)
once, in `prepare`. Needs out_channels per group dividing a vector, a whole number of vectors of
output channels, and at most two vectors of input channels per vector of outputs.
Tolerance 1e-4 (direct sums in input-channel order).
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from nbconv.tuner.registry import register

from ..spec import Problem
from .arrays5d import applies_common, check_array, three
from .simd import SOURCE_HASH, lanes, tile_fill, tile_new, tile_store
from .simd_groups import SOURCE_HASH as GROUPS_HASH
from .simd_groups import group_span, tile_fma_groups
from .tiled import _rows


@functools.cache
def _kernel(wb, fb, cg, fg, sources=(SOURCE_HASH, GROUPS_HASH)):
    @njit(parallel=True, cache=True)
    def kernel(x, wp, b, y, sd, sh, sw, dd, dh, dw, pd, ph, pw):
        """x (N,D,H,W,C); wp (F/fb, KD, KH, KW, cg, fb); b (F,); y (N,OD,OH,OW,F)."""
        if not sources:           # never true: keeps the hashes among the closure's cells
            return
        n_, d_, h_, w_, c_ = x.shape
        nb, kd_, kh_, kw_, _, _ = wp.shape
        _, od_, oh_, ow_, f_ = y.shape
        nwt = (ow_ + wb - 1) // wb
        x1, w1, y1 = x.reshape(-1), wp.reshape(-1), y.reshape(-1)
        run = sw == 1 and dw == 1 and kw_ == 3
        tap = cg * fb                       # weights of one tap
        rows = n_ * od_ * oh_
        for t in prange(rows * nb):
            # a row's blocks follow each other: they share the input rows' cache lines
            cb = t % nb
            r = t // nb
            oh = r % oh_
            od = (r // oh_) % od_
            n = r // (oh_ * od_)
            f0 = cb * fb
            c0 = f0 // fg * cg
            for ct in range(nwt):
                ow0 = ct * wb
                nrow = min(wb, ow_ - ow0)
                acc = tile_new(wb, fb, y1)
                tile_fill(acc, wb, fb, b, f0)
                for a in range(kd_):
                    i_d = od * sd - pd + a * dd
                    if i_d < 0 or i_d >= d_:
                        continue
                    for bb in range(kh_):
                        i_h = oh * sh - ph + bb * dh
                        if i_h < 0 or i_h >= h_:
                            continue
                        row = ((n * d_ + i_d) * h_ + i_h) * w_
                        wo = (((cb * kd_ + a) * kh_ + bb) * kw_) * tap
                        if run:
                            # input columns ow0 - pw + j, j < wb + 2, serve the row's three taps
                            first = ow0 - pw
                            lo = max(0, -first)
                            hi = min(nrow + 2, w_ - first)
                            xo = (row + first) * c_ + c0
                            for i in range(cg):
                                tile_fma_groups(acc, wb, fb, 3, cg, fg, x1, xo + i, c_, w1, wo + i * fb,
                                                tap, lo, hi)
                            continue
                        for cc in range(kw_):
                            off = cc * dw - pw
                            lo, hi = _rows(w_, ow0, nrow, sw, off)
                            if lo >= hi:
                                continue
                            xo = (row + ow0 * sw + off) * c_ + c0
                            for i in range(cg):
                                tile_fma_groups(acc, wb, fb, 1, cg, fg, x1, xo + i, sw * c_, w1,
                                                wo + cc * tap + i * fb, 0, lo, hi)
                yo = (((n * od_ + od) * oh_ + oh) * ow_ + ow0) * f_ + f0
                tile_store(acc, wb, fb, y1, yo, f_, nrow, 0)
    return kernel


def _groups(p: Problem):
    return p.in_channels // p.groups, p.out_channels // p.groups


def _applies(p: Problem):
    ok = applies_common(p)
    if ok is not True:
        return f"grouped_tiled: {ok}"
    if p.op != "conv" or not p.channels_last:
        return ("grouped_tiled: channels_last conv only (a layout copy each way cost more than "
                "the kernel; nchw_grouped serves channels_first)")
    if p.batch < 1 or p.in_channels < 1 or p.out_channels < 1:
        return "grouped_tiled: batch and channels must be >= 1"
    if p.groups == 1 or p.in_channels % p.groups or p.out_channels % p.groups:
        return f"grouped_tiled: groups > 1 dividing both channel counts only; got groups={p.groups}"
    lane = lanes(np.dtype(p.dtype).itemsize)
    cg, fg = _groups(p)
    if lane % fg or fg == lane or p.out_channels % lane:
        return (f"grouped_tiled: out_channels per group must divide a vector of {lane} {p.dtype} "
                f"lanes (and be fewer) and out_channels whole vectors; got {fg} per group, "
                f"{p.out_channels} in all")
    if group_span(lane, cg, fg) > 2 * lane:
        return (f"grouped_tiled: a vector's groups may read at most {2 * lane} input channels; "
                f"got {group_span(lane, cg, fg)} ({cg} per group)")
    return True


# Tile widths (one compile each): 16 accumulators plus the three tap weights and the input
# leave room in the 32 vector registers; 14 serves the 56-, 28- and 14-wide rows.
_WIDTHS = (8, 14, 16)


def _configs(p: Problem):
    """One tile width: the fewest tiles a row, then the least waste."""
    ow = p.out_spatial[-1]
    wb = min(_WIDTHS, key=lambda wb: (-(-ow // wb), -(-ow // wb) * wb - ow))
    return [{"wb": wb}]


def check_width(name: str, wb):
    if not (isinstance(wb, int) and 1 <= wb <= 16):
        raise ValueError(f"{name}: `wb` must be an int in [1, 16]. Received: wb={wb!r}")


def _prepare(w, b, p: Problem, wb=14):
    """(weights (F/lanes, KD, KH, KW, Cg, lanes), bias)."""
    check_width("grouped_tiled", wb)
    w = check_array("w", w, p.weight_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    lane = lanes(np.dtype(p.dtype).itemsize)
    k = three(p.kernel, 1)
    cg = p.in_channels // p.groups
    w6 = w.reshape(*k, cg, p.out_channels // lane, lane)
    return np.ascontiguousarray(w6.transpose(4, 0, 1, 2, 3, 5)), b


@register("conv", applies=_applies, configs=_configs, tolerance=1e-4, priority=25, prepare=_prepare)
def grouped_tiled(x, w, b, p: Problem, wb=14, prepared=None):
    check_width("grouped_tiled", wb)
    x = check_array("x", x, p.input_shape, p)
    wp, bp = _prepare(w, b, p, wb) if prepared is None else prepared
    lane = lanes(np.dtype(p.dtype).itemsize)
    cg, fg = _groups(p)
    geo = three(p.strides, 1) + three(p.dilation, 1) + three([lo for lo, _ in p.pads], 0)
    y = np.empty(p.output_shape, p.dtype)
    kernel = _kernel(wb, lane, cg, fg)
    kernel(x.reshape(p.batch, *three(p.spatial, 1), p.in_channels), wp, bp,
           y.reshape(p.batch, *three(p.out_spatial, 1), p.out_channels), *geo)
    return y
