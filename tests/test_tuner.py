"""The generic tuner on fake candidates with controlled timings (no Numba).

Fake kernels busy-wait a fixed time; where a test needs a specific winner the two differ
20x, so that scheduler preemption on a loaded machine (4 ms ticks) cannot flip the order.
Equal-speed kernels run the same code. The decision rule itself is tested on synthetic samples.
"""
import copy
import json
import time

import numpy as np
import pytest
from nbconv.tuner import Impl, Registry, Settings, Tuner, Verifier, choose, register
from nbconv.tuner.explain import explain
from nbconv.tuner.measure import RAISED, SKIPPED, WRONG
from nbconv.tuner.stats import faster, mann_whitney_less, spread
from scipy import stats as sp_stats

QUICK = Settings(min_sample_s=0.0005, min_samples=7, max_samples=9, candidate_budget_s=0.02)


class FakeProblem:
    def __init__(self, key="fake/1", flops=1000):
        self._key, self._flops = key, flops

    def key(self):
        return self._key

    def flops(self):
        return self._flops


def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def reference(op, p, x):
    return x * 2.0


def make_tuner(reg, db=None, settings=QUICK, **kw):
    return Tuner(reg, Verifier(reference=reference, **kw), fingerprint={"machine": "test"},
                 settings=settings.with_(db=db) if db is not None else settings)


def fake(reg, name, seconds, *, priority=0, result=2.0, raises=None, first_extra=0.0, **kw):
    calls = {"n": 0}

    def fn(x, p, **cfg):
        calls["n"] += 1
        if raises:
            raise raises
        if calls["n"] == 1 and first_extra:
            time.sleep(first_extra)
        spin(seconds)
        return x * result
    register("op", name, priority=priority, registry=reg, **kw)(fn)
    return calls


X = (np.arange(1.0, 5.0),)


# -- statistics ----------------------------------------------------------------------------------
@pytest.mark.parametrize("n1,n2,shift", [(5, 5, 0.5), (3, 8, 1.0), (12, 10, 0.3), (40, 35, 0.4), (6, 6, 0.0)])
def test_mann_whitney_matches_scipy(n1, n2, shift):
    rng = np.random.default_rng(n1 * 100 + n2)
    a, b = rng.normal(0, 1, n1), rng.normal(shift, 1, n2)
    method = "exact" if max(n1, n2) <= 30 else "asymptotic"
    want = sp_stats.mannwhitneyu(a, b, alternative="less", method=method).pvalue
    assert mann_whitney_less(a, b) == pytest.approx(want, rel=1e-9)


def test_faster_needs_the_minimum_gain():
    a = np.array([1.000, 1.001, 1.002, 1.003, 1.004])
    b = a * 1.01                                    # 1 % slower, every sample
    assert faster(a, b, alpha=0.01, min_gain=0.0)[0]
    assert not faster(a, b, alpha=0.01, min_gain=0.02)[0]
    assert faster(a, a * 1.5, alpha=0.01, min_gain=0.02)[0]
    assert spread([1.0, 1.0, 1.0]) == 0.0 and spread([1.0]) == 0.0


# -- the decision rule on synthetic samples -------------------------------------------------------
def _rows(samples_by_name):
    return {(n, "{}"): {"status": "ok", "samples": json.dumps(s), "reason": ""}
            for n, s in samples_by_name.items()}


def _cands(reg):
    return [(i, {}) for i in reg.impls("op")]


def test_choose_significant_winner():
    reg = Registry()
    for name, prio in (("a", 5), ("b", 0)):
        reg.add(Impl("op", name, fn=None, applies=lambda p: True, priority=prio))
    base = [1.0, 1.01, 0.99, 1.02, 0.98]
    d = choose(_cands(reg), _rows({"a": [2 * v for v in base], "b": base}), QUICK, op="op", key="k")
    assert (d.impl.name, d.tie, d.partner) == ("b", False, ("a", {}))
    assert d.margin == pytest.approx(2.0) and d.p_value < 0.01


