"""Layers called on CUDA device arrays: the input stays where it lives, and so does the output.

A conv, pooling or locally-connected layer given a numba device array, anything with
`__cuda_array_interface__` (CuPy, PyTorch CUDA tensors) or a CUDA `__dlpack__` array reads it in
place (no host copy), runs its "cuda" Problem's kernel and returns a numba `DeviceNDArray`; its
weights are uploaded once per weight arrays (the kernels' `prepare`, cached by nbconv.ops). Other
layers have no CUDA kernel and say so. numpy inputs never come here (Layer.__call__).
"""
from __future__ import annotations

from dataclasses import replace

from ..impls import cuda as nbcuda
from . import activations

_TWINS: dict = {}       # a host Problem -> the same Problem on device "cuda" (one object each)
_TWINS_MAX = 4096


def problem(p):
    """The "cuda" twin of a Problem (or of each Problem in a tuple), the same object every time
    (nbconv.ops' fast path is keyed on the Problem object)."""
    if isinstance(p, tuple):
        return tuple(problem(q) for q in p)
    if not hasattr(p, "device") or p.device == "cuda":
        return p
    twin = _TWINS.get(p)
    if twin is None:
        if len(_TWINS) >= _TWINS_MAX:
            _TWINS.clear()
        twin = _TWINS[p] = replace(p, device="cuda")
    return twin


def call(layer, inputs, args, kwargs):
    """`layer(inputs)` for a device input (Layer.__call__ sends it here)."""
    where = f"Input 0 of layer '{layer.name}'"
    if layer._on_device is None:
        raise TypeError(f"{where}: layer {type(layer).__name__} has no CUDA kernel and takes host "
                        "(numpy) arrays; got a CUDA device array (copy it to the host first, e.g. "
                        "with .copy_to_host() or .get())")
    cuda = nbcuda.arrays()
    name = activation_name(layer, where)
    x = cuda.layer_input(inputs, layer._np_dtype, where)
    if not layer._takes_training:
        kwargs.pop("training", None)
    shape = tuple(x.shape)              # a plain tuple (the simulator's refuses negative indices)
    if shape not in layer._seen_shapes:
        layer._first_seen(shape)
    if shape[0] == 0:
        return cuda.empty((0, *layer.compute_output_shape(shape)[1:]), layer._np_dtype)
    y = layer._on_device(x, shape, *args, **kwargs)
    return y if name is None else cuda.activate(y, name)


def activation_name(layer, where):
    """The layer's activation by name when it runs on the device (None: it has none), or why not."""
    fn = getattr(layer, "activation", None)
    if fn is None:
        return None
    name = activations.serialize(fn)
    if not isinstance(name, str) or name not in nbcuda.DEVICE_ACTIVATIONS:
        raise TypeError(f"{where}: activation {getattr(fn, '__name__', fn)!r} has no CUDA version "
                        f"(on the device: {', '.join(nbcuda.DEVICE_ACTIVATIONS)}); call the layer "
                        "with activation=None and apply it to the device output yourself")
    return name
