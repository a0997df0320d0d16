"""`nbconv bench`: the tuned layer path against PyTorch's CPU conv2d, interleaved in one run.

    nbconv bench --reference [--batch 1,8] [--only res3a_3x3,...] [--shapes my.csv] [--quick]
    nbconv bench --impls [--only ...]       # every registered (impl, config), GFLOP/s and % of sgemm

Per shape: nbconv is warmed up first (tuning and compile excluded), torch in both memory formats
(NCHW and channels_last) likewise; then `--samples` rounds each time nbconv, torch NCHW and torch
channels_last one after the other, each sample repeating the call until it lasts `--min-time`
(wall clock; or, with `--clock cpu --threads 1`, the process's CPU time, which a busy shared
machine does not inflate). The median sample counts; torch's better format counts. Both use
`--threads` threads (Numba and BLAS through nbconv.threads, torch.set_num_threads). nbconv runs
in `--layout` (Keras's default, channels_last); torch gets the input already padded when the
padding is asymmetric (its conv2d pads symmetrically), which is in torch's favour. torch is
imported lazily, here only.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time

import numpy as np

from . import ops, threads
from .shapes import load_shapes
from .spec import make_problem

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


# perf_counter (wall) by default; process_time (CPU seconds of this process) with --clock cpu,
# which with one thread is immune to time slices lost to other processes on a shared machine.
_clock = time.perf_counter


def _sample(fn, min_time):
    """Seconds per call: repeat until the sample lasts min_time (the first call is never timed here)."""
    reps, total = 0, 0.0
    t0 = _clock()
    while True:
        fn()
        reps += 1
        total = _clock() - t0
        if total >= min_time:
            return total / reps


def _median(fn, samples, min_time):
    return statistics.median(_sample(fn, min_time) for _ in range(samples))


def _to_nchw(x, p):
    return x if not p.channels_last else np.ascontiguousarray(np.moveaxis(x, -1, 1))


class _Torch:
    """torch.nn.functional.conv2d on a Problem, in NCHW and channels_last memory formats."""

    def __init__(self, p, x, w, b, n_threads):
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(n_threads)
        self.torch = torch
        xt = torch.from_numpy(_to_nchw(x, p))
        (t, bo), (l, r) = p.pads
        if t != bo or l != r:
            xt = F.pad(xt, (l, r, t, bo))
            pad = (0, 0)
        else:
            pad = (t, l)
        wt = torch.from_numpy(np.ascontiguousarray(np.transpose(w, (3, 2, 0, 1))))
        bt = torch.from_numpy(b)
        cl = torch.channels_last
        self.calls = {
            "nchw": (xt.contiguous(), wt.contiguous()),
            "channels_last": (xt.contiguous(memory_format=cl), wt.contiguous(memory_format=cl)),
        }
        self.args = dict(bias=bt, stride=p.strides, padding=pad, dilation=p.dilation, groups=p.groups)
        self.F = F

    def fn(self, fmt):
        xt, wt = self.calls[fmt]
        F, args = self.F, self.args

        def run():
            with self.torch.no_grad():
                return F.conv2d(xt, wt, **args)
        return run


def _rel_err(y_nb, y_torch, p):
    ref = y_torch.detach().numpy()
    y = _to_nchw(y_nb, p)
    scale = max(float(np.abs(ref).max()), 1e-30)
    return float(np.abs(y - ref).max() / scale)


def bench_reference(shapes, args, out=None):
    """Rows of {name, batch, impl, nbconv, torch, fmt, ratio, err} (GFLOP/s) and the geomean."""
    out = out or sys.stdout
    rows = []
    print(f"{'shape':18s} {'N':>2s} {'nbconv impl':50s} {'nbconv':>8s} {'torch':>8s} {'fmt':>13s} "
          f"{'ratio':>6s} {'err':>8s}", file=out, flush=True)
    for name, p in shapes:
        x, w, b = ops.make_args("conv", p, seed=0)
        y = ops.conv(x, w, b, p)                     # tunes and compiles: not timed
        ops.conv(x, w, b, p)
        impl = ops.decision("conv", p).name
        tt = _Torch(p, x, w, b, args.threads)
        fns = {"nbconv": lambda: ops.conv(x, w, b, p)}
        for fmt in ("nchw", "channels_last"):
            fns[fmt] = tt.fn(fmt)
            for _ in range(2):
                fns[fmt]()
        err = _rel_err(y, fns["nchw"](), p)
        samples = {k: [] for k in fns}
        for _ in range(args.samples):                # interleaved: noise hits all three alike
            for k, fn in fns.items():
                samples[k].append(_sample(fn, args.min_time))
        med = {k: statistics.median(v) for k, v in samples.items()}
        gf = {k: p.flops() / v / 1e9 for k, v in med.items()}
        fmt = max(("nchw", "channels_last"), key=lambda k: gf[k])
        ratio = gf["nbconv"] / gf[fmt]
        row = dict(name=name, batch=p.batch, impl=impl, nbconv=gf["nbconv"], torch=gf[fmt],
                   fmt=fmt, torch_nchw=gf["nchw"], torch_cl=gf["channels_last"], ratio=ratio, err=err)
        rows.append(row)
        print(f"{name:18s} {p.batch:2d} {impl:50s} {gf['nbconv']:8.1f} {gf[fmt]:8.1f} {fmt:>13s} "
              f"{ratio:6.2f} {err:8.1e}", file=out, flush=True)
    gm = geomean([r["ratio"] for r in rows])
    print(f"geometric mean of ratios (nbconv / best torch) over {len(rows)} rows: {gm:.3f}",
          file=out, flush=True)
    return rows, gm


def geomean(values):
    values = [v for v in values if v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def bench_impls(shapes, args, out=None):
    """Every applicable (impl, config) per shape: GFLOP/s and % of the measured sgemm peak."""
    out = out or sys.stdout
    from tuner.registry import registry

    from . import env

    if _clock is time.perf_counter:
        peak = env.sgemm_peak_gflops()
    else:                                             # the same clock as the kernels' timings
        a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
        c = np.empty_like(a)
        np.matmul(a, a, out=c)
        peak = 2 * 2048 ** 3 / 1e9 / min(_sample(lambda: np.matmul(a, a, out=c), 0.2) for _ in range(3))
    print(f"sgemm peak (numpy, 2048^2, {threads.blas_threads()} BLAS threads): {peak:.1f} GFLOP/s",
          file=out, flush=True)
    rows = []
    for name, p in shapes:
        x, w, b = ops.make_args("conv", p, seed=0)
        for impl, cfg in registry.candidates("conv", p):
            if args.flops_cap and p.flops() > args.flops_cap and impl.priority <= 0:
                continue                              # the naive fallback on huge shapes
            fn = impl.fn
            fn(x, w, b, p, **cfg)                     # compile: not timed
            t = _median(lambda: fn(x, w, b, p, **cfg), args.samples, args.min_time)
            gf = p.flops() / t / 1e9
            label = impl.name + ("" if not cfg else str(cfg))
            rows.append(dict(name=name, batch=p.batch, impl=impl.name, config=cfg, gflops=gf,
                             peak_pct=100 * gf / peak))
            print(f"{name:18s} {p.batch:2d} {label:60s} {gf:8.1f} GFLOP/s {100 * gf / peak:6.1f} %",
                  file=out, flush=True)
    _targets(rows, shapes, peak, out)
    return rows, peak


def _targets(rows, shapes, peak, out):
    """The issue's Winograd and %-of-peak targets, from the per-impl rows."""
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


