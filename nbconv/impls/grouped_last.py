"""Grouped convolution (groups > 1) on channels_last arrays through `nchw_tiled`'s kernel.

The channels_last register tiles vectorise over a block of output channels that all read the
same input channels, so they take groups == 1 only, and the grouped fallbacks (im2col per group,
direct loops) ran at 0.04-0.44x PyTorch on ResNeXt-like layers. `nchw_tiled` serves groups: this
copies the input to channels_first and the output back (the layout module's blocked transposes,
two passes at copy speed) around it. Weights are laid out once in `prepare`, as `nchw_tiled`'s.
Tolerance 1e-4 (direct sums in input-channel order).
"""
from __future__ import annotations

import math

import numpy as np

from nbconv.tuner.registry import register

from ..spec import Problem
from .arrays5d import check_array
from .layout import _swap
from .nchw_tiled import _applies as _applies_first
from .nchw_tiled import _configs as _configs_first
from .nchw_tiled import _prepare as _prepare_first
from .nchw_tiled import nchw_tiled


def _first(p: Problem) -> Problem:
    return p.with_(layout="channels_first")


def _applies(p: Problem):
    if p.op != "conv" or not p.channels_last:
        return "grouped_last: channels_last conv only"
    if p.groups == 1 or p.groups == p.in_channels:
        return ("grouped_last: 1 < groups < in_channels only (groups == 1 and depthwise have "
                "channels_last register tiles of their own)")
    ok = _applies_first(_first(p))
    return ok if ok is True else ok.replace("nchw_tiled", "grouped_last")


def _prepare(w, b, p: Problem, wb=12, fb=32):
    return _prepare_first(w, b, _first(p), wb, fb)


@register("conv", applies=_applies, configs=lambda p: _configs_first(_first(p)), tolerance=1e-4,
          priority=15, prepare=_prepare)
def grouped_last(x, w, b, p: Problem, wb=12, fb=32, prepared=None):
    x = check_array("x", x, p.input_shape, p)
    pf = _first(p)
    s, so = math.prod(p.spatial), math.prod(p.out_spatial)
    xf = np.empty((p.batch, p.in_channels, s), p.dtype)
    _swap(x.reshape(p.batch, s, p.in_channels), xf)
    yf = nchw_tiled(xf.reshape(pf.input_shape), w, b, pf, wb=wb, fb=fb, prepared=prepared)
    y = np.empty(p.output_shape, p.dtype)
    _swap(yf.reshape(p.batch, p.out_channels, so), y.reshape(p.batch, so, p.out_channels))
    return y
