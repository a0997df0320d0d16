"""Locally-connected layers on CUDA: one thread per output, in the output's memory order.

w is the canonical (P, *k, C, F) layout (one filter bank per output position), b is (P, F).
float32 accumulation, tolerance 1e-5. Tunable: threads per block.
"""
from __future__ import annotations

from numba import cuda, float32

from nbconv.tuner.registry import register

from ...spec import Problem
from .direct_cuda import _configs, launch
from .runtime_cuda import (
    TOLERANCE,
    applies_cuda,
    event_timer,
    finish,
    geometry,
    output,
    output_index,
    to_device,
    upload_weights,
)


@cuda.jit(fastmath=False)
def local_kernel(x, w, b, out, last, n_, c_, f_, D, H, W, OD, OH, OW, KD, KH, KW,
                 SD, SH, SW, DD, DH, DW, PD, PH, PW):
    t = cuda.grid(1)
    if t >= n_ * f_ * OD * OH * OW:
        return
    n, f, od, oh, ow = output_index(t, last, f_, OD, OH, OW)
    pos = (od * OH + oh) * OW + ow
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
                    base = (((n * D + iz) * H + iy) * W + ix) * c_
                else:
                    base = (((n * c_) * D + iz) * H + iy) * W + ix
                wb = (((pos * KD + kd) * KH + kh) * KW + kw) * c_ * f_ + f
                for c in range(c_):
                    acc += x[base + c * step] * w[wb + c * f_]
    out[t] = acc + b[pos * f_ + f]


@register("local", applies=applies_cuda, configs=_configs, tolerance=TOLERANCE, priority=0,
          prepare=lambda w, b, p, **cfg: upload_weights(w, b, p), timer=event_timer)
def local_direct_cuda(x, w, b, p: Problem, prepared=None, threads: int = 128):
    xd, host = to_device(x, p.input_shape, "x")
    wd, bd = upload_weights(w, b, p) if prepared is None else prepared
    out = output(p)
    launch(local_kernel, threads, out.size, xd, wd, bd, out, p.channels_last, p.batch,
           p.in_channels, p.out_channels, *geometry(p))
    return finish(out, p, host)
