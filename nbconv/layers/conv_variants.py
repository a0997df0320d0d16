"""DepthwiseConv1D/2D, SeparableConv1D/2D and Conv1D/2D/3DTranspose (Keras 3, spec §3.4, §4.2-4.4).

All run through `ops.conv`: depthwise is a grouped conv (groups == C_in, output channel c*M + m),
separable is depthwise then a 1x1 conv, and transposed conv is zero-insertion + explicit pads +
the spatially flipped kernel (spec §3.4, lhs-dilation form).
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..spec import effective_kernel, make_problem
from . import activations, initializers
from .args import check_bool, positive_int, standardize_data_format, standardize_padding, standardize_tuple
from .base import Layer, keep_object, serialize_object
from .conv import conv_output_length


class _ConvLike(Layer):
    """Shared argument handling for the three families."""

    def _common(self, rank, kernel_size, strides, padding, data_format, dilation_rate, activation,
                use_bias, bias_initializer, bias_regularizer, bias_constraint):
        self.rank = rank
        self.kernel_size = standardize_tuple(kernel_size, rank, "kernel_size")
        self.strides = standardize_tuple(strides, rank, "strides")
        self.dilation_rate = standardize_tuple(dilation_rate, rank, "dilation_rate")
        self.padding = standardize_padding(padding)
        self.data_format = standardize_data_format(data_format)
        self.activation = activations.get(activation)
        self.use_bias = check_bool(use_bias, "use_bias")
        self.bias_initializer = initializers.get(bias_initializer or "zeros")
        self.bias_regularizer = keep_object(bias_regularizer, "regularizer")
        self.bias_constraint = keep_object(bias_constraint, "constraint")
        self._min_ndim = rank + 2
        self._channel_axis = -1 if self.data_format == "channels_last" else 1

    def _split(self, shape):
        if self.data_format == "channels_last":
            return tuple(shape[1:-1]), shape[-1]
        return tuple(shape[2:]), shape[1]

    def _join(self, batch, spatial, channels):
        if self.data_format == "channels_last":
            return (batch, *spatial, channels)
        return (batch, channels, *spatial)

    def _check_rank(self, input_shape):
        self._check_shape(input_shape)
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: "
                             f"expected ndim={self.rank + 2}, found ndim={len(input_shape)}. "
                             f"Full shape received: {input_shape}")

    def _conv_output(self, input_shape, kernel_shape):
        spatial, _ = self._split(input_shape)
        out = tuple(conv_output_length(n, k, s, d, self.padding) for n, k, s, d in zip(
            spatial, self.kernel_size, self.strides, self.dilation_rate))
        if any(o is not None and o <= 0 for o in out):
            raise ValueError(
                f"Computed output size would be zero or negative. Received `inputs shape={input_shape}`, "
                f"`kernel shape={kernel_shape}`, `dilation_rate={list(self.dilation_rate)}`, "
                f"`strides={self.strides}`, `padding={self.padding}`.")
        return out

    def _channels(self, input_shape):
        _, channels = self._split(input_shape)
        if channels is None:
            raise ValueError(f"The channel dimension of the inputs to {type(self).__name__} should be "
                             f"defined. Received input shape {input_shape}")
        self._spec_axes = {self._channel_axis: channels}
        return channels

    def _base_config(self):
        config = Layer.get_config(self)
        config.update({
            "kernel_size": self.kernel_size, "strides": self.strides, "padding": self.padding,
            "data_format": self.data_format, "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "bias_regularizer": serialize_object(self.bias_regularizer),
            "activity_regularizer": serialize_object(self.activity_regularizer),
            "bias_constraint": serialize_object(self.bias_constraint),
        })
        return config


def _multiplier(value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("Invalid value for argument `depth_multiplier`. Expected a strictly positive value. "
                         f"Received depth_multiplier={value}.")
    return value


# -- depthwise ---------------------------------------------------------------------------------------
class BaseDepthwiseConv(_ConvLike):
    def __init__(self, rank, kernel_size, strides=1, padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self._common(rank, kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                     bias_initializer, bias_regularizer, bias_constraint)
        self.depth_multiplier = _multiplier(depth_multiplier)
        self.depthwise_initializer = initializers.get(depthwise_initializer or "glorot_uniform")
        self.depthwise_regularizer = keep_object(depthwise_regularizer, "regularizer")
        self.depthwise_constraint = keep_object(depthwise_constraint, "constraint")

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_rank(input_shape)
        _, c = self._split(input_shape)
        out = self._conv_output(input_shape, (*self.kernel_size, c, self.depth_multiplier))
        return self._join(input_shape[0], out, None if c is None else c * self.depth_multiplier)

    def _build(self, input_shape):
        c = self._channels(input_shape)
        self._weights = []
        self._add_weight("kernel", (*self.kernel_size, c, self.depth_multiplier), self.depthwise_initializer)
        if self.use_bias:
            self._add_weight("bias", (c * self.depth_multiplier,), self.bias_initializer)
        self._weights_changed()

    def _weights_changed(self):
        kernel = self._weight("kernel")
        c, m = kernel.shape[-2:]
        # grouped conv with groups == C: output channel c*M + m
        self._kernel = np.ascontiguousarray(kernel.reshape(*self.kernel_size, 1, c * m))
        self._bias = self._bias_or_zeros(c * m)
        self._problems.clear()

    def call(self, x):
        p = self._problems.get(x.shape)
        if p is None:
            _, c = self._split(x.shape)
            p = self._problems[x.shape] = make_problem(
                "conv", x.shape, rank=self.rank, kernel=self.kernel_size, strides=self.strides,
                dilation=self.dilation_rate, padding=self.padding, out_channels=c * self.depth_multiplier,
                groups=c, layout=self.data_format, dtype=self.dtype)
        return self.activation(ops.conv(x, self._kernel, self._bias, p))

    def get_config(self):
        config = self._base_config()
        config.update({
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
            "depthwise_regularizer": serialize_object(self.depthwise_regularizer),
            "depthwise_constraint": serialize_object(self.depthwise_constraint),
        })
        return config


class DepthwiseConv1D(BaseDepthwiseConv):
    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(1, kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate,
                         activation, use_bias, depthwise_initializer, bias_initializer, depthwise_regularizer,
                         bias_regularizer, activity_regularizer, depthwise_constraint, bias_constraint,
                         **kwargs)


class DepthwiseConv2D(BaseDepthwiseConv):
    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(2, kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate,
                         activation, use_bias, depthwise_initializer, bias_initializer, depthwise_regularizer,
                         bias_regularizer, activity_regularizer, depthwise_constraint, bias_constraint,
                         **kwargs)


# -- separable -----------------------------------------------------------------------------------------
class BaseSeparableConv(_ConvLike):
    def __init__(self, rank, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self._common(rank, kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                     bias_initializer, bias_regularizer, bias_constraint)
        self.depth_multiplier = _multiplier(depth_multiplier)
        self.filters = positive_int(filters, "filters")
        self.depthwise_initializer = initializers.get(depthwise_initializer or "glorot_uniform")
        self.pointwise_initializer = initializers.get(pointwise_initializer or "glorot_uniform")
        self.depthwise_regularizer = keep_object(depthwise_regularizer, "regularizer")
        self.pointwise_regularizer = keep_object(pointwise_regularizer, "regularizer")
        self.depthwise_constraint = keep_object(depthwise_constraint, "constraint")
        self.pointwise_constraint = keep_object(pointwise_constraint, "constraint")

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_rank(input_shape)
        _, c = self._split(input_shape)
        out = self._conv_output(input_shape, (*self.kernel_size, c, self.depth_multiplier))
        return self._join(input_shape[0], out, self.filters)

    def _build(self, input_shape):
        c = self._channels(input_shape)
        m = self.depth_multiplier
        self._weights = []
        self._add_weight("depthwise_kernel", (*self.kernel_size, c, m), self.depthwise_initializer)
        self._add_weight("pointwise_kernel", (*(1,) * self.rank, c * m, self.filters),
                         self.pointwise_initializer)
        if self.use_bias:
            self._add_weight("bias", (self.filters,), self.bias_initializer)
        self._weights_changed()

    def _weights_changed(self):
        dw = self._weight("depthwise_kernel")
        c, m = dw.shape[-2:]
        self._dw = np.ascontiguousarray(dw.reshape(*self.kernel_size, 1, c * m))
        self._dw_bias = np.zeros(c * m, self._np_dtype)  # the depthwise step has no bias
        self._pw = self._weight("pointwise_kernel")
        self._bias = self._bias_or_zeros(self.filters)
        self._problems.clear()

    def call(self, x):
        ps = self._problems.get(x.shape)
        if ps is None:
            _, c = self._split(x.shape)
            cm = c * self.depth_multiplier
            p1 = make_problem("conv", x.shape, rank=self.rank, kernel=self.kernel_size, strides=self.strides,
                              dilation=self.dilation_rate, padding=self.padding, out_channels=cm, groups=c,
                              layout=self.data_format, dtype=self.dtype)
            p2 = make_problem("conv", p1.output_shape, rank=self.rank, kernel=(1,) * self.rank,
                              out_channels=self.filters, layout=self.data_format, dtype=self.dtype)
            ps = self._problems[x.shape] = (p1, p2)
        mid = ops.conv(x, self._dw, self._dw_bias, ps[0])
        return self.activation(ops.conv(mid, self._pw, self._bias, ps[1]))

    def get_config(self):
        config = self._base_config()
        config.update({
            "depth_multiplier": self.depth_multiplier, "filters": self.filters,
            "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
            "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
            "depthwise_regularizer": serialize_object(self.depthwise_regularizer),
            "pointwise_regularizer": serialize_object(self.pointwise_regularizer),
            "depthwise_constraint": serialize_object(self.depthwise_constraint),
            "pointwise_constraint": serialize_object(self.pointwise_constraint),
        })
        return config


class SeparableConv1D(BaseSeparableConv):
    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 depth_multiplier=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(1, filters, kernel_size, strides, padding, data_format, dilation_rate,
                         depth_multiplier, activation, use_bias, depthwise_initializer, pointwise_initializer,
                         bias_initializer, depthwise_regularizer, pointwise_regularizer, bias_regularizer,
                         activity_regularizer, depthwise_constraint, pointwise_constraint, bias_constraint,
                         **kwargs)


class SeparableConv2D(BaseSeparableConv):
    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(2, filters, kernel_size, strides, padding, data_format, dilation_rate,
                         depth_multiplier, activation, use_bias, depthwise_initializer, pointwise_initializer,
                         bias_initializer, depthwise_regularizer, pointwise_regularizer, bias_regularizer,
                         activity_regularizer, depthwise_constraint, pointwise_constraint, bias_constraint,
                         **kwargs)


# -- transposed ------------------------------------------------------------------------------------------
def transpose_output_length(length, k, s, d, padding, output_padding):
    if length is None:
        return None
    ke = effective_kernel(k, d)
    if padding == "valid":
        return (length - 1) * s + (max(ke, s) if output_padding is None else ke + output_padding)
    return length * s if output_padding is None else (length - 1) * s + ke % 2 + output_padding


class BaseConvTranspose(_ConvLike):
    def __init__(self, rank, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self._common(rank, kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                     bias_initializer, bias_regularizer, bias_constraint)
        self.output_padding = None if output_padding is None else standardize_tuple(
            output_padding, rank, "output_padding", allow_zero=True)
        self.filters = positive_int(filters, "filters")
        self.kernel_initializer = initializers.get(kernel_initializer or "glorot_uniform")
        self.kernel_regularizer = keep_object(kernel_regularizer, "regularizer")
        self.kernel_constraint = keep_object(kernel_constraint, "constraint")
        if self.output_padding is not None:
            for i, (op, s) in enumerate(zip(self.output_padding, self.strides)):
                if op >= s:
                    raise ValueError(
                        "`output_padding` must be strictly less than `strides` for all dimensions. "
                        f"At dimension {i}, `output_padding` is {op} but `strides` is {s}. "
                        f"Received: output_padding={self.output_padding}, strides={self.strides}")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("`strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                             f"Received: strides={self.strides} and dilation_rate={self.dilation_rate}")

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_rank(input_shape)
        spatial, _ = self._split(input_shape)
        ops_ = self.output_padding or (None,) * self.rank
        out = tuple(transpose_output_length(n, k, s, d, self.padding, op) for n, k, s, d, op in zip(
            spatial, self.kernel_size, self.strides, self.dilation_rate, ops_))
        return self._join(input_shape[0], out, self.filters)

    def _build(self, input_shape):
        c = self._channels(input_shape)
        self._weights = []
        self._add_weight("kernel", (*self.kernel_size, self.filters, c), self.kernel_initializer)
        if self.use_bias:
            self._add_weight("bias", (self.filters,), self.bias_initializer)
        self._weights_changed()

    def _weights_changed(self):
        kernel = self._weight("kernel")
        axes = tuple(range(self.rank))
        # (*k, F, C) -> flipped (*k, C, F): the cross-correlation that equals the transposed conv
        self._kernel = np.ascontiguousarray(np.swapaxes(np.flip(kernel, axes), -1, -2))
        self._bias = self._bias_or_zeros(self.filters)
        self._problems.clear()

    def _plan(self, shape):
        """(Problem on the zero-inserted input, its shape) for an input shape (spec §3.4)."""
        spatial, c = self._split(shape)
        out = self._split(self.compute_output_shape(shape))[0]
        dilated = tuple((n - 1) * s + 1 for n, s in zip(spatial, self.strides))
        pads = []
        for n, k, s, d, o in zip(spatial, self.kernel_size, self.strides, self.dilation_rate, out):
            ke = effective_kernel(k, d)
            lift = 0 if self.padding == "valid" else max((n - 1) * s + ke - o, 0) // 2
            pads.append((ke - 1 - lift, o + lift - (n - 1) * s - 1))
        big = self._join(shape[0], dilated, c)
        p = make_problem("conv", big, rank=self.rank, kernel=self.kernel_size, dilation=self.dilation_rate,
                         padding=tuple(pads), out_channels=self.filters, layout=self.data_format,
                         dtype=self.dtype)
        return p, big

    def call(self, x):
        hit = self._problems.get(x.shape)
        if hit is None:
            hit = self._problems[x.shape] = self._plan(x.shape)
        p, big = hit
        if any(s > 1 for s in self.strides):
            z = np.zeros(big, self._np_dtype)
            steps = tuple(slice(None, None, s) for s in self.strides)
            index = (slice(None), *steps, slice(None)) if self.data_format == "channels_last" else \
                (slice(None), slice(None), *steps)
            z[index] = x
            x = z
        return self.activation(ops.conv(x, self._kernel, self._bias, p))

    def get_config(self):
        config = self._base_config()
        config.update({
            "filters": self.filters, "output_padding": self.output_padding,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": serialize_object(self.kernel_regularizer),
            "kernel_constraint": serialize_object(self.kernel_constraint),
        })
        return config


class Conv1DTranspose(BaseConvTranspose):
    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(1, filters, kernel_size, strides, padding, output_padding, data_format,
                         dilation_rate, activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint,
                         bias_constraint, **kwargs)


class Conv2DTranspose(BaseConvTranspose):
    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(2, filters, kernel_size, strides, padding, output_padding, data_format,
                         dilation_rate, activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint,
                         bias_constraint, **kwargs)


class Conv3DTranspose(BaseConvTranspose):
    """Keras 3 puts `data_format` before `output_padding` here (spec §4.4)."""

    def __init__(self, filters, kernel_size, strides=(1, 1, 1), padding="valid", data_format=None,
                 output_padding=None, dilation_rate=(1, 1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(3, filters, kernel_size, strides, padding, output_padding, data_format,
                         dilation_rate, activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint,
                         bias_constraint, **kwargs)


