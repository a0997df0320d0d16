"""Beyond one machine: merging tuning databases, fleet tuning on a local Dask cluster whose
workers are given two machine fingerprints, a worker killed mid-sweep, predict over a dask.array."""
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from nbconv.tuner import Registry, Settings, Tuner, TuningDB, Verifier, merge, register

from nbconv import cli, env, knobs, make_problem, ops

QUICK = Settings(min_sample_s=0.0002, min_samples=3, max_samples=3, candidate_budget_s=0.0)
QUICK_ENV = {"min_sample_s": 0.0002, "min_samples": 3, "max_samples": 3, "candidate_budget_s": 0}


# -- merging (no Dask needed) ------------------------------------------------------------------
class P:
    def __init__(self, key):
        self._key = key

    def key(self):
        return self._key


def _registry():
    reg = Registry()
    register("op", "double", registry=reg)(lambda x, p: x * 2.0)
    register("op", "twice", registry=reg, priority=1)(lambda x, p: x + x)
    return reg


def _tune(path, machine, keys, reg):
    t = Tuner(reg, Verifier(reference=lambda op, p, x: x * 2.0), fingerprint={"machine": machine},
              settings=QUICK.with_(db=path))
    for k in keys:
        t.select("op", P(k), (np.ones(1000),))
    t.db.close()


def _dump(path):
    con = sqlite3.connect(path)
    try:
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall())
                for t in ("fingerprints", "measurements", "decisions")}
    finally:
        con.close()


def test_merge_unites_samples_recomputes_decisions_and_is_idempotent(tmp_path):
    reg = _registry()
    a, b = str(tmp_path / "a.sqlite"), str(tmp_path / "b.sqlite")
    _tune(a, "m1", ["k1", "k2"], reg)
    _tune(b, "m1", ["k1"], reg)          # same machine kind, more samples of k1
    _tune(b, "m2", ["k1"], reg)          # another kind: kept apart
    db = TuningDB(a)
    first = merge(db, b, registry=reg, settings=QUICK)
    assert first["measurements"] == 4 and first["fingerprints"] == 1
    once = _dump(a)
    nothing = {"fingerprints": 0, "measurements": 0, "decisions": 0}
    assert merge(db, b, registry=reg, settings=QUICK) == nothing
    assert _dump(a) == once
    n = {(r["key"], r["fp"], r["impl"]): len(json.loads(r["samples"])) for r in db.rows("measurements")}
    assert sorted(n.values()) == [3, 3, 3, 3, 6, 6]        # k1 on m1: both sides' samples kept
    assert {(d["key"], d["fp"]) for d in db.decisions()} == {k[:2] for k in n}
    db.close()
    (tmp_path / "x.txt").write_text("not sqlite")
    with pytest.raises(ValueError, match="not a tuning database"):
        merge(TuningDB(":memory:"), str(tmp_path / "x.txt"))


def test_cli_db_merge_and_import_are_idempotent(tmp_path, capsys, monkeypatch):
    other = str(tmp_path / "other.sqlite")
    mine = str(tmp_path / "mine.sqlite")
    p = make_problem("conv", (1, 6, 6, 4), rank=2, kernel=(3, 3), padding="same", out_channels=4)
    monkeypatch.setenv("NBCONV_TUNING_DB", other)
    ops.reset()
    # shape_budget_s: with a cold Numba cache, compiling every candidate outlasts the default 20 s;
    # a candidate skipped for it leaves the decision provisional (in memory only), nothing to merge
    with ops.tuning(min_sample_s=0.0002, min_samples=3, max_samples=3, candidate_budget_s=0.0,
                    shape_budget_s=600.0):
        ops.decision("conv", p)
    with open(tmp_path / "dump.jsonl", "w") as f:
        ops.tuner().db.export(f)
    ops.reset()
    dumps = []
    for action, src in (("merge", other), ("merge", other), ("import", str(tmp_path / "dump.jsonl"))):
        assert cli.main(["--db", mine, "db", action, src]) == 0
        assert "merged" in capsys.readouterr().out
        dumps.append(_dump(mine))
    assert dumps[0]["decisions"] and dumps[0] == dumps[1] == dumps[2]
    ops.reset()


