"""CUDA kernels on numba-cuda (the optional extra `cuda`); nothing here imports numba.cuda.

`load()` (called by `nbconv.impls`), where CUDA can run (numba-cuda and a driver are present,
or numba's simulator is on), registers the device description (`env.DEVICE_INFO["cuda"]`) and
imports the kernel modules, which register themselves for Problems of device "cuda". Without
numba-cuda or a GPU, `import nbconv` stays as fast as before: no numba.cuda import, no CUDA
kernel registered, and a "cuda" Problem is declined with the reason (`status()`), which
`nbconv explain` shows.
"""
from __future__ import annotations

import ctypes.util
import importlib
import os
from importlib import metadata

# one module per algorithm, each registering its kernels when imported
KERNEL_MODULES = ("direct_cuda", "pool_cuda", "local_cuda", "igemm_cuda", "tiled_cuda", "winograd_cuda")
ADAPTERS: dict = {}        # filled with "cuda" by load(): nbconv.ops reads it
DEVICE_ARRAYS = ("DeviceNDArray", "MappedNDArray", "FakeCUDAArray")   # numba's (and the simulator's)
DLPACK_CUDA = (2, 13)      # DLPack device types a kernel can read: CUDA, CUDA managed
# activations a layer applies on the device (arrays_cuda.activation_kernel's codes; -1: none)
DEVICE_ACTIVATIONS = {"linear": -1, "relu": 0, "relu6": 1, "sigmoid": 2, "tanh": 3, "silu": 4, "swish": 4}
_loaded: list = []
_status: list = []


def installed() -> bool:
    try:
        metadata.version("numba-cuda")
    except metadata.PackageNotFoundError:
        return False
    return True


def simulated() -> bool:
    """numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1 before numba was imported)."""
    import numba
    return bool(numba.config.ENABLE_CUDASIM)


def _driver_present() -> bool:
    """A cheap look for an NVIDIA driver, without importing numba.cuda."""
    return os.path.exists("/proc/driver/nvidia/version") or ctypes.util.find_library("cuda") is not None


def status():
    """True when the CUDA kernels can run here, else a string saying why not (cached)."""
    if not _status:
        if not installed():
            why = "numba-cuda is not installed (pip install 'nbconv[cuda]')"
        elif simulated():
            why = True
        elif not _driver_present():
            why = "no CUDA device: no NVIDIA driver found"
        else:
            runtime = importlib.import_module(".runtime_cuda", __name__)
            why = runtime.device_status()
        _status.append(why)
    return _status[0]


def describe() -> dict:
    """The "cuda" device's fingerprint entries (GPU name, compute capability, driver, numba-cuda)."""
    if status() is not True:
        return {"gpu": "none", "why": status()}
    return importlib.import_module(".runtime_cuda", __name__).describe()


def on_device(a) -> bool:
    """Whether `a` is an array in CUDA device memory: a numba device array, anything with
    `__cuda_array_interface__` (CuPy, PyTorch CUDA tensors) or with a CUDA `__dlpack_device__`.
    Looks only at attributes: numba.cuda is not imported."""
    if type(a).__name__ in DEVICE_ARRAYS:
        return True
    try:
        if hasattr(a, "__cuda_array_interface__"):
            return True
        probe = getattr(a, "__dlpack_device__", None)
        return probe is not None and int(probe()[0]) in DLPACK_CUDA
    except Exception:          # an object whose probe raises is not a device array we can read
        return False


def arrays():
    """The module turning device inputs into numba device arrays (`arrays_cuda`), where CUDA runs."""
    ok = status()
    if ok is not True:
        raise ValueError(f"a CUDA device array was given, but CUDA cannot run here: {ok}")
    return importlib.import_module(".arrays_cuda", __name__)


def load() -> None:
    """Register the device description and, where CUDA can run, the kernels (once)."""
    if _loaded:
        return
    _loaded.append(True)
    if installed() and (simulated() or _driver_present()):
        from ... import env
        env.DEVICE_INFO["cuda"] = describe
        runtime = importlib.import_module(".runtime_cuda", __name__)
        ADAPTERS["cuda"] = runtime.adapt
        for name in KERNEL_MODULES:
            importlib.import_module(f".{name}", __name__)
