"""BatchNormalization (inference), Rescaling, ReLU and Softmax: elementwise layers of real CNNs."""
from __future__ import annotations

import numbers

import numpy as np

from . import activations, initializers
from .args import check_bool
from .base import Layer, WeightView, keep_object, serialize_object
from .core import _Stateless


def _real(value, name, layer, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"Argument `{name}` of {layer} must be a number. Received: {name}={value}")
    return float(value)


class BatchNormalization(Layer):
    """Inference: (x - moving_mean) / sqrt(moving_variance + epsilon) * gamma + beta along `axis`."""

    _min_ndim = 1

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, renorm=False, renorm_clipping=None,
                 renorm_momentum=0.99, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)) and len(axis) == 1:  # tf-keras files write [3]
            axis = axis[0]
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError(f"Argument `axis` of BatchNormalization must be an int. Received: axis={axis}")
        self.axis = int(axis)
        self.momentum = _real(momentum, "momentum", "BatchNormalization")
        self.epsilon = _real(epsilon, "epsilon", "BatchNormalization")
        self.center, self.scale = check_bool(center, "center"), check_bool(scale, "scale")
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = keep_object(beta_regularizer, "regularizer")
        self.gamma_regularizer = keep_object(gamma_regularizer, "regularizer")
        self.beta_constraint = keep_object(beta_constraint, "constraint")
        self.gamma_constraint = keep_object(gamma_constraint, "constraint")
        if renorm or synchronized:
            raise ValueError("nbconv is inference-only: BatchNormalization's `renorm` and `synchronized` "
                             f"must be False. Received: renorm={renorm}, synchronized={synchronized}")
        self.renorm, self.renorm_clipping, self.renorm_momentum = renorm, renorm_clipping, renorm_momentum
        self.synchronized = synchronized

    def _build(self, input_shape):
        ndim = len(input_shape)
        if not -ndim <= self.axis < ndim:
            raise ValueError(f"Invalid axis {self.axis} for input of rank {ndim}")
        dim = input_shape[self.axis]
        if dim is None:
            raise ValueError(f"Axis {self.axis} of input tensor should have a defined dimension but the "
                             f"layer received an input with shape {input_shape}.")
        self._axis = self.axis % ndim
        self._spec_axes = {self._axis: dim}
        self._weights = []
        if self.scale:
            self._add_weight("gamma", (dim,), self.gamma_initializer)
        if self.center:
            self._add_weight("beta", (dim,), self.beta_initializer)
        self._add_weight("moving_mean", (dim,), self.moving_mean_initializer)
        self._add_weight("moving_variance", (dim,), self.moving_variance_initializer)
        self._weights_changed()

    def _weights_changed(self):
        mean, var = self._weight("moving_mean"), self._weight("moving_variance")
        inv = 1 / np.sqrt(var + self._np_dtype.type(self.epsilon))
        if self.scale:
            inv = inv * self._weight("gamma")
        shift = -mean * inv
        if self.center:
            shift = shift + self._weight("beta")
        self._mul, self._add = inv.astype(self._np_dtype), shift.astype(self._np_dtype)

    gamma, beta = WeightView("gamma"), WeightView("beta")
    moving_mean, moving_variance = WeightView("moving_mean"), WeightView("moving_variance")

    @property
    def trainable_weights(self):
        return [w for w in (self.gamma, self.beta) if w is not None] if self.trainable else []

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [self.moving_mean, self.moving_variance]

    def call(self, x):
        shape = [1] * x.ndim
        shape[self._axis] = -1
        y = x * self._mul.reshape(shape)
        y += self._add.reshape(shape)        # in place: one pass and one array fewer
        return y

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon, "center": self.center,
            "scale": self.scale, "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
            "beta_regularizer": serialize_object(self.beta_regularizer),
            "gamma_regularizer": serialize_object(self.gamma_regularizer),
            "beta_constraint": serialize_object(self.beta_constraint),
            "gamma_constraint": serialize_object(self.gamma_constraint), "synchronized": self.synchronized,
            "renorm": self.renorm, "renorm_clipping": self.renorm_clipping,
            "renorm_momentum": self.renorm_momentum})
        return config


