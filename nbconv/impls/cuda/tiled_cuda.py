"""Register-tiled direct convolution on CUDA (groups 1, both layouts, ranks 1-3).

Each thread computes RP consecutive output columns x RF consecutive output channels of one output
row, in registers: an input value is loaded once for RF channels and a weight once for RP
columns (the direct kernel reloads both per output). Threads walk (row, column block, channel
block) with the channel block fastest for channels_last, the column block fastest for
channels_first. Padding is a bounds check; float32 accumulation in the reference's k order
(tolerance 1e-5). Tunables: RP, RF, threads per block.
"""
from __future__ import annotations

import functools
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
    to_device,
    upload_weights,
)

CONFIGS = [{"rp": 2, "rf": 4, "threads": 128}, {"rp": 4, "rf": 4, "threads": 128},
           {"rp": 4, "rf": 8, "threads": 64}]


@functools.cache
def make_kernel(rp: int, rf: int):
    """The kernel for one register tile (its sizes are compile-time constants)."""
    def tiled_kernel(x, w, b, out, last, n_, c_, f_, D, H, W, OD, OH, OW, KD, KH, KW,
                     SD, SH, SW, DD, DH, DW, PD, PH, PW):
        t = cuda.grid(1)
        nfb = (f_ + rf - 1) // rf
        nwb = (OW + rp - 1) // rp
        if t >= n_ * OD * OH * nwb * nfb:
            return
        if last:
            fb = t % nfb
            r = t // nfb
            wb = r % nwb
            r //= nwb
        else:
            wb = t % nwb
            r = t // nwb
        oh = r % OH
        r //= OH
        od = r % OD
        r //= OD
        if last:
            n = r
        else:
            fb = r % nfb
            n = r // nfb
        f0 = fb * rf
        ow0 = wb * rp
        acc = cuda.local.array((rp, rf), float32)
        wv = cuda.local.array(rf, float32)
        for i in range(rp):
            for j in range(rf):
                acc[i, j] = float32(0)
        for kd in range(KD):
            iz = od * SD - PD + kd * DD
            if iz < 0 or iz >= D:
                continue
            for kh in range(KH):
                iy = oh * SH - PH + kh * DH
                if iy < 0 or iy >= H:
                    continue
                for kw in range(KW):
                    wb0 = ((kd * KH + kh) * KW + kw) * c_ * f_ + f0
                    for c in range(c_):
                        for j in range(rf):
                            wv[j] = w[wb0 + c * f_ + j] if f0 + j < f_ else float32(0)
                        for i in range(rp):
                            ix = (ow0 + i) * SW - PW + kw * DW
                            if ow0 + i < OW and 0 <= ix < W:
                                if last:
                                    xv = x[(((n * D + iz) * H + iy) * W + ix) * c_ + c]
                                else:
                                    xv = x[(((n * c_ + c) * D + iz) * H + iy) * W + ix]
                                for j in range(rf):
                                    acc[i, j] += xv * wv[j]
        for i in range(rp):
            ow = ow0 + i
            if ow < OW:
                for j in range(rf):
                    f = f0 + j
                    if f < f_:
                        if last:
                            o = (((n * OD + od) * OH + oh) * OW + ow) * f_ + f
                        else:
                            o = (((n * f_ + f) * OD + od) * OH + oh) * OW + ow
                        out[o] = acc[i, j] + b[f]

    return cuda.jit(fastmath=False)(tiled_kernel)


def _applies(p: Problem):
    ok = applies_cuda(p)
    if ok is not True:
        return ok
    if p.op != "conv" or p.groups != 1:
        return f"register-tiled direct serves groups=1 conv; got groups={p.groups}"
    return True


def _configs(p: Problem) -> list[dict]:
    return [c for c in CONFIGS if launch_check(c["threads"]) is True]


@register("conv", applies=_applies, configs=_configs, tolerance=TOLERANCE, priority=10,
          prepare=lambda w, b, p, **cfg: upload_weights(w, b, p), timer=event_timer)
def conv_tiled_cuda(x, w, b, p: Problem, prepared=None, rp: int = 4, rf: int = 4, threads: int = 128):
    """groups=1 conv of rank 1-3, either layout; host in -> host out."""
    ok = launch_check(threads)
    if ok is not True:
        raise ValueError(f"conv_tiled_cuda: launch declined: {ok}")
    xd, host = to_device(x, p.input_shape, "x")
    wd, bd = upload_weights(w, b, p) if prepared is None else prepared
    out = output(p)
    g = geometry(p)
    total = p.batch * math.prod(g[3:5]) * math.ceil(g[5] / rp) * math.ceil(p.out_channels / rf)
    make_kernel(rp, rf)[max(1, math.ceil(total / threads)), threads](
        xd, wd, bd, out, p.channels_last, p.batch, p.in_channels, p.out_channels, *g)
    return finish(out, p, host)
