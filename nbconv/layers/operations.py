"""The Keras operations a saved Functional graph may hold as nodes of their own (`x + 3.0` in a model
becomes a `keras.src.ops.numpy` `Add` node): the ones keras.applications use, and nothing else.

Each takes exactly two arguments, tensors or real numbers (at least one tensor), broadcast as NumPy;
a number is cast to the layer dtype, as Keras's weak typing does. Like Keras's operations they are not
layers of the model: `Model.layers`, weights and the summary leave them out.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .base import Layer
from .symbolic import KerasTensor, Node, any_symbolic


class NumpyOperation(Layer):
    _is_operation = True
    _ufunc = None

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.built = True

    def _check_args(self, args):
        where = f"Operation '{self.name}' ({type(self).__name__})"
        if not isinstance(args, (list, tuple)) or len(args) != 2:
            raise ValueError(f"{where} takes exactly two arguments (x1, x2). Received: {args!r}")
        for a in args:
            if isinstance(a, bool) or not isinstance(a, (KerasTensor, np.ndarray, numbers.Real)):
                raise ValueError(f"{where}: arguments must be tensors or real numbers. Received: {a!r}")
            if isinstance(a, numbers.Real) and not (abs(a) < 2 ** 63 if isinstance(a, numbers.Integral)
                                                    else math.isfinite(a)):
                raise ValueError(f"{where}: a number argument must be finite. Received: {a!r}")
        if all(isinstance(a, numbers.Real) for a in args):
            raise ValueError(f"{where}: at least one argument must be a tensor. Received: {args!r}")

    def compute_output_shape(self, shapes):
        a, b = (tuple(s) for s in shapes)
        if len(a) < len(b):
            a, b = b, a
        b = (1,) * (len(a) - len(b)) + b
        out = []
        for x, y in zip(a, b, strict=True):
            if x is not None and y is not None and x != y and 1 not in (x, y):
                raise ValueError(f"Operation '{self.name}': shapes {shapes} cannot be broadcast together.")
            out.append(y if x == 1 else x if y == 1 else (x if x is not None else y))
        return tuple(out)

    def __call__(self, args, **kwargs):
        self._check_args(args)
        if any_symbolic(args):
            shapes = [a.shape if isinstance(a, KerasTensor) else () for a in args]
            out = KerasTensor(self.compute_output_shape(shapes), self.dtype, self,
                              len(self.__dict__.get("_inbound_nodes", [])))
            self.__dict__.setdefault("_inbound_nodes", []).append(Node(self, list(args), {}, out))
            return out
        a, b = (self._prepare(x) if isinstance(x, np.ndarray) else self._np_dtype.type(x) for x in args)
        return type(self)._ufunc(a, b)

    def get_config(self):
        return {"name": self.name}


class Add(NumpyOperation):
    _ufunc = np.add


class Multiply(NumpyOperation):
    _ufunc = np.multiply


OPERATIONS = {"keras.src.ops.numpy": {"Add": Add, "Multiply": Multiply}}
