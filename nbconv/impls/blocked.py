"""Direct convolution blocked over output channels and output columns, NHWC and NCHW, ranks 1-3.

No lowering and no extra memory (Zhang et al., ICML 2018). channels_last: a Numba worker owns a
block of `wb` output columns of one output row and keeps a (wb, fb) accumulator tile per block
of `fb` output channels; every tap x input channel adds a broadcast input value times a
contiguous weight row, so the inner loop runs over fb channels. channels_first: a worker owns
`fb` output channels of one output row and accumulates (fb, OW) rows; the inner loop runs along
the row (unit stride when the stride is 1), which suits few input channels and wide images. The
in-bounds range of columns is computed per tap, so inner loops carry no bounds tests. Groups are
contiguous channel blocks. No BLAS: Numba's threads have the cores.
Tolerance 1e-4; measured max rel error 3.5e-7 over the property draws.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from nbconv.tuner.registry import register

from ..spec import Problem
from .arrays5d import check_array, three


@njit(cache=True, inline="always")
def _cols(w_, ow0, ow1, sw, off):
    """Output columns in [ow0, ow1) whose input column ow*sw + off lies in [0, w_)."""
    lo = ow0
    if off + ow0 * sw < 0:
        lo = (-off + sw - 1) // sw
    last = w_ - 1 - off
    hi = min(ow1, last // sw + 1) if last >= 0 else ow0
    return lo, max(lo, hi)


@njit(cache=True, parallel=True, fastmath={"contract"})
def _blocked_nhwc(x, w, b, y, sd, sh, sw, dd, dh, dw, pd, ph, pw, wb, fb):
    """x (N,D,H,W,C); w (KD,KH,KW,Cg,F); y (N,OD,OH,OW,F)."""
    n_, d_, h_, w_, c_ = x.shape
    kd_, kh_, kw_, cg, f_ = w.shape
    _, od_, oh_, ow_, _ = y.shape
    g_ = c_ // cg
    fg = f_ // g_
    nwb = (ow_ + wb - 1) // wb
    for t in prange(n_ * od_ * oh_ * nwb):
        blk = t % nwb
        r = t // nwb
        oh = r % oh_
        od = (r // oh_) % od_
        n = r // (oh_ * od_)
        ow0 = blk * wb
        ow1 = min(ow_, ow0 + wb)
        acc = np.empty((wb, fb), x.dtype)
        for f0 in range(0, f_, fb):
            nf = min(fb, f_ - f0)
            for i in range(ow1 - ow0):
                for f in range(nf):
                    acc[i, f] = b[f0 + f]
            for a in range(kd_):
                i_d = od * sd - pd + a * dd
                if i_d < 0 or i_d >= d_:
                    continue
                for bb in range(kh_):
                    i_h = oh * sh - ph + bb * dh
                    if i_h < 0 or i_h >= h_:
                        continue
                    xr = x[n, i_d, i_h]
                    for cc in range(kw_):
                        off = cc * dw - pw
                        lo, hi = _cols(w_, ow0, ow1, sw, off)
                        # a block of filters may span groups: split it at group edges
                        f = f0
                        while f < f0 + nf:
                            g = f // fg
                            fe = min(f0 + nf, (g + 1) * fg)
                            wt = w[a, bb, cc]
                            for c in range(cg):
                                wr = wt[c, f:fe]
                                for ow in range(lo, hi):
                                    xv = xr[ow * sw + off, g * cg + c]
                                    ar = acc[ow - ow0, f - f0:fe - f0]
                                    for j in range(fe - f):
                                        ar[j] += xv * wr[j]
                            f = fe
            for i in range(ow1 - ow0):
                yr = y[n, od, oh, ow0 + i]
                for f in range(nf):
                    yr[f0 + f] = acc[i, f]


@njit(cache=True, parallel=True, fastmath={"contract"})
def _blocked_nchw(x, w, b, y, sd, sh, sw, dd, dh, dw, pd, ph, pw, fb):
    """x (N,C,D,H,W); w (F,Cg,KD,KH,KW); y (N,F,OD,OH,OW)."""
    n_, c_, d_, h_, w_ = x.shape
    f_, cg, kd_, kh_, kw_ = w.shape
    _, _, od_, oh_, ow_ = y.shape
    g_ = c_ // cg
    fg = f_ // g_
    nfb = (f_ + fb - 1) // fb
    for t in prange(n_ * nfb * od_ * oh_):
        oh = t % oh_
        r = t // oh_
        od = r % od_
        r //= od_
        fblk = r % nfb
        n = r // nfb
        f0 = fblk * fb
        nf = min(fb, f_ - f0)
        acc = np.empty((fb, ow_), x.dtype)
        for j in range(nf):
            for ow in range(ow_):
                acc[j, ow] = b[f0 + j]
        for j in range(nf):
            f = f0 + j
            g = f // fg
            ar = acc[j]
            for c in range(cg):
                for a in range(kd_):
                    i_d = od * sd - pd + a * dd
                    if i_d < 0 or i_d >= d_:
                        continue
                    for bb in range(kh_):
                        i_h = oh * sh - ph + bb * dh
                        if i_h < 0 or i_h >= h_:
                            continue
                        xr = x[n, g * cg + c, i_d, i_h]
                        for cc in range(kw_):
                            off = cc * dw - pw
                            lo, hi = _cols(w_, 0, ow_, sw, off)
                            wv = w[f, c, a, bb, cc]
                            start = lo * sw + off
                            arr = ar[lo:hi]
                            if sw == 1:
                                xs = xr[start:start + hi - lo]
                                for q in range(hi - lo):
                                    arr[q] += wv * xs[q]
                            else:
                                xs2 = xr[start:]
                                for q in range(hi - lo):
                                    arr[q] += wv * xs2[q * sw]
        for j in range(nf):
            yr = y[n, f0 + j, od, oh]
            for ow in range(ow_):
                yr[ow] = acc[j, ow]


def _applies(p: Problem):
    if p.op != "conv" or not 1 <= p.rank <= 3:
        return "blocked_direct: conv of rank 1-3 only"
    if any(lo < 0 or hi < 0 for lo, hi in p.pads):
        return f"blocked_direct: pads must be non-negative, got {p.pads}"
    return True


def _configs(p: Problem):
    if p.channels_last:
        return [{"wb": 8, "fb": 64}, {"wb": 16, "fb": 32}, {"wb": 4, "fb": 256}]
    return [{"fb": 4}, {"fb": 16}]


@register("conv", applies=_applies, configs=_configs, tolerance=1e-4, priority=5)
def blocked_direct(x, w, b, p: Problem, wb=8, fb=64):
    x = check_array("x", x, p.input_shape, p)
    w = check_array("w", w, p.weight_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    for name, v in (("wb", wb), ("fb", fb)):
        if not (isinstance(v, int) and v >= 1):
            raise ValueError(f"blocked_direct: `{name}` must be a positive int. Received: {name}={v!r}")
    k, s, d = three(p.kernel, 1), three(p.strides, 1), three(p.dilation, 1)
    lo = three([a for a, _ in p.pads], 0)
    sp, o = three(p.spatial, 1), three(p.out_spatial, 1)
    cg = p.in_channels // p.groups
    y = np.empty(p.output_shape, p.dtype)
    if p.channels_last:
        _blocked_nhwc(x.reshape(p.batch, *sp, p.in_channels), w.reshape(*k, cg, p.out_channels), b,
                      y.reshape(p.batch, *o, p.out_channels), *s, *d, *lo, wb, min(fb, p.out_channels))
    else:
        wt = np.ascontiguousarray(np.moveaxis(w.reshape(-1, cg, p.out_channels), -1, 0)
                                  .transpose(0, 2, 1)).reshape(p.out_channels, cg, *k)
        _blocked_nchw(x.reshape(p.batch, p.in_channels, *sp), wt, b,
                      y.reshape(p.batch, p.out_channels, *o), *s, *d, *lo, min(fb, p.out_channels))
    return y