def test_importing_nbconv_imports_no_dask():
    code = ("import sys, nbconv.models, nbconv.cli, nbconv.ops; nbconv.cli.build_parser(); "
            "print(nbconv.__file__, sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('dask', 'distributed')))")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=root).stdout
    assert out.split() == [str(root / "nbconv" / "__init__.py"), "[]"]


def test_without_dask_the_commands_name_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)       # importing it now raises ImportError
    with pytest.raises(SystemExit, match=r"nbconv\[distributed\]"):
        cli.main(["tune", "--local-cluster", "1", "--no-peak"])


def test_fingerprint_extra_and_worker_env(monkeypatch):
    monkeypatch.setenv("NBCONV_FINGERPRINT_EXTRA", "rack7")
    assert env.fingerprint()["extra"] == "rack7"
    e = knobs.worker_env(2, fingerprint_extra="a", min_samples=3)
    assert e["NUMBA_NUM_THREADS"] == "2" and e["NBCONV_TUNING_DB"] == ":memory:"
    assert e["NBCONV_FINGERPRINT_EXTRA"] == "a" and e["NBCONV_TUNE_MIN_SAMPLES"] == "3"
    with pytest.raises(ValueError, match="unknown tuner setting"):
        knobs.worker_env(1, nonsense=1)


def test_workers_of_another_version_or_kernel_source_are_left_out():
    from nbconv.distributed.cluster import compatible, kinds
    mine = {"version": "1", "sources": {"conv/a": "h1"}}
    infos = {"tcp://x:1": {"version": "1", "sources": {"conv/a": "h1"}, "fp": "f"},
             "tcp://x:2": {"version": "2", "sources": {"conv/a": "h1"}, "fp": "f"},
             "tcp://x:3": {"version": "1", "sources": {"conv/a": "h2"}, "fp": "f"},
             "tcp://x:4": OSError("gone")}
    usable, refused = compatible(mine, infos)
    assert list(usable) == ["tcp://x:1"] and kinds(usable) == {"f": ["tcp://x:1"]}
    assert "nbconv 2" in refused["tcp://x:2"] and "conv/a" in refused["tcp://x:3"]
    assert "probe failed" in refused["tcp://x:4"]


def test_tls_security_and_a_tls_address_without_certificates(tmp_path):
    from nbconv.distributed.cluster import connect, security
    assert security() is None
    files = []
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
        files.append(str(tmp_path / name))
    sec = security(*files)
    assert sec.require_encryption and sec.tls_ca_file == files[0] and sec.tls_client_key == files[2]
    with pytest.raises(SystemExit, match="--tls-ca-file"):
        connect("tls://127.0.0.1:1")


# -- a local cluster: two kinds, one worker dies mid-sweep ---------------------------------------
SHAPES = [(1, 6, 4, 4, 3), (1, 6, 4, 8, 1), (1, 8, 3, 4, 3), (1, 5, 4, 4, 3)]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    import distributed  # the test extra installs it: nothing skips

    from nbconv.distributed.cluster import local_cluster
    marker = str(tmp_path_factory.mktemp("die") / "died")
    envs = [knobs.worker_env(1, fingerprint_extra="a", die_once=marker, **QUICK_ENV),
            knobs.worker_env(1, fingerprint_extra="a", die_once=marker, **QUICK_ENV),
            knobs.worker_env(1, fingerprint_extra="b", **QUICK_ENV)]
    # and one worker without the `benchmark` resource: it is never given a tuning task
    with local_cluster(envs=envs, plain=1) as cluster, distributed.Client(cluster) as client:
        yield client, marker, cluster


