"""The decision rules, as pure functions of candidates, rows and settings (no Tuner, no DB).

`choose` (mode `measure`, over measured rows):
  The fastest median among candidates with status OK and samples wins outright if it is
  significantly faster than the runner-up: a one-sided Mann-Whitney U test on its samples
  scaled by 1 + `settings.min_gain` against the runner-up's, p < `settings.alpha`
  (`stats.faster`). Otherwise every candidate it does not beat significantly, and whose
  median is within `settings.tie_band` of its own, is tied with it (few or noisy samples can
  leave even a 20x slower candidate "not significantly slower": it is never tied). The tie
  goes to the highest priority, then the name, then the position in `cands`. The tie partner
  (the fastest if it lost the tie, else the next tied one) and the whole tie set are
  recorded, with the margin (partner's median / winner's median) and the p-value of "the
  fastest beats the other of winner/partner". Failed candidates (RAISED, WRONG, SKIPPED) never
  win; if none ran correctly, RuntimeError.

`estimate` (mode `estimate`, nothing is timed):
  If stored rows cover every candidate (none skipped or pruned), the fastest stored median
  (ties: priority, then name, then position); else the lowest of the fitted cost model's
  `predicted` seconds (`costmodel`; among the candidates it covers); else the lowest
  `impl.estimate(problem, config)` among impls that give one (one that raises counts as none);
  else the first candidate (the registry lists them highest priority first).

Rows are keyed by (impl name, config_json(config)) and need `status`, `samples` (a list or
JSON text) and `reason`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .measure import OK, PRUNED, SKIPPED
from .registry import Impl
from .rows import config_json, label, samples_of
from .settings import Settings
from .stats import faster, median

Candidates = Sequence[tuple[Impl, dict]]
Rows = Mapping[tuple[str, str], Mapping[str, Any]]


@dataclass(frozen=True, eq=False)
class Decision:
    op: str
    key: str
    impl: Impl
    config: dict
    how: str                          # forced | single | priority | db | estimate | measured
    tie: bool = False
    partner: tuple | None = None      # (impl name, config) of the tie partner / runner-up
    margin: float | None = None       # partner's median / winner's median
    p_value: float | None = None      # of "the fastest beats the other of winner/partner by min_gain"
    note: str = ""
    tied: tuple = ()                  # every (impl name, config) tied with the winner, fastest first

    @property
    def name(self) -> str:
        return label(self.impl.name, self.config)

    @property
    def fn(self) -> Callable:
        return self.impl.fn


def choose(cands: Candidates, rows: Rows, settings: Settings, *, op: str = "", key: str = "",
           note: str = "") -> Decision:
    """The measured decision over `rows` (see the module docstring). `op`, `key` and `note`
    are only copied into the Decision (and the error message)."""
    order = {(impl.name, config_json(cfg)): idx for idx, (impl, cfg) in enumerate(cands)}
    ok = []
    for impl, cfg in cands:
        r = rows[(impl.name, config_json(cfg))]
        samples = samples_of(dict(r))
        if r["status"] == OK and samples:
            ok.append((median(samples), impl, cfg, samples))
    if not ok:
        why = "; ".join(f"{label(i.name, c)}: {rows[(i.name, config_json(c))]['status']} "
                        f"{rows[(i.name, config_json(c))]['reason']}" for i, c in cands)
        raise RuntimeError(f"no candidate for {op} {key} ran correctly ({why})")

    def position(c) -> int:
        return order[(c[1].name, config_json(c[2]))]
    ok.sort(key=lambda c: (c[0], position(c)))
    fastest = ok[0]
    if len(ok) == 1:
        return Decision(op, key, fastest[1], fastest[2], "measured", note=note)
    tests = [(c, *faster(fastest[3], c[3], alpha=settings.alpha, min_gain=settings.min_gain))
             for c in ok[1:]]
    p_of = {id(c): p for c, _, p in tests}
    band = fastest[0] * (1 + settings.tie_band)
    tied = [fastest] + [c for c, sig, _ in tests if not sig and c[0] <= band]
    if len(tied) == 1:
        runner = ok[1]
        return Decision(op, key, fastest[1], fastest[2], "measured", False, (runner[1].name, runner[2]),
                        runner[0] / fastest[0], p_of[id(runner)], note)
    winner = min(tied, key=lambda c: (-c[1].priority, c[1].name, position(c)))
    partner = fastest if winner is not fastest else tied[1]
    others = tuple((c[1].name, c[2]) for c in tied if c is not winner)
    # p_value: of "the fastest beats the other one of (winner, partner)": >= alpha in a tie
    p = p_of[id(winner if winner is not fastest else partner)]
    return Decision(op, key, winner[1], winner[2], "measured", True, (partner[1].name, partner[2]),
                    partner[0] / winner[0], p, note, others)


def estimate(cands: Candidates, problem: Any, stored: Rows, *, op: str = "", key: str = "",
             note: str = "", predicted: Mapping[tuple[str, str], float] | None = None) -> Decision:
    """The untimed decision (see the module docstring). `stored` may hold stale rows (an
    edited kernel is still roughly as fast); `predicted`: {(impl name, config json): seconds}."""
    rows = [stored.get((impl.name, config_json(cfg))) for impl, cfg in cands]
    if all(r is not None and r["status"] not in (SKIPPED, PRUNED) for r in rows):
        timed = [(median(s), -impl.priority, impl.name, idx)
                 for idx, ((impl, _), r) in enumerate(zip(cands, rows, strict=True))
                 if r is not None and r["status"] == OK and (s := samples_of(dict(r)))]
        if timed:
            impl, cfg = cands[min(timed)[3]]
            return Decision(op, key, impl, cfg, "estimate", note=note or "stored timings")
    guess = [(t, -impl.priority, impl.name, idx) for idx, (impl, cfg) in enumerate(cands)
             if (t := (predicted or {}).get((impl.name, config_json(cfg)))) is not None]
    if guess:
        impl, cfg = cands[min(guess)[3]]
        return Decision(op, key, impl, cfg, "estimate",
                        note=note or f"cost model: {min(guess)[0] * 1e3:.4g} ms estimated")
    scored = []
    for idx, (impl, cfg) in enumerate(cands):
        if impl.estimate is None:
            continue
        try:
            cost = float(impl.estimate(problem, cfg))
        except Exception:
            continue                      # a broken cost model counts as none
        scored.append((cost, -impl.priority, impl.name, idx))
    if not scored:
        impl, cfg = cands[0]
        return Decision(op, key, impl, cfg, "estimate", note=note or "no cost model: highest priority")
    impl, cfg = cands[min(scored)[3]]
    return Decision(op, key, impl, cfg, "estimate", note=note)
