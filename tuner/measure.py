"""Timing one candidate: the first (compiling) call apart, then adaptive repeats.

Every clock read is preceded by `sync()` (e.g. a device synchronise), so asynchronous work
is counted where it is done.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from .settings import Settings
from .stats import median, spread

MAX_INNER = 1 << 22

# statuses of a measurement; only "ok" can win
OK, RAISED, WRONG, SKIPPED = "ok", "raised", "wrong", "skipped"


@dataclass
class Measurement:
    impl: str
    config: dict
    source_hash: str
    status: str = OK
    reason: str = ""                 # why not ok; or a note (e.g. verification skipped)
    compile_s: float | None = None   # the first call, compile included; never among the samples
    samples: list = field(default_factory=list)   # seconds per call, one per outer sample
    inner: int = 0                   # calls per outer sample
    error: float | None = None       # verification error (None: not verified)

    @property
    def median_s(self) -> float | None:
        return median(self.samples) if self.samples else None

    @property
    def spread(self) -> float | None:
        return spread(self.samples) if self.samples else None


def _clock(sync):
    if sync is not None:
        sync()
    return time.perf_counter()


def _time_calls(call, n, sync) -> float:
    t0 = _clock(sync)
    for _ in range(n):
        call()
    return _clock(sync) - t0


def measure(call, m: Measurement, *, sync, check, settings: Settings) -> Measurement:
    """Fill `m` by timing `call()` (a zero-argument closure over the real arrays).

    `check(out) -> (passed, error or None, note)` verifies the first call's output; a failed
    check means status WRONG. An exception anywhere means status RAISED. Both are never chosen.
    """
    try:
        t0 = _clock(sync)
        out = call()
        m.compile_s = _clock(sync) - t0
    except Exception as e:
        m.status, m.reason = RAISED, f"first call raised {type(e).__name__}: {e}"
        return m
    try:
        passed, m.error, m.reason = check(out)
    except Exception as e:
        m.status, m.reason = RAISED, f"verification raised {type(e).__name__}: {e}"
        return m
    if not passed:
        m.status = WRONG
    del out
    if m.status != OK:
        return m
    try:
        call()                                   # warm-up (caches, page faults)
        inner = 1
        t = _time_calls(call, inner, sync)
        while t < settings.min_sample_s and inner < MAX_INNER:
            inner *= 2
            t = _time_calls(call, inner, sync)
        samples = [t / inner]
        start = time.perf_counter()
        while len(samples) < settings.max_samples:
            spent = time.perf_counter() - start
            if len(samples) >= settings.min_samples and spent >= settings.candidate_budget_s:
                break
            if len(samples) >= 3 and spent >= 3 * settings.candidate_budget_s:
                break                            # very slow calls: three samples are enough
            samples.append(_time_calls(call, inner, sync) / inner)
    except Exception as e:
        m.status, m.reason = RAISED, f"a timed call raised {type(e).__name__}: {e}"
        m.samples = []
        return m
    m.samples, m.inner = samples, inner
    return m
