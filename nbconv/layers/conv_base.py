"""ConvLayer: the one base of the plain, depthwise, separable and transposed conv layers (Keras 3).

It owns what the families share: argument standardisation, the activation and the bias, the
ndim and output-size checks, the channel axis, the per-input-shape Problem cache, the forward
call through `ops.conv` and the common config. A family adds its kernel weights
(`_kernel_weights`), the arrays ops runs on (`_prepare_kernels`), its Problem(s) for an input shape
(`_make_problem`) and its own config keys.
"""
from __future__ import annotations

import numpy as np

from .. import knobs, ops
from ..spec import make_problem
from . import activations, device, initializers
from .args import check_bool, standardize_data_format, standardize_padding, standardize_tuple
from .base import Layer, WeightView, keep_object, serialize_object


def conv_output_length(length, k, s, d, padding):
    if length is None:
        return None
    ke = (k - 1) * d + 1
    return (length - ke) // s + 1 if padding == "valid" else (length - 1) // s + 1


def rank_arguments(local):
    """A rank class's `locals()` as keywords for its family base: its named arguments, then **kwargs."""
    named = {k: v for k, v in local.items() if k not in ("self", "kwargs", "__class__")}
    return {**named, **local["kwargs"]}


class ConvLayer(Layer):
    """Arguments as Keras's conv bases; the families call `_weight_args` for their kernels."""

    _allow_causal = False  # padding="causal": plain Conv1D only

    bias = WeightView("bias")

    def __init__(self, rank, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 activation=None, use_bias=True, bias_initializer="zeros", bias_regularizer=None,
                 activity_regularizer=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.rank = rank
        self.kernel_size = standardize_tuple(kernel_size, rank, "kernel_size")
        self.strides = standardize_tuple(strides, rank, "strides")
        self.dilation_rate = standardize_tuple(dilation_rate, rank, "dilation_rate")
        self.padding = standardize_padding(padding, allow_causal=self._allow_causal and rank == 1)
        self.data_format = standardize_data_format(data_format)
        self.activation = activations.get(activation)
        self.use_bias = check_bool(use_bias, "use_bias")
        self._weight_args("bias", bias_initializer, bias_regularizer, bias_constraint, default="zeros")
        self._min_ndim = rank + 2
        self._channel_axis = -1 if self.data_format == "channels_last" else 1
        self._in_channels = None
        self._kernel = self._bias = None  # the arrays ops runs on, derived from the weights

    def _weight_args(self, name, initializer, regularizer, constraint, default="glorot_uniform"):
        """Set `{name}_initializer`, `{name}_regularizer` and `{name}_constraint` (the latter two are
        only kept for the config: nothing trains here)."""
        setattr(self, f"{name}_initializer", initializers.get(initializer or default))
        setattr(self, f"{name}_regularizer", keep_object(regularizer, "regularizer"))
        setattr(self, f"{name}_constraint", keep_object(constraint, "constraint"))

    def _check_strides_with_dilation(self):
        """Plain and transposed convs (not depthwise or separable) reject strides > 1 with dilation > 1."""
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("`strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                             f"Received: strides={self.strides} and dilation_rate={self.dilation_rate}")

    # -- shapes ------------------------------------------------------------------------------------
    def _split(self, shape):
        """(spatial dims, channels) of a shape in this layer's data format."""
        if self.data_format == "channels_last":
            return tuple(shape[1:-1]), shape[-1]
        return tuple(shape[2:]), shape[1]

    def _join(self, batch, spatial, channels):
        if self.data_format == "channels_last":
            return (batch, *spatial, channels)
        return (batch, channels, *spatial)

    def _output_channels(self, channels):
        return self.filters

    def _output_spatial(self, input_shape):
        spatial, channels = self._split(input_shape)
        out = tuple(conv_output_length(n, k, s, d, self.padding) for n, k, s, d in zip(
            spatial, self.kernel_size, self.strides, self.dilation_rate, strict=True))
        if any(o is not None and o <= 0 for o in out):
            kernel = (*self.kernel_size, channels, self._output_channels(channels))  # as Keras prints it
            raise ValueError(
                "Computed output size would be zero or negative. Received `inputs shape="
                f"{input_shape}`, `kernel shape={kernel}`, "
                f"`dilation_rate={np.array(self.dilation_rate)}`, `strides={self.strides}`, "
                f"`padding={self.padding}`.")
        return out

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_shape(input_shape)
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: "
                             f"expected ndim={self.rank + 2}, found ndim={len(input_shape)}. "
                             f"Full shape received: {input_shape}")
        out = self._output_spatial(input_shape)
        return self._join(input_shape[0], out, self._output_channels(self._split(input_shape)[1]))

    # -- weights -------------------------------------------------------------------------------------
    def _build(self, input_shape):
        _, channels = self._split(input_shape)
        if channels is None:
            raise ValueError(f"The channel dimension of the inputs to {type(self).__name__} should be "
                             f"defined. Received input shape {input_shape}")
        weights = self._kernel_weights(channels)  # may raise (e.g. channels vs groups)
        self._in_channels = channels
        self._spec_axes = {self._channel_axis: channels}
        self._weights = []
        for name, shape, initializer in weights:
            self._add_weight(name, shape, initializer)
        if self.use_bias:
            self._add_weight("bias", (self._output_channels(channels),), self.bias_initializer)
        self._weights_changed()

    def _kernel_weights(self, channels):
        """[(name, shape, initializer)] of the kernel weights for `channels` input channels."""
        raise NotImplementedError

    def _weights_changed(self):
        self._problems.clear()
        if self._weights:
            self._bias = self._bias_or_zeros(self._output_channels(self._in_channels))
            self._prepare_kernels()

    def _prepare_kernels(self):
        """Set the (writeable, private) kernel arrays ops runs on from the weights."""
        raise NotImplementedError

    # -- forward -------------------------------------------------------------------------------------
    def _problem(self, shape):
        """The Problem(s) for an input shape, made once per shape by `_make_problem`."""
        p = self._problems.get(shape)
        if p is None:
            p = self._problems[shape] = self._make_problem(shape)
        return p

    def _make_problem(self, shape):
        raise NotImplementedError

    def _conv_problem(self, shape, **overrides):
        """A conv Problem with this layer's kernel, strides, dilation, padding, layout and dtype."""
        args = dict(rank=self.rank, kernel=self.kernel_size, strides=self.strides,
                    dilation=self.dilation_rate, padding=self.padding, layout=self.data_format,
                    dtype=self.dtype, device=knobs.device())
        return make_problem("conv", shape, **{**args, **overrides})

    def call(self, x):
        return self.activation(ops.conv(x, self._kernel, self._bias, self._problem(x.shape)))

    def _on_device(self, x, shape):
        """The conv of a CUDA device input, before the activation (layers.device applies it)."""
        return ops.conv(x, self._kernel, self._bias, device.problem(self._problem(shape)))

    # -- config --------------------------------------------------------------------------------------
    def _weight_config(self, *names):
        config = {}
        for name in names:
            config[f"{name}_initializer"] = initializers.serialize(getattr(self, f"{name}_initializer"))
            config[f"{name}_regularizer"] = serialize_object(getattr(self, f"{name}_regularizer"))
            config[f"{name}_constraint"] = serialize_object(getattr(self, f"{name}_constraint"))
        return config

    def get_config(self):
        config = super().get_config()
        config.update({
            "kernel_size": self.kernel_size, "strides": self.strides, "padding": self.padding,
            "data_format": self.data_format, "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
            "activity_regularizer": serialize_object(self.activity_regularizer),
            **self._weight_config("bias"),
        })
        return config
