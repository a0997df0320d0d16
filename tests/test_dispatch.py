"""nbconv.ops dispatch through the tuner with the real registry, knobs and fingerprint."""
import dataclasses
import json

import numpy as np
import pytest
from nbconv.tuner import registry

from nbconv import env, knobs, ops, reference
from nbconv.spec import make_problem


@pytest.fixture(autouse=True)
def fresh_ops(monkeypatch):
    for name in ("NBCONV_TUNE", "NBCONV_FORCE_IMPL"):
        monkeypatch.delenv(name, raising=False)
    # quick measurements: these tests check dispatch, not timing quality
    monkeypatch.setenv("NBCONV_TUNE_MIN_SAMPLE_S", "0.0002")
    monkeypatch.setenv("NBCONV_TUNE_MIN_SAMPLES", "3")
    monkeypatch.setenv("NBCONV_TUNE_CANDIDATE_BUDGET_S", "0")
    ops.reset()
    yield
    ops.reset()


CONV = make_problem("conv", (2, 6, 6, 4), rank=2, kernel=(3, 3), padding="same", out_channels=8)
PROBLEMS = [
    CONV,
    make_problem("conv", (1, 3, 5, 5), rank=2, kernel=(1, 1), out_channels=3, layout="channels_first"),
    make_problem("maxpool", (1, 5, 5, 3), rank=2, kernel=(2, 2), strides=(2, 2), padding="same"),
    make_problem("avgpool", (2, 7, 3), rank=1, kernel=(3,), strides=(2,), padding="same"),
    make_problem("local", (1, 5, 5, 2), rank=2, kernel=(3, 3), out_channels=3),
]


def _call(p, args):
    if p.op == "conv":
        return ops.conv(*args, p)
    if p.op == "local":
        return ops.local(*args, p)
    return ops.pool(*args, p)


@pytest.mark.parametrize("p", PROBLEMS, ids=lambda p: p.key())
def test_every_op_tunes_on_first_call_and_matches_the_reference(p):
    args = ops.make_args(p.op, p, seed=3)
    y = _call(p, args)
    assert y.dtype == np.float32 and y.shape == p.output_shape
    assert reference.rel_error(y, reference.run(p.op, p, *args)) < 1e-4
    d = ops.decision(p.op, p)
    fn, cfg = ops.chosen(p.op, p)
    assert fn is d.impl.fn and cfg == d.config
    if len(registry.candidates(p.op, p)) > 1:
        winners = [r for r in ops.records(op=p.op) if r["key"] == p.key() and r["winner"]]
        assert len(winners) == 1 and winners[0]["impl"] == d.impl.name


def test_dense_dispatch():
    p = make_problem("dense", (3, 5), rank=0, kernel=(), out_channels=4)
    x, w, b = ops.make_args("dense", p, seed=1)
    assert reference.rel_error(ops.dense(x, w, b, p), reference.dense(x, w, b)) < 1e-5


def test_a_decided_call_does_not_go_through_the_tuner(monkeypatch):
    x, w, b = ops.make_args("conv", CONV, seed=1)
    first = ops.conv(x, w, b, CONV)

    def boom(*a, **k):
        raise AssertionError("the tuner was consulted for a decided problem")
    monkeypatch.setattr(ops.tuner(), "select", boom)
    np.testing.assert_array_equal(ops.conv(x, w, b, CONV), first)


def test_decisions_persist_across_resets_as_across_processes():
    x, w, b = ops.make_args("conv", CONV, seed=1)
    ops.conv(x, w, b, CONV)
    name = ops.decision("conv", CONV).name
    ops.reset()
    d = ops.decision("conv", CONV)
    assert d.name == name and d.how in ("db", "single")


def test_tuning_context_manager_and_knobs(monkeypatch):
    x, w, b = ops.make_args("conv", CONV, seed=1)
    ops.conv(x, w, b, CONV)
    outside = ops.chosen("conv", CONV)
    with ops.tuning(mode="off", force="conv_direct"):
        fn, cfg = ops.chosen("conv", CONV)
        assert fn is registry.get("conv", "conv_direct").fn
        y = ops.conv(x, w, b, CONV)
        assert reference.rel_error(y, reference.conv(x, w, b, CONV)) < 1e-4
    assert ops.chosen("conv", CONV) == outside
    monkeypatch.setenv("NBCONV_TUNE", "off")
    ops.reset()
    d = ops.decision("conv", CONV)
    assert (d.how, d.impl) == ("priority", registry.candidates("conv", CONV)[0][0])
    monkeypatch.setenv("NBCONV_TUNE", "estimate")
    ops.reset()
    assert ops.decision("conv", CONV).how in ("db", "estimate")


