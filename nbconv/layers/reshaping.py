"""ZeroPadding1D/2D/3D, Cropping1D/2D/3D, Reshape and UpSampling2D (nearest)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .args import standardize_data_format, standardize_tuple
from .core import _Stateless


def _pairs(value, rank, name):
    """An int, `rank` ints, or `rank` pairs -> `rank` (before, after) pairs (Keras's rules)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return ((value, value),) * rank if rank > 1 else ((value, value),)
    if not hasattr(value, "__len__") or isinstance(value, str):
        raise ValueError(f"`{name}` should be either an int, a tuple of {rank} ints or a tuple of {rank} "
                         f"tuples of 2 ints. Received: {name}={value}")
    if rank == 1:
        return (standardize_tuple(value, 2, name, allow_zero=True),)
    if len(value) != rank:
        raise ValueError(f"`{name}` should have {rank} elements. Received: {name}={value}.")
    return tuple(standardize_tuple(v, 2, f"{ordinal} entry of {name}", allow_zero=True)
                 for v, ordinal in zip(value, ("1st", "2nd", "3rd"), strict=False))


class _Spatial(_Stateless):
    rank = 2
    _arg = "padding"

    def __init__(self, value, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self._expected_ndim = self.rank + 2
        self._pairs = _pairs(value, self.rank, self._arg)

    def _spatial_axes(self, ndim):
        return range(1, ndim - 1) if self.data_format == "channels_last" else range(2, ndim)

    def get_config(self):
        config = super().get_config()
        config[self._arg] = self._pairs[0] if self.rank == 1 else self._pairs
        if self.rank > 1 or type(self).__name__.startswith("Zero"):
            config["data_format"] = self.data_format
        return config


class _ZeroPadding(_Spatial):
    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)
        self.padding = self._pairs[0] if self.rank == 1 else self._pairs

    def compute_output_shape(self, input_shape):
        shape = list(self._check_shape(tuple(input_shape)))
        for axis, (a, b) in zip(self._spatial_axes(len(shape)), self._pairs, strict=True):
            if shape[axis] is not None:
                shape[axis] += a + b
        return tuple(shape)

    def call(self, x):
        pads = [(0, 0)] * x.ndim
        for axis, pair in zip(self._spatial_axes(x.ndim), self._pairs, strict=True):
            pads[axis] = pair
        return np.pad(x, pads)


class ZeroPadding1D(_ZeroPadding):
    rank = 1


class ZeroPadding2D(_ZeroPadding):
    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class ZeroPadding3D(_ZeroPadding):
    rank = 3

    def __init__(self, padding=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class _Cropping(_Spatial):
    _arg = "cropping"

    def __init__(self, cropping, data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)
        self.cropping = self._pairs[0] if self.rank == 1 else self._pairs

    def compute_output_shape(self, input_shape):
        shape = list(self._check_shape(tuple(input_shape)))
        for axis, (a, b) in zip(self._spatial_axes(len(shape)), self._pairs, strict=True):
            if shape[axis] is not None:
                if shape[axis] <= a + b:
                    raise ValueError("Values in `cropping` argument should be smaller than the "
                                     f"corresponding spatial dimension of the input. Received: "
                                     f"input_shape={tuple(input_shape)}, cropping={self.cropping}")
                shape[axis] -= a + b
        return tuple(shape)

    def call(self, x):
        index = [slice(None)] * x.ndim
        for axis, (a, b) in zip(self._spatial_axes(x.ndim), self._pairs, strict=True):
            index[axis] = slice(a, x.shape[axis] - b)
        return np.ascontiguousarray(x[tuple(index)])


class Cropping1D(_Cropping):
    rank = 1

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(cropping, None, **kwargs)


class Cropping2D(_Cropping):
    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


class Cropping3D(_Cropping):
    rank = 3

    def __init__(self, cropping=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


class Reshape(_Stateless):
    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        target_shape = tuple(target_shape)
        if (any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or (d <= 0 and d != -1)
                for d in target_shape) or target_shape.count(-1) > 1):
            raise ValueError("The `target_shape` argument must be a tuple of positive integers with at "
                             f"most one -1. Received: target_shape={target_shape}")
        self.target_shape = tuple(int(d) for d in target_shape)

    def compute_output_shape(self, input_shape):
        rest = tuple(input_shape)[1:]
        if -1 not in self.target_shape:
            if None not in rest and math.prod(rest) != math.prod(self.target_shape):
                raise ValueError(f"total size of new array must be unchanged, input_shape = {list(rest)}, "
                                 f"output_shape = {list(self.target_shape)}")
            return (input_shape[0], *self.target_shape)
        if None in rest:
            return (input_shape[0], *(None if d == -1 else d for d in self.target_shape))
        known = -math.prod(self.target_shape)
        if math.prod(rest) % known:
            raise ValueError(f"total size of new array must be unchanged, input_shape = {list(rest)}, "
                             f"output_shape = {list(self.target_shape)}")
        return (input_shape[0], *(math.prod(rest) // known if d == -1 else d for d in self.target_shape))

    def call(self, x):
        return x.reshape(self.compute_output_shape(x.shape))

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = self.target_shape
        return config


class UpSampling2D(_Stateless):
    _expected_ndim = 4

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.size = standardize_tuple(size, 2, "size")
        if interpolation != "nearest":
            raise ValueError("nbconv's UpSampling2D supports interpolation='nearest' only. "
                             f"Received: interpolation={interpolation}")
        self.interpolation = interpolation

    def compute_output_shape(self, input_shape):
        shape = list(self._check_shape(tuple(input_shape)))
        axes = (1, 2) if self.data_format == "channels_last" else (2, 3)
        for axis, s in zip(axes, self.size, strict=True):
            shape[axis] = None if shape[axis] is None else shape[axis] * s
        return tuple(shape)

    def call(self, x):
        axes = (1, 2) if self.data_format == "channels_last" else (2, 3)
        for axis, s in zip(axes, self.size, strict=True):
            x = np.repeat(x, s, axis=axis)
        return x

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "data_format": self.data_format,
                       "interpolation": self.interpolation})
        return config
