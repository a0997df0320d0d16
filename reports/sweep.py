"""The report's sweeps, as tidy rows (one dict per measured candidate).

- reference shapes: tuned through `nbconv.ops` (tuning writes the DB); each candidate's median
  comes from the tuner's stored timings when the tuner offers them, else it is measured here;
  the tuned layer path and PyTorch's conv2d are then timed back to back for the ratio;
- a kernel size x stride x layout sweep of every conv implementation at a small size;
- a pooling sweep (GB/s).
Every candidate measured here is first checked against the float64 reference.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

import nbconv.ops
from nbconv import reference
from nbconv.spec import make_problem
from tuner import registry

from . import torch_anchor, tuning
from .timing import measure, measure_interleaved, summary

KERNELS = (1, 3, 5, 7)
POOLS = (2, 3, 5, 7)
STRIDES = (1, 2)
LAYOUTS = ("channels_last", "channels_first")


@dataclass
class Settings:
    quick: bool = False
    tiny: bool = False            # test-sized problems (seconds, not minutes)
    torch: bool = True
    threads: int = 2
    budget: float = 1.0           # seconds of timing per candidate measured here
    batch: int | None = None      # overrides the reference shapes' batch
    shapes: str | None = None     # CSV of reference shapes (default: the package's own)
    sweep: bool = True            # False: measure nothing, read the tuning database only
    notes: list = field(default_factory=list)


def rand_args(p, seed=0):
    rng = np.random.default_rng(seed)

    def rand(shape):
        return rng.uniform(-1.0, 1.0, size=shape).astype(p.dtype)
    if p.op in ("maxpool", "avgpool"):
        return (rand(p.input_shape),)
    return rand(p.input_shape), rand(p.weight_shape), rand(p.bias_shape)


COLUMNS = ["section", "shape", "op", "rank", "layout", "layout_name", "batch", "c_in", "c_out", "groups",
           "kernel", "stride", "key", "impl", "config", "status", "median_s", "spread", "samples",
           "compile_s", "error", "reason", "flops", "bytes", "gflops", "gbps", "source", "chosen"]


def make_row(section, shape, p, impl, cfg, times, *, source, error=None, status="ok", chosen=False,
             compile_s=None, reason=""):
    med, spread = summary(times) if len(times) else (float("nan"), float("nan"))
    return {
        "section": section, "shape": shape, "op": p.op, "rank": p.rank, "layout": p.layout,
        "layout_name": p.layout_name, "batch": p.batch, "c_in": p.in_channels,
        "c_out": p.out_channels, "groups": p.groups, "kernel": p.kernel[0] if p.kernel else 0,
        "stride": p.strides[0] if p.strides else 0, "key": p.key(), "impl": impl,
        "config": json.dumps(cfg, sort_keys=True) if cfg is not None else "",
        "status": status, "median_s": med, "spread": spread, "samples": len(times),
        "compile_s": compile_s, "error": error, "reason": reason or "",
        "flops": p.flops(), "bytes": p.bytes(),
        "gflops": p.flops() / med / 1e9, "gbps": p.bytes() / med / 1e9, "source": source,
        "chosen": chosen,
    }


def measure_candidates(section, shape, p, args, budget, configs="first"):
    """Rows for every applicable (impl, config) of p.op, measured here and verified."""
    ref = reference.run(p.op, p, *args)
    rows = []
    for impl in registry.impls(p.op):
        ok, _ = impl.check(p)
        if not ok:
            continue
        cfgs = impl.configs_for(p)
        for cfg in cfgs[:1] if configs == "first" else cfgs:
            try:
                err = reference.rel_error(impl.fn(*args, p, **cfg), ref)
            except Exception as e:  # a raising candidate is reported, not fatal
                rows.append(make_row(section, shape, p, impl.name, cfg, [], source="report",
                                     status=f"raised {type(e).__name__}: {e}"))
                continue
            if not err <= impl.tolerance:
                rows.append(make_row(section, shape, p, impl.name, cfg, [], source="report", error=err,
                                     status=f"error {err:.2g} > tolerance {impl.tolerance:.2g}"))
                continue
            times = measure(lambda: impl.fn(*args, p, **cfg), budget=budget)
            rows.append(make_row(section, shape, p, impl.name, cfg, times, source="report", error=err))
    return rows


def decide_from_rows(rows):
    """Winner, runner-up (best other impl), margin and tie from measured rows (used when the
    tuner does not offer its decision): a tie when the margin is within the two spreads."""
    ok = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: r["median_s"])
    if not ok:
        return None
    w = ok[0]
    others = [r for r in ok[1:] if r["impl"] != w["impl"]]
    d = {"winner": w["impl"], "winner_config": w["config"], "winner_s": w["median_s"],
         "runner_up": None, "runner_up_s": None, "margin": None, "tie": False, "source": "report"}
    if others:
        r = others[0]
        margin = r["median_s"] / w["median_s"] - 1.0
        d.update(runner_up=r["impl"], runner_up_s=r["median_s"], margin=margin,
                 tie=bool(margin <= max(w["spread"], 0) + max(r["spread"], 0)))
    return d


def tuner_rows(name, p, recs):
    """Rows from the tuner's stored candidate records of a reference shape."""
    return [make_row("reference", name, p, r["impl"], r["config"], r["samples"], source="tuner",
                     error=r.get("error"), status=r["status"], compile_s=r.get("compile_s"),
                     reason=r.get("reason")) for r in recs]


