"""`nbconv report`: run the sweep, write results.csv, decisions.csv, figures/*.png, index.html."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import anchors as anchors_mod
from . import asv_results, figures, html, machine, sweep, torch_anchor


def parse(argv):
    ap = argparse.ArgumentParser(prog="nbconv report", description=__doc__)
    ap.add_argument("--quick", action="store_true",
                    help="the main job: tune the reference shapes, short timings, small sweeps (<10 min)")
    ap.add_argument("--out", default="report", help="output directory (default: report/)")
    ap.add_argument("--shapes", help="CSV of reference shapes (default: the package's own set)")
    ap.add_argument("--batch", type=int, help="override the reference shapes' batch size")
    ap.add_argument("--budget", type=float,
                    help="seconds of timing per candidate measured by the report (default 0.3 quick, 1.0)")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if installed")
    ap.add_argument("--tiny", action="store_true", help="test-sized problems (a smoke run in seconds)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--asv-results", metavar="DIR",
                    help="also show the newest saved asv run in DIR (e.g. .asv/results)")
    ap.add_argument("--no-sweep", action="store_true",
                    help="measure nothing: report the tuning database's timings of the reference shapes "
                         "(and --asv-results)")
    a = ap.parse_args(argv)
    if a.budget is not None and not a.budget > 0:
        ap.error(f"--budget must be > 0 seconds. Received: --budget {a.budget}")
    if a.batch is not None and a.batch < 1:
        ap.error(f"--batch must be >= 1. Received: --batch {a.batch}")
    return a


def summary_tables(df, decisions, anchors):
    tables = {}
    ref = df[(df.section == "reference") & (df.status == "ok")]
    if not ref.empty:
        best = ref.groupby(["shape", "impl"], sort=False).gflops.max().unstack()
        best = best.reindex(list(dict.fromkeys(ref["shape"])))
        t = pd.DataFrame({"shape": best.index})
        dec = {d["shape"]: d for d in decisions}
        t["winner"] = [dec.get(s, {}).get("winner", "") for s in best.index]
        tuned = best.get("nbconv (tuned)", pd.Series(np.nan, best.index))
        # without a timed layer call (--no-sweep), the stored winner's median stands in
        flops = ref.groupby("shape").flops.first()
        won = pd.Series({s: flops[s] / dec[s]["winner_s"] / 1e9 for s in best.index
                         if dec.get(s, {}).get("winner_s")}, dtype=float)
        t["nbconv GFLOP/s"] = tuned.fillna(won.reindex(best.index)).values
        t["% sgemm peak"] = 100 * t["nbconv GFLOP/s"] / anchors["sgemm_gflops"]
        torch_cols = [c for c in figures.TORCH if c in best.columns]
        if torch_cols:
            tb = best[torch_cols].max(axis=1)
            t["torch best"] = best[torch_cols].idxmax(axis=1).str.replace("torch ", "").values
            t["torch GFLOP/s"] = tb.values
            t["ratio nbconv/torch"] = t["nbconv GFLOP/s"].values / tb.values
        tables["Reference shapes: tuned nbconv against PyTorch"] = t
        if torch_cols:
            r = t["ratio nbconv/torch"].dropna()
            r = r[r > 0]
            if len(r):
                tables["Geometric mean of the ratio"] = pd.DataFrame(
                    {"shapes": [len(r)], "geomean nbconv/torch": [float(np.exp(np.log(r).mean()))]})
    if decisions:
        d = pd.DataFrame(decisions)
        d["margin %"] = 100 * d["margin"].astype(float)
        cols = ["shape", "winner", "runner_up", "margin %", "tie", "winner_s", "runner_up_s", "tune_s",
                "source"]
        tables["Tuner decisions (winner, runner-up, margin = runner-up / winner - 1)"] = \
            d[[c for c in cols if c in d.columns]]
    cand = df[(df.section == "reference") & ~df.impl.isin(["nbconv (tuned)", *figures.TORCH])]
    if not cand.empty:
        tables["Every candidate on the reference shapes"] = cand[
            ["shape", "impl", "config", "status", "median_s", "spread", "gflops", "pct_sgemm", "compile_s",
             "error", "reason", "source"]]
    pool = df[(df.section == "pool_sweep") & (df.status == "ok")]
    if not pool.empty:
        tables["Pooling (GB/s, % of copy bandwidth)"] = pool[
            ["op", "layout_name", "kernel", "stride", "impl", "gbps", "pct_copy"]]
    return tables


def load_now() -> str:
    try:
        return "%.1f" % os.getloadavg()[0]
    except OSError:
        return "n/a"


def page(figs: dict, tables: dict) -> list:
    """Page order: reference shapes (figures, then their tables), sweeps, every candidate."""
    order = [("figure", "reference_shapes"), ("figure", "peak_fraction"),
             ("table", "Reference shapes"), ("table", "Geometric mean"), ("table", "Tuner decisions"),
             ("figure", "kernel_sweep"), ("figure", "pool_sweep"), ("table", "Pooling"),
             ("table", "Every candidate"), ("asv", "asv")]
    out = []
    for kind, name in order:
        if kind == "figure" and name in figs:
            out.append(("figure", name, figs[name]))
        elif kind == "table":
            out += [("table", title, df) for title, df in tables.items() if title.startswith(name)]
        elif kind == "asv":
            out += [("figure", n, p) for n, p in figs.items() if n.startswith("asv:")]
            out += [("table", title, df) for title, df in tables.items() if title.startswith("asv")]
    return out


def main(argv=None) -> int:
    a = parse(sys.argv[1:] if argv is None else argv)
    t0 = time.perf_counter()
    load_before = load_now()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = machine.describe()
    s = sweep.Settings(quick=a.quick, tiny=a.tiny, shapes=a.shapes, batch=a.batch,
                       torch=not a.no_torch and torch_anchor.available(),
                       threads=int(meta["threads"].get("numba") or 2),
                       budget=a.budget or (0.3 if (a.quick or a.tiny) else 1.0), sweep=not a.no_sweep)
    notes = []
    if not s.torch:
        notes.append("PyTorch not measured (not installed, or --no-torch).")
    asv_df, asv_info = None, None
    if a.asv_results:                              # before measuring anything: fail fast
        try:
            asv_df, asv_info = asv_results.load(a.asv_results)
        except FileNotFoundError as e:
            print(f"nbconv report: {e}", file=sys.stderr)
            return 2
    anchors = anchors_mod.measure_anchors(quick=a.quick or a.tiny)
    rows, decisions = sweep.run_sweep(s, progress=not a.no_progress)
    # a peak is what the machine can do: keep the better of a measurement before and after
    again = anchors_mod.measure_anchors(quick=a.quick or a.tiny, fresh=True)
    anchors.update({k: max(anchors[k], again[k]) for k in ("sgemm_gflops", "copy_gbps")})
    df = pd.DataFrame(rows, columns=sweep.COLUMNS)
    if df.empty and (asv_df is None or asv_df.empty):
        print("nbconv report: nothing to report (nothing measured, stored or given)", file=sys.stderr)
        return 1
    df["pct_sgemm"] = 100 * df.gflops / anchors["sgemm_gflops"]
    df["pct_copy"] = 100 * df.gbps / anchors["copy_gbps"]
    df.to_csv(out / "results.csv", index=False)
    files = ["results.csv"]
    if decisions:
        pd.DataFrame(decisions).to_csv(out / "decisions.csv", index=False)
        files.append("decisions.csv")
    figs = figures.all_figures(df, anchors, out / "figures")
    tables = summary_tables(df, decisions, anchors)
    if asv_df is not None and not asv_df.empty:
        asv_df.to_csv(out / "asv_results.csv", index=False)
        files.append("asv_results.csv")
        for bench in sorted(b for b in asv_df.benchmark.unique() if b.endswith((".time_conv", ".time_pool",
                                                                                  ".time_local"))):
            path = figures.asv_times(asv_df, bench, asv_info, out / "figures" / f"asv_{bench}.png")
            if path:
                figs[f"asv:{bench}"] = path
        tables[f"asv results (commit {asv_info['commit']}, {asv_info['env']}, {asv_info['date']})"] = \
            asv_df[["benchmark", "params", "value", "unit"]]
    rel = {k: str(Path(v).relative_to(out)) for k, v in figs.items()}
    notes.append(f"Report generated in {time.perf_counter() - t0:.0f} s "
                 f"({'--quick' if a.quick else '--tiny' if a.tiny else 'full'} run).")
    notes.append(f"Load average {load_before} before and {load_now()} after the run, on "
                 f"{os.cpu_count()} logical CPUs: other work on the machine makes timings noisy; ratios "
                 "of candidates timed in turns (tuned nbconv against PyTorch) are the most robust figures.")
    (out / "index.html").write_text(html.render(meta, anchors, page(rel, tables), files, notes))
    print(f"nbconv report: wrote {out / 'index.html'} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
