"""What the CUDA kernels share: device probe and description, arrays, launch limits, the timer.

Arrays: a kernel given numpy arrays copies them to the device and its output back (numpy in,
numpy out); given a numba device array (or, through `adapt` and `arrays_cuda`, anything with
`__cuda_array_interface__` or a CUDA `__dlpack__`) it reads it in place and returns a numba
device array. Weights are uploaded by the kernels' `prepare`, which nbconv.ops caches per weight
arrays.
"""
from __future__ import annotations

import math
from importlib import metadata

import numpy as np
from numba import config, cuda

from ...spec import Problem

MAX_THREADS = 1024              # per block
MAX_SHARED = 48 * 1024          # static shared memory per block, bytes
TOLERANCE = 1e-5


def device_status():
    """True when numba.cuda sees a usable GPU, else why not."""
    try:
        if not cuda.is_available():
            return "no CUDA device: numba.cuda.is_available() is False"
    except Exception as e:   # a broken driver must not take `import nbconv` down
        return f"no CUDA device: {type(e).__name__}: {e}"
    return True


def describe() -> dict:
    version = metadata.version("numba-cuda")
    if config.ENABLE_CUDASIM:
        return {"gpu": "simulator", "compute_capability": "simulator", "driver": "simulator",
                "numba_cuda": version}
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    try:
        driver = str(cuda.cudadrv.driver.driver.get_version())
    except Exception:
        driver = "unknown"
    return {"gpu": name, "compute_capability": "{}.{}".format(*dev.compute_capability),
            "sms": int(dev.MULTIPROCESSOR_COUNT), "driver": driver, "numba_cuda": version}


# -- arrays ------------------------------------------------------------------------------------
def is_device(a) -> bool:
    """A numba device array (or the simulator's stand-in)."""
    from . import DEVICE_ARRAYS
    return type(a).__name__ in DEVICE_ARRAYS


def adapt(arrays):
    """nbconv.ops' adapter for device "cuda": foreign device arrays (`__cuda_array_interface__`,
    e.g. CuPy, PyTorch; CUDA `__dlpack__`) become numba device arrays without a copy; numpy arrays
    pass (the kernel copies them in and its output back)."""
    from . import on_device
    from .arrays_cuda import as_device
    return tuple(as_device(a, "array") if not is_device(a) and on_device(a) else a for a in arrays)


def to_device(a, shape, name: str):
    """(flat float32 device array, was on host)."""
    from . import on_device
    if not is_device(a) and on_device(a):
        from .arrays_cuda import as_device
        a = as_device(a, name)
    if is_device(a):
        if tuple(a.shape) != tuple(shape) or a.dtype != np.float32:
            raise ValueError(f"{name}: expected a float32 device array of shape {shape}; "
                             f"got {a.dtype} {tuple(a.shape)}")
        if not a.is_c_contiguous():
            raise ValueError(f"{name}: a device array must be C-contiguous; got strides {tuple(a.strides)}")
        return a.reshape(math.prod(shape)), False
    h = np.asarray(a)
    if h.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}; got {h.shape}")
    return cuda.to_device(np.ascontiguousarray(h, np.float32).reshape(-1)), True


def output(p: Problem):
    return cuda.device_array(math.prod(p.output_shape), np.float32)


def finish(out, p: Problem, host: bool):
    """The output in the Problem's shape, on the host when the input was."""
    if host:
        return out.copy_to_host().reshape(p.output_shape)
    return out.reshape(p.output_shape)


def upload_weights(w, b, p: Problem):
    """`prepare` of the direct kernels: the weights and bias as flat float32 device arrays."""
    return (to_device(w, p.weight_shape, "w")[0],
            to_device(b, p.bias_shape, "b")[0])


# -- what every CUDA kernel requires ---------------------------------------------------------
def applies_cuda(p: Problem):
    """True, or why a Problem is outside what every CUDA kernel serves."""
    if p.device != "cuda":
        return f"CUDA kernel: serves device 'cuda' Problems; this one is on {p.device!r}"
    from . import status
    ok = status()
    if ok is not True:
        return ok
    if p.dtype != "float32":
        return f"CUDA kernels are float32 only; got {p.dtype}"
    if not 1 <= p.rank <= 3:
        return f"rank must be 1, 2 or 3; got {p.rank}"
    if any(lo < 0 or hi < 0 for lo, hi in p.pads) or not p.valid():
        return f"pads must be >= 0 and the output non-empty; got {p.pads} -> {p.out_spatial}"
    if p.batch < 1 or p.in_channels < 1 or p.out_channels < 1:
        return "batch and channels must be >= 1"
    return True


def launch_check(threads: int, shared_bytes: int = 0):
    """True, or why a launch of this block would fail (checked before launch and in configs)."""
    if threads > MAX_THREADS:
        return f"{threads} threads per block > {MAX_THREADS}"
    if shared_bytes > MAX_SHARED:
        return f"{shared_bytes} bytes of static shared memory > {MAX_SHARED}"
    return True


def five(values, fill) -> tuple:
    values = tuple(values)
    return (fill,) * (3 - len(values)) + values


def geometry(p: Problem) -> tuple:
    """(D, H, W, OD, OH, OW, KD, KH, KW, SD, SH, SW, DD, DH, DW, PD, PH, PW) as ints, ranks 1-3
    seen as 3-D (size-1 leading axes); P* are the low pads."""
    return (*five(p.spatial, 1), *five(p.out_spatial, 1), *five(p.kernel, 1), *five(p.strides, 1),
            *five(p.dilation, 1), *five([lo for lo, _ in p.pads], 0))


@cuda.jit(device=True, inline="always")
def output_index(t, last, c_, OD, OH, OW):
    """(n, channel, od, oh, ow) of flat output index t in memory order (channels innermost for
    channels_last, width for channels_first): the one-thread-per-output kernels' decomposition.
    Inlined at Numba IR level: no call, and `cuda.compile_ptx` needs no driver for it."""
    c = 0
    if last:
        c = t % c_
        t //= c_
    ow = t % OW
    t //= OW
    oh = t % OH
    t //= OH
    od = t % OD
    t //= OD
    if not last:
        c = t % c_
        t //= c_
    return t, c, od, oh, ow


def event_timer(call, n: int) -> float:
    """The tuner's clock on a GPU: CUDA events around n calls (seconds)."""
    start, end = cuda.event(), cuda.event()
    cuda.synchronize()
    start.record()
    for _ in range(n):
        call()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3
