"""Direct convolution: the always-applicable fallback (every rank, groups, dilation, both layouts).

The wrapper zero-pads the input into a copy (zero pads are exact for conv), so the kernels have no
bounds checks, and sees every rank as 5-D (see `views`): one compile per (layout, dtype).
float32 accumulates in float32 (FMA contraction allowed, nothing reassociated, so NaN and Inf
propagate exactly as in the reference). Tolerance 1e-5; measured max rel error against the float64
reference: 8e-7 over the property tests' draws, 1.7e-6 on the reference shapes (pw_1x1_7, a
2048-term reduction; the error grows roughly with its square root).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from nbconv.tuner.registry import register

from ..spec import Problem
from .arrays5d import applies_common, check_array, three, view5, zero_pad5

TOLERANCE = 1e-5


@njit(cache=True, parallel=True, fastmath={"contract"})
def _conv_last(xp, w, b, out, sd, sh, sw, dd, dh, dw, groups):
    """xp (N, D, H, W, C) padded; w (KD, KH, KW, C/groups, F); out (N, OD, OH, OW, F).

    One parallel item per output pixel (batch x positions flattened); innermost loop over the
    contiguous output channels.
    """
    n_, od_, oh_, ow_, f_ = out.shape
    kd_, kh_, kw_, cg, _ = w.shape
    fg = f_ // groups
    for t in prange(n_ * od_ * oh_ * ow_):
        ow = t % ow_
        r = t // ow_
        oh = r % oh_
        r //= oh_
        od = r % od_
        n = r // od_
        # a fresh local accumulator (aliases nothing) and loops counting from 0: with these the
        # f loop vectorises (a `range(f0, f0 + fg)` loop did not: ~10x slower)
        acc = np.empty(f_, out.dtype)
        for f in range(f_):
            acc[f] = b[f]
        for kd in range(kd_):
            for kh in range(kh_):
                for kw in range(kw_):
                    i, j, k = od * sd + kd * dd, oh * sh + kh * dh, ow * sw + kw * dw
                    if cg == 1 and fg == 1:
                        # depthwise: one weight per channel, vectorise across channels
                        for f in range(f_):
                            acc[f] += xp[n, i, j, k, f] * w[kd, kh, kw, 0, f]
                    else:
                        for g in range(groups):
                            f0 = g * fg
                            for c in range(cg):
                                v = xp[n, i, j, k, g * cg + c]
                                for f in range(fg):
                                    acc[f0 + f] += v * w[kd, kh, kw, c, f0 + f]
        for f in range(f_):
            out[n, od, oh, ow, f] = acc[f]


@njit(cache=True, parallel=True, fastmath={"contract"})
def _conv_first(xp, w, b, out, sd, sh, sw, dd, dh, dw, groups):
    """xp (N, C, D, H, W) padded; w (F, C/groups, KD, KH, KW); out (N, F, OD, OH, OW).

    Parallel items: batch x filters x OD x blocks of output rows, flattened. The innermost loop
    runs over output columns: output rows are short (LLVM's vector loop wants >= 64 iterations),
    so with stride 1 in H and W a block of rows is computed as one flat run over the padded input
    width (the padded columns are computed and dropped: (Wp - OW) / Wp extra work).
    """
    n_, f_, od_, oh_, ow_ = out.shape
    _, cg, kd_, kh_, kw_ = w.shape
    wp = xp.shape[4]
    fg = f_ // groups
    flat = sh == 1 and sw == 1
    rb = max(1, min(oh_, 512 // wp)) if flat else 1
    nb = (oh_ + rb - 1) // rb
    for t in prange(n_ * f_ * od_ * nb):
        blk = t % nb
        r = t // nb
        od = r % od_
        r //= od_
        f = r % f_
        n = r // f_
        c0 = (f // fg) * cg
        oh0 = blk * rb
        nr = min(rb, oh_ - oh0)
        run = (nr - 1) * wp + ow_ if flat else ow_
        # a fresh local accumulator: LLVM knows it aliases nothing, so the loops vectorise
        acc = np.empty(run, out.dtype)
        for q in range(run):
            acc[q] = b[f]
        for c in range(cg):
            for kd in range(kd_):
                plane = xp[n, c0 + c, od * sd + kd * dd].reshape(-1)
                for kh in range(kh_):
                    for kw in range(kw_):
                        wv = w[f, c, kd, kh, kw]
                        # slice views from a start offset (not `base + q` indices): that
                        # lets LLVM drop the negative-index checks and vectorise
                        xr = plane[(oh0 * sh + kh * dh) * wp + kw * dw:]
                        if sw == 1:
                            for q in range(run):
                                acc[q] += wv * xr[q]
                        else:
                            for q in range(run):
                                acc[q] += wv * xr[q * sw]
        for rr in range(nr):
            for o in range(ow_):
                out[n, f, od, oh0 + rr, o] = acc[rr * wp + o] if flat else acc[o]


def _applies(p: Problem):
    ok = applies_common(p)
    if ok is not True:
        return ok
    if p.in_channels % p.groups or p.out_channels % p.groups:
        return f"channels {p.in_channels}-{p.out_channels} must be divisible by groups={p.groups}"
    return True


def _weights_first(w, b, p: Problem) -> np.ndarray | None:
    """`prepare`: channels_first reads (F, Cg, KD, KH, KW), one scalar weight per output row pass."""
    if p.channels_last:
        return None
    w = check_array("w", w, p.weight_shape, p)
    kd, kh, kw = three(p.kernel, 1)
    cg, f = p.in_channels // p.groups, p.out_channels
    return np.ascontiguousarray(w.reshape(kd, kh, kw, cg, f).transpose(4, 3, 0, 1, 2))


@register("conv", applies=_applies, configs=[{}], tolerance=TOLERANCE, priority=0, prepare=_weights_first)
def conv_direct(x, w, b, p: Problem, prepared=None) -> np.ndarray:
    """Grouped, strided, dilated conv of any rank 1-3, either layout; returns p.output_shape."""
    x = check_array("x", x, p.input_shape, p)
    w = check_array("w", w, p.weight_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    sd, sh, sw = three(p.strides, 1)
    dd, dh, dw = three(p.dilation, 1)
    kd, kh, kw = three(p.kernel, 1)
    cg, f = p.in_channels // p.groups, p.out_channels
    xp = zero_pad5(view5(x, p), p)
    out = np.empty(p.output_shape, x.dtype)
    if p.channels_last:
        _conv_last(xp, w.reshape(kd, kh, kw, cg, f), b, view5(out, p, out=True),
                   sd, sh, sw, dd, dh, dw, p.groups)
    else:
        wt = _weights_first(w, b, p) if prepared is None else prepared
        _conv_first(xp, wt, b, view5(out, p, out=True), sd, sh, sw, dd, dh, dw, p.groups)
    return out
