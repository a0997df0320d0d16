"""`nbconv estimate-check`'s measuring options: the tuner's clock override (`Settings.clock`,
`registry.process_timer`), the noise floor and the argument checks. No timing assertions beyond
"sleeping costs no CPU time" (a 50 ms sleep against a 5 ms bound)."""
import math
import time

import pytest
from nbconv.tuner import Registry
from nbconv.tuner.registry import process_timer
from test_costmodel import write_lists
from test_tuner import QUICK, FakeProblem, X, fake, make_tuner


def test_process_timer_counts_cpu_time_not_sleep():
    def busy():
        end = time.process_time() + 0.02
        while time.process_time() < end:
            pass
    assert process_timer()(lambda: time.sleep(0.05), 1) < 0.005
    assert process_timer()(busy, 2) >= 0.04


def test_settings_clock_replaces_the_default_clock_but_not_an_impls_own():
    used = []

    def counting(sync=None):
        def timer(call, n):
            used.append(n)
            for _ in range(n):
                call()
            return 0.001 * n
        return timer

    def own(call, n):
        for _ in range(n):
            call()
        return 0.5 * n
    reg = Registry()
    fake(reg, "plain", 0.0001)
    fake(reg, "own_timer", 0.0001, timer=own)
    t = make_tuner(reg, settings=QUICK.with_(clock=counting))
    t.select("op", FakeProblem(), X)
    rec = {r["impl"]: r for r in t.records()}
    assert used and set(rec["plain"]["samples"]) == {0.001}
    assert set(rec["own_timer"]["samples"]) == {0.5}


def test_noise_floor_scores_the_second_winner_in_the_first_run():
    from nbconv.estimate_check import noise_floor
    first = {"k1": {"a": 1.0, "b": 1.05}, "k2": {"a": 1.0, "b": 2.0}, "k3": {"a": 1.0}}
    second = {"k1": {"a": 1.1, "b": 1.0}, "k2": {"a": 3.0, "b": 1.0}, "k3": {}}
    assert noise_floor(first, second) == pytest.approx([1.05, 2.0])
    assert noise_floor(first, {"k1": {"c": 1.0}}) == [math.inf]     # a candidate the first run lacks


def test_estimate_check_prints_the_noise_floor(tmp_path, monkeypatch, capsys):
    from nbconv import cli, ops
    monkeypatch.setenv("NBCONV_TUNING_DB", str(tmp_path / "t.sqlite"))
    ops.reset()
    write_lists(tmp_path)
    try:
        rc = cli.main(["estimate-check", "--tiny", "--lists", str(tmp_path), "--train", "4", "--test", "3",
                       "--max-gflop", "0.001", "--noise", "2", "--model-db", str(tmp_path / "t.sqlite")])
    finally:
        ops.reset()
    out = capsys.readouterr().out
    assert rc == 0 and "noise floor (the winner of a re-measure of 2 test shapes): within 10 % " in out
    assert "the noise re-measure" in out and "+ the rows of 1 --model-db" in out


def test_estimate_check_cpu_clock_needs_one_thread(tmp_path):
    from nbconv import cli
    with pytest.raises(SystemExit, match="--clock cpu counts every thread's CPU time: use it with "
                       "--threads 1. Received: --threads 2"):
        cli.main(["estimate-check", "--lists", str(tmp_path), "--clock", "cpu", "--threads", "2"])


def test_similar_measured_problems_rank_candidates_where_the_regression_cannot():
    from nbconv.tuner.costmodel import CostModel
    from test_costmodel import size_features, synthetic_rows

    def a(n):
        return 1e-6 * n

    def b(n):                       # a cliff: b is faster only for sizes 10-14, 2x slower elsewhere
        return 1e-6 * n * (0.5 if 10 <= n <= 14 else 2.0)
    rows = synthetic_rows({"a": a, "b": b}, [n for n in range(2, 41) if n != 12])
    cands = [("a", {}), ("b", {})]
    for similar, winner in ((0, "a"), (4, "b")):
        m = CostModel.fit(rows, size_features, neighbours=0, similar=similar)
        pred = m.predict_all("fake/12", cands, size_features)
        assert min(pred, key=pred.get)[0] == winner
        again = CostModel.from_json(m.to_json()).predict_all("fake/12", cands, size_features)
        assert again == pytest.approx(pred)
    far = m.predict_all("fake/30", cands, size_features)      # outside the cliff: a, by 2x
    assert far[("b", "{}")] / far[("a", "{}")] == pytest.approx(2.0, rel=0.05)
