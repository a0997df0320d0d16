"""The SQLite tuning database: WAL, concurrent processes, corrupt and unwritable files,
export / import / merge, records."""
import glob
import io
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from nbconv.tuner import Registry, Settings, Tuner, TuningDB, Verifier, default_path, register

QUICK = Settings(min_sample_s=0.0002, min_samples=3, max_samples=3, candidate_budget_s=0.0)


class P:
    def __init__(self, key):
        self._key = key

    def key(self):
        return self._key


def _registry():
    reg = Registry()
    register("op", "double", registry=reg)(lambda x, p: x * 2.0)
    register("op", "twice", registry=reg)(lambda x, p: x + x)
    return reg


def _tuner(db, machine="m1"):
    return Tuner(_registry(), Verifier(reference=lambda op, p, x: x * 2.0), fingerprint={"machine": machine},
                 settings=QUICK.with_(db=db))


def test_wal_schema_and_default_path(tmp_path, monkeypatch):
    path = str(tmp_path / "sub" / "t.sqlite")
    db = TuningDB(path)
    assert db.path == path and not db.in_memory
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"measurements", "decisions", "fingerprints", "meta"} <= tables
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_path("someapp") == str(tmp_path / "cache" / "someapp" / "tuning.sqlite")
    assert default_path("someapp", "x.db") == str(tmp_path / "cache" / "someapp" / "x.db")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_path("app") == os.path.join(os.path.expanduser("~"), ".cache", "app", "tuning.sqlite")


SCRIPT = textwrap.dedent("""
    import sys, time, warnings
    import numpy as np
    warnings.simplefilter("error")
    from nbconv.tuner import Registry, Settings, Tuner, Verifier, register

    def spin(s):
        end = time.perf_counter() + s
        while time.perf_counter() < end:
            pass

    reg = Registry()
    register("op", "a", registry=reg)(lambda x, p: (spin(1e-4), x * 2.0)[1])
    register("op", "b", registry=reg)(lambda x, p: (spin(3e-4), x * 2.0)[1])

    class P:
        def __init__(self, k):
            self.k = k
        def key(self):
            return self.k

    t = Tuner(reg, Verifier(reference=lambda op, p, x: x * 2.0), fingerprint={"machine": "shared"},
              settings=Settings(min_sample_s=2e-4, min_samples=3, max_samples=3, candidate_budget_s=0.0,
                                db=sys.argv[1]))
    import os
    open(os.path.join(sys.argv[2], f"ready-{os.getpid()}"), "w").close()
    while not os.path.exists(os.path.join(sys.argv[2], "go")):   # start tuning together
        time.sleep(0.01)
    t0 = time.time()
    for i in range(60):
        t.select("op", P(f"k{i}"), (np.ones(8),))
    print("done", t.db.path)
    print(t0, time.time())
""")


