"""The tuning database: SQLite (stdlib), WAL, safe with several processes at once.

Tables (columns and row encoding: `rows.py`):
- `fingerprints`: the machine description behind each fingerprint hash.
- `measurements`: one row per (key, fp, op, impl, config). A row whose source_hash differs from
  the impl's current one is stale: only that impl is measured again (INSERT OR REPLACE).
- `decisions`: one row per (key, fp, op), valid while its candidate signature matches exactly.
- `meta`: the schema version, the key migrations done (`migrate_keys`), fitted cost models.

A corrupt file is moved aside (`<path>.corrupt-<time>`, warned) and a fresh one made; an
unusable location falls back to an in-memory database (warned). Export / import use JSON lines;
an import never touches rows of another fingerprint (same-key rows: only newer ones replace).
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from .rows import SCHEMA, SCHEMA_VERSION, TABLES, record, upsert_sql


def default_path(app: str, filename: str = "tuning.sqlite") -> str:
    """Where application `app` keeps its tuning database by default:
    `$XDG_CACHE_HOME/<app>/<filename>`, or `~/.cache/<app>/<filename>`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, app, filename)


def _where(fp: str | None, op: str | None, prefix: str) -> tuple[str, list]:
    """(" AND fp = ? AND op = ?", args) for the filters given."""
    pairs = [(c, v) for c, v in (("fp", fp), ("op", op)) if v]
    return "".join(f" AND {prefix}{c} = ?" for c, _ in pairs), [v for _, v in pairs]


