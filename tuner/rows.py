"""The row format of the tuning database: its columns, and how measurements and decisions
become rows and back (configs, samples and tie sets are stored as JSON text).

A measurement row: key, fp, op, impl, config (JSON), source_hash, status, reason, compile_s,
samples (JSON list of seconds per call), median_s, spread, error, inner, created.
A decision row: key, fp, op, impl, config (JSON), tie, partner_impl, partner_config (JSON),
margin, p_value, candidates (the candidate signature), created, tied (JSON [[impl, config]]).
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .choose import Decision
    from .measure import Measurement
    from .registry import Impl

MEAS_COLS = ("key", "fp", "op", "impl", "config", "source_hash", "status", "reason", "compile_s",
             "samples", "median_s", "spread", "error", "inner", "created")
DEC_COLS = ("key", "fp", "op", "impl", "config", "tie", "partner_impl", "partner_config", "margin",
            "p_value", "candidates", "created", "tied")
FP_COLS = ("fp", "info", "created")

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT);
CREATE TABLE IF NOT EXISTS fingerprints (fp TEXT PRIMARY KEY, info TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS measurements (
    key TEXT NOT NULL, fp TEXT NOT NULL, op TEXT NOT NULL, impl TEXT NOT NULL, config TEXT NOT NULL,
    source_hash TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
    compile_s REAL, samples TEXT NOT NULL DEFAULT '[]', median_s REAL, spread REAL, error REAL,
    inner INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL,
    PRIMARY KEY (key, fp, op, impl, config));
CREATE TABLE IF NOT EXISTS decisions (
    key TEXT NOT NULL, fp TEXT NOT NULL, op TEXT NOT NULL, impl TEXT NOT NULL, config TEXT NOT NULL,
    tie INTEGER NOT NULL, partner_impl TEXT, partner_config TEXT, margin REAL, p_value REAL,
    candidates TEXT NOT NULL, created REAL NOT NULL, tied TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (key, fp, op));
"""
# table -> (columns, primary key)
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "measurements": (MEAS_COLS, ("key", "fp", "op", "impl", "config")),
    "decisions": (DEC_COLS, ("key", "fp", "op")),
    "fingerprints": (FP_COLS, ("fp",)),
}


def config_json(cfg: dict | None) -> str:
    """A config as stored (and as the second half of a candidate's row key): canonical JSON."""
    return json.dumps(cfg, sort_keys=True, separators=(",", ":"))


def label(name: str, cfg: dict | None) -> str:
    """`name` or `name[a=1,b=2]`: how a candidate is shown."""
    if not cfg:
        return name
    return name + "[" + ",".join(f"{k}={v}" for k, v in sorted(cfg.items())) + "]"


def samples_of(row: dict) -> list[float]:
    """A row's samples as a list (stored rows hold JSON text; synthetic ones may hold a list)."""
    s = row.get("samples")
    if isinstance(s, str):
        return json.loads(s or "[]")
    return list(s or [])


def candidate_signature(cands: Iterable[tuple[Impl, dict]]) -> str:
    """Every candidate's name, config and source hash: a stored decision is valid only while
    the current candidates have the same signature."""
    return json.dumps([[impl.name, config_json(cfg), impl.source_hash] for impl, cfg in cands])


def measurement_row(key: str, fp: str, op: str, m: Measurement, created: float | None = None) -> dict:
    return {"key": key, "fp": fp, "op": op, "impl": m.impl, "config": config_json(m.config),
            "source_hash": m.source_hash, "status": m.status, "reason": m.reason,
            "compile_s": m.compile_s, "samples": json.dumps(m.samples),
            "median_s": m.median_s, "spread": m.spread, "error": m.error, "inner": m.inner,
            "created": time.time() if created is None else created}


def decision_row(fp: str, d: Decision, candidates: str, created: float | None = None) -> dict:
    """The row of decision `d` (made on machine `fp` from candidates of signature `candidates`)."""
    return {"key": d.key, "fp": fp, "op": d.op, "impl": d.impl.name, "config": config_json(d.config),
            "tie": int(d.tie), "partner_impl": d.partner[0] if d.partner else None,
            "partner_config": config_json(d.partner[1]) if d.partner else None,
            "margin": d.margin, "p_value": d.p_value, "candidates": candidates,
            "created": time.time() if created is None else created,
            "tied": json.dumps([[n, c] for n, c in d.tied])}


def decision_fields(row: dict) -> dict[str, Any]:
    """The `Decision` fields a decision row holds besides its impl and config:
    {tie, partner, margin, p_value, tied}."""
    partner = None
    if row["partner_impl"] is not None:
        partner = (row["partner_impl"], json.loads(row["partner_config"]))
    return {"tie": bool(row["tie"]), "partner": partner, "margin": row["margin"], "p_value": row["p_value"],
            "tied": tuple((n, c) for n, c in json.loads(row.get("tied") or "[]"))}


def record(r: dict) -> dict:
    """A measurement row joined with its decision's columns (prefixed `d_`) -> a record: samples
    and config decoded, plus winner, partner, tie, tied, margin and p_value (see TuningDB.records)."""
    rec = {c: r[c] for c in MEAS_COLS}
    rec["samples"] = samples_of(rec)
    rec["config"] = json.loads(rec["config"])
    decided = r["d_impl"] is not None
    rec["winner"] = decided and r["d_impl"] == r["impl"] and r["d_config"] == r["config"]
    rec["partner"] = decided and r["d_pimpl"] == r["impl"] and r["d_pconfig"] == r["config"]
    rec["tie"] = bool(r["d_tie"]) if decided else None
    rec["tied"] = decided and [r["impl"], rec["config"]] in json.loads(r["d_tied"] or "[]")
    rec["margin"] = r["d_margin"]
    rec["p_value"] = r["d_p"]
    return rec


def upsert_sql(table: str, row: dict, *, newer_only: bool = False) -> tuple[str, list]:
    """(sql, args) writing `row`: replacing, or with newer_only only over an older row."""
    cols, pk = TABLES[table]
    names = ", ".join(cols)
    marks = ", ".join("?" for _ in cols)
    if not newer_only:
        return f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({marks})", [row.get(c) for c in cols]
    sets = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in pk)
    where = f"excluded.created > {table}.created" if "created" in cols else "0"
    sql = (f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT ({', '.join(pk)}) "
           f"DO UPDATE SET {sets} WHERE {where}")
    return sql, [row.get(c) for c in cols]