def test_choose_tie_goes_to_priority_then_name_and_records_partner():
    reg = Registry()
    for name, prio in (("zeta", 5), ("alpha", 0), ("beta", 0)):
        reg.add(Impl("op", name, fn=None, applies=lambda p: True, priority=prio))
    same = [1.0, 1.01, 0.99, 1.02, 0.98]
    # zeta's median is 0.5 % slower: not significant at a 2 % minimum gain -> tie, zeta wins on priority
    d = choose(_cands(reg), _rows({"zeta": [v * 1.005 for v in same], "alpha": same,
                                   "beta": [v * 3 for v in same]}), QUICK)
    assert (d.impl.name, d.tie, d.partner, d.tied) == ("zeta", True, ("alpha", {}), (("alpha", {}),))
    assert d.p_value >= QUICK.alpha               # the p-value shown is the one that made the tie
    # equal priority: the name breaks the tie, whichever median is lower
    reg2 = Registry()
    for name in ("b", "a"):
        reg2.add(Impl("op", name, fn=None, applies=lambda p: True))
    d2 = choose(_cands(reg2), _rows({"a": [v * 1.004 for v in same], "b": same}), QUICK)
    assert (d2.impl.name, d2.tie, d2.partner, d2.tied) == ("a", True, ("b", {}), (("b", {}),))
    assert d2.margin == pytest.approx(1 / 1.004)


def test_a_much_slower_candidate_is_never_tied_however_noisy_the_samples():
    """Preempted samples can make a 20x slower kernel 'not significantly slower' (the case
    seen under load: a 17-way tie won by priority at 24x the fastest's median). Only medians
    within `tie_band` of the fastest's are tied; beyond it the fastest median wins."""
    reg = Registry()
    for name, prio in (("slow_first", 9), ("fast", 0)):
        reg.add(Impl("op", name, fn=None, applies=lambda p: True, priority=prio))
    fast = [1.0, 1.0, 1.0, 40.0, 40.0]            # two preempted samples
    slow = [20.0, 20.0, 21.0, 22.0, 23.0]
    assert not faster(fast, slow, alpha=QUICK.alpha, min_gain=QUICK.min_gain)[0]
    d = choose(_cands(reg), _rows({"slow_first": slow, "fast": fast}), QUICK)
    assert (d.impl.name, d.tie, d.partner) == ("fast", False, ("slow_first", {}))
    assert d.p_value >= QUICK.alpha and d.margin == pytest.approx(21.0)
    # inside the band the same samples' order is a tie, won by priority
    wide = choose(_cands(reg), _rows({"slow_first": slow, "fast": fast}), QUICK.with_(tie_band=30))
    assert (wide.impl.name, wide.tie) == ("slow_first", True)
    with pytest.raises(ValueError, match="tie_band"):
        QUICK.with_(tie_band=-0.1)


def test_choose_never_picks_a_failed_candidate_and_raises_when_all_failed():
    reg = Registry()
    for name in ("bad", "good"):
        reg.add(Impl("op", name, fn=None, applies=lambda p: True))
    rows = _rows({"bad": [0.1] * 5, "good": [1.0] * 5})
    rows[("bad", "{}")]["status"] = WRONG
    assert choose(_cands(reg), rows, QUICK).impl.name == "good"
    rows[("good", "{}")]["status"] = RAISED
    with pytest.raises(RuntimeError, match="no candidate for op k ran correctly"):
        choose(_cands(reg), rows, QUICK, op="op", key="k")


