"""The tuner's cost model (`tuner.costmodel`) on synthetic timings, its use in mode `estimate`
and in explain, pruning, nbconv's features and `nbconv estimate-check --tiny`. No timing
assertions: timings are written into the DB, or fake kernels differ 20x and more."""
import csv
import json
import math

import numpy as np
import pytest
from nbconv.tuner import Registry, Settings, Tuner, Verifier
from nbconv.tuner.costmodel import CostModel, fit_impl
from nbconv.tuner.measure import OK, PRUNED, Measurement
from nbconv.tuner.rows import measurement_row
from test_tuner import FakeProblem, fake, reference


def size_features(key, impl, config):
    n = int(key.split("/")[1])
    return {"log_n": math.log(n), **({"tile": math.log2(config["tile"])} if "tile" in config else {})}


def synthetic_rows(times, sizes, op="op", fp="m"):
    """Rows of impls timed by `times[impl](n)` on problems fake/<n>."""
    return [{"key": f"fake/{n}", "fp": fp, "op": op, "impl": impl, "config": "{}", "status": OK,
             "median_s": fn(n)} for impl, fn in times.items() for n in sizes]


def test_fit_recovers_a_power_law_and_predicts_unseen_sizes():
    rows = synthetic_rows({"a": lambda n: 1e-6 * n ** 1.5}, [2, 3, 5, 8, 13, 21, 34])
    m = CostModel.fit(rows, size_features, ridge=1e-6, neighbours=0)
    slope = m.shape.coef[0] / m.shape.scale[0]          # the fastest candidate's time
    assert slope == pytest.approx(1.5, rel=1e-3)
    for n in (4, 10, 30, 50):      # 50: past the largest trained size, within the widened range
        assert m.predict(f"fake/{n}", "a", {}, size_features) == pytest.approx(1e-6 * n ** 1.5, rel=1e-2)
    # far outside it the features are clipped: no wild extrapolation, still not below the range's end
    far = m.predict("fake/100000", "a", {}, size_features)
    assert 1e-6 * 34 ** 1.5 < far < 1e-6 * 100000 ** 1.5


@pytest.mark.parametrize("neighbours", [0, 3])
def test_predictions_are_monotone_in_size_when_timings_are(neighbours):
    rng = np.random.default_rng(0)
    rows = synthetic_rows({"a": lambda n: 1e-6 * n * (1 + 0.05 * rng.uniform())}, range(2, 60, 3))
    m = CostModel.fit(rows, size_features, neighbours=neighbours)
    inside = [m.predict(f"fake/{n}", "a", {}, size_features) for n in range(2, 60, 5)]
    assert all(b > a for a, b in zip(inside, inside[1:], strict=False))
    beyond = [m.predict(f"fake/{n}", "a", {}, size_features) for n in range(2, 2000, 37)]
    assert all(b >= a for a, b in zip(beyond, beyond[1:], strict=False))     # clipped: flat, never down


def test_config_features_separate_configs_of_one_impl():
    rows = [{"key": f"fake/{n}", "impl": "t", "config": json.dumps({"tile": tile}), "status": OK,
             "median_s": 1e-6 * n * (4.0 if tile == 4 else 1.0)} for n in (2, 4, 8, 16) for tile in (4, 16)]
    m = CostModel.fit(rows, size_features, ridge=1e-6, neighbours=0)
    small, big = (m.predict("fake/32", "t", {"tile": t}, size_features) for t in (4, 16))
    assert small / big == pytest.approx(4.0, rel=1e-2)


def test_serialisation_round_trips():
    rows = synthetic_rows({"a": lambda n: 1e-6 * n, "b": lambda n: 3e-7 * n * n}, [2, 3, 5, 9, 17])
    m = CostModel.fit(rows, size_features)
    back = CostModel.from_json(m.to_json())
    assert back.to_json() == m.to_json()
    for impl in ("a", "b"):
        for n in (4, 40):
            assert back.predict(f"fake/{n}", impl, {}, size_features) == m.predict(f"fake/{n}", impl, {},
                                                                                   size_features)


def test_too_few_rows_or_failed_rows_give_no_model():
    rows = synthetic_rows({"a": lambda n: 1e-6 * n}, [2, 3])
    rows += [dict(r, impl="b", status="raised") for r in synthetic_rows({"b": lambda n: 1e-6}, [2, 3, 5, 7])]
    m = CostModel.fit(rows, size_features)
    assert m.impls == {} and m.predict("fake/4", "a", {}, size_features) is None


def test_constant_features_are_dropped():
    m = fit_impl([{"x": 1.0, "c": 2.0}, {"x": 2.0, "c": 2.0}, {"x": 3.0, "c": 2.0}], [0.0, 1.0, 2.0], 0.0)
    assert m.names == ["x"]


