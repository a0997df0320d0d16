"""Device arrays as layers take them, and what a layer does to its output where it lives.

A layer's input on the device (a numba device array, anything with `__cuda_array_interface__`
such as CuPy arrays and PyTorch CUDA tensors, or a `__dlpack__` array on a CUDA device) becomes a
numba device array viewing the same memory: no copy. Under numba's simulator "device" memory is
host memory, so a `__cuda_array_interface__` pointer is viewed in place the same way.
The activations a conv or locally-connected layer applies run here, in place on its fresh device
output: relu, relu6, sigmoid, tanh, silu (others are declined before anything runs).
"""
from __future__ import annotations

import ctypes
import math

import numpy as np
from numba import config, cuda, float32

from . import DEVICE_ACTIVATIONS, DLPACK_CUDA, on_device
from .runtime_cuda import is_device

DLPACK_NAMES = {1: "CPU", 2: "CUDA", 3: "CUDA host (pinned)", 13: "CUDA managed"}


def as_device(a, where: str):
    """A numba device array viewing `a`'s device memory (no copy); numba's own pass as they are."""
    if is_device(a):
        return a
    desc = getattr(a, "__cuda_array_interface__", None)
    owner = a
    if desc is None:
        desc, owner = dlpack_interface(a, where)
    if not config.ENABLE_CUDASIM:
        return cuda.from_cuda_array_interface(desc, owner=owner)
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
    view = FakeCUDAArray(_host_view(desc))
    view._nbconv_owner = owner          # keeps the memory's owner alive as long as the view
    return view


