"""What heads the report: machine, thread counts, versions, date. No numba import here."""
from __future__ import annotations

import contextlib
import datetime
import os
import platform
from importlib import metadata

PACKAGES = ("nbconv", "numpy", "numba", "llvmlite", "scipy", "torch", "matplotlib", "pandas")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def threads() -> dict:
    """{'numba': n, 'blas': n}: from nbconv.threads.counts() when it exists."""
    try:
        from nbconv.threads import counts
        c = counts()
        if isinstance(c, dict):
            return {k: v for k, v in c.items()}
    except (ImportError, AttributeError):
        pass
    out = {"numba": int(os.environ.get("NUMBA_NUM_THREADS") or os.cpu_count() or 1)}
    try:
        from threadpoolctl import threadpool_info
        out["blas"] = max((i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"),
                          default=None)
    except ImportError:
        pass
    return out


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def describe() -> dict:
    return {
        "machine": f"{cpu_model()} ({os.cpu_count()} logical CPUs, {platform.system()} {platform.release()})",
        "threads": threads(),
        "versions": versions(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