def _names(client) -> dict:
    from nbconv.distributed.fleet import alive_workers
    return {w["name"]: addr for addr, w in alive_workers(client).items()}


def _fleet_tune(fleet, tmp_path, *, kill: bool, shapes=SHAPES, refused=()):
    """Tune `shapes` on the fixture's two kinds; `kill`: the first kind-a task kills its worker;
    `refused`: the names of workers left out besides the one without the `benchmark` resource."""
    from nbconv.distributed.fleet import fleet_tune
    client, marker, _ = fleet
    names = _names(client)
    if kill:
        with contextlib.suppress(FileNotFoundError):
            os.remove(marker)
    else:
        open(marker, "a").close()       # the die-once hook has already "fired": nobody dies
    items = [("conv", make_problem("conv", (n, h, h, c), rank=2, kernel=(k, k), padding="same",
                                   out_channels=o)) for n, h, c, o, k in shapes]
    db = TuningDB(str(tmp_path / "fleet.sqlite"))
    report = fleet_tune(client, items, db=db, progress=False)
    assert len(report.kinds) == 2
    assert set(report.refused) == {names[n] for n in ("plain0", *refused)}, report.lines()
    assert "no 'benchmark' resource" in report.refused[names["plain0"]]
    assert all(names["plain0"] not in k.workers for k in report.kinds.values())
    extras = {k.fingerprint.get("extra"): k for k in report.kinds.values()}
    assert set(extras) == {"a", "b"}
    assert all(k.done == len(items) and not k.failed for k in report.kinds.values()), report.lines()
    decided = {(d["key"], d["fp"]) for d in db.decisions()}
    assert decided == {(p.key(), fp) for _, p in items for fp in report.kinds}
    assert {r["fp"] for r in db.rows("fingerprints")} == set(report.kinds)
    assert any("kind" in line and "retried" in line for line in report.lines())
    return extras, report


def test_fleet_tune_writes_every_kind_into_one_database(fleet, tmp_path):
    client, _, cluster = fleet
    # nothing listens beyond loopback: scheduler, its HTTP server, every worker
    assert client.scheduler.address.startswith("tcp://127.0.0.1:")
    assert cluster.scheduler.http_server.address == "127.0.0.1"
    assert all(a.startswith("tcp://127.0.0.1:") for a in client.scheduler_info()["workers"])
    extras, _ = _fleet_tune(fleet, tmp_path, kill=False)
    assert extras["a"].retried == 0 and extras["b"].retried == 0


def _edit_a_kernel(source_hash):
    """Run on a worker: give one registered kernel another source hash, as an edited file would.
    Returns the previous hash."""
    from nbconv.tuner import registry

    from nbconv import ops  # noqa: F401  (registers the kernels)
    impl = registry.impls("conv")[0]
    before = impl.source_hash
    object.__setattr__(impl, "source_hash", source_hash)        # Impl is a frozen dataclass
    return before


def test_a_worker_with_other_kernel_sources_is_reported_and_left_out(fleet, tmp_path):
    client, marker, _ = fleet
    w1 = _names(client)["w1"]
    before = client.run(_edit_a_kernel, "edited", workers=[w1])[w1]
    try:
        extras, report = _fleet_tune(fleet, tmp_path, kill=False, shapes=SHAPES[:2], refused=("w1",))
    finally:
        client.run(_edit_a_kernel, before, workers=[w1])
    assert "kernel sources differ: conv/" in report.refused[w1]
    assert w1 not in extras["a"].workers and len(extras["a"].workers) == 1


def test_a_killed_workers_shapes_are_finished_by_its_kind(fleet, tmp_path):
    extras, _ = _fleet_tune(fleet, tmp_path, kill=True)
    assert extras["a"].retried >= 1 and extras["b"].retried == 0     # the kill hit kind a only


