"""A Functional model's execution plan: the inference rewrites a runtime is expected to do, made once
per weights and kept apart from the layers (whose weights, summary and config stay Keras's).

- BatchNormalization folded into the convolution (Conv1D/2D/3D, DepthwiseConv, SeparableConv's
  pointwise step, Dense) before it, when that convolution has no activation of its own and its output
  feeds only the BatchNormalization, along the convolution's channel axis: kernel * s, (bias - mean) * s
  + beta with s = gamma / sqrt(var + eps), folded in float64 and rounded once to the layer dtype.
- Activations (ReLU, relu6, swish, sigmoid, hard_sigmoid...) applied in place on a freshly made array
  that nothing else reads: a layer's own activation, or an Activation/ReLU layer that is the only
  reader of a convolution's, BatchNormalization's or merge's output.
- Kernel taps that read only padding on the input shape met (a 3x3 'same' conv on a 1x1 map reads
  data through its centre tap alone) are cut: the conv of the live taps, with the padding adjusted.
- Intermediate arrays are released after their last reader.

Functional models and Sequential ones (`chain_plan`) run through it. `Plan.valid()` says whether the
plan still matches the weights: folded weights are derived from the arrays a layer holds, and
`set_weights` replaces those arrays.
"""
from __future__ import annotations

import math

import numpy as np

from . import ops
from .layers import activations as A
from .layers.base import Layer
from .layers.conv import BaseConv
from .layers.conv_base import ConvLayer
from .layers.core import Activation, Dense, InputLayer
from .layers.depthwise import BaseDepthwiseConv, BaseSeparableConv
from .layers.merging import _Merge
from .layers.normalization import BatchNormalization, ReLU
from .layers.symbolic import KerasTensor, Node, map_structure
from .spec import Problem


def _relu6_(y):
    np.clip(y, 0, 6, out=y)


def _silu_(y):
    y *= A.sigmoid(y)


def _sigmoid_(y):
    y[...] = A.sigmoid(y)


def _hard_sigmoid_(y):
    y += 3
    np.clip(y, 0, 6, out=y)
    y /= 6


def _hard_silu_(y):
    y *= A.hard_sigmoid(y)


INPLACE = {A.linear: lambda y: None, A.relu: lambda y: np.maximum(y, 0, out=y), A.relu6: _relu6_,
           A.silu: _silu_, A.sigmoid: _sigmoid_, A.hard_sigmoid: _hard_sigmoid_, A.hard_silu: _hard_silu_}
_FOLDABLE = (BaseConv, BaseDepthwiseConv, BaseSeparableConv, Dense)
_FRESH = (ConvLayer, Dense, BatchNormalization, _Merge)   # outputs a new array on every call


def inplace_activation(layer):
    """The in-place form of an Activation or ReLU layer's function, or None."""
    if isinstance(layer, Activation):
        return INPLACE.get(layer.activation)
    if isinstance(layer, ReLU) and layer.negative_slope == 0 and layer.threshold == 0:
        mx = layer.max_value
        return INPLACE[A.relu] if mx is None else (lambda y: np.clip(y, 0, mx, out=y))
    return None


def _channel_axis(layer, ndim):
    if isinstance(layer, Dense):
        return ndim - 1
    return ndim - 1 if layer.data_format == "channels_last" else 1


def fold(conv, bn):
    """(kernel, bias) of conv followed by inference BatchNormalization bn, in the conv's dtype."""
    w = dict(bn._weights)
    scale = 1 / np.sqrt(w["moving_variance"].astype(np.float64) + bn.epsilon)
    if bn.scale:
        scale = scale * w["gamma"]
    kernel = conv._kernel if not isinstance(conv, Dense) else conv._weight("kernel")
    bias = conv._bias.astype(np.float64) if conv._weight("bias") is not None else 0.0
    bias = (bias - w["moving_mean"]) * scale + (w["beta"] if bn.center else 0.0)
    dtype = conv._np_dtype
    return ((kernel * scale).astype(dtype), np.ascontiguousarray(np.broadcast_to(bias, scale.shape), dtype))


def _entered(layer, x):
    """The layer's own input handling (cast, checks once per shape) without its call."""
    x = layer._prepare(x)
    if x.shape not in layer._seen_shapes:
        layer._first_seen(x.shape)
    return x


