"""Conv3D through the 2-D Winograd kernels, lowered over kernel depth only.

For each output depth the kd input slices it reads are stacked along channels, x (N, D, H, W, C) ->
(N*OD, H, W, kd*C) (channels_first (N, C, D, H, W) -> (N*OD, kd*C, H, W)), so the layer is one 2-D
conv with kd*C input channels and the kernel (kd, kh, kw, C, F) -> (kh, kw, kd*C, F). The copy is
kd / sd times the input (a full im2col is kd*kh*kw / (sd*sh*sw) times); with kernel depth 1 and
stride 1 in channels_last it is a view (depth folds into the batch). channels_first's output comes
back as (N, OD, F, OH, OW) and is transposed once. Conv1D needs no wrapper: the tiled kernels serve
rank 1 directly.

Only the Winograd kernels (2-D only) are wrapped: the register-tiled, im2col and blocked kernels
serve 3-D directly, and this wrapper around tiled_direct measured slower than tiled_direct itself
(the lowering copy and channels_first's transpose cost more than they saved; `nbconv bench
--families --only Conv3D`). Each Winograd kernel that applies to the 2-D Problem (3x3 in height and
width, stride and dilation 1 there; at least 8 channels in and out) is a config,
`{"inner": name, **its first config}` (one per kernel keeps tuning and the tests short), so the
tuner picks the kernel; `prepare` reorders the
weights and runs the inner kernel's `prepare` once. `mixes_tiles` is declared (the NaN/Inf
fallback applies). Tolerance 1e-3, Winograd F(4x4)'s; measured max rel error 2.6e-6 in the tests.
"""
from __future__ import annotations

import functools

import numpy as np

from nbconv.tuner.registry import register, registry

from ..spec import Problem
from .arrays5d import applies_common, check_array

# Below this, measured: a 3-channel video first layer ran 2-10x slower through Winograd than tiled.
_MIN_CHANNELS = 8


@functools.lru_cache(maxsize=512)
def _view2d(p: Problem) -> Problem:
    """The 2-D Problem a rank-3 conv runs as."""
    return p.with_(rank=2, batch=p.batch * p.out_spatial[0], in_channels=p.kernel[0] * p.in_channels,
                   spatial=p.spatial[1:], kernel=p.kernel[1:], strides=p.strides[1:],
                   dilation=p.dilation[1:], pads=p.pads[1:])


def _inners(p: Problem, mixing: bool):
    """The 2-D impls of priority >= 20 that run p's 2-D Problem."""
    q = _view2d(p)
    out = []
    for impl in registry.impls("conv"):
        if impl.mixes_tiles != mixing or impl.name.startswith("conv3d_via") or impl.priority < 20:
            continue
        if not impl.check(q)[0]:
            continue
        out.append(impl)
    return out


def _configs(mixing):
    def configs(p: Problem):
        return [{"inner": impl.name, **impl.configs_for(_view2d(p))[0]} for impl in _inners(p, mixing)]
    return configs


def _applies(mixing, name):
    def applies(p: Problem):
        if p.op != "conv" or p.rank != 3:
            return f"{name}: conv of rank 3 only"
        ok = applies_common(p)
        if ok is not True:
            return f"{name}: {ok}"
        if p.in_channels < _MIN_CHANNELS or p.out_channels < _MIN_CHANNELS:
            return (f"{name}: at least {_MIN_CHANNELS} input and output channels (the transforms pay off "
                    f"with many channels); got {p.in_channels}-{p.out_channels}")
        if p.groups != 1:
            return f"{name}: groups == 1 only (the depth slices are stacked along channels)"
        if not _inners(p, mixing):
            return f"{name}: no 2-D kernel applies to the 2-D view {_view2d(p).key()}"
        return True
    return applies


def _weights2d(w, p: Problem):
    kd, kh, kw, c, f = w.shape
    return np.ascontiguousarray(w.transpose(1, 2, 0, 3, 4)).reshape(kh, kw, kd * c, f)


def _prepare(w, b, p: Problem, inner=None, **cfg):
    """(2-D kernel, its prepared data or None): made once per weights."""
    w = check_array("w", w, p.weight_shape, p)
    w2 = _weights2d(w, p)
    impl = registry.get("conv", inner)
    q = _view2d(p)
    return w2, (impl.prepare(w2, b, q, **cfg) if impl.prepare is not None else None)


def _lower_depth(x, p: Problem):
    """x (N, D, H, W, C) -> (N*OD, H, W, kd*C); channels_first (N, C, D, H, W) -> (N*OD, kd*C, H, W)."""
    n = p.batch
    kd, sd, dd, (lo, _) = p.kernel[0], p.strides[0], p.dilation[0], p.pads[0]
    d, od = p.spatial[0], p.out_spatial[0]
    if p.channels_last and kd == 1 and sd == 1 and lo == 0 and od == d:
        return x.reshape(n * d, *x.shape[2:])
    if p.channels_last:
        y = np.empty((n, od, *p.spatial[1:], kd, p.in_channels), x.dtype)
    else:
        y = np.empty((n, od, kd, p.in_channels, *p.spatial[1:]), x.dtype)
    for a in range(kd):
        first = a * dd - lo                         # input depth of output depth 0
        o0 = min(od, max(0, (-first + sd - 1) // sd))            # first output reading depth >= 0
        o1 = max(o0, min(od, (d - 1 - first) // sd + 1)) if d - 1 - first >= 0 else o0
        src = slice(o0 * sd + first, (o1 - 1) * sd + first + 1, sd) if o1 > o0 else slice(0, 0)
        if p.channels_last:
            y[:, :o0, ..., a, :] = 0
            y[:, o1:, ..., a, :] = 0
            y[:, o0:o1, ..., a, :] = x[:, src]
        else:
            y[:, :o0, a] = 0
            y[:, o1:, a] = 0
            y[:, o0:o1, a] = x[:, :, src].transpose(0, 2, 1, 3, 4)
    return y.reshape(n * od, *y.shape[2:4], -1) if p.channels_last else y.reshape(n * od, -1, *y.shape[4:])


def _run(x, w, b, p: Problem, prepared, inner, cfg, mixing=False):
    if inner is None:                             # called without a config: the first one
        cfg = _configs(mixing)(p)[0]
        inner = cfg.pop("inner")
    x = check_array("x", x, p.input_shape, p)
    b = check_array("b", b, p.bias_shape, p)
    if prepared is None:
        prepared = _prepare(w, b, p, inner=inner, **cfg)
    else:
        check_array("w", w, p.weight_shape, p)
    w2, inner_prepared = prepared
    impl = registry.get("conv", inner)
    q = _view2d(p)
    x2 = _lower_depth(x, p)
    kw = dict(cfg) if impl.prepare is None else {**cfg, "prepared": inner_prepared}
    y2 = impl.fn(x2, w2, b, q, **kw)
    if p.channels_last:
        return y2.reshape(p.output_shape)
    n, od = p.batch, p.out_spatial[0]
    return np.ascontiguousarray(y2.reshape(n, od, *y2.shape[1:]).transpose(0, 2, 1, 3, 4))


@register("conv", applies=_applies(True, "conv3d_via_winograd"), configs=_configs(True), tolerance=1e-3,
          priority=30, mixes_tiles=True, prepare=_prepare)
def conv3d_via_winograd(x, w, b, p: Problem, prepared=None, inner=None, **cfg):
    return _run(x, w, b, p, prepared, inner, cfg, mixing=True)
