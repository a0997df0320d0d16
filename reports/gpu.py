"""The report's GPU section: what the tuning database holds for "cuda" Problems (keys ending in
`/cuda`), i.e. what was tuned on a GPU (`benchmarks/gpu_check.sh`, or layers run with CUDA).
Simulator runs store nothing, so every row here was timed on a GPU, with CUDA events, on
device-resident arrays (the copies a numpy call adds are not in these times). No cuda rows: no
section."""
from __future__ import annotations

import json

import pandas as pd

from nbconv.spec import problem_from_key

TITLE = "GPU: CUDA kernels tuned on a GPU"


def _label(r) -> str:
    cfg = r["config"] or {}
    return r["impl"] + ("[" + ",".join(f"{k}={v}" for k, v in sorted(cfg.items())) + "]" if cfg else "")


def _gpu_names(fingerprints) -> dict:
    """fp -> "GPU name (cc X.Y)" from the database's fingerprint rows."""
    out = {}
    for row in fingerprints or ():
        info = json.loads(row["info"]) if isinstance(row["info"], str) else row["info"]
        if "gpu" in info:
            out[row["fp"]] = f"{info['gpu']} (cc {info.get('compute_capability', '?')})"
    return out


def table(records, fingerprints=None) -> pd.DataFrame:
    """One row per (GPU, cuda Problem) with a stored decision: winner, its median kernel time and
    GFLOP/s, the runner-up and the margin, and how many candidates were measured."""
    cuda = [r for r in records if r["key"].endswith("/cuda")]
    names = _gpu_names(fingerprints)
    rows = []
    for (fp, key) in sorted({(r["fp"], r["key"]) for r in cuda}):
        mine = [r for r in cuda if r["fp"] == fp and r["key"] == key]
        win = next((r for r in mine if r["winner"]), None)
        if win is None or not win["median_s"]:
            continue
        partner = next((r for r in mine if r["partner"]), None)
        flops = problem_from_key(key).flops()
        rows.append({"gpu": names.get(fp, fp), "problem": key, "winner": _label(win),
                     "kernel ms": 1e3 * win["median_s"], "GFLOP/s": flops / win["median_s"] / 1e9,
                     "runner-up": _label(partner) if partner else "",
                     "margin %": 100 * partner["median_s"] / win["median_s"] - 100
                     if partner and partner["median_s"] else None,
                     "measured": sum(1 for r in mine if r["median_s"])})
    return pd.DataFrame(rows)


def tables(records, fingerprints=None) -> dict:
    """{title: DataFrame} for the report: the GPU section, or nothing when no GPU was used."""
    df = table(records, fingerprints)
    if df.empty:
        return {}
    return {f"{TITLE} (tuning database; kernel times on device-resident arrays, CUDA events, "
            "copies for numpy calls not included)": df}


def from_database() -> dict:
    """`tables` over this tuning database (every machine's rows: a GPU is another fingerprint)."""
    import nbconv.ops
    t = nbconv.ops.tuner()
    return tables(t.records(all_machines=True), t.db.rows("fingerprints"))