def _fresh(y, inputs):
    """Whether y may be written: a writeable array sharing no memory with the step's inputs."""
    return (isinstance(y, np.ndarray) and y.flags.writeable
            and not any(np.may_share_memory(y, x) for x in inputs))


def _activate(act, y, inputs):
    if not _fresh(y, inputs):
        y = np.array(y)                 # a view of an input (e.g. a one-input merge): activate a copy
    act(y)
    return y


def _dense_problem(layer, shape):
    p = layer._problems.get(shape)
    if p is None:  # as Dense.call makes it
        p = layer._problems[shape] = Problem(op="dense", rank=0, batch=shape[0], in_channels=shape[1],
                                             out_channels=layer.units, dtype=layer.dtype)
    return p


def _live_taps(n, k, s, d, lo, out):
    """(first, last) kernel taps that read input (not only padding) along one axis."""
    live = [r for r in range(k) if any(0 <= o * s + r * d - lo < n for o in range(out))]
    return (live[0], live[-1]) if live else (0, k - 1)


def trim(layer, p, kernel):
    """A conv whose outer kernel taps read only padding on this input (a 3x3 'same' conv on a 1x1
    map) as the conv of its live taps: (Problem, kernel), or None. Exact: the cut taps multiply zeros."""
    if not isinstance(layer, (BaseConv, BaseDepthwiseConv)):
        return None
    taps, pads = [], []
    for n, k, s, d, (lo, _), out in zip(p.spatial, p.kernel, p.strides, p.dilation, p.pads, p.out_spatial,
                                       strict=True):
        a, b = _live_taps(n, k, s, d, lo, out)
        lo2 = lo - a * d
        hi2 = max(0, (out - 1) * s + (b - a) * d + 1 - n - lo2)
        if lo2 < 0 or (n + lo2 + hi2 - (b - a) * d - 1) // s + 1 != out:
            return None
        taps.append((a, b))
        pads.append((lo2, hi2))
    if all(b - a + 1 == k for (a, b), k in zip(taps, p.kernel, strict=True)):
        return None
    small = np.ascontiguousarray(kernel[tuple(slice(a, b + 1) for a, b in taps)])
    q = layer._conv_problem(p.input_shape, kernel=tuple(b - a + 1 for a, b in taps), padding=tuple(pads),
                            out_channels=p.out_channels, groups=p.groups)
    return q, small


def conv_step(layer, kernel, bias, act, trimmed=None):
    """One call of a conv/dense layer with the given (folded) kernel and bias, `act` applied in place."""
    shapes: dict = {}            # input shape -> (Problem, kernel): dead taps trimmed where there are any

    def conv(x):
        hit = shapes.get(x.shape)
        if hit is None:
            p = layer._problem(x.shape)
            hit = shapes[x.shape] = trim(layer, p, kernel) or (p, kernel)
            if hit[0] is not p and trimmed is not None:
                trimmed.append((layer.name, x.shape, p.kernel, hit[0].kernel))
        return ops.conv(x, hit[1], bias, hit[0])

    def run(x):
        x = _entered(layer, x)
        if x.shape[0] == 0:             # nothing to compute, and nothing to compile
            return np.zeros((0, *layer.compute_output_shape(x.shape)[1:]), layer._np_dtype)
        if isinstance(layer, Dense):
            lead = x.shape[:-1]
            x2 = x.reshape(math.prod(lead), x.shape[-1])
            y = ops.dense(x2, kernel, bias, _dense_problem(layer, x2.shape)).reshape(*lead, layer.units)
        elif isinstance(layer, BaseSeparableConv):
            y = layer._separable(x, kernel, bias)
        else:
            y = conv(x)
        return _activate(act, y, (x,))
    return run


def activated_step(layer, act):
    """A layer whose output is usually fresh, then `act` in place."""
    def run(args):
        y = layer(args)
        return _activate(act, y, args if isinstance(args, list) else (args,))
    return run


def _kernel_arrays(layer):
    return (layer._weight("kernel") if isinstance(layer, Dense) else layer._kernel), layer._bias