class Rescaling(_Stateless):
    """x * scale + offset (scale/offset: numbers or per-channel lists, cast to the layer dtype)."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = scale, offset
        self._scale = np.asarray(scale, dtype=self._np_dtype)
        self._offset = np.asarray(offset, dtype=self._np_dtype)

    def call(self, x):
        return self._scale * x + self._offset

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale, "offset": self.offset})
        return config


class ReLU(_Stateless):
    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0.0:
            raise ValueError("max_value of a ReLU layer cannot be a negative value. "
                             f"Received: max_value={max_value}")
        if negative_slope is None or negative_slope < 0.0:
            raise ValueError("negative_slope of a ReLU layer cannot be a negative value. "
                             f"Received: negative_slope={negative_slope}")
        if threshold is None or threshold < 0.0:
            raise ValueError("threshold of a ReLU layer cannot be a negative value. "
                             f"Received: threshold={threshold}")
        self.max_value = _real(max_value, "max_value", "ReLU", allow_none=True)
        self.negative_slope = _real(negative_slope, "negative_slope", "ReLU")
        self.threshold = _real(threshold, "threshold", "ReLU")

    def call(self, x):
        """Keras's ReLU.static_call, step by step."""
        t = x.dtype.type
        slope, mx, th = self.negative_slope, self.max_value, self.threshold
        if slope != 0 and mx is None and th == 0:
            return activations.leaky_relu(x, slope)
        negative = np.maximum(-x + t(th), 0) if slope != 0 else None
        clip = mx is not None
        if th != 0:
            y = x * (x > t(th)).astype(x.dtype)
        elif mx == 6:
            y, clip = activations.relu6(x), False
        else:
            y = activations.relu(x)
        if clip:
            y = np.clip(y, t(0), t(mx))
        if negative is not None:
            y = y - t(slope) * negative
        return y.astype(x.dtype, copy=False)

    def get_config(self):
        config = super().get_config()
        config.update({"max_value": self.max_value, "negative_slope": self.negative_slope,
                       "threshold": self.threshold})
        return config


class Softmax(_Stateless):
    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, x, mask=None):
        axis = tuple(self.axis) if isinstance(self.axis, (list, tuple)) else self.axis
        return activations.softmax(x, axis=axis).astype(x.dtype, copy=False)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


class Normalization(_Stateless):
    """(x - mean) / max(sqrt(variance), 1e-7) (or its inverse), mean/variance given or as weights."""

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        self.axis = () if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
        self.input_mean, self.input_variance, self.invert = mean, variance, check_bool(invert, "invert")
        if (mean is not None) != (variance is not None):
            raise ValueError("When setting values directly, both `mean` and `variance` must be set. "
                             f"Received: mean={mean} and variance={variance}")
        if mean is not None and np.shape(mean) != np.shape(variance):
            raise ValueError("When setting values directly, `mean` and `variance` must have the same "
                             f"shape. Received: mean shape {np.shape(mean)} and variance shape "
                             f"{np.shape(variance)}")
        self.built = False

    def _build(self, input_shape):
        ndim = len(input_shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError("All `axis` values must be in the range [-ndim, ndim). "
                             f"Received inputs with ndim={ndim}, while axis={self.axis}")
        keep = sorted(a % ndim for a in self.axis)
        if any(input_shape[d] is None for d in keep):
            raise ValueError("All `axis` values to be kept must have a known shape. "
                             f"Received axis={self.axis}, inputs.shape={input_shape}")
        self._broadcast = [input_shape[d] if d in keep else 1 for d in range(ndim)]
        self._spec_axes = {d: input_shape[d] for d in keep}
        self._weights = []
        if self.input_mean is None:
            shape = tuple(input_shape[d] for d in keep)
            self._add_weight("mean", shape, "zeros")
            self._add_weight("variance", shape, "ones")
            self._add_weight("count", (), "zeros")
            self._weights_changed()
        else:
            expanded = [1] * ndim
            mean = np.asarray(self.input_mean, self._np_dtype)
            for i in range(1, mean.ndim + 1):
                expanded[keep[-i]] = mean.shape[-i]
            variance = np.asarray(self.input_variance, self._np_dtype)
            self._set_stats(mean.reshape(expanded), variance.reshape(expanded))

    def _set_stats(self, mean, variance):
        self._mean = np.broadcast_to(mean, self._broadcast).astype(self._np_dtype)
        root = np.sqrt(np.broadcast_to(variance, self._broadcast))
        self._scale = np.maximum(root, self._np_dtype.type(1e-7))  # Keras's backend.epsilon()

    def _weights_changed(self):
        if self.input_mean is None:
            self._set_stats(self._weight("mean").reshape(self._broadcast),
                            self._weight("variance").reshape(self._broadcast))

    def count_params(self):
        return sum(w.size for w in self.weights)

    @property
    def trainable_weights(self):
        return []

    @property
    def non_trainable_weights(self):
        return self.weights

    def call(self, x):
        if self.invert:
            return (self._mean + x * self._scale).astype(self._np_dtype, copy=False)
        return ((x - self._mean) / self._scale).astype(self._np_dtype, copy=False)

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "invert": self.invert,
                       "mean": np.array(self.input_mean).tolist(),
                       "variance": np.array(self.input_variance).tolist()})
        return config
