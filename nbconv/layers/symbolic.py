"""Symbolic tensors: `Input()` returns one, and calling a layer on one records a node (Keras's
KerasTensor and Node, reduced to what a Functional model of single-output layers needs)."""
from __future__ import annotations


class KerasTensor:
    """A placeholder with a batch shape and dtype; `_keras_history` is (layer, node_index, 0)."""

    def __init__(self, shape, dtype, layer, node_index=0):
        self.shape = tuple(shape)
        self.dtype = dtype
        self._keras_history = (layer, node_index, 0)

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self._keras_history[0].name}>"


class Node:
    """One call of `layer`: its input tensors (nested as given), call kwargs and output tensor."""

    def __init__(self, layer, args, kwargs, output):
        self.layer, self.args, self.kwargs, self.output = layer, args, kwargs, output

    @property
    def input_tensors(self):
        return flatten(self.args)


def flatten(structure):
    if isinstance(structure, (list, tuple)):
        return [t for item in structure for t in flatten(item)]
    return [structure] if isinstance(structure, KerasTensor) else []


def any_symbolic(inputs):
    return bool(flatten(inputs))


def map_structure(fn, structure):
    if isinstance(structure, (list, tuple)):
        return type(structure)(map_structure(fn, s) for s in structure)
    return fn(structure) if isinstance(structure, KerasTensor) else structure


def _shapes(structure):
    if isinstance(structure, (list, tuple)):
        return [_shapes(s) for s in structure]
    return structure.shape


def symbolic_call(layer, inputs, kwargs):
    """Build the layer on the input shapes, record a node, return the output KerasTensor."""
    kwargs = {k: v for k, v in kwargs.items() if k not in ("training", "mask")}
    if kwargs:
        raise ValueError(f"Layer '{layer.name}': nbconv records no call arguments besides `training`. "
                         f"Received: {sorted(kwargs)}")
    shapes = _shapes(inputs)
    if not layer.built:
        layer.build(shapes)
    out_shape = tuple(layer.compute_output_shape(shapes))
    nodes = layer.__dict__.setdefault("_inbound_nodes", [])
    output = KerasTensor(out_shape, layer.dtype, layer, len(nodes))
    nodes.append(Node(layer, inputs, {}, output))
    return output