def test_choose_is_a_pure_function_of_its_inputs():
    """No Tuner, no DB, no state: the same inputs give the same decision, inputs untouched;
    samples may be lists or JSON text; settings decide significance."""
    reg = Registry()
    for name, prio in (("a", 1), ("b", 0)):
        reg.add(Impl("op", name, fn=None, applies=lambda p: True, priority=prio))
    base = [1.0, 1.01, 0.99, 1.02, 0.98]
    rows = {("a", "{}"): {"status": "ok", "samples": [v * 1.1 for v in base], "reason": ""},
            ("b", "{}"): {"status": "ok", "samples": json.dumps(base), "reason": ""}}
    frozen = copy.deepcopy(rows)
    fields = ("impl", "config", "how", "tie", "partner", "margin", "p_value", "note", "tied")
    first, second = (choose(_cands(reg), rows, QUICK, op="op", key="k", note="n") for _ in range(2))
    assert [getattr(first, f) for f in fields] == [getattr(second, f) for f in fields]
    assert (first.op, first.key, first.note, first.impl.name, first.tie) == ("op", "k", "n", "b", False)
    assert rows == frozen
    # a 20 % minimum gain makes the 10 % faster one a tie (inside a 20 % band), won by priority
    tied = choose(_cands(reg), rows, QUICK.with_(min_gain=0.2, tie_band=0.2))
    assert (tied.impl.name, tied.tie, tied.partner) == ("a", True, ("b", {}))


# -- measuring fake kernels ----------------------------------------------------------------------
def test_measured_winner_failures_and_wrong_outputs_recorded():
    reg = Registry()
    fake(reg, "slow", 0.002, priority=9)
    fake(reg, "fast", 0.0001)
    fake(reg, "broken", 0.0, raises=RuntimeError("boom"))
    fake(reg, "wrong", 0.0, result=3.0)           # fastest of all, but wrong
    t = make_tuner(reg)
    d = t.select("op", FakeProblem(), X)
    assert d.impl.name == "fast" and d.how == "measured" and not d.tie
    assert d.partner == ("slow", {}) and d.margin > 3
    recs = {r["impl"]: r for r in t.records()}
    assert recs["broken"]["status"] == RAISED and "RuntimeError: boom" in recs["broken"]["reason"]
    assert recs["wrong"]["status"] == WRONG and recs["wrong"]["error"] == pytest.approx(0.5)
    assert "tolerance" in recs["wrong"]["reason"]
    assert recs["fast"]["winner"] and recs["slow"]["partner"] and not recs["fast"]["tie"]
    assert len(recs["fast"]["samples"]) >= QUICK.min_samples and recs["fast"]["inner"] >= 1
    assert recs["fast"]["error"] == 0.0


def test_equal_kernels_tie_and_priority_breaks_it():
    reg = Registry()
    fake(reg, "plain", 0.0003)
    fake(reg, "preferred", 0.0003, priority=3)
    t = make_tuner(reg, settings=QUICK.with_(min_gain=0.5, tie_band=0.5))   # timing noise stays inside
    d = t.select("op", FakeProblem(), X)
    assert d.tie and d.impl.name == "preferred" and d.partner == ("plain", {})


def test_compile_time_is_recorded_apart():
    reg = Registry()
    fake(reg, "jit", 0.0002, first_extra=0.15)
    fake(reg, "other", 0.002)
    t = make_tuner(reg)
    t.select("op", FakeProblem(), X)
    rec = {r["impl"]: r for r in t.records()}["jit"]
    assert rec["compile_s"] >= 0.15
    assert max(rec["samples"]) < 0.05             # the slow first call is in no sample


def test_sync_is_called_before_every_clock_read():
    reg = Registry()
    clock_reads = {"sync": 0}

    def sync():
        clock_reads["sync"] += 1
    fake(reg, "a", 0.0002, sync=sync)
    fake(reg, "b", 0.0004)
    t = make_tuner(reg)
    t.select("op", FakeProblem(), X)
    rec = {r["impl"]: r for r in t.records()}["a"]
    # 2 reads for the first call, 2 per timed block (doubling steps + samples)
    assert clock_reads["sync"] >= 2 + 2 * len(rec["samples"])
    assert clock_reads["sync"] % 2 == 0


def test_candidate_budget_and_sample_bounds():
    reg = Registry()
    fake(reg, "slowish", 0.004)
    fake(reg, "quick", 0.0001)
    s = QUICK.with_(candidate_budget_s=0.0, min_samples=3, max_samples=9)
    t = make_tuner(reg, settings=s)
    t.select("op", FakeProblem(), X)
    for r in t.records():
        assert len(r["samples"]) == 3             # budget spent at once: exactly the minimum


