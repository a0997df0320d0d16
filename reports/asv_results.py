"""Read an asv results directory (the newest run in it) into a tidy table, for the report."""
from __future__ import annotations

import ast
import itertools
import json
from pathlib import Path

import pandas as pd


def _value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def load(results_dir) -> tuple[pd.DataFrame, dict]:
    """(rows, info) of the newest results file under `results_dir` (asv's results_dir, e.g.
    .asv/results): one row per benchmark and parameter combination that has a value (asv's
    median) and, where asv saved them, its quartiles `q25`/`q75` (NaN otherwise);
    info = {commit, date, env, file}. Raises FileNotFoundError when there is none."""
    root = Path(results_dir)
    meta_file = root / "benchmarks.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"--asv-results: no benchmarks.json in {root} (run `asv run` first)")
    meta = json.loads(meta_file.read_text())
    runs = []
    for f in root.glob("*/*.json"):
        if f.name == "machine.json":
            continue
        d = json.loads(f.read_text())
        if "results" in d:
            runs.append((d.get("date") or 0, f, d))
    if not runs:
        raise FileNotFoundError(f"--asv-results: no saved results under {root} "
                                "(asv run -E existing --set-commit-hash $(git rev-parse HEAD) saves some)")
    date, f, d = max(runs, key=lambda r: r[0])
    rows = []
    for name, vals in d["results"].items():
        r = dict(zip(d["result_columns"], vals, strict=False))
        bm = meta.get(name, {})
        names = bm.get("param_names", [])
        params = r.get("params") or bm.get("params") or []
        combos = list(itertools.product(*params)) if params else [()]
        q25s, q75s = r.get("stats_q_25") or [], r.get("stats_q_75") or []
        for i, (combo, value) in enumerate(zip(combos, r.get("result") or [], strict=False)):
            if value is None or value != value:            # failed or n/a
                continue
            q25 = q25s[i] if i < len(q25s) and q25s[i] is not None else float("nan")
            q75 = q75s[i] if i < len(q75s) and q75s[i] is not None else float("nan")
            row = {"benchmark": name, "type": bm.get("type", ""), "unit": bm.get("unit", ""),
                   "value": float(value), "q25": float(q25), "q75": float(q75),
                   "params": ", ".join(f"{n}={_value(v)}" for n, v in zip(names, combo, strict=True))}
            row.update({n: _value(v) for n, v in zip(names, combo, strict=True)})
            rows.append(row)
    info = {"commit": d.get("commit_hash", "")[:8], "env": d.get("env_name", ""), "file": str(f),
            "date": pd.to_datetime(date, unit="ms", utc=True).strftime("%Y-%m-%d %H:%M UTC") if date else ""}
    return pd.DataFrame(rows), info
