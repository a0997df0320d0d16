"""The machine's yardsticks: numpy's float32 sgemm rate (GFLOP/s) and memory copy bandwidth (GB/s),
measured by the same loop as everything else (`nbconv.reports.timing`, i.e. the tuner's).

Each is a median with its spread (IQR / median), cached per process and per (size, clock);
`fresh=True` measures again. Used by the report (header, % of peak), `nbconv bench --impls`
(% of sgemm, on the kernels' clock) and `nbconv tune` / `nbconv explain` (% peak).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import timing

QUICK = {"sgemm_n": 1024, "copy_mib": 64}
FULL = {"sgemm_n": 2048, "copy_mib": 256}


@dataclass(frozen=True)
class Yardstick:
    value: float        # GFLOP/s or GB/s at the median time
    spread: float       # IQR / median of the per-call times
    unit: str
    what: str
    samples: int

    def __str__(self):
        return f"{self.value:.1f} {self.unit} ±{100 * self.spread:.1f} % ({self.what})"


_cache: dict = {}


def _rate(key, work, make, clock, budget, what, unit, fresh):
    k = (key, clock)
    if fresh or k not in _cache:
        m = timing.measure_many({what: make}, timing.settings(budget=budget, min_sample_s=0.01),
                                timer=timing.timer(clock))[what]
        if m.status != timing.OK:
            raise RuntimeError(f"yardstick {what}: {m.reason}")
        _cache[k] = Yardstick(work / m.median_s / 1e9, m.spread, unit, what, len(m.samples))
    return _cache[k]


def sgemm(n: int = 2048, *, clock: str = "wall", budget: float = 1.0, fresh: bool = False) -> Yardstick:
    """numpy float32 n x n x n matrix product through its BLAS (2 n^3 flops per call)."""
    def make():
        rng = np.random.default_rng(0)
        a = rng.uniform(-1, 1, (n, n)).astype(np.float32)
        b = rng.uniform(-1, 1, (n, n)).astype(np.float32)
        c = np.empty((n, n), np.float32)
        return lambda: np.matmul(a, b, out=c)
    return _rate(("sgemm", n), 2.0 * n ** 3, make, clock, budget, f"numpy sgemm {n}^2", "GFLOP/s", fresh)


def copy(mib: int = 256, *, clock: str = "wall", budget: float = 1.0, fresh: bool = False) -> Yardstick:
    """np.copyto between two float32 arrays of `mib` MiB (bytes read + written per call)."""
    n = mib * 2 ** 20 // 4

    def make():
        src = np.random.default_rng(0).uniform(-1, 1, n).astype(np.float32)
        dst = np.empty_like(src)
        return lambda: np.copyto(dst, src)
    return _rate(("copy", mib), 2.0 * 4 * n, make, clock, budget, f"np.copyto {mib} MiB", "GB/s", fresh)


def sgemm_peak_gflops(n: int = 2048, clock: str = "wall") -> float:
    return sgemm(n, clock=clock).value


def copy_bandwidth_gbs(mib: int = 256, clock: str = "wall") -> float:
    return copy(mib, clock=clock).value


def measure_both(quick: bool = False, fresh: bool = False, budget: float | None = None) -> dict:
    """{'sgemm': Yardstick, 'copy': Yardstick} at the quick or full sizes."""
    size = QUICK if quick else FULL
    b = budget if budget is not None else (0.3 if quick else 1.0)
    return {"sgemm": sgemm(size["sgemm_n"], budget=b, fresh=fresh),
            "copy": copy(size["copy_mib"], budget=b, fresh=fresh)}
