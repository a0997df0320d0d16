"""The machine's tuning fingerprint.

It holds what changes which kernel is fastest: CPU model and a hash of its flags, core count,
Numba and BLAS thread counts, numba/llvmlite/numpy/scipy/Python versions. (The machine's
yardsticks, sgemm peak and copy bandwidth, are measured in `nbconv.reports.yardsticks`.)
"""
from __future__ import annotations

import hashlib
import os
import platform
import sys
from importlib import metadata

from . import knobs


def _cpuinfo() -> tuple[str, str]:
    """(model name, flags) from /proc/cpuinfo, or what `platform` knows."""
    model, flags = "", ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                name, _, value = line.partition(":")
                name = name.strip()
                if name == "model name" and not model:
                    model = value.strip()
                elif name in ("flags", "Features") and not flags:
                    flags = value.strip()
                if model and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def thread_counts() -> dict:
    """{'cores', 'numba', 'blas'}: from the thread policy module when present."""
    try:
        from . import threads
        return dict(threads.counts())
    except (ImportError, AttributeError):
        pass
    numba = sys.modules.get("numba")       # numba itself is imported only by nbconv.impls
    n_numba = numba.get_num_threads() if numba else int(os.environ.get("NUMBA_NUM_THREADS", 0) or
                                                          (os.cpu_count() or 1))
    try:
        from threadpoolctl import threadpool_info
        n_blas = max((i.get("num_threads", 1) for i in threadpool_info() if i.get("user_api") == "blas"),
                     default=1)
    except ImportError:
        n_blas = 0
    return {"cores": os.cpu_count() or 1, "numba": n_numba, "blas": n_blas}


# device name -> zero-argument callable adding that device's description (GPU name, compute
# capability, driver and library versions); a device's backend module registers its own.
DEVICE_INFO: dict = {}


def fingerprint(device: str = "cpu") -> dict:
    """The machine description every tuning row is keyed by (hashed by the tuner).

    A CPU problem's is the host's alone, so CPU rows stay valid when a GPU backend appears;
    another device's adds that device's own description."""
    info = _host()
    if device != "cpu":
        describe = DEVICE_INFO.get(device)
        if describe is None:
            raise ValueError(f"fingerprint: no backend describes device {device!r}; "
                             f"known: {['cpu', *sorted(DEVICE_INFO)]}")
        info = {**info, "device": device, **describe()}
    return info


def _host() -> dict:
    model, flags = _cpuinfo()
    t = thread_counts()
    return {
        "cpu": model,
        "cpu_flags": hashlib.sha256(" ".join(sorted(flags.split())).encode()).hexdigest()[:12],
        "arch": platform.machine(),
        "cores": t.get("cores"),
        "numba_threads": t.get("numba"),
        "blas_threads": t.get("blas"),
        "numba": _version("numba"),
        "llvmlite": _version("llvmlite"),
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "python": platform.python_version(),
        **({"extra": extra} if (extra := knobs.fingerprint_extra()) else {}),
    }
