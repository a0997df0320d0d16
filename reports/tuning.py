"""The report's view of the tuner: tune a shape through the layers' dispatch, then read back
every candidate's stored timings and the decision (winner, runner-up, margin, tie) from the
tuning database (`nbconv.ops.records()`). When the dispatch has no tuner, both readers return None
and the report measures the candidates itself (and says so: column `source`)."""
from __future__ import annotations

import time

import nbconv.ops


def _all_records(op):
    """`nbconv.ops.records(op=...)`, or None when the dispatch has no tuner."""
    reader = getattr(nbconv.ops, "records", None)
    return reader(op=op) if reader is not None else None


def tune(p, args) -> float:
    """Seconds of the first dispatch of p (tuning, compiles and verification included)."""
    t0 = time.perf_counter()
    nbconv.ops.run(p.op, p, *args)
    return time.perf_counter() - t0


def _records(p):
    recs = _all_records(p.op)
    if recs is None:
        return None
    key = p.key()
    return [r for r in recs if r["key"] == key]


def records(p):
    """[{impl, config, samples, status, compile_s, error}] for every candidate the tuner stored
    for p on this machine, or None when there is no tuner or it measured nothing (a single
    applicable candidate is taken untimed)."""
    recs = _records(p)
    if not recs:
        return None
    return [{"impl": r["impl"], "config": r["config"], "samples": r["samples"], "status": r["status"],
             "compile_s": r["compile_s"], "error": r["error"], "reason": r.get("reason", "")} for r in recs]


def decision(p):
    """{winner, winner_config, winner_s, winner_spread, runner_up, runner_up_s, runner_up_spread,
    margin, tie, source} from the
    stored decision, or None. margin = runner-up median / winner median - 1 (negative when the
    tie went to the slower candidate by the fixed rule)."""
    recs = _records(p)
    if not recs:
        return None
    w = next((r for r in recs if r["winner"]), None)
    if w is None:
        return None
    r = next((r for r in recs if r["partner"]), None)
    lab = _label
    return {"winner": lab(w), "winner_config": w["config"], "winner_s": w["median_s"],
            "winner_spread": w.get("spread"),
            "runner_up": lab(r) if r else None, "runner_up_s": r["median_s"] if r else None,
            "runner_up_spread": r.get("spread") if r else None,
            "margin": (r["median_s"] / w["median_s"] - 1.0) if r and w["median_s"] else None,
            "tie": bool(w["tie"]), "source": "tuner"}


def _label(rec):
    cfg = rec["config"] or {}
    if not cfg:
        return rec["impl"]
    return rec["impl"] + "[" + ",".join(f"{k}={v}" for k, v in sorted(cfg.items())) + "]"
