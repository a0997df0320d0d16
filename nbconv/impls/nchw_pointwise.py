"""1x1 convolution straight on channels_first (NCHW) arrays, ranks 1-3, strided or not, and
convolutions whose taps never share an input element (kernel extent <= stride, no padding: a
2x2x2 stride-2 down-sampling) as a 1x1 conv of a space-to-depth copy (C*K channels).

In NCHW a 1x1 conv is Y[n] (F x P) = W (F x C) @ X[n] (C x P) with P the output pixels: the
output is NCHW already. A Numba worker owns a block of `pt` column tiles (fb pixels each) of one
image and a chunk of the output-channel blocks (wb channels each), and keeps a (wb, fb)
accumulator tile in vector registers (`simd`) over all C input channels. The tiles read x in
place (only a partial last tile goes through a small zero-padded buffer); a strided or patch conv
first subsamples x in parallel, plane by plane, into a reused buffer (a quarter of x for a 1x1 at
stride 2, all of it for 2x2 patches at stride 2).
Weights are laid out (F blocks, C, wb) once, in `prepare`. Tolerance 1e-4 (direct sums in
input-channel order).
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
from .scratch import scratch
from .simd import SOURCE_HASH, lanes, tile_fill, tile_fma_bcast, tile_new, tile_store


@njit(parallel=True, cache=True)
def subsample(x, xs, sd, sh, sw, kd, kh, kw, dd, dh, dw):
    """Space to depth: xs[n, (c, a, bb, cc), od, oh, ow] = x[n, c, od*sd + a*dd, oh*sh + bb*dh,
    ow*sw + cc*dw] (a 1x1 kernel: a plain subsample). One (image, channel, tap, depth) plane per
    item: each reads its rows in order, which the hardware prefetcher follows (a gather per
    cache-sized block of pixels, jumping between channels, ran 3-6x slower)."""
    n_, c_, d_, h_, w_ = x.shape
    _, _, od_, oh_, ow_ = xs.shape
    k_ = kd * kh * kw
    x1, s1 = x.reshape(-1), xs.reshape(-1)
    for t in prange(n_ * c_ * k_ * od_):
        od = t % od_
        tap = (t // od_) % k_
        nc = t // (od_ * k_)
        a, bb, cc = tap // (kh * kw), (tap // kw) % kh, tap % kw
        src0 = (nc * d_ + od * sd + a * dd) * h_ * w_ + bb * dh * w_ + cc * dw
        dst0 = t * oh_ * ow_
        for oh in range(oh_):
            src = x1[src0 + oh * sh * w_:]
            dst = s1[dst0 + oh * ow_:]
            for ow in range(ow_):
                dst[ow] = src[ow * sw]


@functools.cache
def _kernel(wb, fb, simd_source=SOURCE_HASH):
    @njit(parallel=True, cache=True)
    def kernel(x, wp, bp, ones, zeros, y, pt, nfc):
        """x (N, C, P); wp (nfb, C, wb); bp (nfb*wb,); ones, zeros (fb,); y (N, F, P).
        Items: (image, block of pt column tiles, chunk of the nfb F blocks)."""
        if not simd_source:       # never true: keeps the hash among the closure's cells
            return
        n_, c_, npix = x.shape
        f_ = y.shape[1]
        nfb = wp.shape[0]
        ntile = (npix + fb - 1) // fb
        npb = (ntile + pt - 1) // pt
        fpc = (nfb + nfc - 1) // nfc
        x1, w1, y1 = x.reshape(-1), wp.reshape(-1), y.reshape(-1)
        for t in prange(n_ * npb * nfc):
            fc = t % nfc
            pb = (t // nfc) % npb
            n = t // (nfc * npb)
            j0 = pb * pt * fb
            nt = min(pt, ntile - pb * pt)
            xbase = n * c_ * npix
            # a partial last tile reads a zero-padded copy of its columns
            jl = j0 + (nt - 1) * fb
            tail = np.zeros(c_ * fb if jl + fb > npix else 0, y.dtype)
            for c in range(tail.size // fb):
                for j in range(npix - jl):
                    tail[c * fb + j] = x1[xbase + c * npix + jl + j]
            tmp = np.empty(wb * fb, y.dtype)
            f_lo, f_hi = fc * fpc, min(nfb, (fc + 1) * fpc)
            for u in range((f_hi - f_lo) * nt):
                # tiles outer: one tile's inputs stay in L1 over every F block
                fi = f_lo + u % (f_hi - f_lo)
                jt = j0 + (u // (f_hi - f_lo)) * fb
                nf = min(wb, f_ - fi * wb)
                wo = fi * c_ * wb
                full = jt + fb <= npix
                src, so, ss = (x1, xbase + jt, npix) if full else (tail, 0, fb)
                acc = tile_new(wb, fb, y1)
                tile_fill(acc, wb, fb, zeros, 0)      # then the bias: bp[f0 + i] * 1
                tile_fma_bcast(acc, wb, fb, bp, fi * wb, 1, ones, 0, 0, wb)
                for c in range(c_):
                    tile_fma_bcast(acc, wb, fb, w1, wo + c * wb, 1, src, so + c * ss, 0, wb)
                yo = (n * f_ + fi * wb) * npix + jt
                if full:
                    tile_store(acc, wb, fb, y1, yo, npix, nf, 0)
                else:
                    tile_store(acc, wb, fb, tmp, 0, fb, nf, 0)
                    for i in range(nf):
                        for j in range(npix - jt):
                            y1[yo + i * npix + j] = tmp[i * fb + j]
    return kernel


# (output channels per tile, vectors per tile row), as nchw_tiled's
_SHAPES = ((16, 1), (8, 2), (4, 4))


def _configs(p: Problem):
    return best_tiles(_SHAPES, p.out_channels, math.prod(p.out_spatial), lanes(np.dtype(p.dtype).itemsize))


def _patches(p: Problem) -> bool:
    """No padding and no two taps on one input element (kernel extent <= stride on every axis
    whose kernel is > 1): a space-to-depth copy, at most the input's size, makes it a 1x1 conv."""
    axes = zip(p.kernel, p.strides, p.dilation, p.pads, strict=True)
    return all(lo == hi == 0 and (k == 1 or (k - 1) * d + 1 <= s) for k, s, d, (lo, hi) in axes)


