"""Timing one candidate: the first (compiling) call apart, then adaptive repeats.

Every figure comes from the candidate's `timer(call, n)` (by default `perf_counter` with a
`sync()` before each clock read, so asynchronous work is counted where it is done; a device
can plug in its own, e.g. CUDA events).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .settings import Settings
from .stats import median, spread

MAX_INNER = 1 << 22

Timer = Callable[[Callable[[], Any], int], float]         # (call, n) -> seconds for n calls
Check = Callable[[Any], tuple[bool, float | None, str]]    # out -> (passed, error, note)

# statuses of a measurement; only "ok" can win. PRUNED: not measured, the cost model put it far
# behind the best estimate (`Settings.prune`)
OK, RAISED, WRONG, SKIPPED, PRUNED = "ok", "raised", "wrong", "skipped", "pruned"


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


def begin(make_call: Callable[[], Callable], m: Measurement, *, timer: Timer, check: Check,
          settings: Settings) -> Callable | None:
    """First call (timed apart as compile time, with `make_call()`, which may prepare data),
    verification, warm-up, and the doubling of inner repetitions until one sample lasts
    `min_sample_s` (that sample is the first kept).

    `make_call()` returns the zero-argument call to time; `timer(call, n)` returns the seconds n
    calls take. `check(out) -> (passed, error or None, note)` verifies the first call's output; a
    failed check means status WRONG. An exception anywhere means status RAISED. Both are never
    chosen. Returns the call when `m` is ready for more samples, else None.
    """
    try:
        box: list[Any] = []

        def first() -> None:
            box.append(make_call())
            box.append(box[0]())
        m.compile_s = timer(first, 1)
        call, out = box
    except Exception as e:
        m.status, m.reason = RAISED, f"first call raised {type(e).__name__}: {e}"
        return None
    try:
        passed, m.error, m.reason = check(out)
    except Exception as e:
        m.status, m.reason = RAISED, f"verification raised {type(e).__name__}: {e}"
        return None
    del out
    if not passed:
        m.status = WRONG
        return None
    try:
        timer(call, 1)                           # warm-up (caches, page faults)
        inner = 1
        t = timer(call, inner)
        while t < settings.min_sample_s and inner < MAX_INNER:
            inner *= 2
            t = timer(call, inner)
    except Exception as e:
        m.status, m.reason = RAISED, f"a timed call raised {type(e).__name__}: {e}"
        return None
    m.inner, m.samples = inner, [t / inner]
    return call


def wants_more(m: Measurement, spent: float, settings: Settings) -> bool:
    """Another sample? At least min_samples, at most max_samples, within the candidate budget
    (and, for very slow calls, three samples once three budgets are spent)."""
    n = len(m.samples)
    if n >= settings.max_samples:
        return False
    if n >= settings.min_samples and spent >= settings.candidate_budget_s:
        return False
    return not (n >= 3 and spent >= 3 * settings.candidate_budget_s)


def take_sample(call: Callable, m: Measurement, timer: Timer) -> float:
    """One more sample of m.inner calls; returns the seconds it took. Raises what call raises."""
    t = timer(call, m.inner)
    m.samples.append(t / m.inner)
    return t


def sample_round_robin(entries: Sequence[tuple[Callable, Measurement, Timer]], settings: Settings) -> None:
    """Take samples of several prepared candidates in turn, one sample each per round, so that
    load changing over time (other processes, frequency) hits all of them alike.

    entries: [(call, Measurement, timer)]. A candidate that raises is marked RAISED.
    """
    spent = [0.0] * len(entries)
    while True:
        active = [i for i, (_, m, _) in enumerate(entries)
                  if m.status == OK and wants_more(m, spent[i], settings)]
        if not active:
            return
        for i in active:
            call, m, timer = entries[i]
            try:
                spent[i] += take_sample(call, m, timer)
            except Exception as e:
                m.status, m.reason = RAISED, f"a timed call raised {type(e).__name__}: {e}"
                m.samples = []


def measure(call: Callable, m: Measurement, *, timer: Timer, check: Check, settings: Settings) -> Measurement:
    """Fill `m` by timing `call()` (a zero-argument closure over the real arrays) alone."""
    if begin(lambda: call, m, timer=timer, check=check, settings=settings) is not None:
        sample_round_robin([(call, m, timer)], settings)
    return m
