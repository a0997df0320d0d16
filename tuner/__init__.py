"""A generic auto-tuner: registry, measurement, selection, SQLite tuning database.

Imports only the standard library and numpy; it knows a problem only through `key()`
(and optional `flops()` / `bytes()`).

    register(op, name, applies=, configs=, tolerance=, priority=, estimate=, mixes_tiles=,
             prepare=, timer=, sync=)
    registry.candidates(op, problem) -> [(Impl, config)]
    Tuner(registry, Verifier(reference=, error=, tolerance=, make_args=), fingerprint=, settings=)
        .select(op, problem, arrays) -> Decision    .run(op, problem, *arrays) -> output
        .explain(op, problem) -> dict               .records() -> [dict]
        .using(mode=..., force=...)  (context manager)
    TuningDB(path): SQLite, WAL; export / import_ (JSON lines), records, decisions, clear
"""
from .db import TuningDB, default_path
from .measure import Measurement
from .registry import Impl, Registry, register, registry
from .settings import MODES, Settings
from .stats import mann_whitney_less
from .tuner import Decision, Tuner, Verifier, config_json, fingerprint_hash, label

__all__ = ["Impl", "Registry", "register", "registry", "Tuner", "Verifier", "Decision", "Settings", "MODES",
           "TuningDB", "default_path", "Measurement", "mann_whitney_less", "config_json",
           "fingerprint_hash", "label"]
