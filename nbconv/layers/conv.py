"""Conv1D/2D/3D: one BaseConv(rank), Keras 3 arguments, through `nbconv.ops.conv`."""
from __future__ import annotations

import numbers

from .. import ops
from ..spec import make_problem
from . import activations, initializers
from .args import check_bool, positive_int, standardize_data_format, standardize_padding, standardize_tuple
from .base import Layer, keep_object, serialize_object


def conv_output_length(length, k, s, d, padding):
    if length is None:
        return None
    ke = (k - 1) * d + 1
    return (length - ke) // s + 1 if padding == "valid" else (length - 1) // s + 1


class BaseConv(Layer):
    def __init__(self, rank, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, lora_rank=None, lora_alpha=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.rank = rank
        self.kernel_size = standardize_tuple(kernel_size, rank, "kernel_size")
        self.strides = standardize_tuple(strides, rank, "strides")
        self.dilation_rate = standardize_tuple(dilation_rate, rank, "dilation_rate")
        self.padding = standardize_padding(padding, allow_causal=rank == 1)
        self.data_format = standardize_data_format(data_format)
        self.activation = activations.get(activation)
        self.use_bias = check_bool(use_bias, "use_bias")
        self.kernel_initializer = initializers.get(kernel_initializer or "glorot_uniform")
        self.bias_initializer = initializers.get(bias_initializer or "zeros")
        self.kernel_regularizer = keep_object(kernel_regularizer, "regularizer")
        self.bias_regularizer = keep_object(bias_regularizer, "regularizer")
        self.kernel_constraint = keep_object(kernel_constraint, "constraint")
        self.bias_constraint = keep_object(bias_constraint, "constraint")
        if lora_rank is not None or lora_alpha is not None:
            raise ValueError("nbconv layers are inference-only and do not support LoRA. "
                             f"Received: lora_rank={lora_rank}, lora_alpha={lora_alpha}")
        self.filters = positive_int(filters, "filters")
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups <= 0:
            raise ValueError(f"The number of groups must be a positive integer. Received: groups={groups}.")
        self.groups = int(groups)
        if self.filters % self.groups != 0:
            raise ValueError("The number of filters must be evenly divisible by the number of groups. "
                             f"Received: groups={self.groups}, filters={self.filters}.")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("`strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                             f"Received: strides={self.strides} and dilation_rate={self.dilation_rate}")
        self._min_ndim = rank + 2
        self._channel_axis = -1 if self.data_format == "channels_last" else 1
        self._kernel = self._bias = None

    # -- shapes --------------------------------------------------------------------------
    def _spatial(self, shape):
        return shape[1:-1] if self.data_format == "channels_last" else shape[2:]

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_shape(input_shape)
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: "
                             f"expected ndim={self.rank + 2}, found ndim={len(input_shape)}. "
                             f"Full shape received: {input_shape}")
        out = tuple(conv_output_length(n, k, s, d, self.padding) for n, k, s, d in zip(
            self._spatial(input_shape), self.kernel_size, self.strides, self.dilation_rate))
        if any(o is not None and o <= 0 for o in out):
            channels = input_shape[self._channel_axis]
            raise ValueError(
                "Computed output size would be zero or negative. Received `inputs shape="
                f"{input_shape}`, `kernel shape={(*self.kernel_size, channels, self.filters)}`, "
                f"`dilation_rate={list(self.dilation_rate)}`, `strides={self.strides}`, "
                f"`padding={self.padding}`.")
        if self.data_format == "channels_last":
            return (input_shape[0], *out, self.filters)
        return (input_shape[0], self.filters, *out)

    # -- weights ---------------------------------------------------------------------------
    def _build(self, input_shape):
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise ValueError(f"The channel dimension of the inputs to {type(self).__name__} should be "
                             f"defined. Received input shape {input_shape}")
        if channels % self.groups != 0:
            raise ValueError("The number of input channels must be evenly divisible by the number of "
                             f"groups. Received groups={self.groups}, but the input has {channels} "
                             f"channels (full input shape is {input_shape}).")
        self._spec_axes = {self._channel_axis: channels}
        self._weights = []
        self._add_weight("kernel", (*self.kernel_size, channels // self.groups, self.filters),
                         self.kernel_initializer)
        if self.use_bias:
            self._add_weight("bias", (self.filters,), self.bias_initializer)
        self._weights_changed()

    def _weights_changed(self):
        self._kernel = self._weight("kernel")
        self._bias = self._bias_or_zeros(self.filters)
        self._problems.clear()

    @property
    def kernel(self):
        return self._kernel

    @property
    def bias(self):
        return self._weight("bias")

    # -- forward ---------------------------------------------------------------------------
    def _problem(self, shape):
        p = self._problems.get(shape)
        if p is None:
            self.compute_output_shape(shape)  # raises before anything compiles
            p = make_problem("conv", shape, rank=self.rank, kernel=self.kernel_size, strides=self.strides,
                             dilation=self.dilation_rate, padding=self.padding, out_channels=self.filters,
                             groups=self.groups, layout=self.data_format, dtype=self.dtype)
            self._problems[shape] = p
        return p

    def call(self, x):
        return self.activation(ops.conv(x, self._kernel, self._bias, self._problem(x.shape)))

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
            "padding": self.padding, "data_format": self.data_format, "dilation_rate": self.dilation_rate,
            "groups": self.groups, "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": serialize_object(self.kernel_regularizer),
            "bias_regularizer": serialize_object(self.bias_regularizer),
            "activity_regularizer": serialize_object(self.activity_regularizer),
            "kernel_constraint": serialize_object(self.kernel_constraint),
            "bias_constraint": serialize_object(self.bias_constraint),
        })
        return config


class Conv1D(BaseConv):
    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(1, filters, kernel_size, strides, padding, data_format, dilation_rate, groups,
                         activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                         bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint, **kwargs)


class Conv2D(BaseConv):
    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(2, filters, kernel_size, strides, padding, data_format, dilation_rate, groups,
                         activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                         bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint, **kwargs)


class Conv3D(BaseConv):
    def __init__(self, filters, kernel_size, strides=(1, 1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(3, filters, kernel_size, strides, padding, data_format, dilation_rate, groups,
                         activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                         bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint, **kwargs)