def test_two_processes_tuning_at_once(tmp_path):
    script = tmp_path / "tune.py"
    script.write_text(SCRIPT)
    path = str(tmp_path / "shared.sqlite")
    sync_dir = tmp_path / "sync"
    sync_dir.mkdir()
    procs = [subprocess.Popen([sys.executable, str(script), path, str(sync_dir)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    deadline = time.time() + 120
    while len(list(sync_dir.glob("ready-*"))) < 2 and time.time() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.01)
    (sync_dir / "go").touch()
    outs = [p.communicate(timeout=120) for p in procs]
    spans = []
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        lines = out.strip().splitlines()
        assert lines[0] == f"done {path}"           # neither fell back to memory
        spans.append([float(v) for v in lines[1].split()])
    print("tuning spans (s):", spans)
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM decisions").fetchone()[0] == 60
    assert con.execute("SELECT count(*) FROM measurements").fetchone()[0] == 120
    assert con.execute("SELECT count(*) FROM fingerprints").fetchone()[0] == 1


def test_corrupt_file_is_moved_aside_and_tuning_goes_on(tmp_path):
    path = str(tmp_path / "t.sqlite")
    with open(path, "wb") as f:
        f.write(b"this is not an SQLite database\n" * 200)
    t = _tuner(path)
    with pytest.warns(RuntimeWarning, match="is corrupt .* moved it to"):
        d = t.select("op", P("k"), (np.ones(3),))
    assert d.how == "measured" and t.db.path == path
    aside = glob.glob(path + ".corrupt-*")
    assert len(aside) == 1
    with open(aside[0], "rb") as f:
        assert f.read().startswith(b"this is not")
    assert _tuner(path).select("op", P("k")).how == "db"     # the new file works


def test_unwritable_location_falls_back_to_memory(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    t = _tuner(str(blocker / "t.sqlite"))
    with pytest.warns(RuntimeWarning, match="unusable.*in memory"):
        d = t.select("op", P("k"), (np.ones(3),))
    assert d.how == "measured" and t.db.in_memory
    assert t.select("op", P("k2"), (np.ones(3),)).how == "measured"


def test_read_only_directory_falls_back_to_memory(tmp_path):
    # /proc refuses new files even to root (CI runs as root); elsewhere a directory made read-only
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    where = "/proc" if sys.platform == "linux" else str(ro)
    try:
        with pytest.warns(RuntimeWarning, match="unusable"):
            db = TuningDB(os.path.join(where, "t.sqlite"))
        assert db.in_memory
    finally:
        ro.chmod(0o700)


def test_export_import_merges_and_never_overrides_another_fingerprint(tmp_path):
    a_path, b_path = str(tmp_path / "a.sqlite"), str(tmp_path / "b.sqlite")
    ta = _tuner(a_path, "m1")
    ta.select("op", P("k"), (np.ones(3),))
    before = {r["impl"]: r for r in ta.db.rows("measurements")}
    tb = _tuner(b_path, "m2")
    tb.select("op", P("k"), (np.ones(3),))
    tb.select("op", P("k-only-b"), (np.ones(3),))
    buf = io.StringIO()
    assert tb.db.export(buf) == 1 + 4 + 2
    buf.seek(0)
    counts = ta.db.import_(buf)
    assert counts == {"fingerprints": 1, "measurements": 4, "decisions": 2}
    after = ta.db.rows("measurements")
    assert {r["fp"] for r in after} == {ta.fp(), tb.fp()} and len(after) == 6
    assert {r["impl"]: r for r in ta.db.rows("measurements", ta.fp())} == before   # untouched
    assert _tuner(a_path, "m2").select("op", P("k-only-b")).how == "db"          # usable on m2


def test_import_same_key_only_newer_rows_win(tmp_path):
    db = TuningDB(str(tmp_path / "t.sqlite"))
    t = _tuner(db)
    t.select("op", P("k"), (np.ones(3),))
    row = db.rows("decisions")[0]
    older = dict(row, impl="stale", created=row["created"] - 100)
    newer = dict(row, impl="fresh", created=row["created"] + 100)
    db.import_(io.StringIO(json.dumps({"table": "decisions", "row": older}) + "\n"))
    assert db.rows("decisions")[0]["impl"] == row["impl"]
    db.import_(io.StringIO(json.dumps({"table": "decisions", "row": newer}) + "\n"))
    assert db.rows("decisions")[0]["impl"] == "fresh"


def test_import_rejects_bad_lines(tmp_path):
    db = TuningDB(":memory:")
    with pytest.raises(ValueError, match="line 2 is not an exported tuning row"):
        db.import_(io.StringIO('{"table": "fingerprints", "row": {"fp": "x", "info": "{}", "created": 1}}\n'
                               "garbage\n"))
    with pytest.raises(ValueError, match=r"line 1 \(decisions\) lacks \['key'"):
        db.import_(io.StringIO('{"table": "decisions", "row": {"fp": "x"}}\n'))
    assert db.rows("fingerprints") == []          # nothing half-imported


def test_records_and_clear(tmp_path):
    db = TuningDB(str(tmp_path / "t.sqlite"))
    t1, t2 = _tuner(db, "m1"), _tuner(db, "m2")
    t1.select("op", P("k"), (np.ones(3),))
    t2.select("op", P("k"), (np.ones(3),))
    recs = t1.records()
    assert len(recs) == 2 and {r["fp"] for r in recs} == {t1.fp()}
    assert sum(r["winner"] for r in recs) == 1 and sum(r["partner"] for r in recs) == 1
    for r in recs:
        assert isinstance(r["samples"], list) and len(r["samples"]) == 3 and r["config"] == {}
        assert r["median_s"] > 0 and r["status"] == "ok" and r["tie"] in (True, False)
    assert len(t1.records(all_machines=True)) == 4
    assert db.clear(t1.fp()) == 3
    assert {r["fp"] for r in db.rows("measurements")} == {t2.fp()}
    assert db.clear() == 3 and db.rows("decisions") == []


def test_tie_set_is_stored_and_read_back(tmp_path):
    db = str(tmp_path / "t.sqlite")
    reg = Registry()
    for name in ("p", "q", "r"):                   # the same code: a three-way tie
        register("op", name, registry=reg)(lambda x, p: x * 2.0)
    settings = QUICK.with_(min_gain=10.0, tie_band=10.0)   # nothing is 11x faster: always a tie
    t = Tuner(reg, Verifier(reference=lambda op, p, x: x * 2.0), fingerprint={},
              settings=settings.with_(db=db))
    d = t.select("op", P("k"), (np.ones(3),))
    assert d.tie and d.impl.name == "p" and {n for n, _ in d.tied} == {"q", "r"}
    again = Tuner(reg, fingerprint={}, settings=settings.with_(db=db)).select("op", P("k"))
    assert again.how == "db" and again.tied == d.tied
    assert {r["impl"] for r in t.records() if r["tied"]} == {"q", "r"}


def test_schema_1_file_gains_the_tie_set_column(tmp_path):
    path = str(tmp_path / "old.sqlite")
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE decisions (key TEXT NOT NULL, fp TEXT NOT NULL, op TEXT NOT NULL, "
                "impl TEXT NOT NULL, config TEXT NOT NULL, tie INTEGER NOT NULL, partner_impl TEXT, "
                "partner_config TEXT, margin REAL, p_value REAL, candidates TEXT NOT NULL, "
                "created REAL NOT NULL, PRIMARY KEY (key, fp, op))")
    con.execute("INSERT INTO decisions VALUES ('k', 'f', 'op', 'a', '{}', 0, NULL, NULL, NULL, NULL, "
                "'[]', 1)")
    con.commit()
    con.close()
    db = TuningDB(path)
    assert db.path == path and db.rows("decisions")[0]["tied"] == "[]"


def test_migrate_keys_once_newer_row_wins_on_collision(tmp_path):
    path = str(tmp_path / "t.sqlite")
    db = TuningDB(path)
    t = _tuner(db)
    t.select("op", P("old"), (np.ones(3),))
    t.select("op", P("new/cpu"), (np.ones(3),))      # already in the new format
    t.select("op", P("stale"), (np.ones(3),))
    now = {r["key"]: r["created"] for r in db.rows("decisions")}
    # make "stale" older than "stale/cpu" will be, and "old" newer than "old/cpu"
    # (margin marks where a row came from)
    db._write([("UPDATE decisions SET margin = 1, created = ? WHERE key = 'old'", (now["old"] + 50,)),
               ("UPDATE decisions SET margin = 1, created = ? WHERE key = 'stale'", (now["stale"] - 50,))])
    db.put_decision(dict(db.decision("old", t.fp(), "op"), key="old/cpu", margin=2, created=now["old"]))
    db.put_decision(dict(db.decision("stale", t.fp(), "op"), key="stale/cpu", margin=2, created=now["stale"]))
    seen = []

    def to_cpu(key):
        seen.append(key)
        return key if key.endswith("/cpu") else key + "/cpu"
    n = db.migrate_keys("device-suffix", to_cpu)
    assert n == 2 * 2 + 2                            # measurements of old and stale, their decisions
    decisions = {r["key"]: r["margin"] for r in db.rows("decisions")}
    assert set(decisions) == {"old/cpu", "new/cpu", "stale/cpu"}
    assert decisions["old/cpu"] == 1                 # the migrated row is newer: it wins
    assert decisions["stale/cpu"] == 2               # the existing row is newer: it stays
    assert {r["key"] for r in db.rows("measurements")} == {"old/cpu", "new/cpu", "stale/cpu"}
    assert len(db.rows("measurements")) == 6
    # recorded: a second call (even from another connection) does nothing
    seen.clear()
    assert TuningDB(path).migrate_keys("device-suffix", to_cpu) == 0 and seen == []
    assert db.migrate_keys("device-suffix", lambda k: "x") == 0
    # the migrated rows serve the new keys
    d = _tuner(path).select("op", P("old/cpu"))
    assert d.how == "db" and d.margin == 1
    # another tag runs; chains (a -> b while b -> c) move every row once
    assert db.migrate_keys("chain", lambda k: {"old/cpu": "new/cpu", "new/cpu": "x"}.get(k, k)) == 6
    assert {r["key"] for r in db.rows("decisions")} == {"new/cpu", "x", "stale/cpu"}


def test_migrate_keys_rolls_back_when_fn_raises(tmp_path):
    db = TuningDB(str(tmp_path / "t.sqlite"))
    _tuner(db).select("op", P("k"), (np.ones(3),))

    def boom(key):
        raise KeyError(key)
    with pytest.raises(KeyError):
        db.migrate_keys("t", boom)
    assert {r["key"] for r in db.rows("decisions")} == {"k"}
    assert db.migrate_keys("t", lambda k: k + "!") == 3        # not recorded as done


def _child_writes(db, results):
    try:
        inherited = db._con
        db.put_fingerprint("child", {"pid": os.getpid()})
        results.put((db.path, db._con is not inherited))
    except Exception as e:           # reported to the parent
        results.put(repr(e))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_connection(tmp_path):
    import multiprocessing
    path = str(tmp_path / "t.sqlite")
    db = TuningDB(path)
    db.put_fingerprint("parent", {})
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_child_writes, args=(db, results))
    child.start()
    child.join(60)
    assert child.exitcode == 0 and results.get(timeout=5) == (path, True)
    assert {r["fp"] for r in db.rows("fingerprints")} == {"parent", "child"}
