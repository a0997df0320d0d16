"""`Sequential`: a stack of nbconv layers with Keras 3's API and its `summary()` table."""
from __future__ import annotations

import math

import numpy as np

from . import distributed
from . import layers as _layers
from .layers.args import predict_batch_size
from .layers.base import Layer, to_snake_case, unique_name
from .layers.symbolic import KerasTensor
from .plan import chain_plan


class Sequential:
    def __init__(self, layers=None, trainable=True, name=None):
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self.trainable = trainable
        self._layers: list[Layer] = []
        self._input_layer = None
        self._output_shapes: list = []
        self.built = False
        self.rewrites = True   # False: run each layer as written (no folding)
        self._plan = None
        for layer in layers or []:
            self.add(layer)

    # -- building ------------------------------------------------------------------------
    @property
    def layers(self):
        """The layers, without the InputLayer (as Keras)."""
        return list(self._layers)

    def add(self, layer):
        if isinstance(layer, KerasTensor):  # Input(): its InputLayer, as Keras
            layer = layer._keras_history[0]
        if not isinstance(layer, Layer):
            raise ValueError("Only instances of `nbconv.layers.Layer` can be added to a Sequential model. "
                             f"Received: {layer!r} (of type {type(layer)})")
        if isinstance(layer, _layers.InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError(f"Sequential model '{self.name}' has already been configured to use an "
                                 "input; an InputLayer can only be its first layer.")
            self._input_layer = layer
            self.build(layer.batch_shape)
            return
        if any(existing is layer for existing in self._layers):
            raise ValueError(f"Layer '{layer.name}' is already in Sequential model '{self.name}'.")
        self._layers.append(layer)
        if len(self._layers) == 1 and self._input_layer is None and layer._input_shape_arg is not None:
            # Keras turns the first layer's input_shape into an InputLayer; later ones are ignored.
            self._input_layer = _layers.InputLayer(shape=layer._input_shape_arg, dtype=layer.dtype)
        if self._input_layer is not None:
            try:
                self.build(self._input_layer.batch_shape)
            except Exception:
                self._layers.pop()  # a layer that does not fit leaves the model as it was
                if not self._layers and layer._input_shape_arg is not None:
                    self._input_layer = None
                raise

    def pop(self):
        """Remove and return the last layer."""
        if not self._layers:
            raise ValueError(f"There are no layers in model '{self.name}' to remove.")
        layer = self._layers.pop()
        self._output_shapes = self._output_shapes[:len(self._layers)]
        self._plan = None
        return layer

    def get_layer(self, name=None, index=None):
        if index is not None and name is not None:
            raise ValueError("Provide only a layer name or a layer index. Received: "
                             f"index={index}, name={name}.")
        if index is not None:
            if not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only has "
                                 f"{len(self._layers)} layers.")
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[la.name for la in self._layers]}.")

    def build(self, input_shape=None):
        if input_shape is None:
            if self._input_layer is None:
                raise ValueError("You must provide an `input_shape` argument.")
            input_shape = self._input_layer.batch_shape
        shape = tuple(input_shape)
        shapes = []
        for layer in self._layers:
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
            shapes.append(shape)
        self._build_input_shape = tuple(input_shape)
        self._output_shapes = shapes
        self.built = True
        self._plan = None

    # -- running -------------------------------------------------------------------------
    @property
    def input_shape(self):
        return self._build_input_shape if self.built else None

    @property
    def output_shape(self):
        return self._output_shapes[-1] if self.built and self._output_shapes else None

    def __call__(self, x, training=None):
        if training:
            raise ValueError("nbconv models are inference-only: training=True is not supported.")
        if not self._layers:
            raise ValueError(f"Sequential model '{self.name}' has no layers: add some before calling it.")
        if not self.built:
            self.build((None, *np.shape(x)[1:]))
        if not self.rewrites:
            for layer in self._layers:
                x = layer(x)
            return x
        plan = self.__dict__.get("_plan")
        if plan is None or not plan.valid():   # inference rewrites, as for Model (nbconv.plan)
            plan = self._plan = chain_plan(self._layers, self._build_input_shape, self._output_shapes)
        return plan.run({plan.input_id: x})[0]

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Runs the model over x in batches of `batch_size` (32 when None, as Keras). A `dask.array`
        (chunked along the batch axis) gives a lazy `dask.array` (`nbconv.distributed`)."""
        if distributed.is_dask_collection(x):
            return distributed.predict_dask(self, x, batch_size=batch_size)
        batch_size = predict_batch_size(batch_size)
        x = np.asarray(x)
        if x.ndim == 0:
            raise ValueError("Argument `x` must have a batch axis. Received a scalar.")
        n = x.shape[0]
        if n <= batch_size:
            return self(x)
        return np.concatenate([self(x[i:i + batch_size]) for i in range(0, n, batch_size)], axis=0)

    def __getstate__(self):   # the execution plan holds closures: made again after unpickling
        return {**self.__dict__, "_plan": None}

    # -- weights ---------------------------------------------------------------------------
    @property
    def weights(self):
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self._layers for w in layer.trainable_weights] if self.trainable else []

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [w for layer in self._layers for w in layer.non_trainable_weights]

    def count_params(self):
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on layer '{self.name}', but the layer isn't "
                             "built. You can build it manually via: `layer.build(input_shape)`.")
        return sum(layer.count_params() for layer in self._layers)

    def get_weights(self):
        return [w for layer in self._layers for w in layer.get_weights()]

    def set_weights(self, weights):
        weights = list(weights)
        expected = sum(len(layer.weights) for layer in self._layers)
        if len(weights) != expected:
            raise ValueError(f"You called `set_weights(weights)` on model '{self.name}' with a weight list "
                             f"of length {len(weights)}, but the model was expecting {expected} weights.")
        i = 0
        for layer in self._layers:
            k = len(layer.weights)
            layer.set_weights(weights[i:i + k])
            i += k

    # -- config ------------------------------------------------------------------------------
    def get_config(self):
        layer_configs = [_layers.serialize(layer) for layer in self._layers]
        if self._input_layer is not None:
            layer_configs.insert(0, _layers.serialize(self._input_layer))
        config = {"name": self.name, "trainable": self.trainable, "layers": layer_configs}
        if self.built:
            config["build_input_shape"] = self._build_input_shape
        return config

    @classmethod
    def from_config(cls, config):
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for layer_config in config.get("layers", []):
            model.add(_layers.deserialize(layer_config))
        if not model.built and config.get("build_input_shape"):
            model.build(config["build_input_shape"])
        return model

    # -- summary -------------------------------------------------------------------------------
    def summary(self, print_fn=None):
        """Keras 3's table (default 76-column console): Layer (type) / Output Shape / Param #."""
        text = summary_text(self)
        (print_fn or print)(text)


