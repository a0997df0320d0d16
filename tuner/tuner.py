"""The Tuner: picks an (impl, config) for a problem, remembers it in memory and in the DB.

Flow of `select(op, problem, arrays)`:
1. memory hit -> done. The applicable candidates come from the registry (none -> ValueError
   saying why each impl does not apply).
2. `force` names an applicable impl -> it. One candidate -> it, untimed. Mode `off` -> the
   highest-priority candidate.
3. A stored decision for (key, fingerprint, op) whose candidate signature (every candidate's
   name, config and source hash) equals the current one -> it, unmeasured.
4. Mode `estimate` (nothing is timed) -> `choose.estimate` over this machine's stored rows and
   the cost model's predictions (`costmodel`, fitted on the stored rows when the application
   gives `features`; the rows of `settings.model_db` train it too).
5. Mode `measure`: candidates with a valid stored row (same source hash, not skipped for
   lack of shape budget) are reused. With `settings.prune` > 1, candidates the cost model puts
   above prune x the best estimate are pruned (recorded, not measured; measured after all if
   no measured candidate ran correctly). The others are measured on the caller's arrays (or
   `make_args`): first call timed apart as compile time and verified against the reference;
   warm-up; inner repetitions doubled until a sample lasts `min_sample_s`; then outer samples
   taken round-robin over the candidates (one each per round, so a burst of load hits all
   alike) within the budgets. The shape budget is checked before each candidate's first call.
6. `choose.choose` decides over the rows (significant winner, else a tie broken by priority).
   A decision made while some candidate was skipped for lack of shape budget is kept in
   memory only: the next process measures the skipped ones and decides again.

Rows are read and written through `TuningDB`; an SQLite failure warns once and continues with
an in-memory database.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from .choose import Decision, choose, estimate
from .costmodel import CostModel, Features, model_of, predictions, pruned
from .db import TuningDB
from .explain import explain as _explain
from .measure import OK, PRUNED, SKIPPED, Measurement, begin, sample_round_robin
from .registry import Impl, Registry
from .registry import registry as global_registry
from .rows import candidate_signature, config_json, decision_fields, decision_row, measurement_row
from .settings import Settings
from .verify import Verifier


def fingerprint_hash(info: dict) -> str:
    return hashlib.sha256(json.dumps(info, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Tuner:
    """Generic auto-tuner.

    registry:    a `Registry` (default: the global one).
    verifier:    a `Verifier` (default: none; nothing is verified).
    fingerprint: a dict describing the machine, or a callable `(problem or None) -> dict`
                 (a problem's device may add to the host's description; None asks for the host's).
    settings:    a `Settings` (its `db` names the tuning database), or a zero-argument callable
                 returning one (default: `Settings()`).
    features:    `(problem key, impl name, config) -> {name: number} or None`, the cost model's
                 features (see `costmodel`); without it nothing is predicted.
    Fingerprints, DB and settings are resolved on first use (so constructing a Tuner is free).
    """

    def __init__(self, registry: Registry | None = None, verifier: Verifier | None = None, *,
                 fingerprint: dict | Callable[[Any], dict] | None = None,
                 settings: Settings | Callable[[], Settings] | None = None,
                 features: Features | None = None):
        self.registry = registry if registry is not None else global_registry
        self.verifier = verifier or Verifier()
        self._fingerprint_src = fingerprint
        self._settings_src = settings
        self._db: TuningDB | None = None
        self._settings: Settings | None = None
        self._fps: dict[str, str] = {}        # fingerprint json -> hash
        self._overrides: list[Settings] = []
        self._memory: dict[tuple, Decision] = {}
        self._lock = threading.RLock()
        self._fp_stored: set[str] = set()
        self.features = features
        self._models: dict[tuple, tuple[str, CostModel]] = {}   # (fp, op, model_db) -> (stamp, model)
        self.measured = 0                     # candidates measured by this tuner (tests read it)

    # -- lazily resolved parts ---------------------------------------------------------------
    def fingerprint(self, problem: Any = None) -> dict:
        """The machine description rows of `problem` are keyed by (the host's for None)."""
        src = self._fingerprint_src
        return dict((src(problem) if callable(src) else src) or {})

    def fp(self, problem: Any = None) -> str:
        """The hash of `fingerprint(problem)`: the machine part of every row's key."""
        info = self.fingerprint(problem)
        text = json.dumps(info, sort_keys=True, default=str)
        hit = self._fps.get(text)
        if hit is None:
            hit = self._fps[text] = fingerprint_hash(info)
        return hit

    @property
    def db(self) -> TuningDB:
        if self._db is None:
            src = self.settings.db
            self._db = src if isinstance(src, TuningDB) else TuningDB(src or ":memory:")
        return self._db

    @property
    def settings(self) -> Settings:
        if self._overrides:
            return self._overrides[-1]
        if self._settings is None:
            src = self._settings_src
            self._settings = (src() if callable(src) else src) or Settings()
        return self._settings

    @contextlib.contextmanager
    def using(self, **changes: Any) -> Iterator[Tuner]:
        """Temporarily change settings, e.g. `with tuner.using(mode="off", force="direct"):`."""
        self._overrides.append(self.settings.with_(**changes))
        try:
            yield self
        finally:
            self._overrides.pop()

    def forget(self) -> None:
        """Drop the in-memory decisions (the DB is kept)."""
        self._memory.clear()

    def _db_do(self, method: str, *args: Any, default: Any = None) -> Any:
        """Call a DB method; on an SQLite failure warn once and go on with an in-memory DB."""
        try:
            return getattr(self.db, method)(*args)
        except sqlite3.Error as e:
            warnings.warn(f"tuning database {self.db.path!r} failed ({type(e).__name__}: {e}); "
                          "continuing with an in-memory database", RuntimeWarning, stacklevel=3)
            self._db, self._fp_stored = TuningDB(":memory:"), set()
            return default

    # -- the public entry points -------------------------------------------------------------
    def run(self, op: str, problem: Any, *arrays: Any) -> Any:
        """Select (tuning on these arrays if needed) and run."""
        d = self.select(op, problem, arrays)
        return d.impl.bind(arrays, problem, d.config)()

    def select(self, op: str, problem: Any, arrays: Any = None, *, retune: bool = False) -> Decision:
        s = self.settings
        key = problem.key()
        mkey = (op, key, s.mode, s.force)
        if not retune:
            d = self._memory.get(mkey)
            if d is not None:
                return d
        with self._lock:
            d = self._decide(op, problem, key, arrays, s, retune)
            self._memory[mkey] = d
        return d

    def candidates(self, op: str, problem: Any) -> list[tuple[Impl, dict]]:
        cands = self.registry.candidates(op, problem)
        if not cands:
            why = "; ".join(f"{impl.name}: {reason}" for impl, _, reason in
                            self.registry.applicability(op, problem)) or "none is registered"
            raise ValueError(f"no implementation of {op!r} applies to {problem.key()} ({why})")
        return cands

    def stored(self, op: str, problem: Any) -> dict:
        """{(impl name, config json): row}: the stored measurements of `problem` on this machine
        (stale rows included)."""
        return self._db_do("measurements", problem.key(), self.fp(problem), op, default={}) or {}

    def explain(self, op: str, problem: Any, arrays: Any = None, *, measure: bool = True) -> dict:
        """See `tuner.explain.explain`."""
        return _explain(self, op, problem, arrays, measure=measure)

    def records(self, *, all_machines: bool = False, op: str | None = None) -> list[dict]:
        """Every stored measurement joined with its decision (see `TuningDB.records`), for this
        machine's (host) fingerprint unless all_machines."""
        return self._db_do("records", None if all_machines else self.fp(), op, default=[]) or []

    def model(self, op: str, problem: Any = None) -> CostModel | None:
        """The cost model of `op` on this machine (see `costmodel.model_of`)."""
        return model_of(self, op, problem)

    def predict(self, op: str, problem: Any, cands: list[tuple[Impl, dict]]) -> dict:
        """{(impl name, config json): predicted seconds} of the candidates the model covers."""
        return predictions(self, op, problem, cands)

    # -- deciding ----------------------------------------------------------------------------
    def _decide(self, op: str, problem: Any, key: str, arrays: Any, s: Settings, retune: bool) -> Decision:
        cands = self.candidates(op, problem)
        note = ""
        if s.force:
            for impl, cfg in cands:
                if impl.name == s.force:
                    return Decision(op, key, impl, cfg, "forced")
            known = {i.name: (ok, why) for i, ok, why in self.registry.applicability(op, problem)}
            note = (f"forced impl {s.force!r} " +
                    (f"does not apply: {known[s.force][1]}" if s.force in known else "is not registered")
                    + f" for {op!r}")
        if len(cands) == 1:
            return Decision(op, key, *cands[0], "single", note=note)
        if s.mode == "off":
            return Decision(op, key, *cands[0], "priority", note=note)
        sig = candidate_signature(cands)
        if not retune:
            row = self._db_do("decision", key, self.fp(problem), op)
            if row is not None and row["candidates"] == sig:
                for impl, cfg in cands:
                    if impl.name == row["impl"] and config_json(cfg) == row["config"]:
                        return Decision(op, key, impl, cfg, "db", note=note, **decision_fields(row))
        if s.mode == "estimate":
            return estimate(cands, problem, self.stored(op, problem), op=op, key=key, note=note,
                            predicted=self.predict(op, problem, cands))
        rows = self.ensure_measured(op, problem, cands, arrays, retune=retune)
        d = choose(cands, rows, s, op=op, key=key, note=note)
        if any(r["status"] == SKIPPED for r in rows.values()):
            return d        # provisional: the next process measures the skipped ones and decides
        self._db_do("put_decision", decision_row(self.fp(problem), d, sig))
        return d

    # -- measuring ---------------------------------------------------------------------------
    def ensure_measured(self, op: str, problem: Any, cands: list[tuple[Impl, dict]], arrays: Any = None,
                        *, retune: bool = False) -> dict:
        """{(impl name, config json): row} for every candidate, measuring (or pruning) those
        without a valid stored row (same source hash, not skipped for lack of budget, not
        pruned unless pruning is on)."""
        s = self.settings
        stored = {} if retune else self.stored(op, problem)
        rows, todo = {}, []
        for impl, cfg in cands:
            r = stored.get((impl.name, config_json(cfg)))
            if (r is not None and r["source_hash"] == impl.source_hash and r["status"] != SKIPPED
                    and (r["status"] != PRUNED or s.prune)):
                rows[(impl.name, config_json(cfg))] = r
            else:
                todo.append((impl, cfg))
        if not todo:
            return rows
        why = pruned(self, op, problem, cands, todo, s)
        later = [(i, c, why[k]) for i, c in todo if (k := (i.name, config_json(c))) in why]
        done = self._measure(op, problem, [(i, c) for i, c in todo if (i.name, config_json(c)) not in why],
                             arrays, s)
        if later and all(m.status != OK for *_, m in done) and all(r["status"] != OK for r in rows.values()):
            done += self._measure(op, problem, [(i, c) for i, c, _ in later], arrays, s)  # keep one correct
        else:
            done += [(i, c, Measurement(i.name, dict(c), i.source_hash, PRUNED, w)) for i, c, w in later]
        new = [measurement_row(problem.key(), self.fp(problem), op, m) for *_, m in done]
        rows.update({(r["impl"], r["config"]): r for r in new})
        self._store_fingerprint(problem)
        self._db_do("put_measurements", new)
        return rows

    def _measure(self, op: str, problem: Any, todo: list, arrays: Any, s: Settings) -> list:
        """[(impl, config, Measurement)] of the candidates in `todo`, measured interleaved."""
        if not todo:
            return []
        key = problem.key()
        if not arrays:
            make_args = self.verifier.make_args
            if make_args is None:
                raise ValueError(f"tuning {key} needs arrays: pass them or give the Tuner `make_args`")
            arrays = tuple(make_args(op, problem))
        ref_cache: list = []

        def reference() -> Any:
            if not ref_cache:
                expected = self.verifier.reference
                assert expected is not None
                ref_cache.append(expected(op, problem, *arrays))
            return ref_cache[0]

        start = time.perf_counter()
        done, ready = [], []
        for i, (impl, cfg) in enumerate(todo):
            m = Measurement(impl.name, dict(cfg), impl.source_hash)
            done.append((impl, cfg, m))
            if i > 0 and time.perf_counter() - start > s.shape_budget_s:
                m.status, m.reason = SKIPPED, f"shape budget of {s.shape_budget_s:g} s spent"
                continue
            self.measured += 1
            timer = impl.clock(s.clock)
            call = begin(functools.partial(impl.bind, arrays, problem, cfg), m, timer=timer,
                         check=self.verifier.check(impl, problem, reference, s), settings=s)
            if call is not None:
                ready.append((call, m, timer))
        sample_round_robin(ready, s)       # interleaved: load changes hit every candidate alike
        return done

    def _store_fingerprint(self, problem: Any) -> None:
        fp = self.fp(problem)
        if fp not in self._fp_stored:
            self._db_do("put_fingerprint", fp, self.fingerprint(problem))
            self._fp_stored.add(fp)