def test_bad_knob_values_are_named():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBCONV_TUNE", "fastest")
        with pytest.raises(ValueError, match=r"NBCONV_TUNE must be one of .*Received: NBCONV_TUNE='fastest'"):
            knobs.tuner_settings()
        mp.setenv("NBCONV_TUNE", "measure")
        mp.setenv("NBCONV_TUNE_MIN_SAMPLES", "many")
        with pytest.raises(ValueError, match="NBCONV_TUNE_MIN_SAMPLES must be an integer"):
            knobs.tuner_settings()


def test_recording_collects_problems():
    x, w, b = ops.make_args("conv", CONV, seed=1)
    ops.conv(x, w, b, CONV)
    with ops.recording() as seen:
        ops.conv(x, w, b, CONV)                   # decided outside: still recorded
    assert seen == [("conv", CONV)]


def test_explain_lists_every_registered_conv_impl():
    ex = ops.explain("conv", CONV)
    names = {r["impl"] for r in ex["rows"]}
    assert names == {i.name for i in registry.impls("conv")}
    for r in ex["rows"]:
        assert r["applies"] or r["reason"]        # never silent about why not
        if r["applies"]:
            assert r["status"] == "ok" and r["error"] < 1e-4 and r["median_s"] > 0
    assert sum(r["winner"] for r in ex["rows"]) == 1


def test_fingerprint_and_peaks():
    fp = env.fingerprint()
    for field in ("cpu", "cpu_flags", "numba_threads", "blas_threads", "numba", "llvmlite", "numpy",
                  "python"):
        assert fp[field] not in (None, "")
    assert ops.tuner().fingerprint() == fp


def test_first_call_with_non_finite_input_tunes_on_random_data():
    p = make_problem("conv", (1, 7, 7, 5), rank=2, kernel=(3, 3), padding="same", out_channels=6)
    x, w, b = ops.make_args("conv", p, seed=4)
    x[0, 3, 3, 1] = np.inf
    x[0, 0, 0, 0] = np.nan
    y = ops.conv(x, w, b, p)
    assert y.shape == p.output_shape and np.isnan(y).any()     # the NaN reaches the output
    rows = [r for r in ops.records(op="conv") if r["key"] == p.key()]
    assert len(rows) == len(registry.candidates("conv", p))
    assert all(r["status"] == "ok" for r in rows), [(r["impl"], r["reason"]) for r in rows]


# -- the kernel contract: device, prepare, mixes_tiles, timer ------------------------------------

def test_the_device_is_part_of_the_problem_and_its_key():
    from nbconv.spec import problem_from_key
    assert CONV.device == "cpu" and CONV.key().endswith("/cpu")
    assert problem_from_key(CONV.key()) == CONV
    old = CONV.key().rsplit("/", 1)[0]                     # keys written before the device field
    assert problem_from_key(old) == CONV
    assert CONV.with_(device="cuda").key() != CONV.key()
    with pytest.raises(ValueError, match=r"`device` must be one of .*Received: device='tpu'"):
        CONV.with_(device="tpu")


def test_fingerprints_grow_per_device_and_cpu_rows_keep_the_host_one(monkeypatch):
    host = env.fingerprint()
    assert env.fingerprint("cpu") == host and "device" not in host
    with pytest.raises(ValueError, match="no backend describes device 'cuda'"):
        env.fingerprint("cuda")
    monkeypatch.setitem(env.DEVICE_INFO, "cuda", lambda: {"gpu": "Test GPU", "cc": "9.0"})
    gpu = env.fingerprint("cuda")
    assert gpu == {**host, "device": "cuda", "gpu": "Test GPU", "cc": "9.0"}
    t = ops.tuner()
    assert t.fp(CONV) == t.fp() != t.fp(CONV.with_(device="cuda"))


def _counting_prepare(monkeypatch, name):
    """Wrap a registered impl's prepare so the test can count its calls."""
    impl = registry.get("conv", name)
    calls = []

    def prepare(*args, **kw):
        calls.append(args[-1].key())
        return impl.prepare(*args, **kw)
    monkeypatch.setattr(registry, "_impls", {**registry._impls, "conv": {
        **registry._impls["conv"], name: dataclasses.replace(impl, prepare=prepare)}})
    return calls


