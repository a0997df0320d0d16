"""Depthwise convolution (groups == C_in, any channel multiplier) without GEMM, ranks 1-3.

channels_last vectorises over channels: each Numba worker owns output rows (n, od, oh) and
accumulates a row of (OW, M, C) in cache. channels_first vectorises over output columns: each
worker owns planes (n, f). The in-bounds column range is computed per tap, so the inner loops
carry no bounds test. No BLAS, so Numba's threads have the cores (nbconv.threads policy).
Tolerance 1e-4; measured max rel error 1.7e-7 over the property draws.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from nbconv.tuner.registry import register

from ..spec import Problem
from .arrays5d import check_array, zero_pad5


@njit(cache=True, inline="always")
def _col_range(w_, ow_, sw, off):
    """Output columns ow whose input column ow*sw + off lies in [0, w_)."""
    lo = 0
    if off < 0:
        lo = (-off + sw - 1) // sw
    last = w_ - 1 - off                       # ow*sw <= last
    hi = 0 if last < 0 else min(ow_, last // sw + 1)
    return lo, max(lo, hi)


@njit(cache=True, parallel=True, fastmath=True)
def _dw_nhwc(x, w, b, y, sd, sh, sw, dd, dh, dw, pd, ph, pw):
    """x (N,D,H,W,C); w (KD,KH,KW,M,C); b (M,C); y (N,OD,OH,OW,M,C) (f = c*M + m reordered)."""
    n_, d_, h_, w_, c_ = x.shape
    kd_, kh_, kw_, m_, _ = w.shape
    _, od_, oh_, ow_, _, _ = y.shape
    x4 = x.reshape(n_, d_, h_, w_ * c_)   # unit-stride rows for the one-channel path
    for r in prange(n_ * od_ * oh_):
        n = r // (od_ * oh_)
        od = (r // oh_) % od_
        oh = r % oh_
        # One input channel: accumulate (M, OW) so the inner loop runs along the row.
        c1 = c_ == 1 and m_ > 1
        acc = np.empty((0 if c1 else ow_, m_, c_), x.dtype)
        for ow in range(acc.shape[0]):
            for m in range(m_):
                for c in range(c_):
                    acc[ow, m, c] = b[m, c]
        acc_t = np.empty((m_, ow_ if c1 else 0), x.dtype)
        for m in range(m_ if c1 else 0):
            for ow in range(ow_):
                acc_t[m, ow] = b[m, 0]
        for a in range(kd_):
            i_d = od * sd - pd + a * dd
            if i_d < 0 or i_d >= d_:
                continue
            for bb in range(kh_):
                i_h = oh * sh - ph + bb * dh
                if i_h < 0 or i_h >= h_:
                    continue
                for cc in range(kw_):
                    off = cc * dw - pw
                    lo, hi = _col_range(w_, ow_, sw, off)
                    # Separate loops so the innermost one is long and unit-stride.
                    if m_ == 1:
                        for ow in range(lo, hi):
                            i_w = ow * sw + off
                            for c in range(c_):
                                acc[ow, 0, c] += x[n, i_d, i_h, i_w, c] * w[a, bb, cc, 0, c]
                    elif c_ == 1:
                        start = lo * sw + off
                        for m in range(m_):
                            wv = w[a, bb, cc, m, 0]
                            ar = acc_t[m, lo:hi]
                            if sw == 1:
                                xs = x4[n, i_d, i_h, start:start + hi - lo]
                                for j in range(hi - lo):
                                    ar[j] += wv * xs[j]
                            else:
                                xs2 = x4[n, i_d, i_h, start:]
                                for j in range(hi - lo):
                                    ar[j] += wv * xs2[j * sw]
                    else:
                        for ow in range(lo, hi):
                            i_w = ow * sw + off
                            for m in range(m_):
                                for c in range(c_):
                                    acc[ow, m, c] += x[n, i_d, i_h, i_w, c] * w[a, bb, cc, m, c]
        if c1:
            for ow in range(ow_):
                for m in range(m_):
                    y[n, od, oh, ow, m, 0] = acc_t[m, ow]
        else:
            for ow in range(ow_):
                for m in range(m_):
                    for c in range(c_):
                        y[n, od, oh, ow, m, c] = acc[ow, m, c]


@njit(cache=True, parallel=True, fastmath=True)
def _dw_nchw(x, w, b, y, sd, sh, sw, dd, dh, dw, pd, ph, pw):
    """x (N,C,D,H,W); w (F,KD,KH,KW); b (F,); y (N,F,OD,OH,OW); input channel of f is f // M."""
    n_, c_, d_, h_, w_ = x.shape
    f_, kd_, kh_, kw_ = w.shape
    _, _, od_, oh_, ow_ = y.shape
    m_ = f_ // c_
    for q in prange(n_ * f_):
        n = q // f_
        f = q % f_
        c = f // m_
        acc = np.empty(ow_, x.dtype)
        for od in range(od_):
            for oh in range(oh_):
                for ow in range(ow_):
                    acc[ow] = b[f]
                for a in range(kd_):
                    i_d = od * sd - pd + a * dd
                    if i_d < 0 or i_d >= d_:
                        continue
                    for bb in range(kh_):
                        i_h = oh * sh - ph + bb * dh
                        if i_h < 0 or i_h >= h_:
                            continue
                        for cc in range(kw_):
                            off = cc * dw - pw
                            lo, hi = _col_range(w_, ow_, sw, off)
                            wv = w[f, a, bb, cc]
                            # Slices indexed from 0 keep Numba's negative-index fix-up out of
                            # the loop, so it vectorises.
                            start = lo * sw + off
                            ar = acc[lo:hi]
                            if sw == 1:
                                xs = x[n, c, i_d, i_h, start:start + hi - lo]
                                for j in range(hi - lo):
                                    ar[j] += wv * xs[j]
                            else:
                                xs2 = x[n, c, i_d, i_h, start:]
                                for j in range(hi - lo):
                                    ar[j] += wv * xs2[j * sw]
                for ow in range(ow_):
                    y[n, f, od, oh, ow] = acc[ow]


