"""Compile time of each registered implementation, as its own figure (never mixed into run time).

Each measurement runs in a fresh interpreter with an empty NUMBA_CACHE_DIR, so the first call
really compiles: compile time = first call - second call (both on the same small problem).
"""
import json
import os
import subprocess
import sys
import tempfile

from tuner import registry

from .common import NONE, check_applies, problem, tiny

OPS = ("conv", "maxpool", "avgpool", "local", "dense")

# Probe problems per op, most common first (op, rank, kernel, stride, layout): an impl is
# measured on the first one it applies to.
PROBES = {
    "conv": [(2, 3, 1, "channels_last"), (2, 1, 1, "channels_last"), (2, 3, 1, "channels_first"),
             (1, 3, 1, "channels_last"), (3, 3, 1, "channels_last")],
    "maxpool": [(2, 3, 2, "channels_last"), (2, 3, 2, "channels_first")],
    "avgpool": [(2, 3, 2, "channels_last"), (2, 3, 2, "channels_first")],
    "local": [(2, 3, 1, "channels_last"), (1, 3, 1, "channels_last")],
}

# Runs in the fresh interpreter: the problem travels as its key string.
CHILD = r"""
import json, sys, time
import numpy as np
import nbconv.ops
from nbconv.spec import problem_from_key
from tuner import registry
op, name, key = sys.argv[1:4]
p = problem_from_key(key)
impl = registry.get(op, name)
cfg = impl.configs_for(p)[0]
rng = np.random.default_rng(0)
shapes = [p.input_shape] + ([] if op in ("maxpool", "avgpool") else [p.weight_shape, p.bias_shape])
args = [rng.uniform(-1, 1, s).astype(p.dtype) for s in shapes]
t0 = time.perf_counter(); impl.fn(*args, p, **cfg); t1 = time.perf_counter()
impl.fn(*args, p, **cfg); t2 = time.perf_counter()
print(json.dumps({"first": t1 - t0, "second": t2 - t1}))
"""


def candidates():
    names = [f"{op}/{i.name}" for op in OPS for i in registry.impls(op)]
    return names or [NONE]


def probe_problem(op, rank, k, s, layout):
    side, c = (6, 4) if tiny() else (16, 16)
    return problem(op, rank, k, s, layout, batch=1, spatial=side, c_in=c, c_out=c,
                   padding="valid" if op == "local" else "same")


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
    """Seconds of Numba compilation on an implementation's first call (lower is better)."""
    params = [candidates()]
    param_names = ["impl"]
    unit = "seconds"
    rounds = 1
    repeat = 1
    timeout = 180

    def setup(self, cand):
        if cand == NONE:
            raise NotImplementedError("no implementation registered")
        self.op, self.name = cand.split("/", 1)
        self.p = probe_for(self.op, self.name)

    def track_compile(self, cand):
        with tempfile.TemporaryDirectory(prefix="nbconv-compile-") as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            res = subprocess.run([sys.executable, "-c", CHILD, self.op, self.name, self.p.key()],
                                 env=env, capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(f"compile probe for {cand} failed:\n{res.stderr[-2000:]}")
        t = json.loads(res.stdout.strip().splitlines()[-1])
        return max(t["first"] - t["second"], 0.0)
