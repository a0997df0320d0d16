"""nbconv.ops dispatch through the tuner with the real registry, knobs and fingerprint."""
import numpy as np
import pytest

from nbconv import env, knobs, ops, reference
from nbconv.spec import make_problem
from tuner import registry


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
