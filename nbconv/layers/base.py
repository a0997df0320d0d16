"""The Layer base: Keras-style naming, kwargs, weights, configs and input checks."""
from __future__ import annotations

import math
import re
import warnings

import numpy as np

from ..impls.cuda import on_device
from . import initializers, symbolic
from .args import standardize_dtype

_name_counts: dict[str, int] = {}
WEIGHT_BUDGET: list[int] = []  # [elements left] while a loader builds layers, else empty


def clear_session():
    """Reset automatic names, so the next Conv2D is `conv2d` again (as keras.backend.clear_session)."""
    _name_counts.clear()


def to_snake_case(name):
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def unique_name(base):
    n = _name_counts.get(base, 0)
    _name_counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def dtype_policy(dtype):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": dtype},
            "registered_name": None}


def serialize_object(obj):
    """Regularizers/constraints are kept, not used: strings and dicts as given, objects via get_config."""
    if obj is None or isinstance(obj, (str, dict)):
        return obj
    if hasattr(obj, "get_config"):
        return {"class_name": type(obj).__name__, "config": obj.get_config()}
    return obj


_KNOWN = {
    "regularizer": {"l1", "l2", "l1_l2", "orthogonal_regularizer", "L1", "L2", "L1L2",
                    "OrthogonalRegularizer"},
    "constraint": {"max_norm", "min_max_norm", "non_neg", "unit_norm", "MaxNorm", "MinMaxNorm", "NonNeg",
                   "UnitNorm"},
}


def keep_object(value, kind):
    """Accept a regularizer/constraint identifier (no training here, so it only lives in the config)."""
    if value is None or isinstance(value, dict) or (callable(value) and not isinstance(value, str)):
        return value
    if isinstance(value, str) and value in _KNOWN[kind]:
        return value
    raise ValueError(f"Could not interpret {kind} identifier: {value}")


def read_only(array):
    """A read-only view (None stays None): the layer's own arrays stay private and writeable."""
    if array is None:
        return None
    view = array.view()
    view.flags.writeable = False
    return view


class WeightView:
    """A public weight accessor (`layer.kernel`): a read-only view of the named weight, None before build.

    ops caches prepared weights keyed on the weight arrays' identity, so a write into a weight in place
    would be silently ignored; `set_weights` is the way to change them.
    """

    def __init__(self, name):
        self.name = name

    def __get__(self, layer, owner=None):
        return self if layer is None else read_only(layer._weight(self.name))


def _shape_str(shape):
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