def reference_tasks(s: Settings, rows, decisions):
    from nbconv.shapes import load_shapes
    shapes = load_shapes(s.shapes, batch=s.batch)
    if s.tiny:
        shapes = shapes[:3]

    for name, p in shapes:
        def task(name=name, p=p):
            if not s.sweep:                                # the database's view only
                rows.extend(tuner_rows(name, p, tuning.records(p) or []))
                d = tuning.decision(p)
                if d:
                    decisions.append({"shape": name, "key": p.key(), "tune_s": None, **d})
                return
            args = rand_args(p)
            tune_s = tuning.tune(p, args)                  # first call: tunes (or loads the DB)
            recs = tuning.records(p)
            if recs is not None:
                cand = tuner_rows(name, p, recs)
                d = tuning.decision(p) or decide_from_rows(cand)
            else:
                cand = measure_candidates("reference", name, p, args, s.budget, configs="all")
                d = decide_from_rows(cand)
            rows.extend(cand)
            # The tuned layer path and torch, timed in turns for the ratio.
            calls = {"nbconv (tuned)": lambda: nbconv.ops.run("conv", p, *args)}
            if s.torch:
                calls.update(torch_anchor.conv2d_calls(p, *args, s.threads))
            for label, t in measure_interleaved(calls, budget=s.budget).items():
                rows.append(make_row("reference", name, p, label, None, t, source="report",
                                     chosen=label == "nbconv (tuned)"))
            if d:
                decisions.append({"shape": name, "key": p.key(), "tune_s": tune_s, **d})
        yield task


def kernel_tasks(s: Settings, rows):
    n, side, c = (1, 8, 4) if s.tiny else (1, 28, 32) if s.quick else (1, 56, 64)
    kernels = (1, 3) if s.tiny else KERNELS
    for k in kernels:
        for st in STRIDES:
            for layout in LAYOUTS:
                shape = (n, side, side, c) if layout == "channels_last" else (n, c, side, side)
                p = make_problem("conv", shape, rank=2, kernel=(k, k), strides=(st, st), padding="same",
                                 out_channels=c, layout=layout)

                def task(p=p):
                    rows.extend(measure_candidates("kernel_sweep", f"conv2d_k{p.kernel[0]}", p,
                                                   rand_args(p), s.budget))
                yield task


def pool_tasks(s: Settings, rows):
    n, side, c = (1, 8, 4) if s.tiny else (2, 56, 64) if s.quick else (8, 56, 64)
    pools = (2, 3) if s.tiny else POOLS
    for op in ("maxpool", "avgpool"):
        for k in pools:
            for st in STRIDES:
                for layout in LAYOUTS:
                    shape = (n, side, side, c) if layout == "channels_last" else (n, c, side, side)
                    p = make_problem(op, shape, rank=2, kernel=(k, k), strides=(st, st),
                                     padding="same", layout=layout)

                    def task(p=p):
                        rows.extend(measure_candidates("pool_sweep", f"{p.op}2d_{p.kernel[0]}", p,
                                                       rand_args(p), s.budget))
                    yield task


def run_sweep(s: Settings, progress=True):
    """(rows, decisions): lists of dicts. Shows a tqdm progress bar when tqdm is installed."""
    rows, decisions = [], []
    tasks = list(reference_tasks(s, rows, decisions))
    if s.sweep:
        tasks += [*kernel_tasks(s, rows), *pool_tasks(s, rows)]
    try:
        from tqdm import tqdm
        it = tqdm(tasks, desc="nbconv report", unit="task", disable=not progress)
    except ImportError:
        it = tasks
    for task in it:
        task()
    return rows, decisions
