"""`nbconv report`: run the sweep, write results.csv, decisions.csv, figures/*.png, index.html."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import asv_results, families, figures, gpu, html, machine, sweep, timing, torch_anchor, yardsticks


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


def _pct(x):
    return 100 * x if x is not None and x == x else float("nan")


def reference_table(df, decisions, anchors):
    """Tuned nbconv against PyTorch per reference shape. Two sources, labelled: the tuned layer
    path timed now in turns with torch (`timed now`), and the tuner database's median of the
    winner (`tuner DB`, what tuning measured earlier). Ratio and verdict use the timed-now
    figures only (the tuner's significance rule)."""
    ref = df[(df.section == "reference") & (df.status == "ok")]
    shapes = list(dict.fromkeys(ref["shape"]))
    dec = {d["shape"]: d for d in decisions}
    out = []
    for shape in shapes:
        g = ref[ref["shape"] == shape]
        flops = float(g.flops.iloc[0])
        row = {"shape": shape, "winner (tuner DB)": dec.get(shape, {}).get("winner", "")}
        d = dec.get(shape, {})
        row["winner GFLOP/s (tuner DB)"] = flops / d["winner_s"] / 1e9 if d.get("winner_s") else np.nan
        row["± % (tuner DB)"] = _pct(d.get("winner_spread"))
        tuned = g[g.impl == "nbconv (tuned)"]
        nb = tuned.iloc[0] if len(tuned) else None
        row["tuned nbconv GFLOP/s (timed now)"] = nb.gflops if nb is not None else np.nan
        row["± % (now)"] = _pct(nb.spread) if nb is not None else np.nan
        row["% sgemm peak (timed now)"] = \
            100 * row["tuned nbconv GFLOP/s (timed now)"] / anchors["sgemm_gflops"]
        tr = g[g.impl.isin(figures.TORCH)]
        if len(tr) and nb is not None:
            t = tr.loc[tr.gflops.idxmax()]
            row["torch best format"] = t.impl.replace("torch ", "")
            row["torch GFLOP/s (timed now)"] = t.gflops
            row["torch ± % (now)"] = _pct(t.spread)
            row["ratio nbconv/torch"] = nb.gflops / t.gflops
            row["ratio range (IQRs)"] = f"{t.q1_s / nb.q3_s:.3g}–{t.q3_s / nb.q1_s:.3g}"
            v = timing.verdict(*(timing.Measurement("", {}, "", samples=list(x.times)) for x in (nb, t)))
            row["faster (tuner's rule)"] = {"a": "nbconv", "b": "torch", "tie": "tie"}[v]
            row["_lo"], row["_hi"] = t.q1_s / nb.q3_s, t.q3_s / nb.q1_s
        out.append(row)
    return pd.DataFrame(out)


def summary_tables(df, decisions, anchors):
    tables = {}
    t = reference_table(df, decisions, anchors) if "reference" in set(df.section) else pd.DataFrame()
    if not t.empty:
        bounds = t[["_lo", "_hi"]] if "_lo" in t.columns else None
        t = t.drop(columns=[c for c in ("_lo", "_hi") if c in t.columns])
        tables["Reference shapes: tuned nbconv against PyTorch (timed now = this run, in turns with "
               "torch; tuner DB = the tuning database's median of the winner)"] = t
        if "ratio nbconv/torch" in t.columns:
            ok = t["ratio nbconv/torch"].notna() & (t["ratio nbconv/torch"] > 0)
            r = t["ratio nbconv/torch"][ok]
            if len(r):
                lo, hi = bounds["_lo"][ok].astype(float), bounds["_hi"][ok].astype(float)
                verdicts = t["faster (tuner's rule)"][ok].value_counts()
                tables["Geometric mean of the ratio (timed now)"] = pd.DataFrame({
                    "shapes": [len(r)], "geomean nbconv/torch": [float(np.exp(np.log(r).mean()))],
                    "geomean over the IQR bounds": [f"{np.exp(np.log(lo).mean()):.3g}–"
                                                    f"{np.exp(np.log(hi).mean()):.3g}"],
                    "nbconv / tie / torch faster": [" / ".join(str(verdicts.get(k, 0))
                                                               for k in ("nbconv", "tie", "torch"))]})
    if decisions:
        d = pd.DataFrame(decisions)
        d["margin %"] = 100 * d["margin"].astype(float)
        for c in ("winner_spread", "runner_up_spread"):
            if c in d.columns:
                d[c.replace("_spread", " ± %")] = 100 * d[c].astype(float)
        cols = ["shape", "winner", "runner_up", "margin %", "tie", "winner_s", "winner ± %", "runner_up_s",
                "runner_up ± %", "tune_s", "source"]
        tables["Tuner decisions (winner, runner-up, margin = runner-up / winner - 1; tie = the tuner's "
               "rule; source: tuner = the tuning database, report = measured in this run)"] = \
            d[[c for c in cols if c in d.columns]]
    cand = df[(df.section == "reference") & ~df.impl.isin(["nbconv (tuned)", *figures.TORCH])]
    if not cand.empty:
        c = cand.assign(**{"± %": 100 * cand.spread})
        tables["Every candidate on the reference shapes (source: tuner = the tuning database, report = "
               "measured in this run)"] = c[
            ["shape", "impl", "config", "status", "median_s", "± %", "samples", "gflops", "pct_sgemm",
             "compile_s", "error", "reason", "source"]]
    pool = df[(df.section == "pool_sweep") & (df.status == "ok")]
    if not pool.empty:
        tables["Pooling (GB/s, % of copy bandwidth)"] = pool.assign(**{"± %": 100 * pool.spread})[
            ["op", "layout_name", "kernel", "stride", "impl", "gbps", "± %", "pct_copy"]]
    return tables


def anchors_of(ys: dict) -> dict:
    return {"sgemm_gflops": ys["sgemm"].value, "sgemm_spread": ys["sgemm"].spread,
            "sgemm_what": ys["sgemm"].what, "copy_gbps": ys["copy"].value, "copy_spread": ys["copy"].spread,
            "copy_what": ys["copy"].what, "source": "nbconv.reports.yardsticks"}


def load_now() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "n/a"


def page(figs: dict, tables: dict) -> list:
    """Page order: reference shapes (figures, then their tables), sweeps, every candidate."""
    order = [("figure", "reference_shapes"), ("figure", "peak_fraction"),
             ("table", "Reference shapes"), ("table", "Geometric mean"), ("table", "Layer families"),
             ("table", "Tuner decisions"),
             ("figure", "kernel_sweep"), ("figure", "pool_sweep"), ("table", "Pooling"),
             ("table", "Every candidate"), ("table", "GPU"), ("asv", "asv")]
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
    quick = a.quick or a.tiny
    before = yardsticks.measure_both(quick=quick, fresh=True)
    rows, decisions = sweep.run_sweep(s, progress=not a.no_progress)
    # a peak is what the machine can do: keep the better of a measurement before and after
    after = yardsticks.measure_both(quick=quick, fresh=True)
    anchors = anchors_of({k: max(before[k], after[k], key=lambda y: y.value) for k in before})
    df = pd.DataFrame(rows, columns=[*sweep.COLUMNS, "times"])
    if df.empty and (asv_df is None or asv_df.empty):
        print("nbconv report: nothing to report (nothing measured, stored or given)", file=sys.stderr)
        return 1
    df["pct_sgemm"] = 100 * df.gflops / anchors["sgemm_gflops"]
    df["pct_copy"] = 100 * df.gbps / anchors["copy_gbps"]
    df[sweep.COLUMNS + ["pct_sgemm", "pct_copy"]].to_csv(out / "results.csv", index=False)
    files = ["results.csv"]
    if decisions:
        pd.DataFrame(decisions).to_csv(out / "decisions.csv", index=False)
        files.append("decisions.csv")
    figs = figures.all_figures(df, anchors, out / "figures")
    tables = summary_tables(df, decisions, anchors)
    tables.update(gpu.from_database())             # only where a GPU was used: its "cuda" rows
    if s.torch and s.sweep:                        # every layer family against torch, both formats
        tables.update(families.report_tables(quick=a.quick, tiny=a.tiny, threads_n=s.threads))
    if asv_df is not None and not asv_df.empty:
        asv_df.to_csv(out / "asv_results.csv", index=False)
        files.append("asv_results.csv")
        for bench in sorted(b for b in asv_df.benchmark.unique() if b.endswith((".time_conv", ".time_pool",
                                                                                  ".time_local"))):
            path = figures.asv_times(asv_df, bench, asv_info, out / "figures" / f"asv_{bench}.png")
            if path:
                figs[f"asv:{bench}"] = path
        cols = ["benchmark", "params", "value", "q25", "q75", "unit"]
        tables[f"asv results (commit {asv_info['commit']}, {asv_info['env']}, {asv_info['date']}; "
               f"value = asv's median, q25–q75 its interquartile range)"] = \
            asv_df[[c for c in cols if c in asv_df.columns]]
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
