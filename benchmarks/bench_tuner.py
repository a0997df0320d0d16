"""The tuner: cold tuning time of a shape, a decision read back from the database, and the
dispatch overhead of a decided layer call over calling the chosen kernel directly.

Cold tuning uses a fresh Tuner with an empty in-memory database and the knobs' settings (what
a user's first call of a new shape pays), with every candidate compiled beforehand: compile
time is its own benchmark (bench_compile)."""
import functools

import numpy as np
from nbconv.reports import timing
from nbconv.tuner import Tuner, TuningDB, Verifier, registry

import nbconv.ops
from nbconv import env, knobs, reference

from .common import arrays, problem, tiny


def tuned_problem():
    side, c = (6, 4) if tiny() else (16, 16)
    return problem("conv", 2, 3, 1, "channels_last", batch=1, spatial=side, c_in=c, c_out=c)


def fresh_tuner(db=None):
    settings = knobs.tuner_settings().with_(db=db or TuningDB(":memory:"))
    return Tuner(registry, Verifier(reference=reference.run), fingerprint=lambda p: env.fingerprint(),
                 settings=settings)


def compile_all(p, args):
    """Run every candidate once so the timed tuning measures no compilation."""
    for impl, cfg in registry.candidates(p.op, p):
        impl.fn(*args, p, **cfg)


@functools.cache
def filled_db(p):
    """A database holding p's decision (every candidate compiled on the way)."""
    args = arrays(p)
    compile_all(p, args)
    db = TuningDB(":memory:")
    fresh_tuner(db).select("conv", p, args)
    return db


class TuneShape:
    """time_cold: a new shape, nothing stored; time_db_hit: a new process's first call of a
    shape the database already holds (memory empty, decision read back, nothing measured)."""
    number = 1
    repeat = (2, 5, 20.0)
    warmup_time = 0
    rounds = 1
    timeout = 300

    def setup(self):
        self.p = tuned_problem()
        self.args = arrays(self.p)
        if len(registry.candidates("conv", self.p)) < 2:
            raise NotImplementedError("fewer than two candidates: nothing to tune")
        self.cold = fresh_tuner()
        self.warm = fresh_tuner(filled_db(self.p))

    def time_cold(self):
        self.cold.select("conv", self.p, self.args)

    def time_db_hit(self):
        self.warm.select("conv", self.p, self.args)


@functools.cache
def decided_call(is_tiny):
    """(p, x, w, b, direct): a tiny 1x1 conv decided through nbconv.ops, and its chosen kernel."""
    p = problem("conv", 2, 1, 1, "channels_last", batch=1, spatial=4, c_in=2, c_out=2)
    x, w, b = arrays(p)
    nbconv.ops.conv(x, w, b, p)                                   # decides (tunes) once
    d = nbconv.ops.decision("conv", p)
    direct = d.impl.bind((x, w, b), p, d.config)                 # its prepared data made once, as ops does
    direct()
    return p, x, w, b, direct


class Dispatch:
    """A decided layer call (nbconv.ops.conv) against the chosen kernel called directly on a
    tiny shape: the difference is the dispatch overhead (budget: 10 us). Calls take
    microseconds and asv times one call per sample here (setup re-runs before each), so both
    carry the same clock-read cost; track_overhead_us times batches of calls instead."""
    repeat = (20, 100, 1.0)
    rounds = 1

    def setup(self):
        decided_call(tiny())                  # tuning and compiling happen here, untimed

    def time_layer_dispatch(self):
        p, x, w, b, _ = decided_call(tiny())
        nbconv.ops.conv(x, w, b, p)

    def time_kernel_direct(self):
        decided_call(tiny())[4]()

    def track_overhead_us(self):
        """Median of (dispatch - direct) over samples taken in turns by the tuner's loop
        (nbconv.reports.timing), microseconds per call; round i of each is a pair."""
        p, x, w, b, direct = decided_call(tiny())
        n = 5 if tiny() else 15
        s = timing.exactly(n, min_sample_s=2e-4 if tiny() else 2e-3)
        ms = timing.measure_many({"layer": lambda: (lambda: nbconv.ops.conv(x, w, b, p)),
                                  "direct": lambda: direct}, s)
        diffs = np.subtract(ms["layer"].samples, ms["direct"].samples) * 1e6
        return max(float(np.median(diffs)), 0.0)

    track_overhead_us.unit = "us"