def test_shape_budget_skips_later_candidates_and_they_are_measured_later(tmp_path):
    db = str(tmp_path / "t.sqlite")
    reg = Registry()
    fake(reg, "first", 0.002, priority=5)
    fake(reg, "second", 0.0001)
    t = make_tuner(reg, db=db, settings=QUICK.with_(shape_budget_s=0.0))
    d = t.select("op", FakeProblem(), X)
    recs = {r["impl"]: r for r in t.records()}
    assert recs["second"]["status"] == SKIPPED and "shape budget" in recs["second"]["reason"]
    assert d.impl.name == "first"                 # a skipped candidate is never chosen
    assert t.select("op", FakeProblem(), X) is d  # this process keeps its provisional decision
    t2 = make_tuner(reg, db=db)                   # the next process measures only the skipped one
    d2 = t2.select("op", FakeProblem(), X)
    assert (d2.impl.name, d2.how, t2.measured) == ("second", "measured", 1)
    t3 = make_tuner(reg, db=db)
    assert t3.select("op", FakeProblem(), X).how == "db" and t3.measured == 0


def test_single_candidate_is_taken_untimed():
    reg = Registry()
    calls = fake(reg, "only", 0.0)
    fake(reg, "never", 0.0, applies=lambda p: "needs a square kernel")
    t = make_tuner(reg)
    d = t.select("op", FakeProblem(), X)
    assert (d.impl.name, d.how, calls["n"], t.measured) == ("only", "single", 0, 0)


def test_memory_and_database_hits_measure_nothing(tmp_path):
    db = str(tmp_path / "t.sqlite")
    reg = Registry()
    fake(reg, "a", 0.0002)
    fake(reg, "b", 0.0006)
    t = make_tuner(reg, db=db)
    d = t.select("op", FakeProblem(), X)
    assert t.measured == 2
    assert t.select("op", FakeProblem(), X) is d and t.measured == 2
    t2 = make_tuner(reg, db=db)                   # as a later process would
    d2 = t2.select("op", FakeProblem())           # no arrays needed: nothing is measured
    assert (d2.impl.name, d2.how, t2.measured) == (d.impl.name, "db", 0)
    t3 = Tuner(reg, Verifier(reference=reference), fingerprint={"machine": "other"},
               settings=QUICK.with_(db=db))
    t3.select("op", FakeProblem(), X)
    assert t3.measured == 2                       # another machine does not reuse the rows


def test_editing_one_kernel_remeasures_only_it(tmp_path):
    db = str(tmp_path / "t.sqlite")

    def build(hash_b):
        reg = Registry()
        fake(reg, "a", 0.0002)
        fake(reg, "b", 0.0006)
        b = reg.get("op", "b")
        reg._impls["op"]["b"] = Impl(b.op, b.name, b.fn, b.applies, source_hash=hash_b)
        return reg
    t = make_tuner(build("v1"), db=db)
    t.select("op", FakeProblem(), X)
    t2 = make_tuner(build("v2"), db=db)
    d = t2.select("op", FakeProblem(), X)
    assert t2.measured == 1 and d.how == "measured"
    hashes = {r["impl"]: r["source_hash"] for r in t2.records()}
    assert hashes["b"] == "v2"


def test_configs_are_separate_candidates():
    reg = Registry()
    seen = []

    def fn(x, p, n=1):
        seen.append(n)
        spin(0.0001 * n)
        return x * 2.0
    register("op", "tiled", configs=[{"n": 1}, {"n": 20}], registry=reg)(fn)
    t = make_tuner(reg)
    d = t.select("op", FakeProblem(), X)
    assert d.config == {"n": 1} and d.name == "tiled[n=1]"
    assert {json.dumps(r["config"]) for r in t.records()} == {'{"n": 1}', '{"n": 20}'}
    assert set(seen) == {1, 20}


