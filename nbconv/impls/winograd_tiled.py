"""Winograd F(4x4,3x3) with the transformed-domain products on register tiles.

The same algorithm as `winograd.winograd_f4x4_3x3` (tolerance 1e-3), organised for speed:
- the input is copied once into a zero-padded buffer, so every 6x6 input tile is whole and the
  transforms are straight-line code over channel vectors (the generic version's coefficient
  loops do not vectorise and took a third of the whole call on a 3x3 ResNet layer);
- the 36 products V[e] @ U[e] use `simd`'s register tiles, not BLAS: each is small (tiles x C
  times C x K), where BLAS's per-call overhead and packing dominate. Work items are (e, rows of
  tiles, block of output channels) in e-major order, so each thread's share of U stays in its L2;
- tiles go in chunks of `tiles` (sized so a chunk's V and M take about 4 MiB), each in three
  parallel phases (transform, products, inverse transform), so V and M stay in cache.
Output channels must be a whole number of vectors; channels_first goes through a copy each
way (`layout`). Max rel error vs float64 with inputs and weights in [-1, 1] grows with C, from
about 2e-6 (C=3) to about 1.3e-5 (C=512), as the generic F(4x4): the stated tolerance is 1e-3.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from nbconv.tuner.registry import register

from ..spec import Problem
from .arrays5d import check_array
from .layout import to_channels_first, to_channels_last
from .scratch import aligned_empty, scratch
from .simd import SOURCE_HASH, lanes, tile_fill, tile_fma_bcast, tile_new, tile_store
from .tiled import whole_vectors
from .winograd import _F4, _weights
from .winograd import _applies as _winograd_applies


# The constants come in `k` = (2, 4, 5, 8) in the data's dtype: a Python int would make
# float32 arithmetic float64.
@njit(cache=True, inline="always")
def _bt(k, s0, s1, s2, s3, s4, s5):
    """The rows of Bt (F(4x4,3x3)) applied to six values."""
    k2, k4, k5 = k[0], k[1], k[2]
    return (k4 * s0 - k5 * s2 + s4, s3 + s4 - k4 * (s1 + s2), k4 * (s1 - s2) - s3 + s4,
            k2 * (s3 - s1) - s2 + s4, k2 * (s1 - s3) - s2 + s4, k4 * s1 - k5 * s3 + s5)


@njit(cache=True, inline="always")
def _at(k, m0, m1, m2, m3, m4, m5):
    """The rows of At (F(4x4,3x3)) applied to six values."""
    a, b, c, d = m1 + m2, m1 - m2, m3 + m4, m3 - m4
    return m0 + a + c, b + k[0] * d, a + k[1] * c, b + k[3] * d + m5


@njit(cache=True, inline="always")
def _bt_rows(k, src, so, ss, dst, do, ds, n):
    """dst rows do + r*ds (r < 6) = Bt applied to src rows so + r*ss, n values each."""
    s0, s1, s2 = src[so:so + n], src[so + ss:so + ss + n], src[so + 2 * ss:so + 2 * ss + n]
    s3, s4 = src[so + 3 * ss:so + 3 * ss + n], src[so + 4 * ss:so + 4 * ss + n]
    s5 = src[so + 5 * ss:so + 5 * ss + n]
    d0, d1, d2 = dst[do:do + n], dst[do + ds:do + ds + n], dst[do + 2 * ds:do + 2 * ds + n]
    d3, d4 = dst[do + 3 * ds:do + 3 * ds + n], dst[do + 4 * ds:do + 4 * ds + n]
    d5 = dst[do + 5 * ds:do + 5 * ds + n]
    for c in range(n):
        d0[c], d1[c], d2[c], d3[c], d4[c], d5[c] = _bt(k, s0[c], s1[c], s2[c], s3[c], s4[c], s5[c])


@njit(cache=True, inline="always")
def _at_rows(k, src, so, ss, dst, do, ds, bias, n):
    """dst rows do + r*ds (r < 4) = At applied to src rows so + r*ss (r < 6), plus bias."""
    s0, s1, s2 = src[so:so + n], src[so + ss:so + ss + n], src[so + 2 * ss:so + 2 * ss + n]
    s3, s4 = src[so + 3 * ss:so + 3 * ss + n], src[so + 4 * ss:so + 4 * ss + n]
    s5 = src[so + 5 * ss:so + 5 * ss + n]
    d0, d1, d2, d3 = dst[do:do + n], dst[do + ds:do + ds + n], dst[do + 2 * ds:do + 2 * ds + n], \
        dst[do + 3 * ds:do + 3 * ds + n]
    for f in range(n):
        a0, a1, a2, a3 = _at(k, s0[f], s1[f], s2[f], s3[f], s4[f], s5[f])
        d0[f], d1[f], d2[f], d3[f] = a0 + bias[f], a1 + bias[f], a2 + bias[f], a3 + bias[f]


@njit(cache=True, parallel=True)
def _pad(x, xp, ph, pw):
    """xp (zeros) <- x placed at (ph, pw)."""
    n_, h_, w_, c_ = x.shape
    for r in prange(n_ * xp.shape[1]):
        n, i = r // xp.shape[1], r % xp.shape[1]
        ih = i - ph
        for j in range(xp.shape[2]):
            iw = j - pw
            inside = 0 <= ih < h_ and 0 <= iw < w_
            for c in range(c_):
                xp[n, i, j, c] = x[n, ih, iw, c] if inside else 0


@functools.cache
def _kernel(wb, fb, simd_source=SOURCE_HASH):
    # Loops over channels run over 1-D slices of flat arrays, indexed from 0: LLVM vectorises
    # them (through 3-D views it did not, and the input transform alone took half the call;
    # rows taken by integer indices were 20 % slower overall than these slices).
    @njit(parallel=True, cache=True)
    def kernel(xp, u, b, y, v1, m1, consts):
        """xp (N, 4*TH+2, 4*TW+2, C) zero-padded input; u (36, C, K); y (N, OH, OW, K);
        v1, m1: room for V (36, T, C) and M (36, T, K) of a chunk of T tiles."""
        if not simd_source:       # never true: keeps the hash among the closure's cells
            return
        n_, hp, wp, c_ = xp.shape
        _, oh_, ow_, k_ = y.shape
        th_, tw_ = (oh_ + 3) // 4, (ow_ + 3) // 4
        t_all = n_ * th_ * tw_
        tv = tb = v1.size // (36 * c_)     # tiles a chunk: the caller sizes v1 and m1
        x1, u1, y1 = xp.reshape(-1), u.reshape(-1), y.reshape(-1)
        k = (consts[0], consts[1], consts[2], consts[3])
        zero = np.zeros(k_, xp.dtype)
        nfb = k_ // fb
        for t0 in range(0, t_all, tb):
            nt = min(tb, t_all - t0)
            # 1. V[e, t, :] = (Bt d B)[e] for every tile t of the chunk
            for tt in prange(nt):
                t = t0 + tt
                n, h, w = t // (th_ * tw_), 4 * ((t // tw_) % th_), 4 * (t % tw_)
                tmp = np.empty(36 * c_, xp.dtype)        # row 6*i + j: (Bt d)[i, j]
                for j in range(6):
                    _bt_rows(k, x1, ((n * hp + h) * wp + w + j) * c_, wp * c_, tmp, j * c_, 6 * c_, c_)
                for i in range(6):
                    _bt_rows(k, tmp, 6 * i * c_, c_, v1, (6 * i * tv + tt) * c_, tv * c_, c_)
            # 2. M[e] = V[e] @ U[e], e-major so a thread's blocks of U stay in its L2
            ng = (nt + wb - 1) // wb
            for it in prange(36 * ng * nfb):
                e, g, fi = it // (ng * nfb), (it // nfb) % ng, it % nfb
                r0, f0 = g * wb, fi * fb
                nrow = min(wb, nt - r0)
                acc = tile_new(wb, fb, m1)
                tile_fill(acc, wb, fb, zero, 0)
                vo, uo = (e * tv + r0) * c_, e * c_ * k_ + f0
                if nrow == wb:
                    for c in range(c_):
                        tile_fma_bcast(acc, wb, fb, v1, vo + c, c_, u1, uo + c * k_, 0, wb)
                else:
                    for c in range(c_):
                        tile_fma_bcast(acc, wb, fb, v1, vo + c, c_, u1, uo + c * k_, 0, nrow)
                tile_store(acc, wb, fb, m1, (e * tv + r0) * k_ + f0, k_, nrow, 0)
            # 3. y = At M A + b, clipped at the output's edge
            for tt in prange(nt):
                t = t0 + tt
                n, h, w = t // (th_ * tw_), 4 * ((t // tw_) % th_), 4 * (t % tw_)
                tmp = np.empty(24 * k_, xp.dtype)        # row 6*i + j: (At M)[i, j]
                for j in range(6):
                    _at_rows(k, m1, (j * tv + tt) * k_, 6 * tv * k_, tmp, j * k_, 6 * k_, zero, k_)
                ncol = min(4, ow_ - w)
                for i in range(min(4, oh_ - h)):
                    o = ((n * oh_ + h + i) * ow_ + w) * k_
                    if ncol == 4:
                        _at_rows(k, tmp, 6 * i * k_, k_, y1, o, k_, b, k_)
                    else:
                        for f in range(k_):
                            q = 6 * i * k_ + f
                            r = _at(k, tmp[q], tmp[q + k_], tmp[q + 2 * k_], tmp[q + 3 * k_],
                                    tmp[q + 4 * k_], tmp[q + 5 * k_])
                            for j in range(ncol):
                                y1[o + j * k_ + f] = r[j] + b[f]
    return kernel


# (vectors per tile row, tile rows), as tiled_direct's dense tiles
_SHAPES = ((4, 6), (2, 8), (1, 16))
# A chunk's V and M take 36 * tiles * (C + K) values: about 4 MiB measured best on two 3x3
# ResNet/VGG layers at batch 8 (chunks twice as large took twice as long per tile there).
CHUNK_BYTES = (4 << 20, 1 << 20)


def _tiles(p: Problem, budget):
    per_tile = 36 * (p.in_channels + p.out_channels) * np.dtype(p.dtype).itemsize
    oh, ow = p.out_spatial
    return int(max(8, min(budget // per_tile, p.batch * -(-oh // 4) * -(-ow // 4))))


def _configs(p: Problem):
    lane = lanes(np.dtype(p.dtype).itemsize)
    shapes = [{"wb": wb, "fb": nv * lane} for nv, wb in _SHAPES if p.out_channels % (nv * lane) == 0][:2]
    out = [dict(s, tiles=_tiles(p, CHUNK_BYTES[0])) for s in shapes]
    small = _tiles(p, CHUNK_BYTES[1])
    if shapes and small < out[0]["tiles"]:
        out.append(dict(shapes[0], tiles=small))
    return out


def _applies(p: Problem):
    ok = _winograd_applies(p)
    if ok is not True:
        return ok.replace("winograd:", "winograd_f4x4_tiled:")
    return whole_vectors("winograd_f4x4_tiled", p)


def _transform(w, b, p: Problem, **config):
    """`prepare`: the transformed weights U (36, C, F), made once per weights."""
    w = check_array("w", w, p.weight_shape, p)
    c, f = p.in_channels, p.out_channels
    u = aligned_empty((36, c, f), p.dtype)        # as aligned as the scratch buffer it replaced
    _weights(w.reshape(3, 3, c * f), np.asarray(_F4["g"], np.float64), u.reshape(36, c * f))
    return u


# mixes_tiles as winograd's: a NaN/Inf spreads over its output tile; nbconv.ops redoes such results.
@register("conv", applies=_applies, configs=_configs, tolerance=1e-3, priority=30, mixes_tiles=True,
          prepare=_transform)
def winograd_f4x4_tiled(x, w, b, p: Problem, wb=None, fb=None, tiles=None, prepared=None):
    lane = lanes(np.dtype(p.dtype).itemsize)
    if wb is None or fb is None or tiles is None:     # the first config's (the tuner passes all)
        cfg = (_configs(p) or [{"wb": 8, "fb": lane, "tiles": 64}])[0]
        wb = cfg["wb"] if wb is None else wb
        fb = cfg["fb"] if fb is None else fb
        tiles = cfg["tiles"] if tiles is None else tiles
    if not (isinstance(wb, int) and 1 <= wb <= 32):
        raise ValueError(f"winograd_f4x4_tiled: `wb` must be an int in [1, 32]. Received: wb={wb!r}")
    if not (isinstance(fb, int) and fb > 0 and fb % lane == 0 and p.out_channels % fb == 0):
        raise ValueError(f"winograd_f4x4_tiled: `fb` must be a positive multiple of {lane} dividing "
                         f"{p.out_channels} channels. Received: fb={fb!r}")
    if not (isinstance(tiles, int) and tiles >= 1):
        raise ValueError(f"winograd_f4x4_tiled: `tiles` must be a positive int. Received: tiles={tiles!r}")
    x = check_array("x", x, p.input_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    dt = np.dtype(p.dtype)
    c, f = p.in_channels, p.out_channels
    u = _transform(w, b, p) if prepared is None else prepared
    (oh, ow), (ph, pw) = p.out_spatial, (p.pads[0][0], p.pads[1][0])
    th, tw = -(-oh // 4), -(-ow // 4)
    xp = scratch("winograd_xp", (p.batch, 4 * th + 2, 4 * tw + 2, c), dt)
    _pad(x if p.channels_last else to_channels_last(x, p), xp, ph, pw)
    shape = p.with_(layout="channels_last").output_shape
    y = np.empty(shape, dt) if p.channels_last else scratch("winograd_y", shape, dt)
    t = min(tiles, p.batch * th * tw)
    v1, m1 = scratch("winograd_v", (36 * t * c,), dt), scratch("winograd_m", (36 * t * f,), dt)
    _kernel(wb, fb)(xp, u, b, y, v1, m1, np.array([2, 4, 5, 8], dt))
    return y if p.channels_last else to_channels_first(y, p)

