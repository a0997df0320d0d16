"""Max and average pooling on CUDA: one thread per output, in the output's memory order.

Padded cells are not values: max ignores them, avg divides by the number of real cells (Keras).
A NaN in a window gives NaN (as the reference's max). float32; tolerances 1e-6 (max: exact)
and 1e-5 (avg). Tunable: threads per block.
"""
from __future__ import annotations

import math

from numba import cuda, float32

from nbconv.tuner.registry import register

from ...spec import Problem
from .direct_cuda import _configs, launch
from .runtime_cuda import applies_cuda, event_timer, finish, geometry, output, output_index, to_device


@cuda.jit(fastmath=False)
def pool_kernel(x, out, is_max, last, n_, c_, D, H, W, OD, OH, OW, KD, KH, KW,
                SD, SH, SW, DD, DH, DW, PD, PH, PW):
    t = cuda.grid(1)
    if t >= n_ * c_ * OD * OH * OW:
        return
    n, c, od, oh, ow = output_index(t, last, c_, OD, OH, OW)
    acc = float32(-math.inf) if is_max else float32(0)
    count = 0
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
                    v = x[(((n * D + iz) * H + iy) * W + ix) * c_ + c]
                else:
                    v = x[(((n * c_ + c) * D + iz) * H + iy) * W + ix]
                count += 1
                if is_max:
                    if acc == acc and (v > acc or v != v):   # a NaN stays
                        acc = v
                else:
                    acc += v
    out[t] = acc if is_max else acc / float32(max(count, 1))


def _pool(x, p: Problem, threads: int):
    xd, host = to_device(x, p.input_shape, "x")
    out = output(p)
    launch(pool_kernel, threads, out.size, xd, out, p.op == "maxpool", p.channels_last, p.batch,
           p.in_channels, *geometry(p))
    return finish(out, p, host)


@register("maxpool", applies=applies_cuda, configs=_configs, tolerance=1e-6, priority=0, timer=event_timer)
def maxpool_direct_cuda(x, p: Problem, threads: int = 128):
    return _pool(x, p, threads)


@register("avgpool", applies=applies_cuda, configs=_configs, tolerance=1e-5, priority=0, timer=event_timer)
def avgpool_direct_cuda(x, p: Problem, threads: int = 128):
    return _pool(x, p, threads)
