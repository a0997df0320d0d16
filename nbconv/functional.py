"""`Model(inputs, outputs)`: a Functional DAG of nbconv layers (shared layers, merges), Keras 3's API."""
from __future__ import annotations

import numpy as np

from . import distributed
from . import models as _models
from .layers import InputLayer
from .layers.args import predict_batch_size
from .layers.base import to_snake_case, unique_name
from .layers.symbolic import KerasTensor, map_structure
from .plan import Plan


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


class Model:
    """Runs the nodes between `inputs` and `outputs` in topological order (numpy in, numpy out)."""

    def __init__(self, inputs, outputs, name=None, trainable=True):
        self.name = name or unique_name(to_snake_case("Functional"))
        self.trainable = trainable
        self._nested_outputs = outputs
        self.inputs, self.outputs = _as_list(inputs), _as_list(outputs)
        for t in self.inputs + self.outputs:
            if not isinstance(t, KerasTensor):
                raise ValueError(f"All `inputs` and `outputs` of a Model must be KerasTensors (from "
                                 f"`nbconv.layers.Input` and layer calls). Received: {t!r}")
        for t in self.inputs:
            if not isinstance(t._keras_history[0], InputLayer):
                raise ValueError(f"Model inputs must come from `Input()`. Received: {t!r}")
        self._nodes = self._topological_nodes()
        self._layers = []
        for node in self._nodes:  # Keras's operation nodes (x + 3.0) are not layers
            if not getattr(node.layer, "_is_operation", False) and not any(node.layer is la
                                                                          for la in self._layers):
                self._layers.append(node.layer)
        names = [la.name for la in self._layers]
        for n in names:
            if names.count(n) > 1:
                raise ValueError(f'The name "{n}" is used {names.count(n)} times in the model. '
                                 "All operation names should be unique.")
        self.built = True
        self.rewrites = True   # False: run each layer as written (no folding), e.g. to compare
        self._plan = None

    def _topological_nodes(self):
        order, state = [], {}
        input_ids = {id(t) for t in self.inputs}

        def visit(tensor):
            layer, index, _ = tensor._keras_history
            node = layer._inbound_nodes[index]
            key = id(node)
            if state.get(key) == "done":
                return
            if state.get(key) == "active":
                raise ValueError("The graph has a cycle.")
            state[key] = "active"
            if isinstance(layer, InputLayer) and id(tensor) not in input_ids:
                raise ValueError(f"Graph disconnected: cannot find parent for tensor {tensor!r} at layer "
                                 f"'{layer.name}'. The following previous layers were accessed without "
                                 "issue: " + str([n.layer.name for n in order]))
            for t in node.input_tensors:
                visit(t)
            state[key] = "done"
            order.append(node)

        for t in self.inputs + self.outputs:
            visit(t)
        return order

    # -- Keras API -------------------------------------------------------------------------
    @property
    def layers(self):
        return list(self._layers)

    @property
    def input_shape(self):
        shapes = [t.shape for t in self.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = [t.shape for t in self.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    def get_layer(self, name=None, index=None):
        return _models.Sequential.get_layer(self, name=name, index=index)

    def __call__(self, inputs, training=None):
        if training:
            raise ValueError("nbconv models are inference-only: training=True is not supported.")
        arrays = _as_list(inputs)
        if len(arrays) != len(self.inputs):
            raise ValueError(f"Model '{self.name}' expects {len(self.inputs)} input(s), but it received "
                             f"{len(arrays)} input tensors.")
        values = {}
        for t, x in zip(self.inputs, arrays, strict=True):
            x = np.asarray(x)
            if x.ndim != len(t.shape) or any(
                    d is not None and d != s for d, s in zip(t.shape[1:], x.shape[1:], strict=True)):
                raise ValueError(f"Input of model '{self.name}' is incompatible: expected shape {t.shape}, "
                                 f"found shape={x.shape}")
            values[id(t)] = x
        if self.rewrites:
            outs = self._execution_plan().run(values)
        else:
            for node in self._nodes:
                if not isinstance(node.layer, InputLayer):
                    values[id(node.output)] = node.layer(map_structure(lambda t: values[id(t)], node.args))
            outs = [values[id(t)] for t in self.outputs]
        return outs[0] if not isinstance(self._nested_outputs, (list, tuple)) else outs

    def _execution_plan(self):
        """The inference rewrites (nbconv.plan), made on first use and again after weights change."""
        plan = self.__dict__.get("_plan")
        if plan is None or not plan.valid():
            plan = self._plan = Plan(self)
        return plan

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Runs the model over x in batches of `batch_size` (32 when None, as Keras). A `dask.array`
        (chunked along the batch axis) gives a lazy `dask.array` (`nbconv.distributed`)."""
        if any(distributed.is_dask_collection(a) for a in _as_list(x)):
            return distributed.predict_dask(self, x, batch_size=batch_size)
        batch_size = predict_batch_size(batch_size)
        xs = [np.asarray(a) for a in _as_list(x)]
        n = xs[0].shape[0]
        if n <= batch_size:
            return self(xs if len(xs) > 1 else xs[0])
        parts = [self([a[i:i + batch_size] for a in xs] if len(xs) > 1 else xs[0][i:i + batch_size])
                 for i in range(0, n, batch_size)]
        if isinstance(parts[0], list):
            return [np.concatenate(p, axis=0) for p in zip(*parts, strict=True)]
        return np.concatenate(parts, axis=0)

    def __getstate__(self):   # the execution plan holds closures: made again after unpickling
        return {**self.__dict__, "_plan": None}

    # -- weights (each shared layer once, in layer order) -------------------------------------
    weights = _models.Sequential.weights
    trainable_weights = _models.Sequential.trainable_weights
    non_trainable_weights = _models.Sequential.non_trainable_weights
    count_params = _models.Sequential.count_params
    get_weights = _models.Sequential.get_weights

    def set_weights(self, weights):
        self._plan = None
        _models.Sequential.set_weights(self, weights)

    def _sequential_like(self):
        """Keras's test: a chain (one input per node, no shared layers, no branches)."""
        consumed = [id(t) for node in self._nodes for t in node.input_tensors]
        return (len(self._nodes) == len(self._layers) and len(consumed) == len(set(consumed))
                and all(len(node.input_tensors) <= 1 for node in self._nodes) and len(self.outputs) == 1)

    def summary(self, print_fn=None):
        """Keras 3's table: three columns for a chain, else with "Connected to" (Output Shape of each
        layer's first call)."""
        self._output_shapes = [la._inbound_nodes[0].output.shape for la in self._layers]
        text = _models.summary_text(self) if self._sequential_like() else _connected_summary(self)
        (print_fn or print)(text)


_WIDTHS4 = (21, 19, 12, 19)   # Keras 3's four columns on an 80-column console


def _row4(cells, sep="│"):
    wrapped = [_models._wrap(c, w - 2) for c, w in zip(cells, _WIDTHS4, strict=True)]
    out = []
    for i in range(max(len(w) for w in wrapped)):
        parts = []
        for j, (lines, w) in enumerate(zip(wrapped, _WIDTHS4, strict=True)):
            text = lines[i] if i < len(lines) else ""
            parts.append(" " + (text.rjust(w - 2) if j == 2 else text.ljust(w - 2)) + " ")
        out.append(sep + sep.join(parts) + sep)
    return out


def _connected_summary(model):
    nodes = {id(node) for node in model._nodes}

    def connections(layer):
        parts = [f"{t._keras_history[0].name}[{t._keras_history[1]}][{t._keras_history[2]}]"
                 for node in layer._inbound_nodes if id(node) in nodes for t in node.input_tensors]
        return ", ".join(parts) or "-"

    def rule(left, mid, right, fill):
        return left + mid.join(fill * w for w in _WIDTHS4) + right

    lines = [f'Model: "{model.name}"', rule("┏", "┳", "┓", "━")]
    lines += _row4(["Layer (type)", "Output Shape", "Param #", "Connected to"], sep="┃")
    lines.append(rule("┡", "╇", "┩", "━"))
    for i, layer in enumerate(model.layers):
        if i:
            lines.append(rule("├", "┼", "┤", "─"))
        shape = _models._format_shape(model._output_shapes[i])
        lines += _row4([f"{layer.name} ({type(layer).__name__})", shape, f"{layer.count_params():,}",
                        connections(layer)])
    lines.append(rule("└", "┴", "┘", "─"))
    table = _models.summary_text(model).split("\n")
    return "\n".join(lines + table[-3:])  # the totals, as for Sequential