class _Chain:
    """A Sequential seen as a graph (nodes, inputs, outputs) for the plan; the layers are not touched."""

    def __init__(self, layers, input_shape, shapes):
        t = self.first = KerasTensor(input_shape, None, None)
        self._nodes = []
        for layer, shape in zip(layers, shapes, strict=True):
            out = KerasTensor(shape, layer.dtype, layer)
            self._nodes.append(Node(layer, t, {}, out))
            t = out
        self.inputs, self.outputs = [self.first], [t]


def chain_plan(layers, input_shape, shapes):
    chain = _Chain(layers, input_shape, shapes)
    plan = Plan(chain)
    plan.input_id = id(chain.first)
    return plan


class Plan:
    def __init__(self, model):
        nodes = [n for n in model._nodes if not isinstance(n.layer, InputLayer)]
        readers: dict[int, list] = {}
        for n in nodes:
            for t in n.input_tensors:
                readers.setdefault(id(t), []).append(n)
        pinned = {id(t) for t in model.outputs} | {id(t) for t in model.inputs}

        def only_reader(tensor):
            r = readers.get(id(tensor), [])
            return r[0] if len(r) == 1 and id(tensor) not in pinned else None

        self._watch: list[tuple[Layer, list]] = []
        self.folded: list[tuple[str, str]] = []      # (conv, bn) names: what the plan rewrote
        self.fused: list[tuple[str, str]] = []       # (producer, activation) names
        self.trimmed: list = []                      # (conv name, input shape, kernel, live kernel)
        skip, steps = set(), []
        for n in nodes:
            if id(n) in skip:
                continue
            layer, out, fn = n.layer, n.output, n.layer
            reader = only_reader(out)
            if (isinstance(layer, _FOLDABLE) and isinstance(n.args, KerasTensor)
                    and layer.activation in INPLACE):
                kernel, bias = _kernel_arrays(layer)
                act, linear = INPLACE[layer.activation], layer.activation is A.linear
                self._watch.append((layer, layer._weights))
                if linear and reader is not None and self._foldable(layer, reader.layer, out):
                    kernel, bias = fold(layer, reader.layer)
                    self._watch.append((reader.layer, reader.layer._weights))
                    self.folded.append((layer.name, reader.layer.name))
                    skip.add(id(reader))
                    out = reader.output
                    reader = only_reader(out)
                if linear and reader is not None and inplace_activation(reader.layer):
                    act = inplace_activation(reader.layer)
                    self.fused.append((layer.name, reader.layer.name))
                    skip.add(id(reader))
                    out = reader.output
                fn = conv_step(layer, kernel, bias, act, self.trimmed)
            elif isinstance(layer, _FRESH) and reader is not None and inplace_activation(reader.layer):
                fn = activated_step(layer, inplace_activation(reader.layer))
                self.fused.append((layer.name, reader.layer.name))
                skip.add(id(reader))
                out = reader.output
            steps.append((fn, n.args, out))
        last = {}                                    # release each intermediate after its last reader
        for i, (_, args, _) in enumerate(steps):
            for t in _flatten(args):
                last[id(t)] = i
        self.steps = [(fn, id(args) if isinstance(args, KerasTensor) else None, args, id(out),
                       tuple(k for k, j in last.items() if j == i and k not in pinned))
                      for i, (fn, args, out) in enumerate(steps)]
        self._output_ids = [id(t) for t in model.outputs]

    @staticmethod
    def _foldable(conv, bn, tensor):
        return (isinstance(bn, BatchNormalization) and bn.built and bn.dtype == conv.dtype
                and bn._axis == _channel_axis(conv, len(tensor.shape)))

    def valid(self):
        return all(layer._weights is w for layer, w in self._watch)

    def run(self, values):
        """values: {id(input KerasTensor): array}; returns the arrays of the model's outputs."""
        for fn, single, args, out, drop in self.steps:
            if single is not None:
                values[out] = fn(values[single])
            else:
                values[out] = fn(map_structure(lambda t: values[id(t)], args))
            for k in drop:
                del values[k]
        return [values[k] for k in self._output_ids]


def _flatten(args):
    if isinstance(args, (list, tuple)):
        return [t for a in args for t in _flatten(a)]
    return [args] if isinstance(args, KerasTensor) else []
