"""Max/Average pooling 1-3D and global pooling, through `nbconv.ops.pool`.

Pads are never values: the kernels ignore them for max and leave them out of the
average's divisor. Global pooling is a pool Problem whose window is the whole spatial extent.
"""
from __future__ import annotations

import numpy as np

from .. import knobs, ops
from ..spec import make_problem
from . import device
from .args import check_bool, standardize_data_format, standardize_padding, standardize_tuple
from .base import Layer
from .conv import conv_output_length


class BasePooling(Layer):
    def __init__(self, pool_size, strides, pool_dimensions, pool_mode="max", padding="valid",
                 data_format=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.rank = pool_dimensions
        self.pool_size = standardize_tuple(pool_size, pool_dimensions, "pool_size")
        strides = pool_size if strides is None else strides
        # Keras 3 accepts a zero stride at construction; it is rejected at build (compute_output_shape).
        self.strides = standardize_tuple(strides, pool_dimensions, "strides", allow_zero=True)
        self.pool_mode = pool_mode
        # Keras validates this when building symbolically; doing it here fails earlier, same type.
        self.padding = standardize_padding(padding)
        self.data_format = standardize_data_format(data_format)
        self._op = "maxpool" if pool_mode == "max" else "avgpool"
        self._expected_ndim = pool_dimensions + 2
        self.built = True  # no weights: Keras builds these at init

    def _spatial(self, shape):
        return shape[1:-1] if self.data_format == "channels_last" else shape[2:]

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_shape(input_shape)
        if 0 in self.strides:
            standardize_tuple(self.strides, self.rank, "strides")  # raises the Keras message
        out = tuple(conv_output_length(n, k, s, 1, self.padding)
                    for n, k, s in zip(self._spatial(input_shape), self.pool_size, self.strides, strict=True))
        if any(o is not None and o <= 0 for o in out):
            raise ValueError("Computed output size would be zero or negative. Received: "
                             f"`inputs.shape={input_shape}` and `pool_size={self.pool_size}`.")
        if self.data_format == "channels_last":
            return (input_shape[0], *out, input_shape[-1])
        return (input_shape[0], input_shape[1], *out)

    def _problem(self, shape):
        p = self._problems.get(shape)
        if p is None:
            self.compute_output_shape(shape)
            p = make_problem(self._op, shape, rank=self.rank, kernel=self.pool_size, strides=self.strides,
                             padding=self.padding, layout=self.data_format, dtype=self.dtype,
                             device=knobs.device())
            self._problems[shape] = p
        return p

    def call(self, x):
        return ops.pool(x, self._problem(x.shape))

    def _on_device(self, x, shape):
        return ops.pool(x, device.problem(self._problem(shape)))

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "padding": self.padding, "strides": self.strides,
                       "data_format": self.data_format})
        return config


def _pooling_class(name, rank, mode, default_pool):
    """Keras's signature: (pool_size, strides=None, padding='valid', data_format=None, name=None)."""
    if default_pool is None:  # Keras 3 AveragePooling has no default pool_size
        def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None, **kwargs):
            BasePooling.__init__(self, pool_size, strides, rank, mode, padding, data_format, name, **kwargs)
    else:
        def __init__(self, pool_size=default_pool, strides=None, padding="valid", data_format=None,
                     name=None, **kwargs):
            BasePooling.__init__(self, pool_size, strides, rank, mode, padding, data_format, name, **kwargs)
    __init__.__qualname__ = f"{name}.__init__"
    return type(name, (BasePooling,), {"__init__": __init__, "__module__": __name__})


MaxPooling1D = _pooling_class("MaxPooling1D", 1, "max", 2)
MaxPooling2D = _pooling_class("MaxPooling2D", 2, "max", (2, 2))
MaxPooling3D = _pooling_class("MaxPooling3D", 3, "max", (2, 2, 2))
AveragePooling1D = _pooling_class("AveragePooling1D", 1, "average", None)
AveragePooling2D = _pooling_class("AveragePooling2D", 2, "average", None)
AveragePooling3D = _pooling_class("AveragePooling3D", 3, "average", None)