class Layer:
    """Base of every nbconv layer. Subclasses set `_expected_ndim` (exact) or `_min_ndim`."""

    _expected_ndim: int | None = None
    _min_ndim: int | None = None

    def __init__(self, *, name=None, dtype=None, trainable=True, activity_regularizer=None,
                 autocast=True, **kwargs):
        input_dim = kwargs.pop("input_dim", None)
        input_shape = (input_dim,) if input_dim is not None else kwargs.pop("input_shape", None)
        if input_shape is not None:
            warnings.warn("Do not pass an `input_shape`/`input_dim` argument to a layer. When using "
                          "Sequential models, prefer using an `Input(shape)` object as the first layer "
                          "in the model instead.", UserWarning, stacklevel=3)
            input_shape = tuple(input_shape)
        self._input_shape_arg = input_shape
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Argument `name` must be a string. Received: name={name!r}")
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self.dtype = standardize_dtype(dtype)
        self._np_dtype = np.dtype(self.dtype)
        self.trainable = bool(trainable)
        self.activity_regularizer = keep_object(activity_regularizer, "regularizer")
        self.built = False
        self._weights: list[tuple[str, np.ndarray]] = []
        self._build_input_shape = None
        self._problems = {}
        self._seen_shapes = set()
        # channel axis and value fixed by build (Keras InputSpec axes)
        self._spec_axes: dict[int, int] = {}

    # -- Keras API -------------------------------------------------------------------
    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"

    def build(self, input_shape):
        input_shape = self._check_shape(tuple(input_shape))
        self.compute_output_shape(input_shape)  # validates
        self._build(input_shape)
        self._build_input_shape = input_shape
        self.built = True

    def _build(self, input_shape):
        """Create weights; override where the layer has any."""

    _on_device = None        # (self, device array, shape) -> device output, where the layer has CUDA kernels
    _takes_training = False  # Dropout reads `training`; other layers accept and ignore it, as Keras

    def __call__(self, inputs, *args, **kwargs):
        if type(inputs) is not np.ndarray:
            if symbolic.any_symbolic(inputs):
                return symbolic.symbolic_call(self, inputs, kwargs)
            if on_device(inputs):        # CUDA memory: layers with CUDA kernels keep it there
                from . import device
                return device.call(self, inputs, args, kwargs)
        if not self._takes_training:
            kwargs.pop("training", None)
        x = self._prepare(inputs)
        if x.shape not in self._seen_shapes:  # checks run once per input shape: calls stay cheap
            self._first_seen(x.shape)
        if x.shape[0] == 0:  # batch 0: nothing to compute, and nothing to compile
            return np.zeros((0, *self.compute_output_shape(x.shape)[1:]), self._np_dtype)
        return self.call(x, *args, **kwargs)

    def _first_seen(self, shape):
        self._check_shape(shape)
        if not self.built:
            self.build((None, *shape[1:]))
        self.compute_output_shape(shape)  # e.g. a conv's output size on new spatial dims
        if self._build_input_shape is None:
            self._build_input_shape = (None, *shape[1:])
        self._seen_shapes.add(shape)

    def call(self, x):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    @property
    def weights(self):
        """Read-only views of the weights (see WeightView); `get_weights` returns copies."""
        return [read_only(w) for _, w in self._weights]

    @property
    def trainable_weights(self):
        return self.weights if self.trainable else []

    @property
    def non_trainable_weights(self):
        return [] if self.trainable else self.weights

    def count_params(self):
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on layer '{self.name}', but the layer "
                             "isn't built. You can build it manually via: `layer.build(input_shape)`.")
        return sum(math.prod(w.shape) for w in self.weights)

    def get_weights(self):
        return [w.copy() for _, w in self._weights]

    def set_weights(self, weights):
        weights = list(weights)
        if len(weights) != len(self._weights):
            raise ValueError(f"You called `set_weights(weights)` on layer '{self.name}' with a weight list "
                             f"of length {len(weights)}, but the layer was expecting "
                             f"{len(self._weights)} weights.")
        new = []
        for (wname, old), value in zip(self._weights, weights, strict=True):
            value = np.asarray(value)
            if value.shape != old.shape:
                raise ValueError(f"Layer {self.name} weight shape {old.shape} is not compatible with "
                                 f"provided weight shape {value.shape}.")
            if not np.issubdtype(value.dtype, np.number) or np.iscomplexobj(value):
                raise TypeError(f"Layer {self.name}: weight `{wname}` must be real numbers. "
                                f"Received dtype={value.dtype}")
            new.append((wname, np.array(value, dtype=self._np_dtype, order="C")))
        self._weights = new
        self._weights_changed()

    def _weights_changed(self):
        """Hook: recompute anything derived from the weights (e.g. LocallyConnected's layout)."""

    def _weight(self, name):
        for n, w in self._weights:
            if n == name:
                return w
        return None

    def _bias_or_zeros(self, n):
        """The `bias` weight, or zeros of length n: kernels always take a bias array."""
        bias = self._weight("bias")
        return bias if bias is not None else np.zeros(n, self._np_dtype)

    def _add_weight(self, name, shape, initializer):
        init = initializers.get(initializer)
        if WEIGHT_BUDGET:  # a loader's cap: implied weights are checked before they are allocated
            WEIGHT_BUDGET[0] -= math.prod(shape)
            if WEIGHT_BUDGET[0] < 0:
                raise ValueError(f"Layer '{self.name}': its weights exceed the loader's size limit.")
        value = np.array(init(tuple(shape), self.dtype), dtype=self._np_dtype, order="C")
        self._weights.append((name, value))
        return value

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "dtype": dtype_policy(self.dtype)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # -- input handling ----------------------------------------------------------------
    def _prepare(self, inputs):
        """A C-contiguous, native-order array of the layer dtype (Keras casts inputs)."""
        x = inputs if isinstance(inputs, np.ndarray) else np.asarray(inputs)
        kind = x.dtype.kind
        if kind not in "fiu":
            raise TypeError(f"Input 0 of layer '{self.name}' must be a real numeric array "
                            f"(float or int). Received dtype={x.dtype}")
        if x.dtype != self._np_dtype or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=self._np_dtype)
        if x.ndim == 0:
            raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: "
                             "expected an array with a batch axis, found a scalar.")
        return x

    def _check_shape(self, shape):
        ndim = len(shape)
        head = f"Input 0 of layer '{self.name}' is incompatible with the layer: "
        if self._expected_ndim is not None and ndim != self._expected_ndim:
            raise ValueError(f"{head}expected ndim={self._expected_ndim}, found ndim={ndim}. "
                             f"Full shape received: {_shape_str(shape)}")
        if self._min_ndim is not None and ndim < self._min_ndim:
            raise ValueError(f"{head}expected min_ndim={self._min_ndim}, found ndim={ndim}. "
                             f"Full shape received: {_shape_str(shape)}")
        for axis, value in self._spec_axes.items():
            if shape[axis] is not None and shape[axis] != value:
                raise ValueError(f"{head}expected axis {axis} of input shape to have value {value}, "
                                 f"but received input with shape {_shape_str(shape)}")
        return shape
