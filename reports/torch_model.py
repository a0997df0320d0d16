"""The same graph and weights as an nbconv Functional model, run by PyTorch eager in NCHW: the
"PyTorch" column of `nbconv bench --model`. torch is imported here only, lazily.

Each node becomes torch.nn.functional calls on the layer's own weights (kernels transposed to
torch's layout once); a Keras channels_last 4-D tensor is held as NCHW (torch's fast CPU format),
moved back only where Keras's element order matters (Flatten, Reshape). Only what the nine
keras.applications networks use is translated: any other layer or argument gives (None, reason),
shown as "n/a", never an approximation.
"""
from __future__ import annotations

import math

import numpy as np

from nbconv import layers as L
from nbconv.layers import activations as A
from nbconv.layers.operations import NumpyOperation


class Unsupported(Exception):
    pass


def _activation(fn):
    import torch.nn.functional as F
    table = {A.linear: lambda x: x, A.relu: F.relu, A.relu6: F.relu6, A.silu: F.silu,
             A.sigmoid: lambda x: x.sigmoid(), A.hard_sigmoid: F.hardsigmoid, A.hard_silu: F.hardswish,
             A.tanh: lambda x: x.tanh(), A.softmax: lambda x: x.softmax(1)}
    if fn not in table:
        raise Unsupported(f"activation {getattr(fn, '__name__', fn)}")
    return table[fn]


def _same_pads(size, k, s, d):
    total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _pads(layer, shape):
    """(lo_h, hi_h, lo_w, hi_w) of a 2-D conv/pool on a channels_last shape."""
    if layer.padding == "valid":
        return 0, 0, 0, 0
    d = getattr(layer, "dilation_rate", (1, 1))
    k = getattr(layer, "kernel_size", None) or layer.pool_size
    (a, b), (c, e) = (_same_pads(shape[i + 1], k[i], layer.strides[i], d[i]) for i in range(2))
    return a, b, c, e


def _t(a):
    import torch
    return torch.from_numpy(np.ascontiguousarray(a))


def _conv(layer, shape):
    import torch.nn.functional as F
    if layer.rank != 2:
        raise Unsupported(f"{type(layer).__name__} of rank {layer.rank}")
    a, b, c, e = _pads(layer, shape)
    kw = dict(stride=layer.strides, dilation=layer.dilation_rate)
    pad = None if (a, c) == (b, e) else (c, e, a, b)
    kw["padding"] = (a, c) if pad is None else 0
    act = _activation(layer.activation)
    bias = _t(layer._bias)
    if isinstance(layer, L.SeparableConv2D):
        dw = _t(layer._depthwise.transpose(3, 2, 0, 1))
        pw = _t(layer._kernel.transpose(3, 2, 0, 1))
        groups = layer._in_channels
        return lambda x: act(F.conv2d(F.conv2d(x if pad is None else F.pad(x, pad), dw, None,
                                               groups=groups, **kw), pw, bias))
    w = _t(layer._kernel.transpose(3, 2, 0, 1))
    groups = layer._in_channels if isinstance(layer, L.DepthwiseConv2D) else layer.groups
    return lambda x: act(F.conv2d(x if pad is None else F.pad(x, pad), w, bias, groups=groups, **kw))


def _pool(layer, shape):
    import torch.nn.functional as F
    a, b, c, e = _pads(layer, shape)
    k, s = layer.pool_size, layer.strides
    if layer._op == "maxpool":
        pad = (c, e, a, b)
        return lambda x: F.max_pool2d(F.pad(x, pad, value=-math.inf) if any(pad) else x, k, s)
    if (a, c) != (b, e) or 2 * max(a, c) > min(k):
        raise Unsupported("average pooling with asymmetric 'same' padding")
    return lambda x: F.avg_pool2d(x, k, s, padding=(a, c), count_include_pad=False)


def _nchw_const(arr, ndim):
    """A per-channel constant broadcast like a channels_last array, in NCHW."""
    t = _t(np.asarray(arr, np.float32))
    if ndim == 4 and t.ndim == 4:
        t = t.permute(0, 3, 1, 2)
    return t


