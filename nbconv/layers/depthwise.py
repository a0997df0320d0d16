"""DepthwiseConv1D/2D and SeparableConv1D/2D (Keras 3 arguments), through `nbconv.ops`.

Depthwise is a conv with groups == C_in whose output channel c*M + m is input channel c times
multiplier m; separable is that depthwise step (without bias) followed by a 1x1 conv, run as one
op ("separable") whose candidates fuse the two or run them as two tuned convs.
"""
from __future__ import annotations

import numpy as np

from .. import knobs, ops
from ..spec import make_problem, separable_steps
from . import device
from .args import positive_int
from .base import WeightView
from .conv_base import ConvLayer, rank_arguments


def _as_grouped(kernel):
    """The (*k, C, M) depthwise weight as the grouped-conv kernel (*k, 1, C*M)."""
    *k, c, m = kernel.shape
    return kernel.reshape(*k, 1, c * m)


class BaseDepthwiseConv(ConvLayer):
    kernel = WeightView("kernel")

    def __init__(self, rank, kernel_size, strides=1, padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(rank, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         bias_initializer=bias_initializer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer, bias_constraint=bias_constraint, **kwargs)
        self.depth_multiplier = positive_int(depth_multiplier, "depth_multiplier")
        self._weight_args("depthwise", depthwise_initializer, depthwise_regularizer, depthwise_constraint)

    def _output_channels(self, channels):
        return None if channels is None else channels * self.depth_multiplier

    def _kernel_weights(self, channels):
        return [("kernel", (*self.kernel_size, channels, self.depth_multiplier), self.depthwise_initializer)]

    def _prepare_kernels(self):
        self._kernel = _as_grouped(self._weight("kernel"))

    def _make_problem(self, shape):
        c = self._split(shape)[1]
        return self._conv_problem(shape, out_channels=c * self.depth_multiplier, groups=c)

    def get_config(self):
        config = super().get_config()
        config.update({"depth_multiplier": self.depth_multiplier, **self._weight_config("depthwise")})
        return config


class DepthwiseConv1D(BaseDepthwiseConv):
    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(rank=1, **rank_arguments(locals()))


class DepthwiseConv2D(BaseDepthwiseConv):
    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(rank=2, **rank_arguments(locals()))


class BaseSeparableConv(ConvLayer):
    depthwise_kernel = WeightView("depthwise_kernel")
    pointwise_kernel = WeightView("pointwise_kernel")

    def __init__(self, rank, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(rank, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         bias_initializer=bias_initializer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer, bias_constraint=bias_constraint, **kwargs)
        self.depth_multiplier = positive_int(depth_multiplier, "depth_multiplier")
        self.filters = positive_int(filters, "filters")
        self._weight_args("depthwise", depthwise_initializer, depthwise_regularizer, depthwise_constraint)
        self._weight_args("pointwise", pointwise_initializer, pointwise_regularizer, pointwise_constraint)

    def _kernel_weights(self, channels):
        m = self.depth_multiplier
        return [("depthwise_kernel", (*self.kernel_size, channels, m), self.depthwise_initializer),
                ("pointwise_kernel", (*(1,) * self.rank, channels * m, self.filters),
                 self.pointwise_initializer)]

    def _prepare_kernels(self):
        self._depthwise_kernel = self._weight("depthwise_kernel")      # the separable op's, (*k, C, M)
        self._kernel = self._weight("pointwise_kernel")
        # the depthwise conv's (the CUDA path's): (*k, 1, C*M) and a zero bias
        self._depthwise = _as_grouped(self._depthwise_kernel)
        self._depthwise_bias = np.zeros(self._depthwise.shape[-1], self._np_dtype)

    def _make_problem(self, shape):
        """(the separable Problem, its depthwise and pointwise conv Problems)."""
        p = make_problem("separable", shape, rank=self.rank, kernel=self.kernel_size, strides=self.strides,
                         dilation=self.dilation_rate, padding=self.padding, layout=self.data_format,
                         dtype=self.dtype, device=knobs.device(), out_channels=self.filters,
                         multiplier=self.depth_multiplier)
        return (p, *separable_steps(p))

    def _separable(self, x, pointwise, bias):
        """The separable conv of x (before the activation), with these pointwise weights: one op,
        whose candidates include the fused kernel and the two tuned convs."""
        p = self._problem(x.shape)[0]
        return ops.run("separable", p, x, self._depthwise_kernel, pointwise, bias)

    def call(self, x):
        return self.activation(self._separable(x, self._kernel, self._bias))

    def _on_device(self, x, shape):
        # no CUDA separable kernel: the two convs, the intermediate staying on the device
        _, depthwise, pointwise = device.problem(self._problem(shape))
        mid = ops.conv(x, self._depthwise, self._depthwise_bias, depthwise)
        return ops.conv(mid, self._kernel, self._bias, pointwise)

    def get_config(self):
        config = super().get_config()
        config.update({"depth_multiplier": self.depth_multiplier, "filters": self.filters,
                       **self._weight_config("depthwise", "pointwise")})
        return config


class SeparableConv1D(BaseSeparableConv):
    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 depth_multiplier=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(rank=1, **rank_arguments(locals()))


class SeparableConv2D(BaseSeparableConv):
    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(rank=2, **rank_arguments(locals()))