def test_verification_skipped_above_the_size_limit_is_recorded():
    reg = Registry()
    fake(reg, "a", 0.0001, result=3.0)            # wrong, but not checked at this size
    fake(reg, "b", 0.0003)
    t = make_tuner(reg, settings=QUICK.with_(verify_max_flops=10))
    t.select("op", FakeProblem(flops=1000), X)
    rec = {r["impl"]: r for r in t.records()}["a"]
    assert rec["status"] == "ok" and rec["error"] is None and "verification skipped" in rec["reason"]


def test_no_applicable_candidate_says_why():
    reg = Registry()
    fake(reg, "square", 0.0, applies=lambda p: "needs a square kernel")
    fake(reg, "false", 0.0, applies=lambda p: False)
    with pytest.raises(ValueError, match=r"no implementation of 'op' applies to fake/1 \(false: not "
                                         r"applicable; square: needs a square kernel\)"):
        make_tuner(reg).select("op", FakeProblem(), X)


def test_tuning_without_arrays_needs_make_args():
    reg = Registry()
    fake(reg, "a", 0.0001)
    fake(reg, "b", 0.0001)
    with pytest.raises(ValueError, match="needs arrays"):
        make_tuner(reg).select("op", FakeProblem())
    t = make_tuner(reg, make_args=lambda op, p: X)
    assert t.select("op", FakeProblem()).how == "measured"


# -- modes -------------------------------------------------------------------------------------
def test_modes_off_force_and_estimate():
    reg = Registry()
    calls = fake(reg, "low", 0.0, priority=0, estimate=lambda p, cfg: 1.0)
    fake(reg, "high", 0.0, priority=5, estimate=lambda p, cfg: 2.0)
    fake(reg, "nomodel", 0.0, priority=9)
    t = make_tuner(reg)
    with t.using(mode="off"):
        d = t.select("op", FakeProblem(), X)
        assert (d.impl.name, d.how) == ("nomodel", "priority")
    with t.using(mode="estimate"):
        d = t.select("op", FakeProblem(), X)
        assert (d.impl.name, d.how) == ("low", "estimate")
    with t.using(force="high"):
        assert t.select("op", FakeProblem(), X).how == "forced"
        assert t.select("op", FakeProblem(), X).impl.name == "high"
    with t.using(mode="off", force="absent"):
        d = t.select("op", FakeProblem(), X)
        assert d.impl.name == "nomodel" and "is not registered" in d.note
    assert calls["n"] == 0 and t.measured == 0    # no mode above timed anything
    assert t.settings.mode == "measure"


def test_estimate_without_cost_models_takes_priority_deterministically():
    reg = Registry()
    fake(reg, "a", 0.0, priority=1)
    fake(reg, "b", 0.0, priority=2)
    t = make_tuner(reg, settings=QUICK.with_(mode="estimate"))
    assert [t.select("op", FakeProblem(f"k{i}"), X).impl.name for i in range(3)] == ["b"] * 3


def test_settings_are_validated():
    with pytest.raises(ValueError, match="`mode` must be one of"):
        Settings(mode="fast")
    with pytest.raises(ValueError, match="min_samples <= max_samples"):
        Settings(min_samples=5, max_samples=2)
    with pytest.raises(ValueError, match="`alpha` must be in"):
        Settings(alpha=1.5)


# -- explain --------------------------------------------------------------------------------------
def test_explain_lists_every_candidate():
    reg = Registry()
    fake(reg, "a", 0.0001)
    fake(reg, "b", 0.002)
    fake(reg, "c", 0.0, applies=lambda p: "needs rank 2")
    t = make_tuner(reg)
    ex = t.explain("op", FakeProblem(), X)
    rows = {r["impl"]: r for r in ex["rows"]}
    assert not rows["c"]["applies"] and rows["c"]["reason"] == "needs rank 2"
    assert rows["a"]["winner"] and rows["b"]["partner"] and rows["a"]["median_s"] < rows["b"]["median_s"]
    assert rows["a"]["compile_s"] is not None and rows["a"]["error"] == 0.0
    assert ex["decision"].impl.name == "a" and ex["error"] == ""