def _node_fn(layer, shapes, out_shape):
    import torch
    import torch.nn.functional as F
    ndim = len(shapes[0]) if shapes[0] is not None else 0
    if getattr(layer, "data_format", "channels_last") != "channels_last" or (
            isinstance(layer, L.BatchNormalization) and layer._axis != ndim - 1):
        raise Unsupported(f"layer '{layer.name}': channels_first")
    if isinstance(layer, NumpyOperation):
        op = {"Add": torch.add, "Multiply": torch.mul}[type(layer).__name__]
        return lambda a, b: op(a, b)
    if isinstance(layer, (L.InputLayer, L.Dropout)):
        return lambda x: x
    if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D)):
        return _conv(layer, shapes[0])
    if isinstance(layer, L.BatchNormalization):
        w = {k: _t(v) for k, v in layer._weights}
        args = (w["moving_mean"], w["moving_variance"], w.get("gamma"), w.get("beta"), False, 0.0,
                layer.epsilon)
        return lambda x: F.batch_norm(x, *args)
    if isinstance(layer, L.Activation):
        return _activation(layer.activation)
    if isinstance(layer, L.ReLU):
        if layer.negative_slope or layer.threshold:
            raise Unsupported("ReLU with negative_slope or threshold")
        mx = layer.max_value
        return F.relu if mx is None else (lambda x: x.clamp(0, mx))
    if isinstance(layer, L.ZeroPadding2D):
        (a, b), (c, e) = layer._pairs
        return lambda x: F.pad(x, (c, e, a, b))
    if isinstance(layer, (L.MaxPooling2D, L.AveragePooling2D)):
        return _pool(layer, shapes[0])
    if isinstance(layer, (L.GlobalAveragePooling2D, L.GlobalMaxPooling2D)):
        keep = layer.keepdims
        if isinstance(layer, L.GlobalAveragePooling2D):
            return lambda x: x.mean((2, 3), keepdim=keep)
        return lambda x: x.amax((2, 3), keepdim=keep)
    if isinstance(layer, L.Dense) and ndim == 2:
        w, bias, act = _t(layer._weight("kernel").T), _t(layer._bias), _activation(layer.activation)
        return lambda x: act(F.linear(x, w, bias))
    if isinstance(layer, L.Flatten):
        return (lambda x: x.permute(0, 2, 3, 1).flatten(1)) if ndim == 4 else (lambda x: x.flatten(1))
    if isinstance(layer, L.Reshape):
        target = tuple(out_shape[1:])

        def reshape(x):
            y = (x.permute(0, 2, 3, 1) if x.ndim == 4 else x).reshape(x.shape[0], *target)
            return y.permute(0, 3, 1, 2) if y.ndim == 4 else y
        return reshape
    if isinstance(layer, (L.Add, L.Multiply)):
        op = torch.add if isinstance(layer, L.Add) else torch.mul

        def merge(*xs):
            out = xs[0]
            for x in xs[1:]:
                out = op(out, x)
            return out
        return merge
    if isinstance(layer, L.Concatenate) and layer.axis in (-1, ndim - 1):
        return lambda *xs: torch.cat(xs, 1)
    if isinstance(layer, L.Rescaling):
        scale, offset = _nchw_const(layer._scale, ndim), _nchw_const(layer._offset, ndim)
        return lambda x: x * scale + offset
    if isinstance(layer, L.Normalization) and not layer.invert:
        mean, scale = _nchw_const(layer._mean, ndim), _nchw_const(layer._scale, ndim)
        return lambda x: (x - mean) / scale
    raise Unsupported(f"layer '{layer.name}' ({type(layer).__name__})")


def convert(model):
    """(run(x_nchw) -> output, None), or (None, reason) where a layer has no translation here."""
    from nbconv.layers.symbolic import KerasTensor
    if not hasattr(model, "_nodes") or len(model.inputs) != 1 or len(model.outputs) != 1:
        return None, "one-input, one-output Functional models only"
    steps = []
    try:
        for node in model._nodes:
            if isinstance(node.layer, L.InputLayer):
                continue
            args = node.args if isinstance(node.args, (list, tuple)) else [node.args]
            shapes = [a.shape if isinstance(a, KerasTensor) else None for a in args]
            steps.append((_node_fn(node.layer, shapes, node.output.shape),
                          [id(a) if isinstance(a, KerasTensor) else a for a in args],
                          [isinstance(a, KerasTensor) for a in args], id(node.output)))
    except Unsupported as e:
        return None, str(e)
    first, last = id(model.inputs[0]), id(model.outputs[0])

    def run(x):
        values = {first: x}
        for fn, refs, is_tensor, out in steps:
            values[out] = fn(*(values[r] if t else r for r, t in zip(refs, is_tensor, strict=True)))
        return values[last]
    return run, None


def call(run, x):
    """The zero-argument call to time: x (NHWC numpy) moved to NCHW once, outside the timing."""
    import torch
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    def timed():
        with torch.inference_mode():
            return run(xt)
    return timed


def output(run, x):
    """The model's output for NHWC x, as Keras lays it out (for the parity check)."""
    y = call(run, x)().numpy()
    return y.transpose(0, 2, 3, 1) if y.ndim == 4 else y
