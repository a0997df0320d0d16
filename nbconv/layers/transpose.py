"""Conv1D/2D/3DTranspose (Keras 3 arguments) as a plain conv through `ops.conv`.

The transposed conv equals a cross-correlation of the input with s - 1 zeros inserted between
neighbouring elements along each axis, padded per axis by (ke - 1 - lift, out + lift - (n - 1) * s - 1)
(ke the dilated kernel extent, lift the `same` crop), with the spatially flipped kernel and its
channel axes swapped.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..spec import effective_kernel
from . import device
from .args import positive_int, standardize_tuple
from .base import WeightView
from .conv_base import ConvLayer, rank_arguments


def transpose_output_length(length, k, s, d, padding, output_padding):
    if length is None:
        return None
    ke = effective_kernel(k, d)
    if padding == "valid":
        return (length - 1) * s + (max(ke, s) if output_padding is None else ke + output_padding)
    return length * s if output_padding is None else (length - 1) * s + ke % 2 + output_padding


class BaseConvTranspose(ConvLayer):
    kernel = WeightView("kernel")

    def __init__(self, rank, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(rank, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         bias_initializer=bias_initializer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer, bias_constraint=bias_constraint, **kwargs)
        self.output_padding = None if output_padding is None else standardize_tuple(
            output_padding, rank, "output_padding", allow_zero=True)
        self.filters = positive_int(filters, "filters")
        self._weight_args("kernel", kernel_initializer, kernel_regularizer, kernel_constraint)
        for i, (op, s) in enumerate(zip(self.output_padding or (), self.strides, strict=False)):
            if op >= s:
                raise ValueError(
                    "`output_padding` must be strictly less than `strides` for all dimensions. "
                    f"At dimension {i}, `output_padding` is {op} but `strides` is {s}. "
                    f"Received: output_padding={self.output_padding}, strides={self.strides}")
        self._check_strides_with_dilation()

    def _output_spatial(self, input_shape):
        output_padding = self.output_padding or (None,) * self.rank
        axes = zip(self._split(input_shape)[0], self.kernel_size, self.strides, self.dilation_rate,
                   output_padding, strict=True)
        return tuple(transpose_output_length(n, k, s, d, self.padding, op) for n, k, s, d, op in axes)

    def _kernel_weights(self, channels):
        return [("kernel", (*self.kernel_size, self.filters, channels), self.kernel_initializer)]

    def _prepare_kernels(self):
        # (*k, F, C) -> flipped (*k, C, F): the cross-correlation that equals the transposed conv
        kernel = np.flip(self._weight("kernel"), tuple(range(self.rank)))
        self._kernel = np.ascontiguousarray(np.swapaxes(kernel, -1, -2))

    def _make_problem(self, shape):
        """(the Problem on the zero-inserted input, that input's shape)."""
        spatial, c = self._split(shape)
        out = self._output_spatial(shape)
        pads = []
        axes = zip(spatial, self.kernel_size, self.strides, self.dilation_rate, out, strict=True)
        for n, k, s, d, o in axes:
            ke = effective_kernel(k, d)
            lift = 0 if self.padding == "valid" else max((n - 1) * s + ke - o, 0) // 2
            pads.append((ke - 1 - lift, o + lift - (n - 1) * s - 1))
        dilated = tuple((n - 1) * s + 1 for n, s in zip(spatial, self.strides, strict=True))
        big = self._join(shape[0], dilated, c)
        return self._conv_problem(big, strides=None, padding=tuple(pads), out_channels=self.filters), big

    def call(self, x):
        p, big = self._problem(x.shape)
        if any(s > 1 for s in self.strides):
            z = np.zeros(big, self._np_dtype)
            steps = tuple(slice(None, None, s) for s in self.strides)
            lead = (slice(None),) if self.data_format == "channels_last" else (slice(None), slice(None))
            z[(*lead, *steps)] = x
            x = z
        return self.activation(ops.conv(x, self._kernel, self._bias, p))

    def _on_device(self, x, shape):
        if any(s > 1 for s in self.strides):
            raise TypeError(f"Input 0 of layer '{self.name}': a transposed conv with strides "
                            f"{self.strides} > 1 has no CUDA path (its zero insertion runs on the host); "
                            "pass a host (numpy) array")
        return ops.conv(x, self._kernel, self._bias, device.problem(self._problem(shape)[0]))

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "output_padding": self.output_padding,
                       **self._weight_config("kernel")})
        return config


class Conv1DTranspose(BaseConvTranspose):
    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(rank=1, **rank_arguments(locals()))


class Conv2DTranspose(BaseConvTranspose):
    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(rank=2, **rank_arguments(locals()))


class Conv3DTranspose(BaseConvTranspose):
    """Keras 3 puts `data_format` before `output_padding` here."""

    def __init__(self, filters, kernel_size, strides=(1, 1, 1), padding="valid", data_format=None,
                 output_padding=None, dilation_rate=(1, 1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(rank=3, **rank_arguments(locals()))
