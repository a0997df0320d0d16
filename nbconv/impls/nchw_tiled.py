"""Register-tiled direct convolution straight on channels_first (NCHW) arrays, ranks 1-3.

The channels_last tiled kernel (`tiled`) needs a layout copy each way on a channels_first call;
this one reads and writes NCHW. A Numba worker owns `wb` output channels of one output row and
keeps a (wb, fb) accumulator tile in vector registers (`simd`), fb output columns wide: every
(input channel, tap) step adds one weight per output channel (broadcast) times one contiguous
vector run of fb input columns. Contiguous runs need unit stride and no edge tests, so the input
is first copied once into a zero-padded, column-phase-split buffer: element (.., hp, ph, q) holds
padded column q*sw + ph, and tap kw reads phase (kw*dw) % sw from column ow + (kw*dw) // sw. That
copy is the input's size (a layout copy moves the input and the output); the weights are laid
out (F blocks, C, KD, KH, KW, wb) once, in `prepare`. Groups: each group's output-channel blocks
read its own input channels. A row's last column tile goes through a small buffer when it is
partial. An unpadded 1x1 conv runs its output plane as one row (strided: on a subsampled copy),
so narrow maps fill whole tiles. Large outputs may use streaming stores (`stream`).
Tolerance 1e-4 (direct sums in input-channel order).
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit, prange

from nbconv.tuner.registry import register

from ..spec import Problem
from .arrays5d import applies_common, check_array, three
from .scratch import aligned_empty, scratch
from .simd import SOURCE_HASH, VECTOR_BYTES, lanes, tile_fill, tile_fma_bcast, tile_new, tile_store
from .tiled import STREAM_MIN_BYTES


@njit(parallel=True, cache=True)
def split_pad(x, xq, pd, ph, pw, sw):
    """xq[n, c, dp, hp, r, q] = x[n, c, dp - pd, hp - ph, q*sw + r - pw], zero outside x.
    Flat offsets and 1-D views: 5-D row views cost more than the copy of a row."""
    n_, c_, d_, h_, w_ = x.shape
    _, _, dp_, hp_, _, wq_ = xq.shape
    x1, q1 = x.reshape(-1), xq.reshape(-1)
    for t in prange(n_ * c_ * dp_):
        i_d = t % dp_ - pd
        src0 = ((t // dp_) * d_ + i_d) * h_ * w_          # plane (n, c), depth i_d
        for hp in range(hp_):
            i_h = hp - ph
            inside = 0 <= i_d < d_ and 0 <= i_h < h_
            for r in range(sw):
                o = ((t * hp_ + hp) * sw + r) * wq_
                if not inside:
                    q1[o:o + wq_] = 0
                    continue
                # columns q with 0 <= q*sw + r - pw < w_: [lo, hi); the rest is padding
                off = r - pw
                lo = 0 if off >= 0 else min(wq_, (-off + sw - 1) // sw)
                hi = 0 if w_ - 1 - off < 0 else min(wq_, (w_ - 1 - off) // sw + 1)
                hi = max(lo, hi)
                # views from start offsets: non-negative indices, so no wraparound tests
                src = x1[src0 + i_h * w_ + off + lo * sw:]
                dst = q1[o:o + wq_]
                for q in range(lo):
                    dst[q] = 0
                run = dst[lo:]
                for q in range(hi - lo):
                    run[q] = src[q * sw]
                for q in range(hi, wq_):
                    dst[q] = 0


@functools.cache
def _kernel(wb, fb, stream=0, simd_source=SOURCE_HASH):
    @njit(parallel=True, cache=True)
    def kernel(xq, wp, bp, ones, zeros, y, cg, kd_, kh_, kw_, sd, sh, sw, dd, dh, dw, nfg):
        """xq (N, C, Dp, Hp, SW, Wq); wp (G*nfg, Cg, KD, KH, KW, wb); bp (G*nfg*wb,);
        ones, zeros (fb,); y (N, F, OD, OH, OW). nfg blocks of wb output channels per group."""
        if not simd_source:       # never true: keeps the hash among the closure's cells
            return
        n_, c_, dp_, hp_, sw_, wq_ = xq.shape
        _, f_, od_, oh_, ow_ = y.shape
        g_ = c_ // cg
        fgp = f_ // g_
        nwt = (ow_ + fb - 1) // fb
        nq = cg * kd_ * kh_ * kw_
        xoffs = np.empty(nq, np.int64)
        q = 0
        for c in range(cg):
            for a in range(kd_):
                for bb in range(kh_):
                    for cc in range(kw_):
                        xoffs[q] = (((c * dp_ + a * dd) * hp_ + bb * dh) * sw_ + (cc * dw) % sw_) * wq_ \
                            + (cc * dw) // sw_
                        q += 1
        x1, w1, y1 = xq.reshape(-1), wp.reshape(-1), y.reshape(-1)
        nfb = g_ * nfg
        rows = od_ * oh_
        plane = od_ * oh_ * ow_
        for t in prange(n_ * nfb * rows):
            # block-major: a thread's consecutive items share one block's weights
            r = t % rows
            fi = (t // rows) % nfb
            n = t // (rows * nfb)
            g = fi // nfg
            f0 = g * fgp + (fi % nfg) * wb
            nf = min(wb, (g + 1) * fgp - f0)
            oh = r % oh_
            od = r // oh_
            base = (((n * c_ + g * cg) * dp_ + od * sd) * hp_ + oh * sh) * sw_ * wq_
            yo = ((n * f_ + f0) * od_ + od) * oh_ * ow_ + oh * ow_
            tmp = np.empty(wb * fb, y.dtype)
            for ct in range(nwt):
                acc = tile_new(wb, fb, y1)
                tile_fill(acc, wb, fb, zeros, 0)      # then the bias: bp[f0 + i] * 1
                tile_fma_bcast(acc, wb, fb, bp, fi * wb, 1, ones, 0, 0, wb)
                xo = base + ct * fb
                wo = fi * nq * wb
                for q in range(nq):
                    tile_fma_bcast(acc, wb, fb, w1, wo + q * wb, 1, x1, xo + xoffs[q], 0, wb)
                ow0 = ct * fb
                if ow0 + fb <= ow_:
                    tile_store(acc, wb, fb, y1, yo + ow0, plane, nf, stream)
                else:
                    tile_store(acc, wb, fb, tmp, 0, fb, nf, 0)
                    for i in range(nf):
                        for j in range(ow_ - ow0):
                            y1[yo + i * plane + ow0 + j] = tmp[i * fb + j]
    return kernel


# (output channels per tile, vectors per tile row): at most 16 accumulator registers, which
# measured best on the reference shapes (16x1 beat 24x1 and 12x2 by 10-25 %); three shapes
# bound the compiles (one per shape and dtype).
_SHAPES = ((16, 1), (8, 2), (4, 4))


def best_tiles(shapes, rows: int, cols: int, lane: int) -> list:
    """The two (wb, nv) shapes that waste the least of `rows` x `cols` in whole tiles, as configs."""
    scored = []
    for wb, nv in shapes:
        fb = nv * lane
        fill = rows / (-(-rows // wb) * wb) * cols / (-(-cols // fb) * fb)
        scored.append((-round(fill, 2), {"wb": wb, "fb": fb}))
    scored.sort(key=lambda e: e[0])            # stable: ties keep the shapes' order
    return [c for _, c in scored[:2]]


def _configs(p: Problem):
    ow = math.prod(p.out_spatial) if _pointwise(p) else p.out_spatial[-1]
    return best_tiles(_SHAPES, p.out_channels // max(p.groups, 1), ow, lanes(np.dtype(p.dtype).itemsize))


def _configs_stream(p: Problem):
    """The tile configs, and for a large output whose rows are whole vectors also the first
    with streaming stores (tiled's STREAM_MIN_BYTES): 9 % faster on mobilenet_conv1 at batch 8."""
    out = _configs(p)
    ow = math.prod(p.out_spatial) if _pointwise(p) else p.out_spatial[-1]
    itemsize = np.dtype(p.dtype).itemsize
    if out and ow % lanes(itemsize) == 0 and math.prod(p.output_shape) * itemsize >= STREAM_MIN_BYTES:
        out.append(dict(out[0], stream=True))
    return out


def _pointwise(p: Problem) -> bool:
    """1x1, unpadded: the output plane is one row (strided: of a subsampled copy of x)."""
    return all(k == 1 for k in p.kernel) and all(lo == hi == 0 for lo, hi in p.pads)


def _applies(p: Problem):
    ok = applies_common(p)
    if ok is not True:
        return f"nchw_tiled: {ok}"
    if p.op != "conv":
        return "nchw_tiled: conv only"
    if p.channels_last:
        return "nchw_tiled: channels_first only (the channels_last kernels vectorise over channels)"
    if p.batch < 1 or p.in_channels < 1 or p.out_channels < 1:
        return "nchw_tiled: batch and channels must be >= 1"
    if p.in_channels % p.groups or p.out_channels % p.groups:
        return f"nchw_tiled: channels must be divisible by groups={p.groups}"
    return True


def check_tile(name: str, p: Problem, wb, fb):
    lane = lanes(np.dtype(p.dtype).itemsize)
    if not (isinstance(wb, int) and 1 <= wb <= 32):
        raise ValueError(f"{name}: `wb` must be an int in [1, 32]. Received: wb={wb!r}")
    if not (isinstance(fb, int) and fb > 0 and fb % lane == 0):
        raise ValueError(f"{name}: `fb` must be a positive multiple of {lane}. Received: fb={fb!r}")


def _prepare(w, b, p: Problem, wb=12, fb=32, stream=False):
    """(weights (G*nfg, Cg, KD, KH, KW, wb), bias (G*nfg*wb,)), output channels zero-padded per group."""
    check_tile("nchw_tiled", p, wb, fb)
    w = check_array("w", w, p.weight_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    g = p.groups
    cg, fg = p.in_channels // g, p.out_channels // g
    nfg = -(-fg // wb)
    kd, kh, kw = three(p.kernel, 1)
    w6 = w.reshape(kd, kh, kw, cg, g, fg)
    wp = np.zeros((g, nfg * wb, cg, kd, kh, kw), p.dtype)
    wp[:, :fg] = w6.transpose(4, 5, 3, 0, 1, 2)
    wp = np.ascontiguousarray(wp.reshape(g, nfg, wb, cg, kd, kh, kw).transpose(0, 1, 3, 4, 5, 6, 2))
    bp = np.zeros((g, nfg * wb), p.dtype)
    bp[:, :fg] = b.reshape(g, fg)
    return wp.reshape(g * nfg, cg, kd, kh, kw, wb), bp.reshape(-1)


@register("conv", applies=_applies, configs=_configs_stream, tolerance=1e-4, priority=22, prepare=_prepare)
def nchw_tiled(x, w, b, p: Problem, wb=12, fb=32, stream=False, prepared=None):
    check_tile("nchw_tiled", p, wb, fb)
    if not isinstance(stream, bool):
        raise TypeError(f"nchw_tiled: `stream` must be a bool. Received: stream={stream!r}")
    x = check_array("x", x, p.input_shape, p)
    wp, bp = _prepare(w, b, p, wb, fb) if prepared is None else prepared
    shape = p.output_shape
    if _pointwise(p):
        # one long row per plane: no column tile is wasted on a narrow map (7x7: 49 of 64
        # columns used instead of 7 of 16)
        if any(s != 1 for s in p.strides):
            sub = tuple(slice(0, o * s, s) for o, s in zip(p.out_spatial, p.strides, strict=True))
            x = np.ascontiguousarray(x[(slice(None), slice(None), *sub)])
        size = math.prod(p.out_spatial)
        p = p.with_(rank=1, spatial=(size,), kernel=(1,), strides=(1,), dilation=(1,), pads=((0, 0),))
    sd, sh, sw = three(p.strides, 1)
    dd, dh, dw = three(p.dilation, 1)
    kd, kh, kw = three(p.kernel, 1)
    od, oh, ow = three(p.out_spatial, 1)
    (pd, _), (ph, _), (pw, _) = three(p.pads, (0, 0))
    nwt = -(-ow // fb)
    dp_ = (od - 1) * sd + (kd - 1) * dd + 1
    hp_ = (oh - 1) * sh + (kh - 1) * dh + 1
    wq = nwt * fb + ((kw - 1) * dw) // sw
    xq = scratch("nchw_tiled_x", (p.batch, p.in_channels, dp_, hp_, sw, wq), p.dtype)
    split_pad(x.reshape(p.batch, p.in_channels, *three(p.spatial, 1)), xq, pd, ph, pw, sw)
    # streaming stores need every full tile's address aligned: whole vectors per output row
    stream = stream and ow % lanes(np.dtype(p.dtype).itemsize) == 0
    y = aligned_empty(p.output_shape, p.dtype, VECTOR_BYTES) if stream else np.empty(p.output_shape, p.dtype)
    ones = np.ones(fb, p.dtype)
    zeros = np.zeros(fb, p.dtype)
    kernel = _kernel(wb, fb, int(stream))
    kernel(xq, wp, bp, ones, zeros, y.reshape(p.batch, p.out_channels, od, oh, ow),
           p.in_channels // p.groups, kd, kh, kw, sd, sh, sw, dd, dh, dw, wp.shape[0] // p.groups)
    return y.reshape(shape)