def _applies(p: Problem):
    ok = applies_common(p)
    if ok is not True:
        return f"nchw_pointwise: {ok}"
    if p.op != "conv":
        return "nchw_pointwise: conv only"
    if p.channels_last:
        return "nchw_pointwise: channels_first only"
    if not _patches(p):
        return ("nchw_pointwise: no padding, and a 1x1 kernel or one whose extent is at most the stride; "
                f"got kernel={p.kernel}, strides={p.strides}, dilation={p.dilation}, pads={p.pads}")
    if p.groups != 1:
        return f"nchw_pointwise: groups == 1 only; got groups={p.groups}"
    if p.batch < 1 or p.in_channels < 1 or p.out_channels < 1:
        return "nchw_pointwise: batch and channels must be >= 1"
    return True


def _prepare(w, b, p: Problem, wb=16, fb=16):
    """(weights (nfb, C*K, wb), bias (nfb*wb,)), output channels zero-padded to whole blocks;
    the K taps of each input channel in (kd, kh, kw) order, as `subsample` writes them."""
    check_tile("nchw_pointwise", p, wb, fb)
    w = check_array("w", w, p.weight_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    c, f = p.in_channels * math.prod(p.kernel), p.out_channels
    nfb = -(-f // wb)
    wp = np.zeros((nfb * wb, c), p.dtype)
    wp[:f] = np.moveaxis(w.reshape(-1, p.in_channels, f), 1, 0).reshape(c, f).T
    bp = np.zeros(nfb * wb, p.dtype)
    bp[:f] = b
    return np.ascontiguousarray(wp.reshape(nfb, wb, c).transpose(0, 2, 1)), bp


def _split(p: Problem, wb: int, fb: int, nthreads: int) -> tuple[int, int]:
    """(column tiles per block, chunks of F blocks): at least about four work items per thread,
    from the pixels where they suffice, else also from the output channels."""
    ntile = -(-math.prod(p.out_spatial) // fb)
    want = 4 * nthreads
    pt = max(1, min(ntile, -(-ntile * p.batch // want)))
    blocks = p.batch * -(-ntile // pt)
    nfc = 1 if blocks >= want else min(-(-p.out_channels // wb), -(-want // blocks))
    return pt, nfc


@register("conv", applies=_applies, configs=_configs, tolerance=1e-4, priority=24, prepare=_prepare)
def nchw_pointwise(x, w, b, p: Problem, wb=16, fb=16, prepared=None):
    check_tile("nchw_pointwise", p, wb, fb)
    x = check_array("x", x, p.input_shape, p)
    wp, bp = _prepare(w, b, p, wb, fb) if prepared is None else prepared
    x5 = x.reshape(p.batch, p.in_channels, *three(p.spatial, 1))
    c = p.in_channels * math.prod(p.kernel)
    if any(s != 1 for s in p.strides) or c != p.in_channels:
        xs = scratch("nchw_pointwise_x", (p.batch, c, *three(p.out_spatial, 1)), p.dtype)
        subsample(x5, xs, *three(p.strides, 1), *three(p.kernel, 1), *three(p.dilation, 1))
        x5 = xs
    y = np.empty(p.output_shape, p.dtype)
    pt, nfc = _split(p, wb, fb, numba_threads())
    npix = math.prod(p.out_spatial)
    _kernel(wb, fb)(x5.reshape(p.batch, c, npix), wp, bp, np.ones(fb, p.dtype),
                    np.zeros(fb, p.dtype), y.reshape(p.batch, p.out_channels, npix), pt, nfc)
    return y
