"""The Tuner: picks an (impl, config) for a problem, remembers it in memory and in the DB.

Flow of `select(op, problem, arrays)`:
1. memory hit -> done. The applicable candidates come from the registry (none -> ValueError
   saying why each impl does not apply).
2. `force` names an applicable impl -> it. One candidate -> it, untimed. Mode `off` -> the
   highest-priority candidate.
3. A stored decision for (key, fingerprint, op) whose candidate signature (every candidate's
   name, config and source hash) equals the current one -> it, unmeasured.
4. Mode `estimate` (nothing is timed) -> if stored timings of this problem on this machine
   cover every candidate (even stale ones), the fastest stored median; else the lowest
   `impl.estimate(problem, config)` among impls that give one (ties: priority, then name);
   else the highest-priority candidate.
5. Mode `measure`: candidates with a valid stored row (same source hash, not skipped for
   lack of shape budget) are reused; the others are measured on the caller's arrays (or
   `make_args`): first call timed apart as compile time and verified against the reference;
   warm-up; inner repetitions doubled until a sample lasts `min_sample_s`; then outer samples
   taken round-robin over the candidates (one each per round, so a burst of load hits all
   alike) within the budgets. The shape budget is checked before each candidate's first call.
6. Choice (`choose`): the fastest median wins if it is significantly faster than the
   runner-up (one-sided Mann-Whitney U on its samples scaled by 1 + min_gain, p < alpha).
   Otherwise every candidate it does not beat significantly is tied with it, and the tie goes
   to the highest priority, then the name, then the config's position in the impl's list. The
   tie partner (the fastest if it lost the tie, else the next tied one) and the whole tie set
   are recorded. A decision made while some candidate was skipped for lack of shape budget is
   kept in memory only: the next process measures the skipped ones and decides again.
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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .db import TuningDB
from .measure import OK, SKIPPED, Measurement, begin, sample_round_robin
from .registry import Impl, Registry
from .registry import registry as global_registry
from .settings import Settings
from .stats import faster, median, spread


def config_json(cfg: dict) -> str:
    return json.dumps(cfg, sort_keys=True, separators=(",", ":"))


def label(name: str, cfg: dict) -> str:
    """`name` or `name[a=1,b=2]`: how a candidate is shown."""
    if not cfg:
        return name
    return name + "[" + ",".join(f"{k}={v}" for k, v in sorted(cfg.items())) + "]"


def fingerprint_hash(info: dict) -> str:
    return hashlib.sha256(json.dumps(info, sort_keys=True, default=str).encode()).hexdigest()[:16]


def rel_error(y, ref) -> float:
    """Default verification error: max |y - ref| / max |ref| (inf on a shape mismatch)."""
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    if y.shape != ref.shape:
        return float("inf")
    if ref.size == 0:
        return 0.0
    return float(np.max(np.abs(y - ref)) / max(float(np.max(np.abs(ref))), 1e-30))


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
    def fn(self):
        return self.impl.fn


def _candidate_signature(cands) -> str:
    return json.dumps([[impl.name, config_json(cfg), impl.source_hash] for impl, cfg in cands])


@dataclass(frozen=True)
class Verifier:
    """How candidates are checked, grouped: every field is optional.

    reference: `(op, problem, *arrays) -> expected output`; None: candidates are not verified.
    error:     `(out, ref, problem) -> float` (default: max abs error / max |ref|).
    tolerance: `(impl, problem) -> float` allowed error (default: `impl.tolerance`).
    make_args: `(op, problem) -> arrays`, used when a problem must be measured without arrays.
    """

    reference: Callable | None = None
    error: Callable | None = None
    tolerance: Callable | None = None
    make_args: Callable | None = None


class Tuner:
    """Generic auto-tuner.

    registry:    a `Registry` (default: the global one).
    verifier:    a `Verifier` (default: none; nothing is verified).
    fingerprint: a dict describing the machine, or a callable `(problem or None) -> dict`
                 (a problem's device may add to the host's description; None asks for the host's).
    settings:    a `Settings` (its `db` names the tuning database), or a zero-argument callable
                 returning one (default: `Settings()`).
    Fingerprints, DB and settings are resolved on first use (so constructing a Tuner is free).
    """

    def __init__(self, registry: Registry | None = None, verifier: Verifier | None = None, *,
                 fingerprint=None, settings=None):
        self.registry = registry if registry is not None else global_registry
        v = verifier or Verifier()
        self.reference = v.reference
        self.error = v.error or (lambda out, ref, problem: rel_error(out, ref))
        self.tolerance = v.tolerance or (lambda impl, problem: impl.tolerance)
        self.make_args = v.make_args
        self._fingerprint_src = fingerprint
        self._settings_src = settings
        self._db = self._settings = None
        self._fps: dict = {}              # fingerprint json -> (hash, info)
        self._overrides: list[Settings] = []
        self._memory: dict = {}
        self._lock = threading.RLock()
        self._fp_stored: set = set()
        self.measured = 0                 # candidates measured by this tuner (tests read it)

    # -- lazily resolved parts ---------------------------------------------------------------
    def fingerprint(self, problem=None) -> dict:
        """The machine description rows of `problem` are keyed by (the host's for None)."""
        src = self._fingerprint_src
        return dict((src(problem) if callable(src) else src) or {})

    def fp(self, problem=None) -> str:
        info = self.fingerprint(problem)
        text = json.dumps(info, sort_keys=True, default=str)
        hit = self._fps.get(text)
        if hit is None:
            hit = self._fps[text] = (fingerprint_hash(info), info)
        return hit[0]

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
    def using(self, **changes):
        """Temporarily change settings, e.g. `with tuner.using(mode="off", force="direct"):`."""
        self._overrides.append(self.settings.with_(**changes))
        try:
            yield self
        finally:
            self._overrides.pop()

    def forget(self):
        """Drop the in-memory decisions (the DB is kept)."""
        self._memory.clear()

    def _db_do(self, method, *args, default=None):
        """Call a DB method; on an SQLite failure warn once and go on with an in-memory DB."""
        try:
            return getattr(self.db, method)(*args)
        except sqlite3.Error as e:
            warnings.warn(f"nbconv tuning database {self.db.path!r} failed ({type(e).__name__}: {e}); "
                          "continuing with an in-memory database", RuntimeWarning, stacklevel=3)
            self._db, self._fp_stored = TuningDB(":memory:"), set()
            return default

    # -- the public entry points -------------------------------------------------------------
    def run(self, op: str, problem, *arrays):
        """Select (tuning on these arrays if needed) and run."""
        d = self.select(op, problem, arrays)
        return d.impl.bind(arrays, problem, d.config)()

    def select(self, op: str, problem, arrays=None, *, retune: bool = False) -> Decision:
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

    def candidates(self, op: str, problem) -> list:
        cands = self.registry.candidates(op, problem)
        if not cands:
            why = "; ".join(f"{impl.name}: {reason}" for impl, _, reason in
                            self.registry.applicability(op, problem)) or "none is registered"
            raise ValueError(f"no implementation of {op!r} applies to {problem.key()} ({why})")
        return cands

    # -- deciding ----------------------------------------------------------------------------
    def _decide(self, op, problem, key, arrays, s: Settings, retune) -> Decision:
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
        sig = _candidate_signature(cands)
        if not retune:
            row = self._db_do("decision", key, self.fp(problem), op)
            if row is not None and row["candidates"] == sig:
                d = self._from_row(op, key, cands, row, note)
                if d is not None:
                    return d
        if s.mode == "estimate":
            return self._estimate(op, problem, key, cands, note)
        rows = self.ensure_measured(op, problem, cands, arrays, retune=retune)
        d = self.choose(op, key, cands, rows, s, note=note)
        if any(r["status"] == SKIPPED for r in rows.values()):
            return d        # provisional: the next process measures the skipped ones and decides
        self._db_do("put_decision", {
            "key": key, "fp": self.fp(problem), "op": op, "impl": d.impl.name,
            "config": config_json(d.config),
            "tie": int(d.tie), "partner_impl": d.partner[0] if d.partner else None,
            "partner_config": config_json(d.partner[1]) if d.partner else None,
            "margin": d.margin, "p_value": d.p_value, "candidates": sig, "created": time.time(),
            "tied": json.dumps([[n, c] for n, c in d.tied])})
        return d

    def _from_row(self, op, key, cands, row, note):
        for impl, cfg in cands:
            if impl.name == row["impl"] and config_json(cfg) == row["config"]:
                partner = None
                if row["partner_impl"] is not None:
                    partner = (row["partner_impl"], json.loads(row["partner_config"]))
                tied = tuple((n, c) for n, c in json.loads(row.get("tied") or "[]"))
                return Decision(op, key, impl, cfg, "db", bool(row["tie"]), partner, row["margin"],
                                row["p_value"], note, tied)
        return None

    def _estimate(self, op, problem, key, cands, note) -> Decision:
        # 1. stored timings of this problem on this machine covering every candidate (stale
        #    source hashes included: an edited kernel is still roughly as fast): fastest median
        stored = self._db_do("measurements", key, self.fp(problem), op, default={}) or {}
        rows = [stored.get((impl.name, config_json(cfg))) for impl, cfg in cands]
        if all(r is not None and r["status"] != SKIPPED for r in rows):
            timed = [(median(json.loads(r["samples"])), -impl.priority, impl.name, idx)
                     for idx, ((impl, cfg), r) in enumerate(zip(cands, rows))
                     if r["status"] == OK and json.loads(r["samples"])]
            if timed:
                impl, cfg = cands[min(timed)[3]]
                return Decision(op, key, impl, cfg, "estimate", note=note or "stored timings")
        # 2. the impls' cost models; 3. priority
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
            return Decision(op, key, *cands[0], "estimate", note=note or "no cost model: highest priority")
        impl, cfg = cands[min(scored)[3]]
        return Decision(op, key, impl, cfg, "estimate", note=note)

    def ensure_measured(self, op, problem, cands, arrays=None, *, retune=False) -> dict:
        """{(impl name, config json): row} for every candidate, measuring those without a valid
        stored row (same source hash and not skipped for lack of budget)."""
        s = self.settings
        key = problem.key()
        fp = self.fp(problem)
        stored = {} if retune else (self._db_do("measurements", key, fp, op, default={}) or {})
        rows, todo = {}, []
        for impl, cfg in cands:
            r = stored.get((impl.name, config_json(cfg)))
            if r is not None and r["source_hash"] == impl.source_hash and r["status"] != SKIPPED:
                rows[(impl.name, config_json(cfg))] = r
            else:
                todo.append((impl, cfg))
        if not todo:
            return rows
        if not arrays:
            if self.make_args is None:
                raise ValueError(f"tuning {key} needs arrays: pass them or give the Tuner `make_args`")
            arrays = tuple(self.make_args(op, problem))
        ref_cache = []

        def reference():
            if not ref_cache:
                ref_cache.append(self.reference(op, problem, *arrays))
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
            timer = impl.clock()
            call = begin(functools.partial(impl.bind, arrays, problem, cfg), m, timer=timer,
                         check=self._checker(impl, problem, reference, s), settings=s)
            if call is not None:
                ready.append((call, m, timer))
        sample_round_robin(ready, s)       # interleaved: load changes hit every candidate alike
        new = []
        for impl, cfg, m in done:
            row = self._row(key, fp, op, m)
            rows[(impl.name, config_json(cfg))] = row
            new.append(row)
        self._store_fingerprint(problem)
        self._db_do("put_measurements", new)
        return rows

    def _checker(self, impl, problem, reference, s: Settings):
        def check(out):
            if self.reference is None:
                return True, None, "not verified: the tuner has no reference"
            flops = problem.flops() if hasattr(problem, "flops") else 0
            if flops > s.verify_max_flops:
                return True, None, f"verification skipped: {flops:.3g} flops > {s.verify_max_flops:.3g}"
            err = float(self.error(out, reference(), problem))
            tol = float(self.tolerance(impl, problem))
            if not err <= tol:
                return False, err, f"wrong: error {err:.3g} > tolerance {tol:.3g}"
            return True, err, ""
        return check

    def _row(self, key, fp, op, m: Measurement) -> dict:
        return {"key": key, "fp": fp, "op": op, "impl": m.impl, "config": config_json(m.config),
                "source_hash": m.source_hash, "status": m.status, "reason": m.reason,
                "compile_s": m.compile_s, "samples": json.dumps(m.samples),
                "median_s": m.median_s, "spread": m.spread, "error": m.error, "inner": m.inner,
                "created": time.time()}

    def _store_fingerprint(self, problem):
        fp = self.fp(problem)
        if fp not in self._fp_stored:
            self._db_do("put_fingerprint", fp, self.fingerprint(problem))
            self._fp_stored.add(fp)

    def choose(self, op, key, cands, rows, s: Settings | None = None, note="") -> Decision:
        """The decision rule (module docstring, step 6) over measured rows."""
        s = s or self.settings
        order = {(impl.name, config_json(cfg)): idx for idx, (impl, cfg) in enumerate(cands)}
        ok = []
        for impl, cfg in cands:
            r = rows[(impl.name, config_json(cfg))]
            samples = json.loads(r["samples"]) if isinstance(r["samples"], str) else r["samples"]
            if r["status"] == OK and samples:
                ok.append((median(samples), impl, cfg, samples))
        if not ok:
            why = "; ".join(f"{label(i.name, c)}: {rows[(i.name, config_json(c))]['status']} "
                            f"{rows[(i.name, config_json(c))]['reason']}" for i, c in cands)
            raise RuntimeError(f"no candidate for {op} {key} ran correctly ({why})")
        ok.sort(key=lambda t: (t[0], order[(t[1].name, config_json(t[2]))]))
        fastest = ok[0]
        if len(ok) == 1:
            return Decision(op, key, fastest[1], fastest[2], "measured", note=note)
        tests = [(c, *faster(fastest[3], c[3], alpha=s.alpha, min_gain=s.min_gain)) for c in ok[1:]]
        p_of = {id(c): p for c, _, p in tests}
        tied = [fastest] + [c for c, sig, _ in tests if not sig]
        if len(tied) == 1:
            runner = ok[1]
            return Decision(op, key, fastest[1], fastest[2], "measured", False, (runner[1].name, runner[2]),
                            runner[0] / fastest[0], p_of[id(runner)], note)
        winner = min(tied, key=lambda c: (-c[1].priority, c[1].name, order[(c[1].name, config_json(c[2]))]))
        partner = fastest if winner is not fastest else tied[1]
        others = tuple((c[1].name, c[2]) for c in tied if c is not winner)
        # p_value: of "the fastest beats the other one of (winner, partner)": >= alpha in a tie
        p = p_of[id(winner if winner is not fastest else partner)]
        return Decision(op, key, winner[1], winner[2], "measured", True, (partner[1].name, partner[2]),
                        partner[0] / winner[0], p, note, others)

    # -- explaining and reading back ----------------------------------------------------------
    def explain(self, op: str, problem, arrays=None, *, measure: bool = True) -> dict:
        """Every registered impl/config of `op` for `problem`: applicable or why not, and its
        stored (or, with measure=True, in any mode, freshly taken) measurement; plus the
        decision the current mode makes.

        Returns {"op", "key", "decision" (Decision or None), "error" (why no decision, or ""),
        "rows": [dict(impl, config, label, applies, reason, status, compile_s, median_s, spread,
        samples, error, winner, partner, tied)]}.
        """
        key = problem.key()
        cands = self.registry.candidates(op, problem)
        rows = {}
        if cands and measure:
            rows = self.ensure_measured(op, problem, cands, arrays)
        elif cands:
            stored = self._db_do("measurements", key, self.fp(problem), op, default={}) or {}
            rows = {k: r for k, r in stored.items()
                    if any(i.name == k[0] and i.source_hash == r["source_hash"] for i, _ in cands)}
        decision, err = None, ""
        try:
            decision = self.select(op, problem, arrays)
        except (ValueError, RuntimeError) as e:
            err = str(e)
        out = []
        for impl, ok, reason in self.registry.applicability(op, problem):
            cfgs = impl.configs_for(problem) if ok else [None]
            for cfg in cfgs:
                r = rows.get((impl.name, config_json(cfg))) if ok else None
                samples = json.loads(r["samples"]) if r else []
                is_winner = bool(decision and decision.impl is impl and decision.config == cfg)
                is_partner = bool(decision and decision.partner and decision.partner[0] == impl.name
                                  and decision.partner[1] == cfg)
                is_tied = bool(decision and (impl.name, cfg) in decision.tied)
                out.append({
                    "impl": impl.name, "config": cfg, "label": label(impl.name, cfg or {}),
                    "applies": ok, "reason": reason if not ok else (r["reason"] if r else "not measured"),
                    "status": r["status"] if r else None, "compile_s": r["compile_s"] if r else None,
                    "median_s": median(samples) if samples else None,
                    "spread": spread(samples) if samples else None, "samples": samples,
                    "error": r["error"] if r else None, "winner": is_winner, "partner": is_partner,
                    "tied": is_tied,
                    "priority": impl.priority, "tolerance": impl.tolerance})
        return {"op": op, "key": key, "decision": decision, "error": err, "rows": out}

    def records(self, *, all_machines: bool = False, op: str | None = None) -> list[dict]:
        """Every stored measurement joined with its decision (see `TuningDB.records`), for this
        machine's (host) fingerprint unless all_machines."""
        return self._db_do("records", None if all_machines else self.fp(), op, default=[]) or []
