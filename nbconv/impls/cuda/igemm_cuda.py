"""Implicit GEMM for channels_last convolution on CUDA (1x1 conv included).

The conv as a GEMM without an im2col copy: M = N*OD*OH*OW output pixels, N = F filters,
K = KD*KH*KW*C. The Keras weight array (KD, KH, KW, C, F) already is the (K, F) matrix. A table of
(kd*dd, kh*dh, kw*dw, c) per k, made once with the weights by `prepare` (IMPLICIT_PRECOMP_GEMM),
turns a (pixel, k) pair into an input address; padding is a bounds check. Each block computes a
BM x BN output tile, stepping through K by BK: it gathers the BK x BM activation tile and the
BK x BN weight tile into shared memory, and every thread accumulates a TM x TN register tile
(its rows and columns strided by the thread grid, which keeps shared-memory reads conflict-free).
float32 accumulation in k order; tolerance 1e-5. Tunables: BM, BN, BK, TM, TN; a config whose
block exceeds the launch limits (1024 threads, 48 KiB static shared memory) is declined.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numba import cuda, float32

from nbconv.tuner.registry import register

from ...spec import Problem
from .runtime_cuda import (
    TOLERANCE,
    applies_cuda,
    event_timer,
    finish,
    five,
    geometry,
    launch_check,
    output,
    to_device,
    upload_weights,
)

CONFIGS = [
    {"bm": 32, "bn": 32, "bk": 8, "tm": 2, "tn": 2},
    {"bm": 64, "bn": 32, "bk": 16, "tm": 4, "tn": 2},
    {"bm": 64, "bn": 64, "bk": 8, "tm": 4, "tn": 4},
    {"bm": 128, "bn": 64, "bk": 8, "tm": 8, "tn": 4},
]


def limits(bm: int, bn: int, bk: int, tm: int, tn: int):
    """True, or why this tile config cannot launch."""
    if bm % tm or bn % tn:
        return f"tile {bm}x{bn} is not a multiple of the register tile {tm}x{tn}"
    return launch_check((bm // tm) * (bn // tn), 4 * bk * (bm + bn))


@functools.cache
def make_kernel(bm: int, bn: int, bk: int, tm: int, tn: int):
    """The kernel for one tile config (tile sizes are compile-time constants)."""
    tx_, ty_ = bn // tn, bm // tm
    nthreads = tx_ * ty_

    def igemm_kernel(x, w, b, offs, out, M, K, c_, f_, D, H, W, OD, OH, OW, SD, SH, SW, PD, PH, PW):
        a_tile = cuda.shared.array((bk, bm), float32)
        b_tile = cuda.shared.array((bk, bn), float32)
        acc = cuda.local.array((tm, tn), float32)
        a_reg = cuda.local.array(tm, float32)
        b_reg = cuda.local.array(tn, float32)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * tx_ + tx
        m0 = cuda.blockIdx.x * bm
        n0 = cuda.blockIdx.y * bn
        for i in range(tm):
            for j in range(tn):
                acc[i, j] = float32(0)
        for k0 in range(0, K, bk):
            for e in range(tid, bk * bm, nthreads):
                kk = e % bk             # consecutive threads: consecutive channels (coalesced)
                mm = e // bk
                m = m0 + mm
                k = k0 + kk
                v = float32(0)
                if m < M and k < K:
                    ow = m % OW
                    r = m // OW
                    oh = r % OH
                    r //= OH
                    od = r % OD
                    n = r // OD
                    iz = od * SD - PD + offs[4 * k]
                    iy = oh * SH - PH + offs[4 * k + 1]
                    ix = ow * SW - PW + offs[4 * k + 2]
                    if 0 <= iz < D and 0 <= iy < H and 0 <= ix < W:
                        v = x[(((n * D + iz) * H + iy) * W + ix) * c_ + offs[4 * k + 3]]
                a_tile[kk, mm] = v
            for e in range(tid, bk * bn, nthreads):
                kk = e // bn
                nn = e % bn
                k = k0 + kk
                col = n0 + nn
                v = float32(0)
                if k < K and col < f_:
                    v = w[k * f_ + col]
                b_tile[kk, nn] = v
            cuda.syncthreads()
            for kk in range(bk):
                for i in range(tm):
                    a_reg[i] = a_tile[kk, ty + i * ty_]
                for j in range(tn):
                    b_reg[j] = b_tile[kk, tx + j * tx_]
                for i in range(tm):
                    for j in range(tn):
                        acc[i, j] += a_reg[i] * b_reg[j]
            cuda.syncthreads()
        for i in range(tm):
            m = m0 + ty + i * ty_
            if m < M:
                for j in range(tn):
                    col = n0 + tx + j * tx_
                    if col < f_:
                        out[m * f_ + col] = acc[i, j] + b[col]

    return cuda.jit(fastmath=False)(igemm_kernel)


def offsets(p: Problem) -> np.ndarray:
    """(kd*dd, kh*dh, kw*dw, c) per k = ((kd*KH + kh)*KW + kw)*C + c, flat int32."""
    kd, kh, kw = five(p.kernel, 1)
    dd, dh, dw = five(p.dilation, 1)
    g = np.indices((kd, kh, kw, p.in_channels)).reshape(4, -1).T
    return np.ascontiguousarray(g * np.array([dd, dh, dw, 1]), dtype=np.int32).reshape(-1)


def _applies(p: Problem):
    ok = applies_cuda(p)
    if ok is not True:
        return ok
    if p.op != "conv" or not p.channels_last:
        return "implicit GEMM serves channels_last conv"
    if p.groups != 1:
        return f"implicit GEMM serves groups=1; got groups={p.groups}"
    return True


def _configs(p: Problem) -> list[dict]:
    return [c for c in CONFIGS if limits(**c) is True]


def _prepare(w, b, p: Problem, **config):
    return (*upload_weights(w, b, p), cuda.to_device(offsets(p)))


@register("conv", applies=_applies, configs=_configs, tolerance=TOLERANCE, priority=20,
          prepare=_prepare, timer=event_timer)
def conv_igemm_cuda(x, w, b, p: Problem, prepared=None, bm: int = 64, bn: int = 64, bk: int = 8,
                    tm: int = 4, tn: int = 4):
    """channels_last conv of rank 1-3, groups 1, any stride/dilation/padding; host in -> host out."""
    ok = limits(bm, bn, bk, tm, tn)
    if ok is not True:
        raise ValueError(f"conv_igemm_cuda: launch declined: {ok}")
    xd, host = to_device(x, p.input_shape, "x")
    wd, bd, od = _prepare(w, b, p) if prepared is None else prepared
    out = output(p)
    g = geometry(p)
    m = p.batch * math.prod(p.out_spatial)
    k = math.prod(p.kernel) * p.in_channels
    grid = (math.ceil(m / bm), math.ceil(p.out_channels / bn))
    make_kernel(bm, bn, bk, tm, tn)[grid, (bn // tn, bm // tm)](
        xd, wd, bd, od, out, m, k, p.in_channels, p.out_channels, *g[:6], *g[9:12], *g[15:18])
    return finish(out, p, host)