class _DLTensor(ctypes.Structure):
    """DLPack's DLTensor (dlpack.h), the head of the DLManagedTensor a "dltensor" capsule holds."""
    _fields_ = [("data", ctypes.c_void_p), ("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32),
                ("ndim", ctypes.c_int32), ("code", ctypes.c_uint8), ("bits", ctypes.c_uint8),
                ("lanes", ctypes.c_uint16), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


_GET_POINTER = ctypes.pythonapi.PyCapsule_GetPointer
_GET_POINTER.restype, _GET_POINTER.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
_DL_CODES = {0: "i", 1: "u", 2: "f"}


def dlpack_interface(a, where: str):
    """(`__cuda_array_interface__`-like description, owner) of a `__dlpack__` array on a CUDA device.

    The capsule is read, not consumed: it is the owner, and its producer frees the memory when it
    is collected (after the device array viewing it)."""
    kind = int(a.__dlpack_device__()[0])
    if kind not in DLPACK_CUDA:
        raise ValueError(f"{where}: a DLPack array on {DLPACK_NAMES.get(kind, f'device type {kind}')} "
                         "memory is not a CUDA device array")
    capsule = a.__dlpack__()
    try:
        device_type, desc = read_capsule(capsule)
    except ValueError as e:       # a used or versioned capsule: not one this reader takes
        raise ValueError(f"{where}: its __dlpack__() gave no fresh 'dltensor' capsule ({e})") from None
    if device_type not in DLPACK_CUDA:
        raise ValueError(f"{where}: its __dlpack_device__ says CUDA, but the DLPack capsule it exports "
                         f"holds {DLPACK_NAMES.get(device_type, f'device type {device_type}')} memory")
    if desc["typestr"] is None:
        raise TypeError(f"{where}: its DLPack dtype is not a plain int, uint or float type")
    return desc, capsule


def read_capsule(capsule):
    """(DLPack device type, `__cuda_array_interface__`-like description) of a "dltensor" capsule;
    the typestr is None for a dtype numpy has no name for."""
    t = _DLTensor.from_address(_GET_POINTER(capsule, b"dltensor"))
    plain = t.code in _DL_CODES and t.lanes == 1 and t.bits in (8, 16, 32, 64)
    itemsize = t.bits // 8
    shape = tuple(t.shape[i] for i in range(t.ndim))
    strides = None if not t.strides else tuple(t.strides[i] * itemsize for i in range(t.ndim))
    return t.device_type, {"shape": shape, "strides": strides,
                           "typestr": np.dtype(f"{_DL_CODES[t.code]}{itemsize}").str if plain else None,
                           "data": ((t.data or 0) + t.byte_offset, False), "version": 3}


def _host_view(desc) -> np.ndarray:
    """The simulator's device memory is host memory: a numpy view of the described buffer."""
    dtype, shape = np.dtype(desc["typestr"]), tuple(desc["shape"])
    strides = desc.get("strides")
    if math.prod(shape) == 0:
        return np.empty(shape, dtype)
    span = dtype.itemsize if strides else math.prod(shape) * dtype.itemsize
    if strides:
        span += sum((n - 1) * abs(s) for n, s in zip(shape, strides, strict=True))
    buffer = (ctypes.c_char * span).from_address(desc["data"][0])
    return np.ndarray(shape, dtype, buffer=buffer, strides=strides)


def layer_input(a, dtype, where: str):
    """A layer's device input, checked: the layer's dtype (float32), rank >= 1, C-contiguous."""
    if np.dtype(dtype) != np.float32:
        raise TypeError(f"{where}: CUDA kernels are float32; this layer's dtype is {np.dtype(dtype)}")
    x = as_device(a, where)
    if x.dtype != np.float32:
        raise TypeError(f"{where}: a CUDA device array must be float32 (nothing is cast on the "
                        f"device); got dtype={x.dtype}")
    if len(x.shape) == 0:
        raise ValueError(f"{where}: expected an array with a batch axis, found a scalar")
    if not x.is_c_contiguous():
        raise ValueError(f"{where}: a CUDA device array must be C-contiguous; got shape "
                         f"{tuple(x.shape)} with strides {tuple(x.strides)}")
    return x


def empty(shape, dtype):
    return cuda.device_array(tuple(shape), np.dtype(dtype))


@cuda.jit(fastmath=False)
def activation_kernel(y, kind):
    """In place on a flat float32 array; NaN stays NaN (as the NumPy activations)."""
    i = cuda.grid(1)
    if i >= y.size:
        return
    v = y[i]
    if kind == 0:
        if v < float32(0):
            v = float32(0)
    elif kind == 1:
        if v < float32(0):
            v = float32(0)
        elif v > float32(6):
            v = float32(6)
    elif kind == 2:
        v = float32(1) / (float32(1) + math.exp(-v))
    elif kind == 3:
        v = math.tanh(v)
    elif kind == 4:
        v = v / (float32(1) + math.exp(-v))
    y[i] = v


@cuda.jit(fastmath=False)
def nonfinite_kernel(y, flag):
    i = cuda.grid(1)
    if i < y.size and (math.isnan(y[i]) or math.isinf(y[i])):
        flag[0] = 1


def all_finite(y) -> bool:
    """No NaN/Inf in a device array, checked on the device: one int32 comes back, not the array."""
    flag = cuda.to_device(np.zeros(1, np.int32))
    if y.size:
        nonfinite_kernel[math.ceil(y.size / 256), 256](y.reshape(y.size), flag)
    return int(flag.copy_to_host()[0]) == 0


def activate(y, name: str):
    """y (a fresh device output) with the activation `name` applied in place."""
    kind = DEVICE_ACTIVATIONS[name]
    if kind >= 0 and y.size:
        flat = y.reshape(y.size)
        activation_kernel[math.ceil(y.size / 256), 256](flat, kind)
    return y


# -- what the tuner times, and what a numpy call adds -----------------------------------------
def resident(arrays):
    """The input on the device (a host input copied once), the weights as they are."""
    x = arrays[0]
    if is_device(x):
        return tuple(arrays)
    if on_device(x):
        return (as_device(x, "x"), *arrays[1:])
    return (cuda.to_device(np.ascontiguousarray(x, np.float32)), *arrays[1:])


def transfer_times(p, repeats: int = 5) -> dict:
    """Seconds (median of `repeats`, CUDA events) to copy a Problem's input from pageable host
    memory to the device and its output back: what a layer called with numpy arrays adds to the
    kernel's time. Meaningless under the simulator (None there)."""
    if config.ENABLE_CUDASIM:
        return {"copy_in_s": None, "copy_out_s": None}
    from .runtime_cuda import event_timer
    host_in = np.ones(p.input_shape, np.float32)
    dev_in = cuda.device_array(p.input_shape, np.float32)
    dev_out = cuda.device_array(p.output_shape, np.float32)
    host_out = np.empty(p.output_shape, np.float32)

    def median(call):
        call()                                  # warm-up (first-touch, pinning buffers)
        return float(np.median([event_timer(call, 1) for _ in range(repeats)]))
    return {"copy_in_s": median(lambda: dev_in.copy_to_device(host_in)),
            "copy_out_s": median(lambda: dev_out.copy_to_host(host_out))}