# -- the tuner: estimate mode, explain, pruning ---------------------------------------------------
def registry_ab(reg, seconds_a=0.0, seconds_b=0.0):
    fake(reg, "a", seconds_a, priority=5)
    fake(reg, "b", seconds_b, priority=0)


def store(t, times, sizes):
    """Write measured rows of impls timed by `times[impl](n)` into t's DB (nothing runs)."""
    rows = []
    for impl, fn in times.items():
        h = t.registry.get("op", impl).source_hash
        for n in sizes:
            m = Measurement(impl, {}, h, OK, samples=[fn(n)] * 3)
            rows.append(measurement_row(f"fake/{n}", t.fp(), "op", m))
    t.db.put_measurements(rows)
    t.forget()


def model_tuner(reg, **settings):
    return Tuner(reg, Verifier(reference=reference), fingerprint={"machine": "test"},
                 settings=Settings(min_sample_s=0.0005, min_samples=3, max_samples=3, **settings),
                 features=size_features)


LINEAR_VS_SQUARE = {"a": lambda n: 1e-3 * n, "b": lambda n: 2.5e-4 * n * n}   # b faster below n = 4


def test_estimate_mode_picks_the_models_choice_for_an_unseen_shape():
    reg = Registry()
    registry_ab(reg)
    t = model_tuner(reg, mode="estimate")
    store(t, LINEAR_VS_SQUARE, [1, 5, 6, 7, 8, 9])
    small, large = (t.select("op", FakeProblem(f"fake/{n}"), None) for n in (2, 20))
    assert (small.name, small.how, large.name) == ("b", "estimate", "a")
    assert "cost model" in small.note
    assert t.measured == 0
    # without features the old fallback stays: the highest priority
    plain = Tuner(reg, fingerprint={"machine": "test"}, settings=t.settings.with_(db=t.db))
    assert plain.select("op", FakeProblem("fake/2"), None).name == "a"


def test_model_is_kept_in_the_db_and_refitted_when_rows_change():
    reg = Registry()
    registry_ab(reg)
    t = model_tuner(reg, mode="estimate")
    store(t, LINEAR_VS_SQUARE, [1, 5, 6])
    first = t.model("op")
    assert first is not None and t.db.meta(f"costmodel:{t.fp()}:op")
    again = Tuner(reg, fingerprint={"machine": "test"}, settings=t.settings.with_(db=t.db),
                  features=size_features)
    assert again.model("op").to_json() == first.to_json()          # loaded, same stamp
    store(t, LINEAR_VS_SQUARE, [7, 8])
    assert t.model("op").rows == first.rows + 4


def test_explain_shows_estimates_next_to_measurements():
    reg = Registry()
    registry_ab(reg)
    t = model_tuner(reg)
    store(t, LINEAR_VS_SQUARE, [1, 5, 6, 7, 8, 9])
    ex = t.explain("op", FakeProblem("fake/5"), measure=False)
    by = {r["impl"]: r for r in ex["rows"]}
    assert by["a"]["estimate_s"] == pytest.approx(5e-3, rel=0.2)
    assert by["b"]["median_s"] == pytest.approx(2.5e-4 * 25) and by["b"]["estimate_s"] is not None


def test_pruning_skips_far_behind_candidates_and_lists_them():
    reg = Registry()
    fake(reg, "fast", 0.0)
    fake(reg, "slow", 0.002)
    t = model_tuner(reg, prune=3.0)
    store(t, {"fast": lambda n: 1e-5 * n, "slow": lambda n: 1e-3 * n}, [1, 2, 3, 4])
    d = t.select("op", FakeProblem("fake/6"), (np.ones(3),))
    assert d.name == "fast" and t.measured == 1
    ex = t.explain("op", FakeProblem("fake/6"), measure=False)
    by = {r["impl"]: r for r in ex["rows"]}
    assert by["slow"]["status"] == PRUNED and by["slow"]["reason"].startswith("pruned (estimate ")
    assert by["fast"]["status"] == OK and by["fast"]["error"] == 0.0        # the winner is verified
    # with pruning off, the pruned row is not reused: it is measured
    with t.using(prune=0.0):
        p = FakeProblem("fake/6")
        t.ensure_measured("op", p, t.candidates("op", p), (np.ones(3),))
    assert t.measured == 2


def test_pruning_measures_the_pruned_when_nothing_measured_is_correct():
    reg = Registry()
    fake(reg, "fast", 0.0, result=3.0)       # wrong on this shape
    fake(reg, "slow", 0.0)
    t = model_tuner(reg, prune=3.0)
    store(t, {"fast": lambda n: 1e-5 * n, "slow": lambda n: 1e-3 * n}, [1, 2, 3, 4])
    d = t.select("op", FakeProblem("fake/6"), (np.ones(3),))
    assert d.name == "slow" and t.measured == 2


