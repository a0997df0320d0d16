"""Direct convolution on CUDA: one thread per output, the always-applicable CUDA conv.

Threads walk the output in memory order, so consecutive threads (threadIdx.x) take consecutive
output channels for channels_last and consecutive output columns for channels_first: writes are
coalesced, and channels_last weight reads too. Every rank 1-3 (seen as 3-D), stride, dilation,
padding (bounds-checked, no padded copy), groups and depthwise. Accumulates in float32 (nothing
reassociated: the k loops run in the reference's order); tolerance 1e-5.
Tunable: threads per block.
"""
from __future__ import annotations

import math

from numba import cuda, float32

from nbconv.tuner.registry import register

from ...spec import Problem
from .runtime_cuda import (
    TOLERANCE,
    applies_cuda,
    event_timer,
    finish,
    geometry,
    launch_check,
    output,
    output_index,
    to_device,
    upload_weights,
)

CONFIGS = [{"threads": 128}, {"threads": 256}]


@cuda.jit(fastmath=False)
def conv_direct_kernel(x, w, b, out, last, n_, c_, f_, groups, D, H, W, OD, OH, OW, KD, KH, KW,
                       SD, SH, SW, DD, DH, DW, PD, PH, PW):
    """x (N, D, H, W, C) or (N, C, D, H, W) flat; w (KD, KH, KW, C/groups, F) flat (Keras)."""
    t = cuda.grid(1)
    if t >= n_ * f_ * OD * OH * OW:
        return
    n, f, od, oh, ow = output_index(t, last, f_, OD, OH, OW)
    cg = c_ // groups
    c0 = (f // (f_ // groups)) * cg
    step = 1 if last else D * H * W
    acc = float32(0)
    for kd in range(KD):
        iz = od * SD - PD + kd * DD
        if iz < 0 or iz >= D:
            continue
        for kh in range(KH):
            iy = oh * SH - PH + kh * DH
            if iy < 0 or iy >= H:
                continue
            for kw in range(KW):
                ix = ow * SW - PW + kw * DW
                if ix < 0 or ix >= W:
                    continue
                if last:
                    base = (((n * D + iz) * H + iy) * W + ix) * c_ + c0
                else:
                    base = (((n * c_ + c0) * D + iz) * H + iy) * W + ix
                wb = ((kd * KH + kh) * KW + kw) * cg * f_ + f
                for c in range(cg):
                    acc += x[base + c * step] * w[wb + c * f_]
    out[t] = acc + b[f]


def _applies(p: Problem):
    ok = applies_cuda(p)
    if ok is not True:
        return ok
    if p.in_channels % p.groups or p.out_channels % p.groups:
        return f"channels {p.in_channels}-{p.out_channels} must be divisible by groups={p.groups}"
    return True


def _configs(p: Problem) -> list[dict]:
    return [c for c in CONFIGS if launch_check(c["threads"]) is True]


def launch(kernel, threads: int, total: int, *args) -> None:
    ok = launch_check(threads)
    if ok is not True:
        raise ValueError(f"launch declined: {ok}")
    kernel[max(1, math.ceil(total / threads)), threads](*args)


@register("conv", applies=_applies, configs=_configs, tolerance=TOLERANCE, priority=0,
          prepare=lambda w, b, p, **cfg: upload_weights(w, b, p), timer=event_timer)
def conv_direct_cuda(x, w, b, p: Problem, prepared=None, threads: int = 128):
    """Grouped, strided, dilated conv of rank 1-3, either layout; host in -> host out."""
    xd, host = to_device(x, p.input_shape, "x")
    wd, bd = upload_weights(w, b, p) if prepared is None else prepared
    out = output(p)
    launch(conv_direct_kernel, threads, out.size, xd, wd, bd, out, p.channels_last, p.batch,
           p.in_channels, p.out_channels, p.groups, *geometry(p))
    return finish(out, p, host)