@njit(cache=True, parallel=True, fastmath=True)
def _dw_nhwc_flat(xp, wt, b, y, sd, sh, dd, dh, dw):
    """Multiplier 1, W stride 1: an output row is one flat run of OW*C values.

    xp (N,Dp,Hp,Wp,C) zero-padded; wt (KD,KH,KW,OW*C) weights tiled along the row;
    y (N,OD,OH,OW,C). Up to three W taps per pass, so the accumulator is loaded and stored
    once per three multiply-adds.
    """
    n_, dp_, hp_, wp_, c_ = xp.shape
    kd_, kh_, kw_, run = wt.shape
    _, od_, oh_, ow_, _ = y.shape
    x4 = xp.reshape(n_, dp_, hp_, wp_ * c_)
    y4 = y.reshape(n_, od_, oh_, ow_ * c_)
    for r in prange(n_ * od_ * oh_):
        n = r // (od_ * oh_)
        od = (r // oh_) % od_
        oh = r % oh_
        acc = np.empty(run, y.dtype)
        for i in range(ow_):
            for c in range(c_):
                acc[i * c_ + c] = b[c]
        for a in range(kd_):
            for bb in range(kh_):
                xr = x4[n, od * sd + a * dd, oh * sh + bb * dh]
                k = 0
                while k < kw_:
                    o0 = k * dw * c_
                    w0 = wt[a, bb, k]
                    x0 = xr[o0:o0 + run]
                    if k + 3 <= kw_:
                        o1 = o0 + dw * c_
                        o2 = o1 + dw * c_
                        x1 = xr[o1:o1 + run]
                        x2 = xr[o2:o2 + run]
                        w1 = wt[a, bb, k + 1]
                        w2 = wt[a, bb, k + 2]
                        for i in range(run):
                            acc[i] += x0[i] * w0[i] + x1[i] * w1[i] + x2[i] * w2[i]
                        k += 3
                    elif k + 2 <= kw_:
                        o1 = o0 + dw * c_
                        x1 = xr[o1:o1 + run]
                        w1 = wt[a, bb, k + 1]
                        for i in range(run):
                            acc[i] += x0[i] * w0[i] + x1[i] * w1[i]
                        k += 2
                    else:
                        for i in range(run):
                            acc[i] += x0[i] * w0[i]
                        k += 1
        yr = y4[n, od, oh]
        for i in range(run):
            yr[i] = acc[i]


def _pad3(p: Problem, t, fill):
    return (fill,) * (3 - p.rank) + tuple(t)


def _applies(p: Problem):
    if p.op != "conv" or not 1 <= p.rank <= 3:
        return "depthwise: conv of rank 1-3 only"
    if p.groups != p.in_channels:
        return f"depthwise: groups must equal in_channels (groups={p.groups}, in_channels={p.in_channels})"
    return True


def _flat_ok(p: Problem) -> bool:
    return p.channels_last and p.out_channels == p.in_channels and p.strides[-1] == 1


def _configs(p: Problem):
    return [{"flat": False}, {"flat": True}] if _flat_ok(p) else [{"flat": False}]


@register("conv", applies=_applies, configs=_configs, tolerance=1e-4, priority=40)
def depthwise_direct(x, w, b, p: Problem, flat=False):
    x = check_array("x", x, p.input_shape, p)
    w = check_array("w", w, p.weight_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    c, f = p.in_channels, p.out_channels
    m = f // c
    k = _pad3(p, p.kernel, 1)
    s = _pad3(p, p.strides, 1)
    d = _pad3(p, p.dilation, 1)
    lo = _pad3(p, [lo for lo, _ in p.pads], 0)
    o = _pad3(p, p.out_spatial, 1)
    sp = _pad3(p, p.spatial, 1)
    if flat and _flat_ok(p):
        # zero-padded copy: the flat row runs need no bounds tests
        xp = zero_pad5(x.reshape(p.batch, *sp, c), p.with_(spatial=sp, kernel=k, strides=s,
                                                           dilation=d, pads=_pad3(p, p.pads, (0, 0)),
                                                           rank=3))
        wt = np.ascontiguousarray(np.broadcast_to(w.reshape(*k, 1, c), (*k, o[2], c))).reshape(*k, -1)
        y = np.empty(p.output_shape, p.dtype)
        _dw_nhwc_flat(xp, wt, b, y.reshape(p.batch, *o, c), s[0], s[1], d[0], d[1], d[2])
        return y
    if p.channels_last:
        # (*k, 1, C*M) with f = c*M + m -> (*k, M, C) so the inner loop runs over c.
        wt = np.ascontiguousarray(w.reshape(*k, c, m).transpose(0, 1, 2, 4, 3))
        bt = np.ascontiguousarray(b.reshape(c, m).T)
        y6 = np.empty((p.batch, *o, m, c), p.dtype)
        _dw_nhwc(x.reshape(p.batch, *sp, c), wt, bt, y6, *s, *d, *lo)
        # (.., M, C) -> (.., C, M): free when M == 1.
        y = y6 if m == 1 else np.ascontiguousarray(y6.swapaxes(-1, -2))
        return y.reshape(p.output_shape)
    wt = np.ascontiguousarray(np.moveaxis(w.reshape(*k, f), -1, 0))
    y = np.empty(p.output_shape, p.dtype)
    _dw_nchw(x.reshape(p.batch, c, *sp), wt, b, y.reshape(p.batch, f, *o), *s, *d, *lo)
    return y