def test_pruning_never_prunes_the_best_estimate_or_unpredicted_candidates():
    reg = Registry()
    fake(reg, "fast", 0.0)
    fake(reg, "slow", 0.0)
    fake(reg, "new", 0.0)                    # no stored rows: no prediction
    t = model_tuner(reg, prune=1.5)
    store(t, {"fast": lambda n: 1e-5 * n, "slow": lambda n: 1e-3 * n}, [1, 2, 3, 4])
    rows = t.ensure_measured("op", FakeProblem("fake/9"), t.candidates("op", FakeProblem("fake/9")),
                             (np.ones(3),))
    status = {k[0]: r["status"] for k, r in rows.items()}
    assert status == {"fast": OK, "slow": PRUNED, "new": OK}


def test_settings_reject_a_prune_factor_at_or_below_one():
    with pytest.raises(ValueError, match="prune"):
        Settings(prune=1.0)


# -- nbconv: features and the check command ---------------------------------------------------
def test_nbconv_features_describe_conv_problems_and_configs():
    from nbconv.features import features
    from nbconv.spec import make_problem
    p = make_problem("conv", (1, 14, 14, 32), rank=2, kernel=(3, 3), padding="same", out_channels=64)
    f = features(p.key(), "tiled_direct", {"wb": 8, "fb": 32})
    assert f["flops"] == pytest.approx(math.log(p.flops())) and f["fill_w"] == pytest.approx(14 / 16)
    w = features(p.key(), "winograd_f4x4_tiled", {"tiles": 16})
    assert w["wino_fill"] == pytest.approx(14 * 14 / 256)
    pool = make_problem("maxpool", (1, 8, 8, 4), rank=2, kernel=(2, 2), strides=(2, 2))
    assert features(pool.key(), "x", {}) is None and features("not a key", "x", {}) is None


DEEPBENCH_COLUMNS = ["source", "set", "W", "H", "C", "N", "K", "R", "S", "pad_w", "pad_h", "stride_w",
                     "stride_h"]
BENCHDNN_COLUMNS = ["mb", "ic", "ih", "iw", "oc", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw", "groups",
                    "name", "file", "oh", "ow", "ph_r", "pw_r"]


def write_lists(folder):
    with open(folder / "deepbench_conv.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(DEEPBENCH_COLUMNS)
        for i, (hw, c, k) in enumerate([(6, 4, 8), (7, 8, 8), (5, 4, 16), (8, 8, 16)]):
            kind = "training" if i % 2 else "inference_server"
            w.writerow(["test", kind, hw, hw, c, 1, k, 3, 3, 1, 1, 1, 1])
    with open(folder / "benchdnn_conv.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(BENCHDNN_COLUMNS)
        for i, (hw, c) in enumerate([(6, 8), (7, 16), (5, 8), (8, 16)]):
            w.writerow([1, c, hw, hw, c, 1, 1, 1, 1, 0, 0, 0, 0, 1, f"n{i}", "shapes_tiny", hw, hw, 0, 0])


def test_estimate_check_tiny_prints_both_figures_and_the_sample(tmp_path, monkeypatch, capsys):
    from nbconv import cli, ops
    monkeypatch.setenv("NBCONV_TUNING_DB", str(tmp_path / "t.sqlite"))
    ops.reset()
    write_lists(tmp_path)
    try:
        args = ["estimate-check", "--tiny", "--lists", str(tmp_path), "--train", "5", "--test", "3",
                "--max-gflop", "0.001", "--show-sample"]
        rc = cli.main(args)
        out = capsys.readouterr().out
        again = cli.main([*args, "--stored-only"])           # every shape is stored now
    finally:
        ops.reset()
    assert rc == 0 and again == 0
    assert "5 of 5 training and 3 of 3 test shapes drawn were fully measured" in capsys.readouterr().out
    assert "train: 5 shapes" in out and "test:  3 shapes, disjoint" in out
    assert out.count("within 10 % of the measured winner on ") == 2 and "within 25 % on " in out
    assert "seed 0" in out and "FLOP cap 0.001 GFLOP" in out


def test_estimate_check_needs_the_lists_and_prune_a_factor_above_one():
    from nbconv import cli
    with pytest.raises(SystemExit, match="--lists"):
        cli.main(["estimate-check", "--tiny"])
    with pytest.raises(SystemExit, match="--prune must be 0 .off. or > 1. Received: --prune 0.5"):
        cli.main(["tune", "--prune", "0.5"])