def _memprobe(key, cap_mb):
    """In a fresh process: peak RSS growth of one im2col call beyond its input and output arrays."""
    import resource

    from .impls import gemm
    from .spec import problem_from_key

    p = problem_from_key(key)
    x, w, b = ops.make_args("conv", p, seed=0)
    small = p.with_(spatial=tuple(min(s, 8) for s in p.spatial), batch=1)
    gemm.im2col_gemm(*ops.make_args("conv", small), small, cap_mb=cap_mb)      # compile on a tiny copy
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    y = gemm.im2col_gemm(x, w, b, p, cap_mb=cap_mb)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    plan = gemm.im2col_plan(p, cap_mb)
    print(json.dumps({"key": key, "cap_mb": cap_mb, "tiles": plan["tiles"],
                      "planned_extra": plan["peak_extra_bytes"], "output": y.nbytes,
                      "measured_extra": max(0, after - before - y.nbytes)}))


def bench_memory(shapes, args, out=None):
    """Peak extra memory of the im2col path per shape and workspace cap (fresh process each)."""
    import subprocess

    out = out or sys.stdout
    from .impls import gemm
    caps = [c["cap_mb"] for c in gemm.im2col_gemm_configs]
    print(f"{'shape':18s} {'N':>2s} {'cap MiB':>8s} {'tiles':>6s} {'planned MB':>11s} {'measured MB':>12s} "
          f"{'full col MB':>12s}", file=out, flush=True)
    rows = []
    for name, p in shapes:
        for cap in caps:
            code = f"from nbconv.bench import _memprobe; _memprobe({p.key()!r}, {cap})"
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            full = gemm.im2col_plan(p, 1e9)["col_bytes"]
            rows.append(dict(r, name=name, batch=p.batch, full_col=full))
            print(f"{name:18s} {p.batch:2d} {cap:8g} {r['tiles']:6d} {r['planned_extra'] / 1e6:11.1f} "
                  f"{r['measured_extra'] / 1e6:12.1f} {full / 1e6:12.1f}", file=out, flush=True)
    return rows


