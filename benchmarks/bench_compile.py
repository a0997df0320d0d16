"""Compile time of each registered implementation, as its own figure (never mixed into run time).

Measured in a fresh interpreter with an empty NUMBA_CACHE_DIR, so the first call really
compiles: compile time = first call - second call (both on the same small problem).
"""
import json
import os
import subprocess
import sys
import tempfile

from nbconv.tuner import registry

from .common import NONE, check_applies, problem, tiny

OPS = ("conv", "maxpool", "avgpool", "local", "dense")

# Probe problems per op, most common first (rank, kernel, stride, layout[, depthwise]): an impl
# is measured on the first one it applies to.
PROBES = {
    "conv": [(2, 3, 1, "channels_last"), (2, 1, 1, "channels_last"), (2, 3, 1, "channels_first"),
             (1, 3, 1, "channels_last"), (3, 3, 1, "channels_last"), (2, 3, 1, "channels_last", True),
             (2, 3, 1, "channels_first", True)],
    "maxpool": [(2, 3, 2, "channels_last"), (2, 3, 2, "channels_first")],
    "avgpool": [(2, 3, 2, "channels_last"), (2, 3, 2, "channels_first")],
    "local": [(2, 3, 1, "channels_last"), (1, 3, 1, "channels_last")],
}

# Runs in the fresh interpreter: problems travel as key strings. Numba's own one-time start-up
# (registries, LLVM) is paid on a trivial function first so it is charged to no impl.
CHILD = r"""
import json, sys, time
from numba import njit
njit(lambda a: a + 1)(1)
import nbconv.ops
from nbconv.spec import problem_from_key
from nbconv.tuner import registry
out = {}
for cand, key in json.loads(sys.stdin.read()).items():
    op, name = cand.split("/", 1)
    p = problem_from_key(key)
    impl = registry.get(op, name)
    cfg = impl.configs_for(p)[0]
    args = nbconv.ops.make_args(op, p)
    t0 = time.perf_counter(); impl.fn(*args, p, **cfg); t1 = time.perf_counter()
    impl.fn(*args, p, **cfg); t2 = time.perf_counter()
    out[cand] = max((t1 - t0) - (t2 - t1), 0.0)
print(json.dumps(out))
"""


def compile_times(probes: dict) -> dict:
    """{"op/impl": seconds} from one fresh interpreter with an empty Numba cache."""
    with tempfile.TemporaryDirectory(prefix="nbconv-compile-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        res = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(probes), env=env,
                             capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"compile probe failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def candidates():
    names = [f"{op}/{i.name}" for op in OPS for i in registry.impls(op)]
    return names or [NONE]


def probe_problem(op, rank, k, s, layout, depthwise=False):
    side, c = (6, 4) if tiny() else (16, 16)
    return problem(op, rank, k, s, layout, batch=1, spatial=side, c_in=c, c_out=c,
                   padding="valid" if op == "local" else "same", groups=c if depthwise else 1)


def probe_for(op, name):
    """The first probe Problem the impl applies to."""
    if op == "dense":
        from nbconv.spec import Problem
        size = 8 if tiny() else 256
        probes = [Problem(op="dense", rank=0, batch=size, in_channels=size, out_channels=size)]
    else:
        probes = [probe_problem(op, *pr) for pr in PROBES.get(op, [])]
    reasons = []
    for p in probes:
        try:
            check_applies(op, name, p)
            return p
        except NotImplementedError as e:
            reasons.append(str(e))
    raise NotImplementedError("; ".join(reasons) or f"no probe problem for op {op}")


class Compile:
    """Seconds of Numba compilation on an implementation's first call (lower is better).

    All impls are compiled once, in order, in one fresh interpreter (setup_cache), to keep the
    suite fast: a helper two impls share is charged to the first of them. With
    NBCONV_BENCH_TINY only the first impl is compiled."""
    params = [candidates()]
    param_names = ["impl"]
    unit = "seconds"
    rounds = 1
    repeat = 1
    timeout = 300

    def setup_cache(self):
        probes = {}
        for cand in candidates():
            if cand != NONE:
                op, name = cand.split("/", 1)
                try:
                    probes[cand] = probe_for(op, name).key()
                except NotImplementedError:
                    continue
                if tiny():                          # the test run: one impl is enough
                    break
        return compile_times(probes) if probes else {}

    def setup(self, times, cand):
        if cand == NONE:
            raise NotImplementedError("no implementation registered")
        if cand not in times:
            op, name = cand.split("/", 1)
            probe_for(op, name)                     # raises NotImplementedError saying why
            raise NotImplementedError(f"{cand} was not measured")

    def track_compile(self, times, cand):
        return times[cand]
