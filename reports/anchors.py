"""The machine's own yardsticks, measured in the same run as the sweep: sgemm peak (GFLOP/s)
and memory copy bandwidth (GB/s). Uses `nbconv.env` when it offers them, else measures here."""
from __future__ import annotations

import numpy as np

from .timing import measure


def sgemm_peak(n=2048, budget=2.0) -> float:
    """Best GFLOP/s of a float32 n x n matrix product through numpy's BLAS."""
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (n, n)).astype(np.float32)
    b = rng.uniform(-1, 1, (n, n)).astype(np.float32)
    c = np.empty((n, n), np.float32)
    t = min(measure(lambda: np.matmul(a, b, out=c), samples=7, budget=budget))
    return 2.0 * n ** 3 / t / 1e9


def copy_bandwidth(mib=256, budget=2.0) -> float:
    """Best GB/s of np.copyto between two arrays larger than the caches (read + write counted)."""
    n = mib * 2 ** 20 // 4
    src = np.random.default_rng(0).uniform(-1, 1, n).astype(np.float32)
    dst = np.empty_like(src)
    t = min(measure(lambda: np.copyto(dst, src), samples=7, budget=budget))
    return 2.0 * src.nbytes / t / 1e9


def measure_anchors(quick=False, fresh=False) -> dict:
    """{'sgemm_gflops', 'copy_gbps', 'source'}; prefers nbconv.env's measurement if it exists
    (cached per process there: `fresh` measures again)."""
    try:
        from nbconv import env
        peak_fn, bw_fn = env.sgemm_peak_gflops, env.copy_bandwidth_gbs
        if fresh:
            peak_fn, bw_fn = getattr(peak_fn, "__wrapped__", peak_fn), getattr(bw_fn, "__wrapped__", bw_fn)
        peak, bw = peak_fn(), bw_fn()
        return {"sgemm_gflops": float(peak), "copy_gbps": float(bw), "source": "nbconv.env"}
    except (ImportError, AttributeError):
        pass
    n, mib = (1024, 64) if quick else (2048, 256)
    return {"sgemm_gflops": sgemm_peak(n), "copy_gbps": copy_bandwidth(mib), "source": "reports.anchors"}