def test_cli_tune_on_a_running_cluster(fleet, tmp_path, monkeypatch, capsys):
    csv = tmp_path / "shapes.csv"
    csv.write_text("name,N,H,W,C,K,R,S,stride,padding,groups\na,1,6,6,4,4,3,3,1,same,1\n")
    db = str(tmp_path / "cli.sqlite")
    monkeypatch.setenv("NBCONV_TUNING_DB", db)      # --db sets it for the process: restored after
    assert cli.main(["--db", db, "tune", "--csv", str(csv), "--cluster", fleet[0].scheduler.address]) == 0
    out = capsys.readouterr().out
    assert out.count("1/1 shapes") == 2 and "fleet: 2 kinds" in out
    assert len(TuningDB(db).decisions()) == 2
    ops.reset()


def test_predict_over_a_dask_array_equals_predict_over_numpy(fleet):
    import dask.array as da

    from nbconv.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D
    from nbconv.models import Sequential
    client = fleet[0]
    model = Sequential([Input((8, 8, 3)), Conv2D(4, 3, padding="same"), MaxPooling2D(), Flatten(), Dense(5)])
    x = np.random.default_rng(0).uniform(-1, 1, (24, 8, 8, 3)).astype("float32")
    lazy = model.predict(da.from_array(x, chunks=(8, 8, 8, 3)), batch_size=8)
    assert isinstance(lazy, da.Array) and lazy.shape == (24, 5) and lazy.dtype == np.float32
    assert lazy.chunks == ((8, 8, 8), (5,))
    graph = dict(lazy.__dask_graph__())
    assert len([k for k in graph if isinstance(k, str) and k.startswith("Sequential-")]) == 1  # sent once
    with ops.tuning(min_sample_s=0.0002, min_samples=3, max_samples=3, candidate_budget_s=0.0):
        expected = model.predict(x, batch_size=8)
        # Dask's threaded scheduler in this process: blocks take turns (Numba's workqueue layer)
        threaded = lazy.compute(scheduler="threads")
    np.testing.assert_allclose(client.compute(lazy).result(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(threaded, expected, rtol=1e-4, atol=1e-5)


def test_cli_tune_on_a_local_cluster(tmp_path, monkeypatch, capsys):
    csv = tmp_path / "shapes.csv"
    csv.write_text("name,N,H,W,C,K,R,S,stride,padding,groups\n"
                   "a,1,6,6,4,4,3,3,1,same,1\nb,1,6,6,4,8,1,1,1,same,1\n")
    for name, value in QUICK_ENV.items():      # forwarded to the workers by knobs.worker_env
        monkeypatch.setenv("NBCONV_TUNE_" + name.upper(), str(value))
    db = str(tmp_path / "cli.sqlite")
    monkeypatch.setenv("NBCONV_TUNING_DB", db)      # --db sets it for the process: restored after
    assert cli.main(["--db", db, "tune", "--csv", str(csv), "--local-cluster", "1"]) == 0
    out = capsys.readouterr().out
    assert "2/2 shapes" in out and "fleet: 1 kinds" in out
    assert len(TuningDB(db).decisions()) == 2
    ops.reset()


def test_a_functional_models_predict_over_a_dask_array_is_lazy_and_equal(fleet, monkeypatch):
    import dask.array as da

    from nbconv.distributed import predict
    from nbconv.layers import AveragePooling2D, Concatenate, Conv2D, Dense, Flatten, Input, MaxPooling2D
    from nbconv.models import Model
    inp = Input((8, 8, 3))
    h = Conv2D(4, 3, padding="same")(inp)
    out = Dense(5)(Flatten()(Concatenate()([MaxPooling2D()(h), AveragePooling2D(2)(h)])))
    model = Model(inp, out)
    calls = []
    block = predict.predict_block
    monkeypatch.setattr(predict, "predict_block", lambda *a: calls.append(1) or block(*a))
    x = np.random.default_rng(1).uniform(-1, 1, (20, 8, 8, 3)).astype("float32")
    lazy = model.predict(da.from_array(x, chunks=(8, 8, 8, 3)), batch_size=8)
    assert isinstance(lazy, da.Array) and lazy.shape == (20, 5) and lazy.dtype == np.float32
    assert lazy.chunks == ((8, 8, 4), (5,)) and lazy._meta.shape == (0, 0)
    assert not calls                                    # no probing call on a dummy array
    with ops.tuning(min_sample_s=0.0002, min_samples=3, max_samples=3, candidate_budget_s=0.0):
        expected = model.predict(x, batch_size=8)
        threaded = lazy.compute(scheduler="threads")
    assert len(calls) == 3 and threaded.dtype == expected.dtype == lazy.dtype
    np.testing.assert_allclose(threaded, expected, rtol=1e-4, atol=1e-5)
    monkeypatch.undo()          # the counting wrapper is local to this test: not sent to workers
    lazy = model.predict(da.from_array(x, chunks=(8, 8, 8, 3)), batch_size=8)
    np.testing.assert_allclose(fleet[0].compute(lazy).result(), expected, rtol=1e-4, atol=1e-5)
    listed = Model(inp, [out]).predict(da.from_array(x, chunks=(10, 8, 8, 3)))
    assert isinstance(listed, list) and listed[0].chunks == ((10, 10), (5,))


def test_predict_over_dask_arrays_refuses_what_a_block_cannot_be():
    import dask.array as da

    from nbconv.layers import Add, Dense, Input
    from nbconv.models import Model
    a, b = Input((4,)), Input((4,))
    x = da.zeros((6, 4), chunks=3)
    with pytest.raises(ValueError, match="one input and one output.*has 2 inputs and 1 outputs"):
        Model([a, b], Add()([a, b])).predict([x, x])
    with pytest.raises(ValueError, match="one input and one output.*has 1 inputs and 2 outputs"):
        Model(a, [Dense(2)(a), Dense(3)(a)]).predict(x)
    with pytest.raises(ValueError, match="expected shape \\(None, 4\\), found shape=\\(6, 5\\)"):
        Model(a, Dense(2)(a)).predict(da.zeros((6, 5), chunks=3))
    with pytest.raises(ValueError, match="batch_size=0"):
        Model(a, Dense(2)(a)).predict(x, batch_size=0)


def test_cli_tune_over_tls_on_loopback(tmp_path, monkeypatch, capsys):
    import distributed

    from nbconv.distributed.cluster import local_cluster
    sec = distributed.Security.temporary()      # a self-signed key and certificate, in memory
    files = {}
    for flag, pem in (("--tls-ca-file", sec.tls_ca_file), ("--tls-cert", sec.tls_client_cert),
                      ("--tls-key", sec.tls_client_key)):
        files[flag] = tmp_path / flag.strip("-")
        files[flag].write_text(pem)
    csv = tmp_path / "shapes.csv"
    csv.write_text("name,N,H,W,C,K,R,S,stride,padding,groups\na,1,6,6,4,4,3,3,1,same,1\n")
    db = str(tmp_path / "tls.sqlite")
    monkeypatch.setenv("NBCONV_TUNING_DB", db)
    with local_cluster(envs=[knobs.worker_env(1, **QUICK_ENV)], security=sec) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        with pytest.raises(SystemExit, match="--tls-ca-file"):      # no certificates: refused
            cli.main(["--db", db, "tune", "--csv", str(csv), "--cluster", address])
        args = [str(a) for kv in files.items() for a in kv]
        assert cli.main(["--db", db, "tune", "--csv", str(csv), "--cluster", address, *args]) == 0
    out = capsys.readouterr().out
    assert "1/1 shapes" in out and "fleet: 1 kinds" in out
    assert len(TuningDB(db).decisions()) == 1
    ops.reset()
