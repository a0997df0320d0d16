"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum and Concatenate over a list."""
from __future__ import annotations

import numpy as np

from .core import _Stateless
from .symbolic import any_symbolic


class _Merge(_Stateless):
    _reduce = None

    def _check_list(self, shapes):
        if not isinstance(shapes, (list, tuple)) or not shapes or not isinstance(shapes[0], (list, tuple)):
            raise ValueError(f"A merge layer should be called on a list of inputs. Received: input_shape="
                             f"{shapes} (not a list of shapes)")
        return [tuple(s) for s in shapes]

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        shapes = self._check_list(input_shape)
        out = shapes[0]
        for s in shapes[1:]:
            if len(s) != len(out):
                raise ValueError(f"Inputs of layer '{self.name}' must have the same rank. "
                                 f"Got shapes {shapes}")
            dims = []
            for a, b in zip(out, s, strict=True):
                if a is not None and b is not None and a != b and 1 not in (a, b):
                    raise ValueError(f"Inputs have incompatible shapes. Received shapes {shapes}")
                dims.append(None if a is None or b is None else max(a, b))
            out = tuple(dims)
        return out

    def __call__(self, inputs, *args, **kwargs):
        if any_symbolic(inputs):
            return super().__call__(inputs, *args, **kwargs)
        if not isinstance(inputs, (list, tuple)):
            raise ValueError("A merge layer should be called on a list of inputs. "
                             f"Received: inputs={inputs!r}")
        xs = [self._prepare(x) for x in inputs]
        self.compute_output_shape([x.shape for x in xs])
        return self._merge(xs)

    def _prepare(self, inputs):
        if isinstance(inputs, np.ndarray) and inputs.dtype == self._np_dtype:
            return inputs
        if not isinstance(inputs, (list, tuple)):
            x = np.asarray(inputs)
            if x.dtype.kind in "fiu":
                return x.astype(self._np_dtype, copy=False)
        raise ValueError(f"A merge layer should be called on a list of inputs. Received: inputs={inputs!r}")

    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = type(self)._reduce(out, x)
        return out


class Add(_Merge):
    _reduce = np.add


class Subtract(_Merge):
    _reduce = np.subtract

    def compute_output_shape(self, input_shape):
        if len(self._check_list(input_shape)) != 2:
            raise ValueError(f"A `Subtract` layer should be called on exactly 2 inputs. Received: "
                             f"input_shape={input_shape}")
        return super().compute_output_shape(input_shape)


class Multiply(_Merge):
    _reduce = np.multiply


class Maximum(_Merge):
    _reduce = np.maximum


class Minimum(_Merge):
    _reduce = np.minimum


class Average(_Merge):
    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return (out / len(xs)).astype(self._np_dtype, copy=False)


class Concatenate(_Merge):
    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def compute_output_shape(self, input_shape):
        shapes = self._check_list(input_shape)
        rank = len(shapes[0])
        axis = self.axis % rank if -rank <= self.axis < rank else None
        if axis is None or any(len(s) != rank for s in shapes):
            raise ValueError(f"A `Concatenate` layer requires inputs with matching shapes except for the "
                             f"concatenation axis. Received: input_shape={shapes}")
        for i in range(rank):
            dims = {s[i] for s in shapes if s[i] is not None}
            if i != axis and len(dims) > 1:
                raise ValueError("A `Concatenate` layer requires inputs with matching shapes except for the "
                                 f"concatenation axis. Received: input_shape={shapes}")
        along = [s[axis] for s in shapes]
        total = None if None in along else sum(along)
        return tuple(total if i == axis else next((s[i] for s in shapes if s[i] is not None), None)
                     for i in range(rank))

    def _merge(self, xs):
        return np.concatenate(xs, axis=self.axis)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config