def test_explain_module_without_measuring_reads_stored_rows_only(tmp_path):
    reg = Registry()
    fake(reg, "a", 0.0001)
    fake(reg, "b", 0.002)
    db = str(tmp_path / "t.sqlite")
    fresh = make_tuner(reg, db=db, settings=QUICK.with_(mode="off"))
    ex = explain(fresh, "op", FakeProblem(), measure=False)
    assert ex["op"] == "op" and ex["key"] == "fake/1" and ex["decision"].how == "priority"
    assert [(r["impl"], r["status"], r["reason"]) for r in ex["rows"]] == [
        ("a", None, "not measured"), ("b", None, "not measured")]
    make_tuner(reg, db=db).select("op", FakeProblem(), X)          # another tuner measures
    again = make_tuner(reg, db=db)
    ex = explain(again, "op", FakeProblem(), measure=False)
    assert again.measured == 0 and ex["decision"].how == "db"
    assert all(r["status"] == "ok" and len(r["samples"]) >= QUICK.min_samples for r in ex["rows"])
    assert again.explain("op", FakeProblem(), measure=False)["rows"] == ex["rows"]    # the method delegates


def test_source_hash_covers_the_kernel_module_and_its_package_helpers(tmp_path, monkeypatch):
    import importlib
    import sys

    from nbconv.tuner.registry import _source_hash

    def build(name, helper, kernel="from . import helper\n\ndef fn(x, p):\n    return x * helper.K\n"):
        root = tmp_path / name
        (root / "hashpkg").mkdir(parents=True)
        (root / "hashpkg" / "__init__.py").write_text("")
        (root / "hashpkg" / "helper.py").write_text(helper)
        (root / "hashpkg" / "kern.py").write_text(kernel)
        for mod in [m for m in sys.modules if m.split(".")[0] == "hashpkg"]:
            monkeypatch.delitem(sys.modules, mod)
        monkeypatch.syspath_prepend(str(root))
        return _source_hash(importlib.import_module("hashpkg.kern").fn)
    h1 = build("a", "K = 2\n")
    assert build("b", "K = 3\n") != h1                    # a helper edit re-tunes its users
    assert build("c", "K = 2\n") == h1                    # the same sources, the same hash
    assert build("d", "K = 2\n", "from . import helper\n\ndef fn(x, p):\n    return x * helper.K * 1\n") != h1


def test_estimate_uses_stored_timings_when_the_decision_is_stale(tmp_path):
    db = str(tmp_path / "t.sqlite")

    def build(hash_slow):
        reg = Registry()
        fake(reg, "fast", 0.0001)
        fake(reg, "slow", 0.002, priority=9)
        slow = reg.get("op", "slow")
        reg._impls["op"]["slow"] = Impl(slow.op, slow.name, slow.fn, slow.applies, priority=9,
                                         source_hash=hash_slow)
        return reg
    make_tuner(build("v1"), db=db).select("op", FakeProblem(), X)
    t = make_tuner(build("v2"), db=db, settings=QUICK.with_(mode="estimate"))   # slow was edited
    d = t.select("op", FakeProblem())
    assert (d.impl.name, d.how, d.note, t.measured) == ("fast", "estimate", "stored timings", 0)
    d_new = t.select("op", FakeProblem("fake/unseen"))
    assert (d_new.impl.name, d_new.note) == ("slow", "no cost model: highest priority")


def test_samples_are_taken_round_robin_across_candidates():
    reg = Registry()
    log = []

    def make(name):
        def fn(x, p):
            log.append(name)
            spin(0.0002)
            return x * 2.0
        register("op", name, registry=reg)(fn)
    make("a")
    make("b")
    t = make_tuner(reg, settings=QUICK.with_(min_samples=4, max_samples=4))
    t.select("op", FakeProblem(), X)
    # each candidate: first call, warm-up, doubling, then its timed samples; after both are
    # prepared the sampling alternates, so the log ends a..a b..b a..a b..b ...
    runs = [k for i, k in enumerate(log) if i == 0 or log[i - 1] != k]
    assert runs[:2] == ["a", "b"] and len(runs) >= 2 + 2 * 3
