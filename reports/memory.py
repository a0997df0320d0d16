"""`nbconv bench --memory`: peak extra memory of the im2col path per shape and workspace cap, each
measured in a fresh process (`python -m nbconv.reports.memory KEY CAP`) so earlier allocations do not
hide it. The asv suite's `bench_memory.PeakMemory` tracks every candidate's peak across commits."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def probe(key, cap_mb):
    """In this (fresh) process: peak RSS growth of one im2col call beyond its input and output."""
    import resource

    from nbconv import ops
    from nbconv.impls import gemm
    from nbconv.spec import problem_from_key

    p = problem_from_key(key)
    x, w, b = ops.make_args("conv", p, seed=0)
    small = p.with_(spatial=tuple(min(s, 8) for s in p.spatial), batch=1)
    gemm.im2col_gemm(*ops.make_args("conv", small), small, cap_mb=cap_mb)      # compile on a tiny copy
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    y = gemm.im2col_gemm(x, w, b, p, cap_mb=cap_mb)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    plan = gemm.im2col_plan(p, cap_mb)
    return {"key": key, "cap_mb": cap_mb, "tiles": plan["tiles"], "planned_extra": plan["peak_extra_bytes"],
            "output": y.nbytes, "measured_extra": max(0, after - before - y.nbytes)}


def _run_probe(key, cap):
    # the child imports this checkout's `reports` (and nbconv beside it), not another install
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])]))
    res = subprocess.run([sys.executable, "-m", "nbconv.reports.memory", key, str(cap)], capture_output=True,
                         text=True, env=env, cwd=root)
    if res.returncode:
        raise RuntimeError(f"memory probe {key} cap {cap} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def bench_memory(shapes, out=None):
    """Rows of {name, batch, cap_mb, tiles, planned_extra, measured_extra, full_col} per shape and cap."""
    from nbconv.impls import gemm

    out = out or sys.stdout
    caps = [c["cap_mb"] for c in gemm.im2col_gemm_configs]
    print(f"{'shape':18s} {'N':>2s} {'cap MiB':>8s} {'tiles':>6s} {'planned MB':>11s} {'measured MB':>12s} "
          f"{'full col MB':>12s}", file=out, flush=True)
    rows = []
    for name, p in shapes:
        for cap in caps:
            r = _run_probe(p.key(), cap)
            full = gemm.im2col_plan(p, 1e9)["col_bytes"]
            rows.append(dict(r, name=name, batch=p.batch, full_col=full))
            print(f"{name:18s} {p.batch:2d} {cap:8g} {r['tiles']:6d} {r['planned_extra'] / 1e6:11.1f} "
                  f"{r['measured_extra'] / 1e6:12.1f} {full / 1e6:12.1f}", file=out, flush=True)
    return rows


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1], json.loads(sys.argv[2]))))
