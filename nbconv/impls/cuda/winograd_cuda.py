"""Winograd F(2x2, 3x3) on CUDA, non-fused: three kernels and two scratch arrays.

channels_last 2-D conv, 3x3, stride 1, dilation 1, groups 1. The output is cut into 2x2 tiles
(P = N x ceil(OH/2) x ceil(OW/2)); (1) one thread per (tile, channel) turns its 4x4 input patch
into V = B^T d B, stored (16, P, C); the weights' U = G g G^T, (16, C, F), is made once by
`prepare` (float64 on the host, then float32); (2) a batched GEMM, one thread per (e, tile,
filter), M[e] = V[e] U[e]; (3) one thread per (tile, filter) turns M into its 2x2 outputs,
A^T m A, plus the bias. Mixing a tile's inputs spreads a NaN/Inf over the tile (`mixes_tiles`:
nbconv.ops recomputes such a result with the direct kernel). float32; tolerance 2e-4, as the
CPU F(2x2, 3x3). Tunable: threads per block.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from nbconv.tuner.registry import register

from ...spec import Problem
from .runtime_cuda import applies_cuda, event_timer, finish, launch_check, output, to_device

CONFIGS = [{"threads": 128}, {"threads": 256}]
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])


@cuda.jit(fastmath=False)
def input_transform(x, v, P, c_, H, W, TH, TW, PH, PW):
    t = cuda.grid(1)
    if t >= P * c_:
        return
    c = t % c_
    p = t // c_
    tw = p % TW
    r = p // TW
    th = r % TH
    n = r // TH
    d = cuda.local.array((4, 4), float32)
    for i in range(4):
        iy = th * 2 - PH + i
        for j in range(4):
            ix = tw * 2 - PW + j
            d[i, j] = x[((n * H + iy) * W + ix) * c_ + c] if 0 <= iy < H and 0 <= ix < W else float32(0)
    bd = cuda.local.array((4, 4), float32)
    for j in range(4):              # B^T d
        bd[0, j] = d[0, j] - d[2, j]
        bd[1, j] = d[1, j] + d[2, j]
        bd[2, j] = d[2, j] - d[1, j]
        bd[3, j] = d[1, j] - d[3, j]
    for i in range(4):              # (B^T d) B
        base = (i * 4) * P * c_ + p * c_ + c
        v[base] = bd[i, 0] - bd[i, 2]
        v[base + P * c_] = bd[i, 1] + bd[i, 2]
        v[base + 2 * P * c_] = bd[i, 2] - bd[i, 1]
        v[base + 3 * P * c_] = bd[i, 1] - bd[i, 3]


@cuda.jit(fastmath=False)
def batched_gemm(v, u, m, P, c_, f_):
    """m[e, p, f] = sum_c v[e, p, c] u[e, c, f]."""
    t = cuda.grid(1)
    if t >= 16 * P * f_:
        return
    f = t % f_
    r = t // f_
    p = r % P
    e = r // P
    acc = float32(0)
    vb = (e * P + p) * c_
    ub = e * c_ * f_ + f
    for c in range(c_):
        acc += v[vb + c] * u[ub + c * f_]
    m[t] = acc


@cuda.jit(fastmath=False)
def output_transform(m, b, out, P, f_, OH, OW, TH, TW):
    t = cuda.grid(1)
    if t >= P * f_:
        return
    f = t % f_
    p = t // f_
    tw = p % TW
    r = p // TW
    th = r % TH
    n = r // TH
    am = cuda.local.array((2, 4), float32)
    for j in range(4):              # A^T m
        m0 = m[((0 * 4 + j) * P + p) * f_ + f]
        m1 = m[((1 * 4 + j) * P + p) * f_ + f]
        m2 = m[((2 * 4 + j) * P + p) * f_ + f]
        m3 = m[((3 * 4 + j) * P + p) * f_ + f]
        am[0, j] = m0 + m1 + m2
        am[1, j] = m1 - m2 - m3
    for i in range(2):              # (A^T m) A
        oy = th * 2 + i
        if oy < OH:
            y0 = am[i, 0] + am[i, 1] + am[i, 2] + b[f]
            y1 = am[i, 1] - am[i, 2] - am[i, 3] + b[f]
            ox = tw * 2
            out[((n * OH + oy) * OW + ox) * f_ + f] = y0
            if ox + 1 < OW:
                out[((n * OH + oy) * OW + ox + 1) * f_ + f] = y1


def _applies(p: Problem):
    ok = applies_cuda(p)
    if ok is not True:
        return ok
    if (p.op != "conv" or p.rank != 2 or not p.channels_last or p.kernel != (3, 3) or p.groups != 1
            or p.strides != (1, 1) or p.dilation != (1, 1)):
        return "Winograd F(2x2,3x3) serves channels_last 2-D 3x3 conv, stride 1, dilation 1, groups 1"
    return True


def _configs(p: Problem) -> list[dict]:
    return [c for c in CONFIGS if launch_check(c["threads"]) is True]


def transform_weights(w, b, p: Problem, **config):
    """`prepare`: U = G g G^T as (16, C, F) float32 and the bias, on the device."""
    g = np.asarray(w, np.float64).reshape(3, 3, p.in_channels, p.out_channels)
    u = np.einsum("ai,ijcf,bj->abcf", G, g, G).reshape(16, p.in_channels, p.out_channels)
    return (cuda.to_device(np.ascontiguousarray(u, np.float32).reshape(-1)),
            to_device(b, p.bias_shape, "b")[0])


def _launch(kernel, threads, total, *args):
    kernel[max(1, math.ceil(total / threads)), threads](*args)


@register("conv", applies=_applies, configs=_configs, tolerance=2e-4, priority=15, mixes_tiles=True,
          prepare=transform_weights, timer=event_timer)
def conv_winograd_cuda(x, w, b, p: Problem, prepared=None, threads: int = 128):
    """channels_last 3x3 stride-1 conv; host in -> host out."""
    ok = launch_check(threads)
    if ok is not True:
        raise ValueError(f"conv_winograd_cuda: launch declined: {ok}")
    xd, host = to_device(x, p.input_shape, "x")
    ud, bd = transform_weights(w, b, p) if prepared is None else prepared
    (h, w_), (oh, ow) = p.spatial, p.out_spatial
    th, tw = math.ceil(oh / 2), math.ceil(ow / 2)
    tiles, c, f = p.batch * th * tw, p.in_channels, p.out_channels
    v = cuda.device_array(16 * tiles * c, np.float32)
    m = cuda.device_array(16 * tiles * f, np.float32)
    out = output(p)
    _launch(input_transform, threads, tiles * c, xd, v, tiles, c, h, w_, th, tw, p.pads[0][0], p.pads[1][0])
    _launch(batched_gemm, threads, 16 * tiles * f, v, ud, m, tiles, c, f)
    _launch(output_transform, threads, tiles * f, m, bd, out, tiles, f, oh, ow, th, tw)
    return finish(out, p, host)
