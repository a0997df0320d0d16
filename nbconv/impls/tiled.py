"""Register-tiled direct convolution, ranks 1-3: dense (groups=1) and depthwise.

A Numba worker owns `wb` output columns of one output row and keeps a (wb, fb) accumulator tile
in vector registers (`simd`) over every tap and input channel, so the only memory traffic per
multiply-add is one input value (broadcast) and a shared weight vector (dense), or one input and
one weight vector per `wb` columns (depthwise). No lowering, no padding copy: taps outside the
input are skipped per row of the tile. Work items are (tile, block of `fb` output channels);
`channel_outer` orders them block-major, for weights too large for one core's L2. On the
reference shapes dense won every layer but Winograd-friendly 3x3s at batch 8 and 1x1s on small
maps; depthwise won everywhere it applies.
Channel counts must be multiples of `fb` (a whole number of vectors). The kernels run
channels_last; channels_first calls go through a copy each way (`layout`). Tolerance 1e-4
(direct sums in input-channel order); measured max rel error 3.8e-7 over the property draws.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit, prange

from nbconv.tuner.registry import register

from ..spec import Problem
from .arrays5d import applies_common, check_array, three
from .layout import to_channels_first, to_channels_last
from .scratch import aligned_empty, scratch
from .simd import (
    SOURCE_HASH,
    VECTOR_BYTES,
    lanes,
    tile_fill,
    tile_fma_bcast,
    tile_fma_elem,
    tile_fma_run,
    tile_new,
    tile_store,
)


@njit(cache=True, inline="always")
def _rows(w_, ow0, nrow, sw, off):
    """Tile rows i in [lo, hi) whose input column (ow0 + i)*sw + off lies in [0, w_)."""
    first = ow0 * sw + off
    lo = 0 if first >= 0 else (-first + sw - 1) // sw
    last = w_ - 1 - first
    hi = last // sw + 1 if last >= 0 else 0
    return lo, max(lo, min(nrow, hi))


# One compile per (wb, fb, depthwise, stream): the factory closes over them as constants (the
# branches on them fold away), and Numba's cache keys closures by their cell contents; the
# intrinsics' source hash is one of the cells, so editing simd.py recompiles too.
@functools.cache
def _kernel(wb, fb, depthwise, stream, channel_outer, simd_source=SOURCE_HASH):
    @njit(parallel=True, cache=True)
    def kernel(x, w, b, y, sd, sh, sw, dd, dh, dw, pd, ph, pw):
        """x (N,D,H,W,C); w (KD,KH,KW,Cg,F) with Cg = C (dense) or 1 (depthwise, F = C);
        b (F,); y (N,OD,OH,OW,F); F % fb == 0."""
        if not simd_source:       # never true: keeps the hash among the closure's cells
            return
        n_, d_, h_, w_, c_ = x.shape
        kd_, kh_, kw_, cg, f_ = w.shape
        _, od_, oh_, ow_, _ = y.shape
        nwb = (ow_ + wb - 1) // wb
        x1, w1, y1 = x.reshape(-1), w.reshape(-1), y.reshape(-1)
        # Input offset of every (tap, input channel) from a tile's first tap, for tiles whose
        # taps all lie inside the input: their loop is then one table walk.
        nq = kd_ * kh_ * kw_ * cg
        xoffs = np.empty(nq, np.int64)
        q = 0
        for a in range(kd_):
            for bb in range(kh_):
                for cc in range(kw_):
                    for c in range(cg):
                        xoffs[q] = ((a * dd * h_ + bb * dh) * w_ + cc * dw) * c_ + c
                        q += 1
        ntiles = n_ * od_ * oh_ * nwb
        nf = f_ // fb
        for tt in prange(ntiles * nf):
            # channel_outer: a thread walks its tiles per block of output channels, so that
            # block's weights stay in its L2 (about 20 % faster with 1.8 MB of weights);
            # else a tile's blocks follow each other and share its input lines
            if not channel_outer:
                t, fi = tt // nf, tt % nf
            else:
                t, fi = tt % ntiles, tt // ntiles
            ow0 = (t % nwb) * wb
            r = t // nwb
            oh = r % oh_
            od = (r // oh_) % od_
            n = r // (oh_ * od_)
            nrow = min(wb, ow_ - ow0)
            acc = tile_new(wb, fb, y1)
            yo = (((n * od_ + od) * oh_ + oh) * ow_ + ow0) * f_
            i_d0, i_h0, i_w0 = od * sd - pd, oh * sh - ph, ow0 * sw - pw
            f0 = fi * fb
            tile_fill(acc, wb, fb, b, f0)
            if (nrow == wb and i_d0 >= 0 and i_d0 + (kd_ - 1) * dd < d_ and i_h0 >= 0
                    and i_h0 + (kh_ - 1) * dh < h_ and i_w0 >= 0
                    and i_w0 + (wb - 1) * sw + (kw_ - 1) * dw < w_):
                base = (((n * d_ + i_d0) * h_ + i_h0) * w_ + i_w0) * c_
                step = sw * c_
                if depthwise and sw == 1 and dw == 1:
                    # a kernel row's taps share input vectors: up to 3 taps a pass
                    for q in range(0, nq, kw_):
                        cc = 0
                        while cc < kw_:
                            xq, wq = base + xoffs[q + cc] + f0, (q + cc) * f_ + f0
                            if kw_ - cc >= 3:
                                tile_fma_run(acc, wb, fb, 3, x1, xq, c_, w1, wq, f_)
                                cc += 3
                            elif kw_ - cc == 2:
                                tile_fma_run(acc, wb, fb, 2, x1, xq, c_, w1, wq, f_)
                                cc += 2
                            else:
                                tile_fma_run(acc, wb, fb, 1, x1, xq, c_, w1, wq, f_)
                                cc += 1
                    tile_store(acc, wb, fb, y1, yo + f0, f_, wb, stream)
                    continue
                for q in range(nq):
                    if depthwise:
                        tile_fma_elem(acc, wb, fb, x1, base + xoffs[q] + f0, step, w1, q * f_ + f0, 0, wb)
                    else:
                        tile_fma_bcast(acc, wb, fb, x1, base + xoffs[q], step, w1, q * f_ + f0, 0, wb)
                tile_store(acc, wb, fb, y1, yo + f0, f_, wb, stream)
                continue
            for a in range(kd_):
                i_d = od * sd - pd + a * dd
                if i_d < 0 or i_d >= d_:
                    continue
                for bb in range(kh_):
                    i_h = oh * sh - ph + bb * dh
                    if i_h < 0 or i_h >= h_:
                        continue
                    row = ((n * d_ + i_d) * h_ + i_h) * w_
                    for cc in range(kw_):
                        off = cc * dw - pw
                        lo, hi = _rows(w_, ow0, nrow, sw, off)
                        if lo >= hi:
                            continue
                        xo = (row + ow0 * sw + off) * c_
                        wo = ((a * kh_ + bb) * kw_ + cc) * cg * f_ + f0
                        # literal bounds for a full tile: the row tests compile away
                        if depthwise and lo == 0 and hi == wb:
                            tile_fma_elem(acc, wb, fb, x1, xo + f0, sw * c_, w1, wo, 0, wb)
                        elif depthwise:
                            tile_fma_elem(acc, wb, fb, x1, xo + f0, sw * c_, w1, wo, lo, hi)
                        elif lo == 0 and hi == wb:
                            for c in range(cg):
                                tile_fma_bcast(acc, wb, fb, x1, xo + c, sw * c_, w1, wo + c * f_, 0, wb)
                        else:
                            for c in range(cg):
                                tile_fma_bcast(acc, wb, fb, x1, xo + c, sw * c_, w1, wo + c * f_, lo, hi)
            tile_store(acc, wb, fb, y1, yo + f0, f_, nrow, stream)
    return kernel


# (vectors per tile row, tile rows): at most 24 of the 32 vector registers hold the tile.
# One-vector rows take 16: each tap's work is then long enough to hide the loop around it.
_DENSE_SHAPES = ((4, 6), (2, 8), (1, 16))
_DEPTHWISE_SHAPES = ((3, 8), (2, 8), (4, 6), (1, 16))


# Outputs larger than this get a streaming-store variant of the first tile to measure: it
# writes without first reading each line into the cache (about 40 % faster on a 166 MB output).
STREAM_MIN_BYTES = 8 << 20


# Weights at least this large get a channel-outer variant (dense only) to measure: each
# thread's share of them then has to stay in its L2 rather than all of them.
CHANNEL_OUTER_MIN_BYTES = 1 << 20


def _configs_for(channels, p: Problem, shapes, dense=False):
    itemsize = np.dtype(p.dtype).itemsize
    lane = lanes(itemsize)
    out = [{"wb": wb, "fb": nv * lane} for nv, wb in shapes if channels % (nv * lane) == 0][:2]
    if not out:
        return out
    best = out[0]
    ow = p.out_spatial[-1]
    if dense and ow < 16 and all(c["wb"] != ow for c in out):
        # a narrow output row as one tile: 7 columns in tiles of 6 leave a 1-column tile that
        # costs nearly a whole one (5-15 % on inception5a's 7x7 output)
        nv = out[0]["fb"] // lane
        while nv > 1 and nv * ow > 28:
            nv //= 2
        best = {"wb": ow, "fb": nv * lane}
        out.append(best)
    elif dense and ow % best["wb"] and best["fb"] <= 2 * lane:
        # one or two vectors a row leave registers free for a wider tile: the widest that
        # divides the row (8 -> 14 columns on a 28-wide row: about 15 % faster)
        nv = best["fb"] // lane
        fits = [wb for wb in range(best["wb"] + 1, 28 // nv + 1) if ow % wb == 0]
        if fits:
            out.append({"wb": fits[-1], "fb": best["fb"]})
    if math.prod(p.output_shape) * itemsize >= STREAM_MIN_BYTES:
        out.append(dict(out[0], stream=True))
    if (dense and p.out_channels > best["fb"]
            and math.prod(p.weight_shape) * itemsize >= CHANNEL_OUTER_MIN_BYTES):
        out.append(dict(best, channel_outer=True))
    return out


def _applies(p: Problem, depthwise: bool):
    name = "depthwise_tiled" if depthwise else "tiled_direct"
    ok = applies_common(p)
    if ok is not True:
        return f"{name}: {ok}"
    if p.op != "conv":
        return f"{name}: conv only"
    if depthwise and not (p.groups == p.in_channels == p.out_channels):
        return (f"{name}: groups, in_channels and out_channels must be equal (depthwise, multiplier 1); "
                f"got groups={p.groups}, in={p.in_channels}, out={p.out_channels}")
    if not depthwise and p.groups != 1:
        return f"{name}: groups must be 1, got {p.groups}"
    if p.batch < 1 or p.in_channels < 1:
        return f"{name}: batch and in_channels must be >= 1"
    return whole_vectors(name, p)


def whole_vectors(name, p: Problem):
    """True when out_channels fill whole vectors of p.dtype, else why not (the tiles need it)."""
    lane = lanes(np.dtype(p.dtype).itemsize)
    if p.out_channels % lane:
        return (f"{name}: out_channels must be a multiple of {lane} for {p.dtype} vectors, "
                f"got {p.out_channels}")
    return True


def _geometry(p: Problem):
    return (three(p.strides, 1) + three(p.dilation, 1) + three([lo for lo, _ in p.pads], 0),
            three(p.kernel, 1), three(p.spatial, 1), three(p.out_spatial, 1))


def _run(name, depthwise, x, w, b, p: Problem, wb, fb, stream, channel_outer):
    shapes = _DEPTHWISE_SHAPES if depthwise else _DENSE_SHAPES
    if wb is None or fb is None:      # the first config's tile (the tuner always passes both)
        fallback = {"wb": 8, "fb": lanes(np.dtype(p.dtype).itemsize)}
        cfg = (_configs_for(p.out_channels, p, shapes) or [fallback])[0]
        wb = cfg["wb"] if wb is None else wb
        fb = cfg["fb"] if fb is None else fb
    lane = lanes(np.dtype(p.dtype).itemsize)
    if not (isinstance(wb, int) and 1 <= wb <= 32):
        raise ValueError(f"{name}: `wb` must be an int in [1, 32]. Received: wb={wb!r}")
    if not (isinstance(fb, int) and fb > 0 and fb % lane == 0 and p.out_channels % fb == 0):
        raise ValueError(f"{name}: `fb` must be a positive multiple of {lane} dividing {p.out_channels} "
                         f"channels. Received: fb={fb!r}")
    for arg, val in (("stream", stream), ("channel_outer", channel_outer)):
        if not isinstance(val, bool):
            raise TypeError(f"{name}: `{arg}` must be a bool. Received: {arg}={val!r}")
    x = check_array("x", x, p.input_shape, p)
    w = check_array("w", w, p.weight_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    geo, k, sp, o = _geometry(p)
    c, f = p.in_channels, p.out_channels
    # streaming stores need every address aligned: out_channels is a whole number of vectors
    shape = p.with_(layout="channels_last").output_shape
    if not p.channels_last:       # a temporary: copied to channels_first below
        y = scratch("tiled_y", shape, p.dtype)
    elif stream:
        y = aligned_empty(shape, p.dtype, VECTOR_BYTES)
    else:
        y = np.empty(shape, p.dtype)
    kernel = _kernel(wb, fb, depthwise, int(stream), int(channel_outer))
    w5 = w.reshape(*k, 1 if depthwise else c, f)
    xl = x if p.channels_last else to_channels_last(x, p)
    kernel(xl.reshape(p.batch, *sp, c), w5, b, y.reshape(p.batch, *o, f), *geo)
    return y if p.channels_last else to_channels_first(y, p)


@register("conv", applies=lambda p: _applies(p, False), tolerance=1e-4, priority=20,
          configs=lambda p: _configs_for(p.out_channels, p, _DENSE_SHAPES, dense=True))
def tiled_direct(x, w, b, p: Problem, wb=None, fb=None, stream=False, channel_outer=False):
    return _run("tiled_direct", False, x, w, b, p, wb, fb, stream, channel_outer)


@register("conv", applies=lambda p: _applies(p, True),
          configs=lambda p: _configs_for(p.out_channels, p, _DEPTHWISE_SHAPES), tolerance=1e-4, priority=45)
def depthwise_tiled(x, w, b, p: Problem, wb=None, fb=None, stream=False, channel_outer=False):
    return _run("depthwise_tiled", True, x, w, b, p, wb, fb, stream, channel_outer)
