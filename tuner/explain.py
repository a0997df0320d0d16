"""Why a tuner picks what it picks: every registered impl/config of an op for a problem, with
its applicability, its measurement and its part in the decision. Read-only over the decision
flow: it asks the tuner for rows and for the decision, and formats them."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .rows import config_json, label, samples_of
from .stats import median, spread

if TYPE_CHECKING:
    from .tuner import Tuner


def explain(tuner: Tuner, op: str, problem: Any, arrays: Any = None, *, measure: bool = True) -> dict:
    """Every registered impl/config of `op` for `problem`: applicable or why not, and its
    stored (or, with measure=True, in any mode, freshly taken) measurement; plus the decision
    the tuner's current mode makes.

    Returns {"op", "key", "decision" (Decision or None), "error" (why no decision, or ""),
    "rows": [dict(impl, config, label, applies, reason, status, compile_s, median_s, spread,
    samples, error, winner, partner, tied, priority, tolerance, estimate_s)]}; `estimate_s` is
    the cost model's prediction (None where it has none). A pruned candidate has status
    "pruned" and its reason says the estimate and the best one.
    """
    key = problem.key()
    cands = tuner.registry.candidates(op, problem)
    rows: dict = {}
    if cands and measure:
        rows = tuner.ensure_measured(op, problem, cands, arrays)
    elif cands:
        rows = {k: r for k, r in tuner.stored(op, problem).items()
                if any(i.name == k[0] and i.source_hash == r["source_hash"] for i, _ in cands)}
    predicted = tuner.predict(op, problem, cands) if cands else {}
    decision, err = None, ""
    try:
        decision = tuner.select(op, problem, arrays)
    except (ValueError, RuntimeError) as e:
        err = str(e)
    out = []
    for impl, ok, reason in tuner.registry.applicability(op, problem):
        cfgs: list = impl.configs_for(problem) if ok else [None]
        for cfg in cfgs:
            r = rows.get((impl.name, config_json(cfg))) if ok else None
            samples = samples_of(r) if r else []
            is_winner = bool(decision and decision.impl is impl and decision.config == cfg)
            is_partner = bool(decision and decision.partner and decision.partner[0] == impl.name
                              and decision.partner[1] == cfg)
            is_tied = bool(decision and (impl.name, cfg) in decision.tied)
            out.append({
                "impl": impl.name, "config": cfg, "label": label(impl.name, cfg),
                "applies": ok, "reason": reason if not ok else (r["reason"] if r else "not measured"),
                "status": r["status"] if r else None, "compile_s": r["compile_s"] if r else None,
                "median_s": median(samples) if samples else None,
                "spread": spread(samples) if samples else None, "samples": samples,
                "error": r["error"] if r else None, "winner": is_winner, "partner": is_partner,
                "tied": is_tied, "priority": impl.priority, "tolerance": impl.tolerance,
                "estimate_s": predicted.get((impl.name, config_json(cfg))) if ok else None})
    return {"op": op, "key": key, "decision": decision, "error": err, "rows": out}
