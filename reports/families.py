"""`nbconv bench --families`: every layer family nbconv has, called as a user calls it (an
`nbconv.layers` layer, numpy in, numpy out), against the call a PyTorch CPU user would write,
interleaved in one run.

    nbconv bench --families [--quick | --tiny] [--only FAMILY_OR_CASE,...] [--batch 1,8]
                 [--formats channels_last,channels_first] [--threads 2] [--samples 5] [--csv FILE]

Per (case, data format, batch): the layer is built, its weights set to random values and called
once (that call tunes every new Problem and compiles: never timed); then the layer call and
torch's call in each memory format it has for that rank (contiguous, channels_last /
channels_last_3d) are measured by the tuner's loop (nbconv.reports.timing), sampled in turns
(wall clock; or, with `--clock cpu --threads 1`, the process's CPU time, which a busy shared
machine does not inflate).
torch gets its input already in channels-first order and in the memory format being timed (the
layout conversion is not charged to it); its better format counts. ratio = torch ms / nbconv ms
(> 1: nbconv is faster). err = max |nbconv - torch| / max |torch|. The cases are in
nbconv.reports.families_cases.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import defaultdict

import numpy as np

from nbconv import ops, threads

from . import families_cases, timing, torch_anchor

FORMATS = ("channels_last", "channels_first")
VERDICT = {"a": "nbconv", "b": "torch", "tie": "tie"}
HEADER = (f"{'family':18s} {'case':20s} {'format':14s} {'N':>2s} {'nbconv ms':>10s} {'torch ms':>10s} "
          f"{'t fmt':>6s} {'ratio':>6s} {'err':>8s} {'±nb%':>5s} {'±t%':>5s} {'verdict':>7s}  nbconv impl")


def geomean(values):
    values = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def select(*, quick=False, tiny=False, only=None):
    """The cases to run: all, the quick subset, or the tiny ones; `only` keeps families or names."""
    cases = families_cases.TINY if tiny else families_cases.CASES
    if quick and not tiny:
        cases = [c for c in cases if c.name in families_cases.QUICK]
    if only:
        keep = {v.strip() for v in only.split(",") if v.strip()}
        cases = [c for c in cases if c.name in keep or c.family in keep]
    return cases


def _torch_inputs(x, data_format):
    """{torch memory format label: channels-first tensor}: contiguous, and the channels-last
    memory format where torch has one for this rank."""
    import torch
    nc = x if data_format == "channels_first" else np.ascontiguousarray(np.moveaxis(x, -1, 1))
    xt = torch.from_numpy(nc)
    out = {"nchw": xt}
    if xt.dim() == 4:
        out["cl"] = xt.contiguous(memory_format=torch.channels_last)
    elif xt.dim() == 5:
        out["cl"] = xt.contiguous(memory_format=torch.channels_last_3d)
    return out


def _nc(y, data_format):
    return y if data_format == "channels_first" or y.ndim == 2 else np.moveaxis(y, -1, 1)


def _error(y, ref, align):
    ref = ref.detach().numpy()
    if align is not None:
        y, ref = y[align[0]], ref[align[1]]
    if y.shape != ref.shape:
        return float("inf")
    scale = max(float(np.abs(ref).max()), 1e-30)
    return float(np.abs(y - ref).max() / scale)


def run_case(case, data_format, batch, settings, seed=0, clock="wall"):
    """One row: the layer and torch's calls measured in turns."""
    import torch
    rng = np.random.default_rng(seed)
    layer = case.make(data_format)
    x = rng.uniform(-1, 1, case.input_shape(batch, data_format)).astype(np.float32)
    layer.build(x.shape)
    if layer.get_weights():
        layer.set_weights([rng.uniform(-1, 1, w.shape).astype(w.dtype) for w in layer.get_weights()])
    with ops.recording() as seen:                # tunes new Problems and compiles: not timed
        y = np.asarray(layer(x))
    impl = "+".join(ops.decision(op, p).name for op, p in seen)
    calls = {"nbconv": lambda: layer(x)}
    errs = []
    for fmt, xt in _torch_inputs(x, data_format).items():
        fn = torch_anchor.layer_call(layer, xt)
        with torch.no_grad():
            errs.append(_error(_nc(y, data_format), fn(), getattr(fn, "align", None)))

        def timed(fn=fn):
            with torch.no_grad():
                return fn()
        calls[f"torch {fmt}"] = timed
    ms = timing.measure_many({k: (lambda f=f: f) for k, f in calls.items()}, settings,
                             timer=timing.timer(clock))
    bad = [f"{k}: {m.reason}" for k, m in ms.items() if m.status != timing.OK]
    if bad:
        raise RuntimeError(f"nbconv bench --families: {case.family}/{case.name}: " + "; ".join(bad))
    best = min((k for k in ms if k != "nbconv"), key=lambda k: ms[k].median_s)
    nb, tb = ms["nbconv"], ms[best]
    return dict(family=case.family, case=case.name, format=data_format, batch=batch, impl=impl,
                nbconv_ms=1e3 * nb.median_s, torch_ms=1e3 * tb.median_s, torch_format=best[6:],
                ratio=tb.median_s / nb.median_s, err=max(errs), nbconv_spread=nb.spread,
                torch_spread=tb.spread, samples=len(nb.samples), verdict=VERDICT[timing.verdict(nb, tb)])