_WIDTHS = (33, 24, 15)   # Keras 3 on an 80-column console: positions .45/.80/1.0 of 76, less borders


def _wrap(text, width):
    """Greedy word wrap like rich: words longer than the width end in an ellipsis."""
    lines, line = [], ""
    for word in text.split(" "):
        if len(word) > width:
            word = word[:width - 1] + "…"
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            lines.append(line)
            line = word
    lines.append(line)
    return lines


def _row(cells, justify=("left", "left", "right"), sep="│"):
    wrapped = [_wrap(c, w - 2) for c, w in zip(cells, _WIDTHS, strict=True)]
    height = max(len(w) for w in wrapped)
    out = []
    for i in range(height):
        parts = []
        for lines, w, j in zip(wrapped, _WIDTHS, justify, strict=True):
            s = lines[i] if i < len(lines) else ""
            parts.append(" " + (s.rjust(w - 2) if j == "right" else s.ljust(w - 2)) + " ")
        out.append(sep + sep.join(parts) + sep)
    return out


def _rule(left, mid, right, fill):
    return left + mid.join(fill * w for w in _WIDTHS) + right


def _memory(nbytes):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if nbytes / 1024 < 1:
            return f"{nbytes:.2f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.2f} PB"


def _format_shape(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


def summary_text(model):
    lines = [f'Model: "{model.name}"', _rule("┏", "┳", "┓", "━")]
    lines += _row(["Layer (type)", "Output Shape", "Param #"], sep="┃")
    lines.append(_rule("┡", "╇", "┩", "━"))
    for i, layer in enumerate(model.layers):
        if i:
            lines.append(_rule("├", "┼", "┤", "─"))
        if model.built:
            shape, params = _format_shape(model._output_shapes[i]), f"{layer.count_params():,}"
        else:
            shape, params = "?", "0 (unbuilt)" if not layer.built else f"{layer.count_params():,}"
        lines += _row([f"{layer.name} ({type(layer).__name__})", shape, params])
    lines.append(_rule("└", "┴", "┘", "─"))
    trainable = model.trainable_weights if model.built else []
    non_trainable = model.non_trainable_weights if model.built else []

    def total(ws):
        return sum(math.prod(w.shape) for w in ws), sum(w.nbytes for w in ws)

    (nt, bt), (nn, bn) = total(trainable), total(non_trainable)
    lines.append(f" Total params: {nt + nn:,} ({_memory(bt + bn)})")
    lines.append(f" Trainable params: {nt:,} ({_memory(bt)})")
    lines.append(f" Non-trainable params: {nn:,} ({_memory(bn)})")
    return "\n".join(lines)




def __getattr__(name):
    # `Model` lives in nbconv.functional, which imports this module for Sequential's helpers: a
    # process that imports nbconv.functional first (unpickling a Model on a Dask worker) must not
    # need it here while this module runs
    if name == "Model":
        from .functional import Model
        return Model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The Keras loader (at the end: it builds on Sequential's helpers above).
from .keras_config import LoadError as LoadError  # noqa: E402
from .keras_files import from_keras as from_keras  # noqa: E402
from .keras_files import load_model as load_model  # noqa: E402
