"""A generic auto-tuner: register candidate implementations of an op, and let a `Tuner` pick
the fastest correct one per problem, remembered in an SQLite tuning database.

Imports only the standard library and numpy. A problem is any object with `key() -> str`
(and, optionally, `flops()`, used to skip verifying very large problems).

    @register(op, applies=, configs=, tolerance=, priority=, estimate=, mixes_tiles=,
              prepare=, timer=, sync=)           # fn(*arrays, problem, **config)
    tuner = Tuner(registry, Verifier(reference=, error=, tolerance=, make_args=),
                  fingerprint=dict-or-callable, settings=Settings(db=path)-or-callable,
                  features=(key, impl name, config) -> {name: number})
    tuner.select(op, problem, arrays) -> Decision     tuner.run(op, problem, *arrays)
    tuner.explain(op, problem, arrays) -> dict         tuner.records() -> [dict]
    with tuner.using(mode="off", force="name"): ...
    choose(cands, rows, settings) -> Decision          (the decision rule, a pure function)
    TuningDB(path): export / import_ (JSON lines), records, decisions, clear, migrate_keys
    merge(db, other_path_or_db, registry=, settings=), merge_export(db, lines): union another
    machine's rows (samples kept, decisions recomputed with `choose`; idempotent)

Modules: registry (Impl, Registry), measure (timing one candidate), stats (Mann-Whitney U),
choose (decision rules), costmodel (CostModel: seconds predicted from stored timings, for mode
`estimate` and for pruning; `Tuner(features=fn)` gives its features), verify (Verifier), rows
(the DB's row format), db (TuningDB), merge (uniting databases), explain,
tuner (Tuner: the flow from a problem to a decision).
"""
from .choose import Decision, choose
from .costmodel import CostModel
from .db import TuningDB, default_path
from .measure import Measurement
from .merge import merge, merge_export, merge_rows
from .registry import Impl, Registry, register, registry
from .rows import config_json, label
from .settings import MODES, Settings
from .tuner import Tuner
from .verify import Verifier

__all__ = ["Tuner", "Verifier", "Decision", "Settings", "MODES", "Registry", "Impl", "register", "registry",
           "TuningDB", "default_path", "choose", "Measurement", "config_json", "label",
           "merge", "merge_export", "merge_rows",
           "CostModel"]