class BaseGlobalPooling(Layer):
    _op = "maxpool"

    def __init__(self, pool_dimensions, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.rank = pool_dimensions
        self.data_format = standardize_data_format(data_format)
        self.keepdims = check_bool(keepdims, "keepdims")
        self._expected_ndim = pool_dimensions + 2
        self.built = True  # no weights: Keras builds these at init

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_shape(input_shape)
        r = self.rank
        if self.data_format == "channels_last":
            return (input_shape[0], *(1,) * r, input_shape[-1]) if self.keepdims else \
                (input_shape[0], input_shape[-1])
        return (input_shape[0], input_shape[1], *(1,) * r) if self.keepdims else \
            (input_shape[0], input_shape[1])

    def _first_seen(self, shape):
        super()._first_seen(shape)
        spatial = shape[1:-1] if self.data_format == "channels_last" else shape[2:]
        if 0 in spatial:
            self._seen_shapes.discard(shape)
            raise ValueError(f"Input 0 of layer '{self.name}' has an empty spatial axis: "
                             f"cannot pool over shape {shape}")

    def _pool(self, x):
        hit = self._problems.get(x.shape)
        if hit is None:
            hit = self._global_problem(x.shape)
        return ops.pool(x, hit[0]).reshape(hit[1])

    def _global_problem(self, shape):
        """(the pool Problem over the whole spatial extent, the output shape), made once per shape."""
        spatial = shape[1:-1] if self.data_format == "channels_last" else shape[2:]
        p = make_problem(self._op, shape, rank=self.rank, kernel=spatial, strides=spatial,
                         padding="valid", layout=self.data_format, dtype=self.dtype, device=knobs.device())
        hit = self._problems[shape] = (p, self.compute_output_shape(shape))
        return hit

    def _on_device(self, x, shape, mask=None):
        if mask is not None:
            raise TypeError(f"Input 0 of layer '{self.name}': a `mask` has no CUDA path; "
                            "pass host (numpy) arrays")
        p, out = self._problems.get(shape) or self._global_problem(shape)
        return ops.pool(x, device.problem(p)).reshape(out)

    def call(self, x):
        return self._pool(x)

    def get_config(self):
        config = super().get_config()
        config.update({"data_format": self.data_format, "keepdims": self.keepdims})
        return config


class _GlobalAverage(BaseGlobalPooling):
    _op = "avgpool"


def _global_class(name, rank, base):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        base.__init__(self, rank, data_format, keepdims, **kwargs)
    __init__.__qualname__ = f"{name}.__init__"
    return type(name, (base,), {"__init__": __init__, "__module__": __name__})


GlobalMaxPooling1D = _global_class("GlobalMaxPooling1D", 1, BaseGlobalPooling)
GlobalMaxPooling2D = _global_class("GlobalMaxPooling2D", 2, BaseGlobalPooling)
GlobalMaxPooling3D = _global_class("GlobalMaxPooling3D", 3, BaseGlobalPooling)
GlobalAveragePooling2D = _global_class("GlobalAveragePooling2D", 2, _GlobalAverage)
GlobalAveragePooling3D = _global_class("GlobalAveragePooling3D", 3, _GlobalAverage)


class GlobalAveragePooling1D(_GlobalAverage):
    """Supports Keras's `mask` (batch, steps): the mean over the unmasked steps."""

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(1, data_format, keepdims, **kwargs)

    def call(self, x, mask=None):
        if mask is None:
            return self._pool(x)
        mask = np.asarray(mask)
        steps_axis = 1 if self.data_format == "channels_last" else 2
        if mask.shape != (x.shape[0], x.shape[steps_axis]):
            raise ValueError(f"Argument `mask` must have shape (batch, steps) = "
                             f"{(x.shape[0], x.shape[steps_axis])}. Received: mask.shape={mask.shape}")
        m = mask.astype(self._np_dtype)[:, :, None] if steps_axis == 1 else \
            mask.astype(self._np_dtype)[:, None, :]
        with np.errstate(invalid="ignore", divide="ignore"):  # an all-masked row is 0/0 = NaN, as Keras
            y = (x * m).sum(axis=steps_axis, keepdims=True) / m.sum(axis=steps_axis, keepdims=True)
        return y.astype(self._np_dtype, copy=False).reshape(self.compute_output_shape(x.shape))
