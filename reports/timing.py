"""The one timing loop, applied: every figure `reports/`, `benchmarks/` and `nbconv bench` show is
measured by the tuner's own loop (`nbconv.tuner.measure`: the first call timed apart as compile time,
verification, one warm-up call, inner repetitions doubled until a sample lasts `min_sample_s`,
then samples taken in turns), summarised by the tuner's statistics (median, IQR / median) and
compared by the tuner's significance rule (`nbconv.tuner.stats.faster` with `Settings()`'s alpha and
min_gain). Nothing here keeps a loop of its own.
"""
from __future__ import annotations

from nbconv.tuner import Measurement, Settings
from nbconv.tuner.measure import OK, begin, sample_round_robin
from nbconv.tuner.registry import process_timer, sync_timer
from nbconv.tuner.stats import faster, median, spread

__all__ = ["Measurement", "OK", "settings", "exactly", "timer", "measure", "measure_many", "verdict",
           "quartiles", "median", "spread", "TIE_RULE"]

TIE_RULE = Settings()        # alpha and min_gain of the tuner's rule: the one definition of a tie


def settings(*, budget: float = 1.0, min_sample_s: float = 2e-3, min_samples: int = 5,
             max_samples: int = 20) -> Settings:
    """The tuner's Settings for a measurement taken outside tuning: `budget` seconds of samples per
    candidate once `min_samples` are taken, at most `max_samples`."""
    return Settings(min_sample_s=min_sample_s, min_samples=min_samples,
                    max_samples=max(min_samples, max_samples), candidate_budget_s=budget)


def exactly(n: int, *, min_sample_s: float = 2e-3) -> Settings:
    """Settings for exactly `n` samples per candidate, whatever they cost (the tuner's budget rule
    stops at 3 samples once a budget is spent: here there is none)."""
    return Settings(min_sample_s=min_sample_s, min_samples=n, max_samples=n, candidate_budget_s=float("inf"))


def timer(clock: str = "wall", sync=None):
    """`timer(call, n) -> seconds`: the tuner's default (`perf_counter`, `sync()` around it) for
    "wall"; for "cpu" the process's CPU time (`time.process_time`), which a busy machine does not
    inflate (meaningful with one thread)."""
    if clock == "cpu":
        return process_timer(sync)
    if clock != "wall":
        raise ValueError(f"timer: clock must be 'wall' or 'cpu'. Received: {clock!r}")
    return sync_timer(sync)


def _unchecked(out):
    return True, None, ""


def measure_many(makers: dict, s: Settings, *, timer=None, check=None, timers=None) -> dict:
    """{label: Measurement} for several candidates timed in turns (A B C A B C ...), so load that
    changes over time hits them alike. `makers[label]()` returns the zero-argument call to time
    (it may prepare data; it runs inside the first, compile-timed call). `check(label)` returns
    the verification `check(out) -> (passed, error, note)` for a label (default: unverified);
    `timers[label]` overrides `timer` per label."""
    timer = timer or sync_timer()
    out, entries = {}, []
    for label, make in makers.items():
        m = out[label] = Measurement(str(label), {}, "")
        t = (timers or {}).get(label, timer)
        call = begin(make, m, timer=t, check=check(label) if check else _unchecked, settings=s)
        if call is not None:
            entries.append((call, m, t))
    sample_round_robin(entries, s)
    return out


def measure(call, s: Settings, *, timer=None) -> Measurement:
    """A Measurement of `call()` alone (its first call is the compile-timed one)."""
    return measure_many({"call": lambda: call}, s, timer=timer)["call"]


def verdict(a: Measurement, b: Measurement, rule: Settings = TIE_RULE) -> str:
    """'a', 'b' or 'tie': which is significantly faster by the tuner's rule (one-sided
    Mann-Whitney U at `rule.alpha`, by at least `rule.min_gain`)."""
    if not (a.samples and b.samples):
        return "tie"
    if faster(a.samples, b.samples, alpha=rule.alpha, min_gain=rule.min_gain)[0]:
        return "a"
    if faster(b.samples, a.samples, alpha=rule.alpha, min_gain=rule.min_gain)[0]:
        return "b"
    return "tie"


def quartiles(samples) -> tuple[float, float]:
    """(q1, q3) of seconds per call: the band the spread (IQR / median) describes."""
    import numpy as np
    if not len(samples):
        return float("nan"), float("nan")
    q1, q3 = np.percentile(np.asarray(samples, float), [25, 75])
    return float(q1), float(q3)


def add_timing_args(ap, *, samples: int, min_time: float) -> None:
    """The options every measuring command shares: --threads, --clock, --samples, --min-time."""
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                    help="cpu: CPU time of the process (needs --threads 1); robust on a busy machine")
    ap.add_argument("--samples", type=int, default=samples, help="interleaved samples per timing (median)")
    ap.add_argument("--min-time", type=float, default=min_time, help="seconds per sample, at least")


def check_timing_args(ap, a) -> None:
    """argparse errors for the options of `add_timing_args`."""
    if a.threads < 1:
        ap.error(f"--threads must be >= 1, got {a.threads}")
    if a.clock == "cpu" and a.threads != 1:
        ap.error("--clock cpu counts every thread's CPU time: use it with --threads 1")
    if a.samples < 1:
        ap.error(f"--samples must be >= 1, got {a.samples}")
    if not a.min_time >= 0:
        ap.error(f"--min-time must be >= 0, got {a.min_time}")
