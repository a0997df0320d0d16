"""Register-tiled grouped convolution on channels_first (NCHW) arrays at stride 1, ranks 1-2.

`nchw_tiled` vectorises along one output row and tiles over a group's output channels: with
ResNeXt's 4-8 channels a group and 14-28 column rows, half its tile or more is idle. Here the
zero-padded input plane is one flat run with row pitch Wp (the padded width): output position
p = oh*Wp + ow reads input p + kh*dh*Wp + kw*dw for every tap, so a tile's vector runs across
row ends, and only the pitch's last (KW-1)*dw columns of each row are computed for nothing
(2 of 30 on a 28-wide row). A worker keeps a (wb, fb) tile: wb output channels of one group
(the whole group when it has at most 16) times fb flat positions; each (input channel, tap)
adds one broadcast weight per channel times one vector of positions (`simd`). Masked stores
(`simd_groups.tile_store_lanes`) write each row's valid columns. The padded copy is the input's
size; weights are laid out (G*nfg, Cg, KH, KW, wb) once, in `prepare`.
Tolerance 1e-4 (direct sums in input-channel order).
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from nbconv.tuner.registry import register

from ..spec import Problem
from .arrays5d import applies_common, check_array
from .nchw_tiled import check_tile
from .simd import SOURCE_HASH, lanes, tile_fill, tile_fma_bcast, tile_new
from .simd_groups import SOURCE_HASH as GROUPS_HASH
from .simd_groups import tile_store_lanes


@njit(cache=True)
def _pad(x1, src, xb, m_, h_, w_, ph, pw, hp_, wp_):
    """m_ planes (H, W) of x1 from offset src, zero-padded into planes (Hp, Wp) of xb; zeros
    after them to xb's end. Loops over views from start offsets: range indices are known
    non-negative, so no wraparound tests stop the copies vectorising."""
    xb[:] = 0
    for t in range(m_):
        for ih in range(h_):
            dst = xb[(t * hp_ + ih + ph) * wp_ + pw:]
            row = x1[src + (t * h_ + ih) * w_:]
            for q in range(w_):
                dst[q] = row[q]


@functools.cache
def _kernel(wb, fb, lane, sources=(SOURCE_HASH, GROUPS_HASH)):
    nv = fb // lane

    @njit(parallel=True, cache=True)
    def kernel(x1, wp, bp, ones, zeros, y, g_, h_, w_, ph, pw, hp_, wp_, oh_, ow_, dh, dw):
        """x1: the input, flat (N, C, H, W); wp (G*nfg, Cg, KH, KW, wb); bp (G*nfg*wb,);
        y (N, F, OH*OW)."""
        if not sources:           # never true: keeps the hashes among the closure's cells
            return
        nblk, cg, kh_, kw_, _ = wp.shape
        n_, f_, _ = y.shape
        nfg = nblk // g_
        fg = f_ // g_
        plane = hp_ * wp_
        npt = (oh_ * wp_ + fb - 1) // fb
        nq = cg * kh_ * kw_
        xoffs = np.empty(nq, np.int64)
        q = 0
        for c in range(cg):
            for a in range(kh_):
                for bb in range(kw_):
                    xoffs[q] = c * plane + a * dh * wp_ + bb * dw
                    q += 1
        # the last tile reads past the group's last plane by up to this much
        size = (cg - 1) * plane + npt * fb + (kh_ - 1) * dh * wp_ + (kw_ - 1) * dw
        w1, y1 = wp.reshape(-1), y.reshape(-1)
        oplane = oh_ * ow_
        for t in prange(n_ * g_):
            # one (image, group) an item: its padded planes are copied once, into a buffer
            # that stays in cache while every tile of the group reads it
            g = t % g_
            n = t // g_
            xb = np.empty(max(size, cg * plane), y1.dtype)
            _pad(x1, (n * g_ + g) * cg * h_ * w_, xb, cg, h_, w_, ph, pw, hp_, wp_)
            for k in range(nfg * npt):
                fi = g * nfg + k // npt
                p0 = (k % npt) * fb
                f0 = g * fg + (k // npt) * wb
                nf = min(wb, (g + 1) * fg - f0)
                acc = tile_new(wb, fb, y1)
                tile_fill(acc, wb, fb, zeros, 0)      # then the bias: bp[fi*wb + i] * 1
                tile_fma_bcast(acc, wb, fb, bp, fi * wb, 1, ones, 0, 0, wb)
                wo = fi * nq * wb
                for q in range(nq):
                    tile_fma_bcast(acc, wb, fb, w1, wo + q * wb, 1, xb, p0 + xoffs[q], 0, wb)
                yo = (n * f_ + f0) * oplane
                for v in range(nv):
                    pv = p0 + v * lane
                    r = pv // wp_
                    while r < oh_ and r * wp_ < pv + lane:
                        lo = max(pv, r * wp_) - pv
                        hi = min(pv + lane, r * wp_ + ow_) - pv
                        if lo < hi:
                            # lane k of vector v is output (r, pv + k - r*wp_)
                            off = yo + r * ow_ + pv - r * wp_
                            if v == 0:
                                tile_store_lanes(acc, wb, fb, 0, y1, off, oplane, nf, lo, hi)
                            elif v == 1:
                                tile_store_lanes(acc, wb, fb, 1, y1, off, oplane, nf, lo, hi)
                            elif v == 2:
                                tile_store_lanes(acc, wb, fb, 2, y1, off, oplane, nf, lo, hi)
                            else:
                                tile_store_lanes(acc, wb, fb, 3, y1, off, oplane, nf, lo, hi)
                        r += 1
    return kernel


def _applies(p: Problem):
    ok = applies_common(p)
    if ok is not True:
        return f"nchw_grouped: {ok}"
    if p.op != "conv" or p.channels_last:
        return "nchw_grouped: channels_first conv only"
    if p.rank > 2 or any(s != 1 for s in p.strides):
        return f"nchw_grouped: ranks 1-2 at stride 1 only; got rank {p.rank}, strides {p.strides}"
    if p.batch < 1 or p.in_channels < 1 or p.out_channels < 1:
        return "nchw_grouped: batch and channels must be >= 1"
    if p.groups == 1 or p.groups == p.in_channels or p.in_channels % p.groups or p.out_channels % p.groups:
        return (f"nchw_grouped: 1 < groups < in_channels, dividing both channel counts, only "
                f"(depthwise has nchw_depthwise); got groups={p.groups}")
    return True


def _configs(p: Problem):
    """The tile: the group's output channels (at most 16) times 16 accumulators' worth of
    vectors (at most four)."""
    fg = p.out_channels // p.groups
    wb = min(fg, 16)
    nv = max(1, min(4, 16 // wb))
    return [{"wb": wb, "fb": nv * lanes(np.dtype(p.dtype).itemsize)}]


def _check(p: Problem, wb, fb):
    check_tile("nchw_grouped", p, wb, fb)
    if fb > 4 * lanes(np.dtype(p.dtype).itemsize):
        raise ValueError(f"nchw_grouped: `fb` must be at most four vectors. Received: fb={fb!r}")


def _prepare(w, b, p: Problem, wb=4, fb=64):
    """(weights (G*nfg, Cg, KH, KW, wb), bias (G*nfg*wb,)), output channels zero-padded per group."""
    _check(p, wb, fb)
    w = check_array("w", w, p.weight_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    g = p.groups
    cg, fg = p.in_channels // g, p.out_channels // g
    nfg = -(-fg // wb)
    kh, kw = _two(p.kernel, 1)
    w5 = w.reshape(kh, kw, cg, g, fg)
    wp = np.zeros((g, nfg * wb, cg, kh, kw), p.dtype)
    wp[:, :fg] = w5.transpose(3, 4, 2, 0, 1)
    wp = np.ascontiguousarray(wp.reshape(g, nfg, wb, cg, kh, kw).transpose(0, 1, 3, 4, 5, 2))
    bp = np.zeros((g, nfg * wb), p.dtype)
    bp[:, :fg] = b.reshape(g, fg)
    return wp.reshape(g * nfg, cg, kh, kw, wb), bp.reshape(-1)


def _two(values, fill) -> tuple:
    """A rank 1-2 tuple as (H, W) entries (rank 1: H = 1)."""
    return ((fill,) + tuple(values))[-2:]


@register("conv", applies=_applies, configs=_configs, tolerance=1e-4, priority=23, prepare=_prepare)
def nchw_grouped(x, w, b, p: Problem, wb=4, fb=64, prepared=None):
    _check(p, wb, fb)
    x = check_array("x", x, p.input_shape, p)
    wp, bp = _prepare(w, b, p, wb, fb) if prepared is None else prepared
    lane = lanes(np.dtype(p.dtype).itemsize)
    (h, w_), (dh, dw), (oh, ow) = _two(p.spatial, 1), _two(p.dilation, 1), _two(p.out_spatial, 1)
    (ph, ph1), (pw, pw1) = _two(p.pads, (0, 0))
    hp, wpitch = h + ph + ph1, w_ + pw + pw1
    y = np.empty(p.output_shape, p.dtype)
    kernel = _kernel(wb, fb, lane)
    kernel(x.reshape(-1), wp, bp, np.ones(fb, p.dtype), np.zeros(fb, p.dtype),
           y.reshape(p.batch, p.out_channels, oh * ow), p.groups, h, w_, ph, pw, hp, wpitch, oh, ow, dh, dw)
    return y