def test_prepared_weights_are_made_once_per_weights_and_decision(monkeypatch):
    p = make_problem("conv", (1, 8, 8, 4), rank=2, kernel=(3, 3), padding="same", out_channels=4)
    calls = _counting_prepare(monkeypatch, "winograd_f4x4_3x3")
    x, w, b = ops.make_args("conv", p, seed=3)
    with ops.tuning(mode="off", force="winograd_f4x4_3x3"):
        y1 = ops.conv(x, w, b, p)
        y2 = ops.conv(x, w, b, p)
        y3 = ops.conv(x * 2, w, b, p)                      # new input, same weights: reused
        assert len(calls) == 1
        w2 = w * -1.0                                      # new weights (as set_weights makes)
        y4 = ops.conv(x, w2, b, p)
        assert len(calls) == 2
    ref = reference.conv(x, w, b, p)
    for y in (y1, y2):
        assert reference.rel_error(y, ref) < 1e-3
    assert reference.rel_error(y3, reference.conv(x * 2, w, b, p)) < 1e-3
    assert reference.rel_error(y4, reference.conv(x, w2, b, p)) < 1e-3


def test_prepare_is_not_timed_with_the_calls(monkeypatch):
    """The tuner calls prepare once per candidate, apart from the timed calls."""
    p = make_problem("conv", (1, 6, 6, 2), rank=2, kernel=(3, 3), padding="same", out_channels=2)
    calls = _counting_prepare(monkeypatch, "winograd_f2x2_3x3")
    x, w, b = ops.make_args("conv", p, seed=4)
    d = ops.decision("conv", p, (x, w, b))
    assert d.how == "measured"
    n_configs = len(registry.get("conv", "winograd_f2x2_3x3").configs_for(p))
    assert len(calls) == n_configs                         # one prepare per config, not per call


def test_a_layer_decided_once_then_forced_to_winograd_puts_nan_where_the_reference_does():
    """The NaN/Inf fallback follows the kernel actually run, not a cached flag of the layer."""
    from nbconv.layers import Conv2D
    conv = Conv2D(4, 3, padding="same")
    x = np.random.default_rng(0).uniform(-1, 1, (2, 9, 9, 3)).astype("float32")
    with ops.tuning(mode="off", force="conv_direct"):
        conv(x)                                            # decided on a kernel that does not mix
    x[1, 4, 4, 2] = np.nan
    for impl in ("winograd_f4x4_3x3", "winograd_f2x2_3x3"):
        with ops.tuning(mode="off", force=impl):
            assert ops.decision("conv", conv._problem(x.shape)).impl.mixes_tiles
            y = conv(x)
        p = conv._problem(x.shape)
        ref = reference.conv(x, conv.get_weights()[0], conv.get_weights()[1], p)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
        assert np.isnan(y).sum() == 9 * 4
    y = conv(x)                                            # and back outside the block
    assert np.isnan(y).sum() == 9 * 4


def test_an_impl_timer_measures_its_calls():
    """A device plugs in its own clock (CUDA events): the tuner times with the impl's timer."""
    from nbconv.tuner import Registry, Settings, Tuner, register
    reg, seen = Registry(), []

    def timer(call, n):
        for _ in range(n):
            call()
        seen.append(n)
        return 1e-3 * n                                    # a fixed clock: every call takes 1 ms

    register("op", "a", registry=reg, timer=timer)(lambda x, p: x + 1)
    register("op", "b", registry=reg)(lambda x, p: x + 1)

    class P:
        def key(self):
            return "k"
    t = Tuner(reg, settings=Settings(min_sample_s=1e-4, min_samples=3, max_samples=3))
    rows = t.ensure_measured("op", P(), reg.candidates("op", P()), (np.ones(3),))
    samples = json.loads(rows[("a", "{}")]["samples"])
    assert seen and samples == [1e-3] * 3 and rows[("a", "{}")]["compile_s"] == 1e-3


def test_a_database_from_before_the_device_key_is_migrated(tmp_path, monkeypatch):
    """Rows keyed without the device suffix are re-keyed once, then found by today's keys."""
    from nbconv.tuner import TuningDB
    path = str(tmp_path / "old.sqlite")
    x, w, b = ops.make_args("conv", CONV, seed=2)
    monkeypatch.setenv("NBCONV_TUNING_DB", path)
    ops.reset()
    ops.conv(x, w, b, CONV)                                # tune once: rows with today's key
    db = TuningDB(path)
    old = CONV.key().rsplit("/", 1)[0]
    for table in ("measurements", "decisions"):            # as an old nbconv wrote them
        db._con.execute(f"UPDATE {table} SET key = ?", (old,))
    db._con.execute("DELETE FROM meta WHERE k LIKE 'migrate:%'")
    db.close()
    ops.reset()
    t = ops.tuner()
    assert {r["key"] for r in t.records()} == {CONV.key()}
    before = t.measured
    assert ops.decision("conv", CONV).how == "db" and t.measured == before
