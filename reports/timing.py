"""Wall-clock measurement for the report's own sweeps (never of a first, compiling call)."""
from __future__ import annotations

import time

import numpy as np


def measure(fn, *, min_sample=2e-3, samples=5, budget=1.0, sync=None):
    """Per-call seconds of fn(): one warm-up call, then the inner repetition count is doubled
    until one sample lasts `min_sample`, then up to `samples` samples within `budget` seconds.
    Returns the list of per-call times (at least one)."""
    sync = sync or (lambda: None)
    fn()                      # warm-up: may compile; never timed, not charged to the budget
    sync()
    t_start = time.perf_counter()
    inner = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        dt = time.perf_counter() - t0
        if dt >= min_sample or time.perf_counter() - t_start > budget:
            break
        inner *= 2
    out = [dt / inner]
    while len(out) < samples and time.perf_counter() - t_start < budget:
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        out.append((time.perf_counter() - t0) / inner)
    return out


def summary(times):
    """(median, spread) where spread is the interquartile range relative to the median."""
    t = np.asarray(times, float)
    med = float(np.median(t))
    q1, q3 = np.percentile(t, [25, 75])
    return med, float((q3 - q1) / med) if med > 0 else 0.0


def measure_interleaved(fns: dict, *, min_sample=2e-3, samples=5, budget=1.0) -> dict:
    """{label: per-call times} for several callables timed in turns (A B C A B C ...), so a
    change in machine load hits all of them alike: their ratio is what this is for.
    Each gets one warm-up call and its own inner repetition count (doubled to `min_sample`)."""
    inner = {}
    for label, fn in fns.items():
        fn()
        n = 1
        while True:
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            dt = time.perf_counter() - t0
            if dt >= min_sample or n >= 2 ** 20:
                break
            n *= 2
        inner[label] = n
    out = {label: [] for label in fns}
    t_start = time.perf_counter()
    while True:
        for label, fn in fns.items():
            n = inner[label]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            out[label].append((time.perf_counter() - t0) / n)
        done = len(next(iter(out.values())))
        if done >= samples or (done >= 3 and time.perf_counter() - t_start > budget * len(fns)):
            return out
