"""`nbconv overhead`: the median per-call time of a decided layer call against the chosen kernel
called directly, with the tuner's loop (first call apart, warm-up, inner repetitions doubled to
2 ms, then samples in turns, so drift hits all alike and round i of each call is a pair).

    nbconv overhead [--input-shape 1,4,4,8] [--repeats 51]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from nbconv import layers, ops
from nbconv.commands import fmt, ints, table
from nbconv.spec import make_problem

from . import timing


def _parse(argv):
    ap = argparse.ArgumentParser(prog="nbconv overhead", description=__doc__.splitlines()[0])
    ap.add_argument("--input-shape", default="1,4,4,8", help="a tiny 1x1 conv input (default 1,4,4,8)")
    ap.add_argument("--repeats", type=int, default=51)
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {args.repeats}")
    return args


def main(argv=None) -> int:
    a = _parse(sys.argv[1:] if argv is None else argv)
    shape = ints(a.input_shape, "--input-shape")
    rank = len(shape) - 2
    if rank not in (1, 2, 3):
        raise SystemExit(f"nbconv: --input-shape must have 3 to 5 entries (batch first). Received: {shape}")
    p = make_problem("conv", shape, rank=rank, kernel=(1,) * rank, out_channels=shape[-1], dtype="float32")
    x, w, b = ops.make_args("conv", p)
    ops.conv(x, w, b, p)                           # tunes and compiles
    d = ops.decision("conv", p)
    direct = d.impl.bind((x, w, b), p, d.config)   # prepared data made here, as ops caches it
    calls = {"kernel called directly": direct, "nbconv.ops.conv": lambda: ops.conv(x, w, b, p)}
    layer = getattr(layers, f"Conv{rank}D")(shape[-1], 1)
    layer(x)                                       # builds; same Problem, so already decided
    calls[f"layers.Conv{rank}D(...)(x)"] = lambda: layer(x)
    ms = timing.measure_many({k: (lambda f=f: f) for k, f in calls.items()}, timing.exactly(a.repeats))
    bad = [f"{k}: {m.reason}" for k, m in ms.items() if m.status != timing.OK]
    if bad:
        raise SystemExit("nbconv overhead: " + "; ".join(bad))
    times = {name: m.samples for name, m in ms.items()}
    base = np.array(times["kernel called directly"])
    print(f"problem: {p.key()}  chosen: {d.name}")
    print(f"median of {a.repeats} interleaved samples, each of >= 2 ms of calls (the tuner's loop)")
    rows = []
    for name, t in times.items():
        t = np.array(t)
        extra = "" if name == "kernel called directly" else fmt(float(np.median(t - base)) * 1e6, ".2f")
        rows.append([name, fmt(float(np.median(t)) * 1e6, ".2f"), extra])
    table(["call", "us/call", "dispatch overhead us (median paired difference)"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
