"""The report's sweeps, as tidy rows (one dict per measured candidate).

- reference shapes: tuned through `nbconv.ops` (tuning writes the DB); each candidate's timings
  come from the tuner's stored samples when the tuner offers them (`source = tuner`), else they
  are measured here (`source = report`); the tuned layer path and PyTorch's conv2d are then
  timed in turns for the ratio (`source = report`);
- a kernel size x stride x layout sweep of every conv implementation at a small size;
- a pooling sweep (GB/s).
Everything measured here goes through `nbconv.reports.timing` (the tuner's loop) and is first checked
against the float64 reference; arguments come from `nbconv.ops.make_args`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import nbconv.ops
from nbconv.spec import make_problem

from . import timing, torch_anchor, tuning
from .candidates import measure_candidates as _measure

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

    def timing(self):
        return timing.settings(budget=self.budget)


def args_of(p):
    return nbconv.ops.make_args(p.op, p)


COLUMNS = ["section", "shape", "op", "rank", "layout", "layout_name", "batch", "c_in", "c_out", "groups",
           "kernel", "stride", "key", "impl", "config", "status", "median_s", "spread", "q1_s", "q3_s",
           "samples", "compile_s", "error", "reason", "flops", "bytes", "gflops", "gbps", "source", "chosen"]


def make_row(section, shape, p, impl, cfg, times, *, source, error=None, status="ok", chosen=False,
             compile_s=None, reason=""):
    times = list(times)
    med = timing.median(times) if times else float("nan")
    spread = timing.spread(times) if times else float("nan")
    q1, q3 = timing.quartiles(times)
    return {
        "section": section, "shape": shape, "op": p.op, "rank": p.rank, "layout": p.layout,
        "layout_name": p.layout_name, "batch": p.batch, "c_in": p.in_channels,
        "c_out": p.out_channels, "groups": p.groups, "kernel": p.kernel[0] if p.kernel else 0,
        "stride": p.strides[0] if p.strides else 0, "key": p.key(), "impl": impl,
        "config": json.dumps(cfg, sort_keys=True) if cfg is not None else "",
        "status": status, "median_s": med, "spread": spread, "q1_s": q1, "q3_s": q3, "samples": len(times),
        "compile_s": compile_s, "error": error, "reason": reason or "",
        "flops": p.flops(), "bytes": p.bytes(),
        "gflops": p.flops() / med / 1e9, "gbps": p.bytes() / med / 1e9, "source": source,
        "chosen": chosen, "times": times,          # the samples (not a CSV column): for the tie rule
    }


def measure_candidates(section, shape, p, args, s: Settings, configs="first"):
    """Rows for every applicable (impl, config) of p.op, verified and timed in turns here."""
    return [make_row(section, shape, p, impl.name, cfg, m.samples, source="report", error=m.error,
                     status=m.status, compile_s=m.compile_s, reason=m.reason)
            for impl, cfg, m in _measure(p, args, s.timing(), configs=configs)]


def decide_from_rows(rows):
    """Winner, runner-up (best other impl), margin and tie from measured rows (used when the
    tuner does not offer its decision). The tie is the tuner's rule (`timing.verdict`): the
    winner's samples are not significantly faster than the runner-up's by min_gain."""
    ok = sorted((r for r in rows if r["status"] == "ok" and r["samples"]), key=lambda r: r["median_s"])
    if not ok:
        return None
    w = ok[0]
    others = [r for r in ok[1:] if r["impl"] != w["impl"]]
    d = {"winner": w["impl"], "winner_config": w["config"], "winner_s": w["median_s"],
         "winner_spread": w["spread"], "runner_up": None, "runner_up_s": None, "runner_up_spread": None,
         "margin": None, "tie": False, "source": "report"}
    if others:
        r = others[0]
        a, b = (timing.Measurement(x["impl"], {}, "", samples=list(x["times"])) for x in (w, r))
        d.update(runner_up=r["impl"], runner_up_s=r["median_s"], runner_up_spread=r["spread"],
                 margin=r["median_s"] / w["median_s"] - 1.0, tie=timing.verdict(a, b) != "a")
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
            args = args_of(p)
            tune_s = tuning.tune(p, args)                  # first call: tunes (or loads the DB)
            recs = tuning.records(p)
            if recs is not None:
                cand = tuner_rows(name, p, recs)
                d = tuning.decision(p) or decide_from_rows(cand)
            else:
                cand = measure_candidates("reference", name, p, args, s, configs="all")
                d = decide_from_rows(cand)
            rows.extend(cand)
            # The tuned layer path and torch, timed in turns for the ratio.
            calls = {"nbconv (tuned)": lambda: nbconv.ops.run("conv", p, *args)}
            if s.torch:
                calls.update(torch_anchor.conv2d_calls(p, *args, s.threads))
            ms = timing.measure_many({k: (lambda f=f: f) for k, f in calls.items()}, s.timing())
            for label, m in ms.items():
                rows.append(make_row("reference", name, p, label, None, m.samples, source="report",
                                     status=m.status, reason=m.reason, chosen=label == "nbconv (tuned)"))
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
                                                   args_of(p), s))
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
                                                       args_of(p), s))
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