class TuningDB:
    """One connection per process (guarded by a lock); writes in short IMMEDIATE transactions."""

    def __init__(self, path: str | os.PathLike = ":memory:", *, timeout: float = 30.0):
        self.requested = str(path)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self.path, self._con = self._open(self.requested)

    def _after_fork(self) -> None:
        """A forked child must not use its parent's SQLite connection: open its own."""
        if self._pid != os.getpid():
            self._lock = threading.Lock()
            self._pid = os.getpid()
            self.path, self._con = self._open(self.requested if self.path != ":memory:" else ":memory:")

    # -- opening ----------------------------------------------------------------------------
    def _connect(self, path: str) -> sqlite3.Connection:
        con = sqlite3.connect(path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        try:
            con.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            if path != ":memory:":
                self._enable_wal(con)
            con.execute("BEGIN IMMEDIATE")
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    con.execute(stmt)
            # schema 1 files (before the tie set was stored) gain the column
            if "tied" not in {r[1] for r in con.execute("PRAGMA table_info(decisions)")}:
                con.execute("ALTER TABLE decisions ADD COLUMN tied TEXT NOT NULL DEFAULT '[]'")
                con.execute("UPDATE meta SET v = ? WHERE k = 'schema_version'", (str(SCHEMA_VERSION),))
            con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            con.execute("COMMIT")
            check = con.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
        except BaseException:
            con.close()
            raise
        return con

    def _enable_wal(self, con: sqlite3.Connection) -> None:
        """WAL is a property of the file. While another process holds a lock the pragma does not
        wait: it answers the old mode (or 'locked'), so retry until the timeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                mode = str(con.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                mode = "locked"
            if mode == "wal":
                return
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(f"database is locked: WAL not enabled (journal_mode={mode})")
            time.sleep(0.02)

    def _open(self, path: str) -> tuple[str, sqlite3.Connection]:
        if path == ":memory:":
            return path, self._connect(path)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            return path, self._connect(path)
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                reason = f"it stayed locked for {self.timeout} s ({e})"
            else:
                reason = f"it cannot be opened for writing ({e})"
            return self._fall_back(path, reason)
        except sqlite3.DatabaseError as e:      # not a database / malformed: move it aside
            aside = f"{path}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            try:
                os.replace(path, aside)
                for suffix in ("-wal", "-shm"):
                    if os.path.exists(path + suffix):
                        os.replace(path + suffix, aside + suffix)
            except OSError as e2:
                return self._fall_back(path, f"it is corrupt ({e}) and cannot be moved aside ({e2})")
            warnings.warn(f"tuning database {path!r} is corrupt ({e}); moved it to {aside!r} "
                          "and started a new one", RuntimeWarning, stacklevel=3)
            try:
                return path, self._connect(path)
            except sqlite3.Error as e3:
                return self._fall_back(path, f"a new database cannot be made there ({e3})")
        except OSError as e:
            return self._fall_back(path, f"its directory cannot be made ({e})")

    def _fall_back(self, path: str, reason: str) -> tuple[str, sqlite3.Connection]:
        warnings.warn(f"tuning database {path!r} is unusable: {reason}; tuning results are kept "
                      "in memory for this process only", RuntimeWarning, stacklevel=4)
        return ":memory:", self._connect(":memory:")

    @property
    def in_memory(self) -> bool:
        return self.path == ":memory:"

    def close(self) -> None:
        with self._lock:
            self._con.close()

    # -- low level --------------------------------------------------------------------------
    def _read(self, sql: str, args: Any = ()) -> list[dict]:
        self._after_fork()
        with self._lock:
            cur = self._con.execute(sql, args)
            return [dict(zip([d[0] for d in cur.description], r, strict=True)) for r in cur.fetchall()]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection, inside one IMMEDIATE transaction (rolled back on an exception)."""
        self._after_fork()
        with self._lock:
            con = self._con
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def _write(self, statements: list[tuple[str, Any]]) -> None:
        """Run [(sql, args)] in one IMMEDIATE transaction."""
        with self._transaction() as con:
            for sql, args in statements:
                con.execute(sql, args)

    # -- tuner's use ------------------------------------------------------------------------
    def put_fingerprint(self, fp: str, info: dict) -> None:
        self._write([("INSERT OR IGNORE INTO fingerprints VALUES (?, ?, ?)",
                      (fp, json.dumps(info, sort_keys=True), time.time()))])

    def measurements(self, key: str, fp: str, op: str) -> dict:
        """{(impl, config json): row} for one problem on one machine."""
        rows = self._read("SELECT * FROM measurements WHERE key = ? AND fp = ? AND op = ?", (key, fp, op))
        return {(r["impl"], r["config"]): r for r in rows}

    def put_measurements(self, rows: list[dict]) -> None:
        self._write([upsert_sql("measurements", r) for r in rows])

    def decision(self, key: str, fp: str, op: str) -> dict | None:
        rows = self._read("SELECT * FROM decisions WHERE key = ? AND fp = ? AND op = ?", (key, fp, op))
        return rows[0] if rows else None

    def put_decision(self, row: dict) -> None:
        self._write([upsert_sql("decisions", row)])

    def stamp(self, fp: str, op: str) -> str:
        """Changes whenever a measurement of (fp, op) is written: what a fitted model is tied to."""
        r = self._read("SELECT COUNT(*), MAX(created) FROM measurements WHERE fp = ? AND op = ?", (fp, op))
        return ":".join(str(v) for v in r[0].values())

    def meta(self, k: str) -> str | None:
        """A value of the `meta` table (e.g. a fitted cost model), or None."""
        return next((r["v"] for r in self._read("SELECT v FROM meta WHERE k = ?", (k,))), None)

    def put_meta(self, k: str, v: str) -> None:
        self._write([("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, v))])

    # -- reading for reports and the CLI ----------------------------------------------------
    def decisions(self, fp: str | None = None, op: str | None = None) -> list[dict]:
        where, args = _where(fp, op, "")
        return self._read(f"SELECT * FROM decisions WHERE 1{where} ORDER BY op, key", args)

    def rows(self, table: str, fp: str | None = None) -> list[dict]:
        if table not in TABLES:
            raise ValueError(f"rows: `table` must be one of {sorted(TABLES)}. Received: table={table!r}")
        where, args = _where(fp, None, "")
        return self._read(f"SELECT * FROM {table} WHERE 1{where}", args)

    def records(self, fp: str | None = None, op: str | None = None) -> list[dict]:
        """Every measurement with its decision: one dict per (key, fp, op, impl, config), with
        samples and config decoded and the decision's winner, tie, partner, tied, margin and
        p_value (see `rows.record`)."""
        sql = ("SELECT m.*, d.impl AS d_impl, d.config AS d_config, d.tie AS d_tie, d.partner_impl AS "
               "d_pimpl, d.partner_config AS d_pconfig, d.margin AS d_margin, d.p_value AS d_p, "
               "d.tied AS d_tied "
               "FROM measurements m LEFT JOIN decisions d ON m.key = d.key AND m.fp = d.fp AND m.op = d.op "
               "WHERE 1")
        where, args = _where(fp, op, "m.")
        sql += where
        return [record(r) for r in self._read(sql + " ORDER BY m.op, m.key, m.median_s", args)]

    def clear(self, fp: str | None = None) -> int:
        """Delete measurements and decisions (of one fingerprint, or all). Returns rows deleted."""
        n = 0
        with self._transaction() as con:
            for table in ("measurements", "decisions"):
                where, args = _where(fp, None, "")
                n += con.execute(f"DELETE FROM {table} WHERE 1{where}", args).rowcount
        return n

    def migrate_keys(self, tag: str, fn: Callable[[str], str]) -> int:
        """Apply `fn(old key) -> new key` to the key of every measurement and decision row, once:
        the migration is recorded in the `meta` table (as `migrate:<tag>`), so a later call with
        the same tag does nothing. Where a new key collides with an existing row (same primary
        key), the row with the newer `created` is kept. Returns the number of rows re-keyed."""
        done = f"migrate:{tag}"
        n = 0
        with self._transaction() as con:
            if con.execute("SELECT 1 FROM meta WHERE k = ?", (done,)).fetchone():
                return 0
            for table in ("measurements", "decisions"):
                cols, pk = TABLES[table]
                cur = con.execute(f"SELECT {', '.join(cols)} FROM {table}")
                moved = []
                for values in cur.fetchall():
                    row = dict(zip(cols, values, strict=True))
                    new = fn(row["key"])
                    if new != row["key"]:
                        moved.append((row, new))
                where = " AND ".join(f"{c} = ?" for c in pk)
                for row, _ in moved:        # first every old row out, so chains (a->b, b->c) work
                    con.execute(f"DELETE FROM {table} WHERE {where}", [row[c] for c in pk])
                for row, new in moved:
                    con.execute(*upsert_sql(table, dict(row, key=new), newer_only=True))
                n += len(moved)
            con.execute("INSERT INTO meta VALUES (?, ?)", (done, str(time.time())))
        return n

    # -- moving results between machines -----------------------------------------------------
    def export(self, f: IO[str], fp: str | None = None) -> int:
        """Write every row (of one fingerprint, or all) as JSON lines {"table": ..., "row": {...}}."""
        n = 0
        for table in ("fingerprints", "measurements", "decisions"):
            for row in self.rows(table, fp):
                f.write(json.dumps({"table": table, "row": row}, sort_keys=True) + "\n")
                n += 1
        return n

    def import_(self, f: Iterable[str]) -> dict[str, int]:
        """Merge JSON lines from `export`. A row replaces one with the same primary key (which
        includes the fingerprint) only if it is newer; rows of other fingerprints are untouched.
        Returns {table: lines read}."""
        statements: list[tuple[str, Any]] = []
        counts = {t: 0 for t in TABLES}
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                table, row = item["table"], item["row"]
                cols, pk = TABLES[table]
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"import: line {lineno} is not an exported tuning row "
                                 f"({type(e).__name__}: {e}): {line[:80]!r}") from None
            missing = [c for c in pk + ("created",) if c in cols and row.get(c) is None]
            if missing:
                raise ValueError(f"import: line {lineno} ({table}) lacks {missing}")
            if table == "fingerprints":
                statements.append((f"INSERT OR IGNORE INTO fingerprints ({', '.join(cols)}) VALUES (?, ?, ?)",
                                   [row.get(c) for c in cols]))
            else:
                statements.append(upsert_sql(table, row, newer_only=True))
            counts[table] += 1
        self._write(statements)
        return counts
