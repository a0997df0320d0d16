"""`nbconv bench`: the tuned layer path against PyTorch's CPU conv2d, interleaved in one run.

    nbconv bench --reference [--batch 1,8] [--only res3a_3x3,...] [--shapes my.csv] [--quick]
    nbconv bench --impls [--only ...]       # every registered (impl, config), GFLOP/s and % of sgemm
    nbconv bench --memory [--only ...]      # peak extra memory of the im2col path (nbconv.reports.memory)
    nbconv bench --families [--quick|--tiny] # every layer family, both data formats (nbconv.reports.families)
    nbconv bench --model my.keras | --networks all   # whole models (nbconv.reports.model_bench)

Per shape: nbconv's first call (tuning, compile) is never timed; then nbconv, torch NCHW and
torch channels_last are measured by the tuner's loop (nbconv.reports.timing: first call apart, one
warm-up, inner repetitions doubled until a sample lasts `--min-time`) and sampled in turns,
`--samples` samples each (wall clock; or, with `--clock cpu --threads 1`, the process's CPU
time, which a busy shared machine does not inflate). The median counts, ± is the IQR / median;
torch's better format counts; `verdict` is the tuner's significance rule (nbconv, torch or tie).
Both use `--threads` threads (Numba and BLAS through nbconv.threads, torch.set_num_threads).
nbconv runs in `--layout` (Keras's default, channels_last); torch gets the input already
padded when the padding is asymmetric (its conv2d pads symmetrically), in torch's favour.
"""
from __future__ import annotations

import argparse
import csv
import functools
import math
import sys

from nbconv import ops, threads
from nbconv.shapes import load_shapes
from nbconv.spec import make_problem

from . import timing, torch_anchor, yardsticks
from .candidates import measure_candidates

# Tiny shapes for smoke runs and tests (--quick): seconds, not minutes.
QUICK = [
    ("quick_3x3", dict(shape=(1, 10, 10, 8), kernel=(3, 3), out=8, strides=(1, 1), padding="same")),
    ("quick_1x1_s2", dict(shape=(1, 8, 8, 8), kernel=(1, 1), out=4, strides=(2, 2), padding="valid")),
    ("quick_dw", dict(shape=(1, 9, 9, 4), kernel=(3, 3), out=4, strides=(1, 1), padding="same",
                      groups=4)),
]


def _quick_shapes(batch, layout, dtype):
    out = []
    for name, d in QUICK:
        n, h, w, c = d["shape"]
        n = batch or n
        shape = (n, h, w, c) if layout == "channels_last" else (n, c, h, w)
        out.append((name, make_problem("conv", shape, rank=2, kernel=d["kernel"], strides=d["strides"],
                                       padding=d["padding"], out_channels=d["out"],
                                       groups=d.get("groups", 1), layout=layout, dtype=dtype)))
    return out


def _settings(args):
    """Exactly `--samples` samples per candidate, each lasting at least `--min-time`."""
    return timing.exactly(args.samples, min_sample_s=args.min_time)


