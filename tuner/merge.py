"""Merging another tuning database into this one (another machine's file, or an export).

Rows are keyed as in the database: measurements by (key, fp, op, impl, config), decisions by
(key, fp, op), fingerprints by fp; rows of other fingerprints never touch each other.

A measurement already here with the same source hash and status OK on both sides keeps the
union of both sides' samples (median and spread recomputed); otherwise the newer row wins.
Every (key, fp, op) whose measurements changed has its decision recomputed with `choose` over
the candidates of its stored signature (when every one of them has a current row); other
decisions are taken only if newer. Merging the same rows twice changes nothing.
"""
from __future__ import annotations

import json
import os
import sqlite3
import urllib.parse
from collections.abc import Iterable
from typing import Any

from .choose import choose
from .db import TuningDB
from .measure import OK
from .registry import Impl, Registry
from .rows import TABLES, config_json, decision_row, samples_of, upsert_sql
from .settings import Settings
from .stats import median, spread


def _pk(table: str, row: dict) -> tuple:
    return tuple(row[c] for c in TABLES[table][1])


def _merge_measurement(ours: dict | None, theirs: dict) -> dict | None:
    """The row to store for one primary key, or None when `ours` stays as it is."""
    if ours is None:
        return theirs
    same = ours["source_hash"] == theirs["source_hash"] and ours["status"] == theirs["status"] == OK
    if not same:
        return theirs if theirs["created"] > ours["created"] else None
    mine, other = samples_of(ours), samples_of(theirs)
    new = [s for s in other if s not in set(mine)]
    if not new:
        return None
    samples = mine + new
    return dict(ours, samples=json.dumps(samples), median_s=median(samples), spread=spread(samples),
                created=max(ours["created"], theirs["created"]))


def _candidates(op: str, signature: str, registry: Registry | None) -> list[tuple[Impl, dict]]:
    """The (impl, config) list of a stored candidate signature; impls the registry does not know
    (or of another source hash) stand in with priority 0."""
    out = []
    for name, cfg, source_hash in json.loads(signature):
        impl = None
        if registry is not None:
            found = [i for i in registry.impls(op) if i.name == name and i.source_hash == source_hash]
            impl = found[0] if found else None
        if impl is None:
            impl = Impl(op, name, fn=lambda *a, **k: None, applies=lambda p: True, source_hash=source_hash)
        out.append((impl, json.loads(cfg)))
    return out


def merge_rows(db: TuningDB, rows: dict[str, list[dict]], *, registry: Registry | None = None,
               settings: Settings | None = None) -> dict[str, int]:
    """Merge {table: [row]} into `db` (see the module docstring). Returns {table: rows written}."""
    settings = settings or Settings()
    written = {t: 0 for t in TABLES}
    statements: list[tuple[str, Any]] = []
    for row in rows.get("fingerprints", []):
        statements.append(("INSERT OR IGNORE INTO fingerprints (fp, info, created) VALUES (?, ?, ?)",
                           [row["fp"], row["info"], row["created"]]))
    known = {_pk("fingerprints", r) for r in db.rows("fingerprints")}
    written["fingerprints"] = len({_pk("fingerprints", r) for r in rows.get("fingerprints", [])} - known)

    groups: dict[tuple, dict[str, list[dict]]] = {}      # (key, fp, op) -> their rows
    for table in ("measurements", "decisions"):
        for row in rows.get(table, []):
            groups.setdefault(_pk(table, row)[:3], {"measurements": [], "decisions": []})[table].append(row)
    decided: set[tuple] = set()
    for (key, fp, op), theirs_of in sorted(groups.items()):
        have = db.measurements(key, fp, op)        # {(impl, config): row}, read for this shape only
        touched = False
        for theirs in theirs_of["measurements"]:
            new = _merge_measurement(have.get((theirs["impl"], theirs["config"])), theirs)
            if new is not None:
                have[(theirs["impl"], theirs["config"])] = new
                statements.append(upsert_sql("measurements", new))
                written["measurements"] += 1
                touched = True
        dec = db.decision(key, fp, op)
        for theirs in theirs_of["decisions"]:
            if dec is None or theirs["created"] > dec["created"]:
                dec = theirs
                statements.append(upsert_sql("decisions", theirs))
                decided.add((key, fp, op))
        if not touched or dec is None:
            continue
        cands = _candidates(op, dec["candidates"], registry)
        rows_of = [have.get((i.name, config_json(c))) for i, c in cands]
        if any(r is None or r["source_hash"] != i.source_hash
               for r, (i, _) in zip(rows_of, cands, strict=True)):
            continue
        try:
            d = choose(cands, have, settings, op=op, key=key)
        except RuntimeError:
            continue
        created = max([dec["created"]] + [r["created"] for r in have.values()])
        statements.append(upsert_sql("decisions", decision_row(fp, d, dec["candidates"], created=created)))
        decided.add((key, fp, op))
    written["decisions"] = len(decided)
    db._write(statements)
    return written


def read_rows(db: TuningDB) -> dict[str, list[dict]]:
    return {t: db.rows(t) for t in TABLES}


def read_file(path: str | os.PathLike) -> dict[str, list[dict]]:
    """{table: rows} of an SQLite tuning database, opened read-only (the file is not touched)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"merge: no tuning database at {os.fspath(path)!r}")
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    con = sqlite3.connect(uri, uri=True)
    try:
        out = {}
        for table, (cols, _) in TABLES.items():
            cur = con.execute(f"SELECT * FROM {table}")
            names = [d[0] for d in cur.description]
            out[table] = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
            for row in out[table]:
                if table == "decisions":
                    row.setdefault("tied", "[]")       # a schema-1 file
                missing = [c for c in cols if c not in row]
                if missing:
                    raise sqlite3.DatabaseError(f"table {table} lacks columns {missing}")
        return out
    except sqlite3.DatabaseError as e:
        raise ValueError(f"merge: {os.fspath(path)!r} is not a tuning database ({e})") from None
    finally:
        con.close()


def merge(db: TuningDB, other: str | os.PathLike | TuningDB, **kw: Any) -> dict[str, int]:
    """Merge another tuning database (a TuningDB, or the path of an SQLite file) into `db`."""
    if isinstance(other, TuningDB):
        return merge_rows(db, read_rows(other), **kw)
    return merge_rows(db, read_file(other), **kw)


def merge_export(db: TuningDB, lines: Iterable[str], **kw: Any) -> dict[str, int]:
    """Merge JSON lines from `TuningDB.export` (checked as `TuningDB.import_` checks them)."""
    staging = TuningDB(":memory:")
    try:
        staging.import_(lines)
        return merge_rows(db, read_rows(staging), **kw)
    finally:
        staging.close()
