"""Dense, Flatten, Activation, Dropout (identity at inference) and Input/InputLayer."""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from .. import ops
from ..spec import Problem
from . import activations, initializers
from .args import check_bool, standardize_data_format
from .base import Layer, WeightView, keep_object, serialize_object
from .symbolic import KerasTensor, Node


class Dense(Layer):
    """`y = activation(x @ kernel + bias)` over the last axis (leading axes are batch-like)."""

    _min_ndim = 2

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, lora_rank=None,
                 lora_alpha=None, quantization_config=None, **kwargs):
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError("Received an invalid value for `units`, expected a positive integer. "
                             f"Received: units={units}")
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = check_bool(use_bias, "use_bias")
        self.kernel_initializer = initializers.get(kernel_initializer or "glorot_uniform")
        self.bias_initializer = initializers.get(bias_initializer or "zeros")
        self.kernel_regularizer = keep_object(kernel_regularizer, "regularizer")
        self.bias_regularizer = keep_object(bias_regularizer, "regularizer")
        self.kernel_constraint = keep_object(kernel_constraint, "constraint")
        self.bias_constraint = keep_object(bias_constraint, "constraint")
        if lora_rank is not None or lora_alpha is not None or quantization_config is not None:
            raise ValueError("nbconv layers are inference-only and support neither LoRA nor quantization. "
                             f"Received: lora_rank={lora_rank}, lora_alpha={lora_alpha}, "
                             f"quantization_config={quantization_config}")

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_shape(input_shape)
        return (*input_shape[:-1], self.units)

    def _build(self, input_shape):
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ValueError(f"The last dimension of the inputs to a Dense layer should be defined. "
                             f"Found None. Full input shape received: {input_shape}")
        self._spec_axes = {-1: in_dim}
        self._weights = []
        self._add_weight("kernel", (in_dim, self.units), self.kernel_initializer)
        if self.use_bias:
            self._add_weight("bias", (self.units,), self.bias_initializer)
        self._weights_changed()

    def _weights_changed(self):
        self._kernel = self._weight("kernel")
        self._bias = self._bias_or_zeros(self.units)
        self._problems.clear()

    kernel = WeightView("kernel")
    bias = WeightView("bias")

    def call(self, x):
        lead = x.shape[:-1]
        x2 = x.reshape(math.prod(lead), x.shape[-1])  # a view: x is C-contiguous
        p = self._problems.get(x2.shape)
        if p is None:
            p = Problem(op="dense", rank=0, batch=x2.shape[0], in_channels=x2.shape[1],
                        out_channels=self.units, dtype=self.dtype)
            self._problems[x2.shape] = p
        y = ops.dense(x2, self._kernel, self._bias, p)
        return self.activation(y.reshape(*lead, self.units))

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units, "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": serialize_object(self.kernel_regularizer),
            "bias_regularizer": serialize_object(self.bias_regularizer),
            "kernel_constraint": serialize_object(self.kernel_constraint),
            "bias_constraint": serialize_object(self.bias_constraint),
        })
        return config


class _Stateless(Layer):
    """No weights: built at construction, as Keras builds these."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.built = True


class Flatten(_Stateless):
    _min_ndim = 1

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_shape(input_shape)
        rest = input_shape[1:]
        if not rest:
            return (input_shape[0], 1)
        return (input_shape[0], None if any(d is None for d in rest) else math.prod(rest))

    def call(self, x):
        if self.data_format == "channels_first" and x.ndim > 2:
            # Keras moves channels last before flattening, so Dense weights match either format
            x = np.moveaxis(x, 1, -1)
        return np.ascontiguousarray(x).reshape(x.shape[0], math.prod(x.shape[1:]))

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class Activation(_Stateless):
    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, x):
        return self.activation(x)

    def get_config(self):
        config = super().get_config()
        config["activation"] = activations.serialize(self.activation)
        return config


class Dropout(_Stateless):
    """Identity: nbconv runs inference only (Keras's Dropout is the identity unless training=True)."""

    _takes_training = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate <= 1:
            raise ValueError("Invalid value received for argument `rate`. Expected a float value between "
                             f"0 and 1. Received: rate={rate}")
        self.rate, self.noise_shape, self.seed = rate, noise_shape, seed

    def call(self, x, training=None):
        if training:
            raise ValueError("nbconv layers are inference-only: Dropout cannot run with training=True.")
        return x

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed, "noise_shape": self.noise_shape})
        return config


class InputLayer(Layer):
    """Declares the model input: `shape` excludes the batch axis; `batch_shape` includes it."""

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, ragged=None, batch_shape=None,
                 input_tensor=None, optional=False, name=None, **kwargs):
        if "input_shape" in kwargs:
            warnings.warn("Argument `input_shape` is deprecated. Use `shape` instead.", stacklevel=2)
            shape = kwargs.pop("input_shape")
        if "batch_input_shape" in kwargs:
            batch_shape = kwargs.pop("batch_input_shape")
        if sparse or ragged or input_tensor is not None:
            raise ValueError("nbconv's InputLayer supports dense NumPy inputs only: `sparse`, `ragged` and "
                             "`input_tensor` are not supported.")
        super().__init__(name=name, **kwargs)
        if dtype is not None:  # any real numeric input dtype: the layers cast to their own
            try:
                kind = np.dtype(getattr(dtype, "name", dtype)).kind
            except TypeError:
                kind = None
            if kind not in ("f", "i", "u"):
                raise ValueError(f"Argument `dtype` of InputLayer must be a real numeric dtype. "
                                 f"Received: dtype={dtype}")
            self.dtype = np.dtype(getattr(dtype, "name", dtype)).name
        if shape is not None and batch_shape is not None:
            raise ValueError("You cannot pass both `shape` and `batch_shape` at the same time.")
        if batch_shape is None:
            if shape is None:
                raise ValueError("You must pass a `shape` argument.")
            if isinstance(shape, int):
                shape = (shape,)
            batch_shape = (batch_size, *shape)
        batch_shape = tuple(batch_shape)
        for d in batch_shape:
            if d is not None and (isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 0):
                raise ValueError(f"Argument `shape` must be a tuple of non-negative integers or None. "
                                 f"Received: batch_shape={batch_shape}")
        self.batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
        self.optional = optional
        self.built = True
        self._build_input_shape = self.batch_shape
        self.output = KerasTensor(self.batch_shape, self.dtype, self)
        self._inbound_nodes = [Node(self, [], {}, self.output)]

    @property
    def shape(self):
        return self.batch_shape

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, x):
        return x

    def get_config(self):
        return {"batch_shape": self.batch_shape, "dtype": self.dtype, "sparse": False, "ragged": False,
                "name": self.name, "optional": self.optional}


def Input(shape=None, batch_size=None, dtype=None, sparse=None, ragged=None, batch_shape=None, name=None,
          tensor=None, optional=False):
    """A symbolic tensor (as Keras) for `nbconv.models.Model`; Sequential accepts it first."""
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse, ragged=ragged,
                       batch_shape=batch_shape, input_tensor=tensor, optional=optional, name=name)
    return layer.output