def format_row(r) -> str:
    return (f"{r['family']:18s} {r['case']:20s} {r['format']:14s} {r['batch']:2d} {r['nbconv_ms']:10.3f} "
            f"{r['torch_ms']:10.3f} {r['torch_format']:>6s} {r['ratio']:6.2f} {r['err']:8.1e} "
            f"{100 * r['nbconv_spread']:5.1f} {100 * r['torch_spread']:5.1f} {r['verdict']:>7s}  {r['impl']}")


def summary(rows):
    """[(family, format, cases, geomean, worst case, its ratio)]: per family and format, per family,
    per format and overall ('all')."""
    groups = defaultdict(list)
    for r in rows:
        for key in ((r["family"], r["format"]), (r["family"], "all"), ("all", r["format"]), ("all", "all")):
            groups[key].append(r)
    fams = list(dict.fromkeys(r["family"] for r in rows)) + ["all"]
    order = {f: i for i, f in enumerate(FORMATS + ("all",))}
    out = []
    for (fam, fmt), rs in sorted(groups.items(), key=lambda kv: (fams.index(kv[0][0]), order[kv[0][1]])):
        worst = min(rs, key=lambda r: r["ratio"])
        out.append(dict(family=fam, format=fmt, rows=len(rs), geomean=geomean([r["ratio"] for r in rs]),
                        worst=f"{worst['case']} {worst['format']} N={worst['batch']}",
                        worst_ratio=worst["ratio"]))
    return out


def bench_families(cases, formats, batches, settings, out=None, clock="wall"):
    out = out or sys.stdout
    print(HEADER, file=out, flush=True)
    rows = []
    for case in cases:
        for batch in batches:
            for fmt in formats:
                rows.append(run_case(case, fmt, batch, settings, clock=clock))
                print(format_row(rows[-1]), file=out, flush=True)
    print("\ngeometric mean of ratio = torch ms / nbconv ms (> 1: nbconv faster)", file=out)
    print(f"{'family':18s} {'format':14s} {'rows':>4s} {'geomean':>7s}  worst case", file=out)
    for s in summary(rows):
        print(f"{s['family']:18s} {s['format']:14s} {s['rows']:4d} {s['geomean']:7.3f}  {s['worst']} "
              f"({s['worst_ratio']:.2f})", file=out, flush=True)
    return rows


def parse(argv):
    ap = argparse.ArgumentParser(prog="nbconv bench --families", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one case per family")
    ap.add_argument("--tiny", action="store_true", help="test-sized cases (a smoke run)")
    ap.add_argument("--only", help="comma-separated families or case names to keep")
    ap.add_argument("--batch", default="1,8", help="comma-separated batch sizes (default 1,8)")
    ap.add_argument("--formats", default=",".join(FORMATS), help="data formats (default: both)")
    timing.add_timing_args(ap, samples=5, min_time=0.01)
    ap.add_argument("--csv", help="write the rows to this CSV file")
    a = ap.parse_args(argv)
    timing.check_timing_args(ap, a)
    a.formats = [f.strip() for f in a.formats.split(",") if f.strip()]
    if not a.formats or any(f not in FORMATS for f in a.formats):
        ap.error(f"--formats must name channels_last and/or channels_first, got {a.formats}")
    try:
        a.batch = [int(v) for v in a.batch.split(",")]
    except ValueError:
        ap.error(f"--batch must be comma-separated integers, got {a.batch!r}")
    if any(b < 1 for b in a.batch):
        ap.error(f"--batch sizes must be >= 1, got {a.batch}")
    return a


def main(argv=None) -> int:
    a = parse(sys.argv[1:] if argv is None else argv)
    if not torch_anchor.available():
        print("nbconv bench --families needs torch: pip install 'nbconv[anchors]'", file=sys.stderr)
        return 2
    cases = select(quick=a.quick, tiny=a.tiny, only=a.only)
    if not cases:
        print("nbconv bench --families: no cases selected", file=sys.stderr)
        return 2
    import torch
    threads.set_threads(a.threads)
    torch.set_num_threads(a.threads)
    rows = bench_families(cases, a.formats, a.batch, timing.exactly(a.samples, min_sample_s=a.min_time),
                          clock=a.clock)
    if a.csv and rows:
        with open(a.csv, "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(rows[0]))
            wr.writeheader()
            wr.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def report_tables(*, quick: bool, tiny: bool, threads_n: int) -> dict:
    """`nbconv report`'s section: {title: DataFrame} of the rows and the geomeans (all cases at
    batch 1 and 8; --quick: one case per family at batch 1; --tiny: the test-sized cases)."""
    import io

    import pandas as pd
    import torch
    torch.set_num_threads(threads_n)
    short = quick or tiny
    rows = bench_families(select(quick=quick, tiny=tiny), FORMATS, (1,) if short else (1, 8),
                          timing.exactly(3 if short else 5, min_sample_s=0.0 if tiny else 0.01),
                          out=io.StringIO())
    df = pd.DataFrame(rows).rename(columns={"nbconv_spread": "± nbconv", "torch_spread": "± torch"})
    return {"Layer families against PyTorch (ratio = torch ms / nbconv ms, > 1: nbconv faster; "
            "nbconv's layer call, numpy in and out, against torch's call in its better memory format, "
            "timed in turns; nbconv bench --families)": df,
            "Layer families: geometric mean of the ratio per family and data format":
                pd.DataFrame(summary(rows))}
