"""How the tuner decides: mode, budgets, significance, and where it keeps its database.

A plain frozen value: the application builds one (from its configuration or environment) and
passes it, or a zero-argument callable returning one, to `Tuner(settings=...)`."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

MODES = ("measure", "estimate", "off")


@dataclass(frozen=True)
class Settings:
    mode: str = "measure"           # measure | estimate | off
    force: str | None = None        # an impl name used wherever it applies, in every mode
    min_sample_s: float = 0.002     # inner repetitions double until one sample lasts this long
    min_samples: int = 5            # outer samples per candidate, at least
    max_samples: int = 20           # ... and at most
    candidate_budget_s: float = 1.0  # stop sampling a candidate after this (once min_samples taken)
    shape_budget_s: float = 20.0    # candidates not started within this are recorded as skipped
    alpha: float = 0.01             # significance level of the one-sided Mann-Whitney U test
    min_gain: float = 0.02          # a winner must be faster by this fraction, significantly
    tie_band: float = 0.10          # a tie only among medians within this fraction of the fastest's
    verify_max_flops: float = 5e9   # above this problem.flops(), verification is skipped (recorded)
    prune: float = 0.0              # > 1: candidates estimated slower than prune x the best estimate
                                    # are not measured (0: measure all)
    model_db: str | None = None     # another tuning DB whose rows (this machine's) also train the cost model
    clock: Any = None               # a clock factory, sync -> timer(call, n) (e.g. registry.process_timer),
                                    # for impls without a timer of their own (None: perf_counter)
    db: Any = ":memory:"            # the tuning database: a path, ":memory:", or an open TuningDB

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Settings: `mode` must be one of {MODES}. Received: mode={self.mode!r}")
        for name in ("min_sample_s", "candidate_budget_s", "shape_budget_s", "verify_max_flops"):
            v = getattr(self, name)
            if not v >= 0:
                raise ValueError(f"Settings: `{name}` must be >= 0. Received: {name}={v!r}")
        if not 1 <= self.min_samples <= self.max_samples:
            raise ValueError("Settings: need 1 <= min_samples <= max_samples. Received: "
                             f"min_samples={self.min_samples}, max_samples={self.max_samples}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"Settings: `alpha` must be in (0, 1). Received: alpha={self.alpha!r}")
        if not (self.prune == 0 or self.prune > 1):
            raise ValueError(f"Settings: `prune` must be 0 (off) or > 1. Received: prune={self.prune!r}")
        if not self.tie_band >= 0:
            raise ValueError(f"Settings: `tie_band` must be >= 0. Received: tie_band={self.tie_band!r}")
        if not self.min_gain >= 0:
            raise ValueError(f"Settings: `min_gain` must be >= 0. Received: min_gain={self.min_gain!r}")

    def with_(self, **changes: Any) -> Settings:
        """A copy with `changes` applied (validated again)."""
        return replace(self, **changes)