def geomean(values):
    values = [v for v in values if v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


VERDICT = {"a": "nbconv", "b": "torch", "tie": "tie"}


def bench_reference(shapes, args, out=None):
    """Rows of {name, batch, impl, nbconv, torch, fmt, ratio, err, ...} (GFLOP/s) and the geomean."""
    out = out or sys.stdout
    rows = []
    clock = timing.timer(args.clock)
    print(f"{'shape':18s} {'N':>2s} {'nbconv impl':50s} {'nbconv':>8s} {'torch':>8s} {'fmt':>13s} "
          f"{'ratio':>6s} {'err':>8s} {'±nb%':>5s} {'±t%':>5s} {'verdict':>7s}", file=out, flush=True)
    for name, p in shapes:
        x, w, b = ops.make_args("conv", p, seed=0)
        y = ops.conv(x, w, b, p)                     # tunes and compiles: not timed
        impl = ops.decision("conv", p).name
        calls = {"nbconv": functools.partial(ops.conv, x, w, b, p)}
        calls.update(torch_anchor.conv2d_calls(p, x, w, b, args.threads))
        err = torch_anchor.rel_error(y, calls["torch NCHW"](), p)
        ms = timing.measure_many({k: (lambda f=f: f) for k, f in calls.items()}, _settings(args), timer=clock)
        bad = [f"{k}: {m.reason}" for k, m in ms.items() if m.status != timing.OK]
        if bad:
            raise RuntimeError(f"nbconv bench: {name}: " + "; ".join(bad))
        gf = {k: p.flops() / m.median_s / 1e9 for k, m in ms.items()}
        label = max(torch_anchor.FORMATS, key=lambda k: gf[k])
        fmt = torch_anchor.FORMATS[label]
        ratio = gf["nbconv"] / gf[label]
        verdict = VERDICT[timing.verdict(ms["nbconv"], ms[label])]
        row = dict(name=name, batch=p.batch, impl=impl, nbconv=gf["nbconv"], torch=gf[label],
                   fmt=fmt, torch_nchw=gf["torch NCHW"], torch_cl=gf["torch channels_last"], ratio=ratio,
                   err=err, nbconv_spread=ms["nbconv"].spread, torch_spread=ms[label].spread,
                   samples=len(ms["nbconv"].samples), verdict=verdict)
        rows.append(row)
        print(f"{name:18s} {p.batch:2d} {impl:50s} {gf['nbconv']:8.1f} {gf[label]:8.1f} {fmt:>13s} "
              f"{ratio:6.2f} {err:8.1e} {100 * row['nbconv_spread']:5.1f} {100 * row['torch_spread']:5.1f} "
              f"{verdict:>7s}", file=out, flush=True)
    gm = geomean([r["ratio"] for r in rows])
    print(f"geometric mean of ratios (nbconv / best torch) over {len(rows)} rows: {gm:.3f}",
          file=out, flush=True)
    return rows, gm


def bench_impls(shapes, args, out=None):
    """Every applicable (impl, config) per shape: GFLOP/s and % of the sgemm peak, both on one clock."""
    out = out or sys.stdout
    clock = timing.timer(args.clock)
    peak = yardsticks.sgemm(2048, clock=args.clock)
    print(f"sgemm peak (numpy, 2048^2, {threads.blas_threads()} BLAS threads, {args.clock} clock): "
          f"{peak.value:.1f} GFLOP/s ±{100 * peak.spread:.1f} %", file=out, flush=True)
    rows = []
    for name, p in shapes:
        x, w, b = ops.make_args("conv", p, seed=0)

        def skip(impl, p=p):                          # the naive fallback on huge shapes
            return bool(args.flops_cap and p.flops() > args.flops_cap and impl.priority <= 0)
        for impl, cfg, m in measure_candidates(p, (x, w, b), _settings(args), timer=clock, skip=skip):
            label = impl.name + ("" if not cfg else str(cfg))
            if m.status != timing.OK:
                print(f"{name:18s} {p.batch:2d} {label:60s} {m.status}: {m.reason}", file=out, flush=True)
                continue
            gf = p.flops() / m.median_s / 1e9
            rows.append(dict(name=name, batch=p.batch, impl=impl.name, config=cfg, gflops=gf,
                             spread=m.spread, peak_pct=100 * gf / peak.value))
            print(f"{name:18s} {p.batch:2d} {label:60s} {gf:8.1f} GFLOP/s ±{100 * m.spread:4.1f} % "
                  f"{100 * gf / peak.value:6.1f} %", file=out, flush=True)
    _targets(rows, shapes, peak.value, out)
    return rows, peak.value


def _targets(rows, shapes, peak, out):
    """The Winograd and %-of-peak targets, from the per-impl rows."""
    probs = {(n, p.batch): p for n, p in shapes}
    best = {}
    for r in rows:
        k = (r["name"], r["batch"])
        fam = "winograd_f4" if r["impl"].startswith("winograd_f4") else (
            "winograd" if r["impl"].startswith("winograd") else "other")
        best[k, fam] = max(best.get((k, fam), 0.0), r["gflops"])
    for (k, fam), v in sorted(best.items()):
        if fam != "winograd_f4":
            continue
        p = probs[k]
        if p.in_channels >= 64 and p.out_channels >= 64 and (k, "other") in best:
            print(f"target Winograd F(4x4): {k[0]} N={k[1]}: {v / best[k, 'other']:.2f}x the best "
                  f"direct/GEMM kernel (goal >= 1.5x)", file=out)
    for k in sorted({k for k, _ in best}):
        if k[0] in ("res3a_3x3", "vgg3x3_56_b8") and (k, "other") in best:
            print(f"target peak: {k[0]} N={k[1]}: best non-Winograd {best[k, 'other']:.1f} GFLOP/s = "
                  f"{100 * best[k, 'other'] / peak:.0f} % of sgemm (goal >= 60 %)", file=out)


def bench_plain(shapes, args, out=None):
    """The tuned layer path alone: GFLOP/s ± spread per shape."""
    out = out or sys.stdout
    rows = []
    for name, p in shapes:
        x, w, b = ops.make_args("conv", p, seed=0)
        ops.conv(x, w, b, p)                          # tunes and compiles: not timed
        m = timing.measure(functools.partial(ops.conv, x, w, b, p), _settings(args),
                           timer=timing.timer(args.clock))
        gf = p.flops() / m.median_s / 1e9
        rows.append(dict(name=name, batch=p.batch, impl=ops.decision("conv", p).name, nbconv=gf,
                         nbconv_spread=m.spread))
        print(f"{name:18s} {p.batch:2d} {rows[-1]['impl']:50s} {gf:8.1f} GFLOP/s ±{100 * m.spread:4.1f} %",
              file=out, flush=True)
    return rows


def _parse(argv):
    ap = argparse.ArgumentParser(prog="nbconv bench", description=__doc__.split("\n\nPer shape")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", action="store_true", help="compare with torch conv2d (needs torch)")
    ap.add_argument("--impls", action="store_true", help="time every registered impl and config")
    ap.add_argument("--shapes", help="CSV of shapes (default: the package's reference set)")
    ap.add_argument("--only", help="comma-separated shape names to keep")
    ap.add_argument("--quick", action="store_true", help="three tiny shapes (smoke test)")
    ap.add_argument("--batch", default="1,8", help="comma-separated batch sizes (default 1,8)")
    ap.add_argument("--layout", default="channels_last", choices=("channels_last", "channels_first"))
    timing.add_timing_args(ap, samples=7, min_time=0.02)
    ap.add_argument("--flops-cap", type=float, default=2e8,
                    help="--impls: skip priority-0 fallbacks above this many FLOPs")
    ap.add_argument("--memory", action="store_true",
                    help="peak extra memory of the im2col path per workspace cap (a process each)")
    ap.add_argument("--csv", help="write the rows to this CSV file")
    args = ap.parse_args(argv)
    timing.check_timing_args(ap, args)
    return args


def _shapes(args):
    out = []
    for b in (int(v) for v in args.batch.split(",")):
        if args.quick:
            got = _quick_shapes(b, args.layout, "float32")
        else:
            got = load_shapes(args.shapes, batch=b, layout=args.layout)
        out += [(n, p) for n, p in got if not args.only or n in args.only.split(",")]
    return out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--families" in argv:                     # every layer family against torch: its own options
        from . import families
        return families.main([a for a in argv if a != "--families"])
    args = _parse(argv)
    threads.set_threads(args.threads)
    shapes = _shapes(args)
    if not shapes:
        print("nbconv bench: no shapes selected", file=sys.stderr)
        return 2
    rows = []
    if args.memory:
        from . import memory
        rows = memory.bench_memory(shapes)
        args.reference = args.reference and not args.impls
        if not (args.reference or args.impls):
            return 0
    if args.impls:
        rows, _ = bench_impls(shapes, args)
    if args.reference:
        if not torch_anchor.available():
            print("nbconv bench --reference needs torch: pip install 'nbconv[anchors]'", file=sys.stderr)
            return 2
        rows, _ = bench_reference(shapes, args)
    elif not args.impls:
        rows = bench_plain(shapes, args)
    if args.csv and rows:
        with open(args.csv, "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(rows[0]))
            wr.writeheader()
            wr.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