def _parse(argv):
    ap = argparse.ArgumentParser(prog="nbconv bench", description=__doc__.splitlines()[0])
    ap.add_argument("--reference", action="store_true", help="compare with torch conv2d (needs torch)")
    ap.add_argument("--impls", action="store_true", help="time every registered impl and config")
    ap.add_argument("--shapes", help="CSV of shapes (default: the package's reference set)")
    ap.add_argument("--only", help="comma-separated shape names to keep")
    ap.add_argument("--quick", action="store_true", help="three tiny shapes (smoke test)")
    ap.add_argument("--batch", default="1,8", help="comma-separated batch sizes (default 1,8)")
    ap.add_argument("--layout", default="channels_last", choices=("channels_last", "channels_first"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                    help="cpu: CPU time of the process (needs --threads 1); robust on a busy machine")
    ap.add_argument("--samples", type=int, default=7, help="interleaved samples per timing (median)")
    ap.add_argument("--min-time", type=float, default=0.02, help="seconds per sample")
    ap.add_argument("--flops-cap", type=float, default=2e8,
                    help="--impls: skip priority-0 fallbacks above this many FLOPs")
    ap.add_argument("--memory", action="store_true",
                    help="peak extra memory of the im2col path per workspace cap (a process each)")
    ap.add_argument("--csv", help="write the rows to this CSV file")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error(f"--threads must be >= 1, got {args.threads}")
    if args.clock == "cpu" and args.threads != 1:
        ap.error("--clock cpu counts every thread's CPU time: use it with --threads 1")
    if args.samples < 1:
        ap.error(f"--samples must be >= 1, got {args.samples}")
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
    global _clock
    args = _parse(sys.argv[1:] if argv is None else argv)
    _clock = time.process_time if args.clock == "cpu" else time.perf_counter
    threads.set_threads(args.threads)
    shapes = _shapes(args)
    if not shapes:
        print("nbconv bench: no shapes selected", file=sys.stderr)
        return 2
    rows = []
    if args.memory:
        rows = bench_memory(shapes, args)
        args.reference = args.reference and not args.impls
        if not (args.reference or args.impls):
            return 0
    if args.impls:
        rows, _ = bench_impls(shapes, args)
    if args.reference or not args.impls:
        if args.reference:
            try:
                import torch  # noqa: F401
            except ImportError:
                print("nbconv bench --reference needs torch: pip install 'nbconv[anchors]'", file=sys.stderr)
                return 2
            rows, _ = bench_reference(shapes, args)
        else:
            rows = []
            for name, p in shapes:
                x, w, b = ops.make_args("conv", p, seed=0)
                ops.conv(x, w, b, p)
                t = _median(lambda: ops.conv(x, w, b, p), args.samples, args.min_time)
                gf = p.flops() / t / 1e9
                rows.append(dict(name=name, batch=p.batch, impl=ops.decision("conv", p).name, nbconv=gf))
                print(f"{name:18s} {p.batch:2d} {rows[-1]['impl']:50s} {gf:8.1f} GFLOP/s", flush=True)
    if args.csv and rows:
        with open(args.csv, "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(rows[0]))
            wr.writeheader()
            wr.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
