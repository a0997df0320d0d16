"""Conv1D/2D/3D: the plain (optionally grouped) convolution, Keras 3 arguments."""
from __future__ import annotations

import numbers

from .args import positive_int
from .base import WeightView
from .conv_base import ConvLayer, conv_output_length, rank_arguments  # noqa: F401 (pooling imports it here)


class BaseConv(ConvLayer):
    _allow_causal = True

    kernel = WeightView("kernel")

    def __init__(self, rank, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, lora_rank=None, lora_alpha=None, **kwargs):
        super().__init__(rank, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         bias_initializer=bias_initializer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer, bias_constraint=bias_constraint, **kwargs)
        self._weight_args("kernel", kernel_initializer, kernel_regularizer, kernel_constraint)
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
        self._check_strides_with_dilation()

    def _build(self, input_shape):
        channels = self._split(input_shape)[1]
        if channels is not None and channels % self.groups != 0:
            raise ValueError("The number of input channels must be evenly divisible by the number of "
                             f"groups. Received groups={self.groups}, but the input has {channels} "
                             f"channels (full input shape is {input_shape}).")
        super()._build(input_shape)

    def _kernel_weights(self, channels):
        shape = (*self.kernel_size, channels // self.groups, self.filters)
        return [("kernel", shape, self.kernel_initializer)]

    def _prepare_kernels(self):
        self._kernel = self._weight("kernel")

    def _make_problem(self, shape):
        return self._conv_problem(shape, out_channels=self.filters, groups=self.groups)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "groups": self.groups, **self._weight_config("kernel")})
        return config


class Conv1D(BaseConv):
    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(rank=1, **rank_arguments(locals()))


class Conv2D(BaseConv):
    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(rank=2, **rank_arguments(locals()))


class Conv3D(BaseConv):
    def __init__(self, filters, kernel_size, strides=(1, 1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(rank=3, **rank_arguments(locals()))
