"""`nbconv bench` (nbconv.reports.compare, .memory) on tiny shapes, and the shared measurement pieces
it stands on (nbconv.reports.timing, .yardsticks, .torch_anchor): the table's shape,
not its timings (no timed assertions beyond orderings a sleep guarantees)."""
from __future__ import annotations

import csv
import time

import pytest
from nbconv.reports import compare, timing, yardsticks


def test_reference_table(tmp_path, capsys):
    out = tmp_path / "rows.csv"
    rc = compare.main(["--reference", "--quick", "--batch", "1", "--samples", "3", "--min-time", "0",
                       "--csv", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    lines = text.strip().splitlines()
    assert lines[0].split() == ["shape", "N", "nbconv", "impl", "nbconv", "torch", "fmt", "ratio", "err",
                                "±nb%", "±t%", "verdict"]
    assert len(lines) == 1 + len(compare.QUICK) + 1
    assert lines[-1].startswith("geometric mean of ratios")
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == [n for n, _ in compare.QUICK]
    for r in rows:
        assert float(r["nbconv"]) > 0 and float(r["torch"]) > 0
        assert r["fmt"] in ("nchw", "channels_last")
        assert float(r["err"]) < 1e-3            # same numbers as torch's conv2d
        ratio = float(r["nbconv"]) / float(r["torch"])
        assert float(r["ratio"]) == pytest.approx(ratio, rel=1e-6)
        assert float(r["nbconv_spread"]) >= 0 and float(r["torch_spread"]) >= 0
        assert int(r["samples"]) == 3 and r["verdict"] in ("nbconv", "torch", "tie")


def test_impls_table(capsys):
    rc = compare.main(["--impls", "--quick", "--batch", "1", "--only", "quick_1x1_s2", "--samples", "1",
                       "--min-time", "0"])
    assert rc == 0
    text = capsys.readouterr().out
    assert text.startswith("sgemm peak") and "GFLOP/s ±" in text.splitlines()[0]
    assert "gemm_1x1" in text and "im2col_gemm" in text


def test_plain_table_with_cpu_clock(capsys):
    assert compare.main(["--quick", "--batch", "1", "--only", "quick_3x3", "--samples", "2",
                         "--min-time", "0", "--clock", "cpu", "--threads", "1"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("quick_3x3") and "GFLOP/s ±" in line


def test_memory_table(capsys):
    assert compare.main(["--memory", "--quick", "--batch", "1", "--only", "quick_3x3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["shape", "N", "cap"]
    assert len(lines) == 1 + 3                    # one row per im2col workspace cap
    for line in lines[1:]:
        cells = line.split()
        assert cells[0] == "quick_3x3" and len(cells) == 7 and int(cells[3]) >= 1 and float(cells[5]) >= 0


def test_bad_arguments():
    with pytest.raises(SystemExit):
        compare.main(["--threads", "0", "--quick"])
    with pytest.raises(SystemExit):
        compare.main(["--clock", "cpu", "--threads", "2", "--quick"])
    assert compare.main(["--quick", "--only", "nope"]) == 2


def test_geomean():
    assert compare.geomean([2.0, 0.5]) == pytest.approx(1.0)


def test_the_one_loop_times_in_turns_and_the_tie_is_the_tuners_rule():
    s = timing.exactly(8, min_sample_s=1e-3)
    ms = timing.measure_many({"fast": lambda: (lambda: None), "slow": lambda: (lambda: time.sleep(0.001))}, s)
    assert [len(m.samples) for m in ms.values()] == [8, 8]
    assert ms["fast"].compile_s is not None and ms["fast"].spread >= 0
    assert max(ms["fast"].samples) < min(ms["slow"].samples)
    assert timing.verdict(ms["fast"], ms["slow"]) == "a" and timing.verdict(ms["slow"], ms["fast"]) == "b"
    same = timing.Measurement("x", {}, "", samples=[1.0, 1.01, 0.99, 1.0, 1.02, 0.98])
    assert timing.verdict(same, same) == "tie"
    # three samples each can never be significant at the tuner's alpha: a tie, as the tuner says
    few = [timing.Measurement("", {}, "", samples=v) for v in ([1.0, 1.0, 1.0], [2.0, 2.0, 2.0])]
    assert timing.verdict(*few) == "tie"
    raised = timing.measure(lambda: 1 / 0, s)
    assert raised.status == "raised" and not raised.samples


def test_yardsticks_carry_their_spread():
    g = yardsticks.sgemm(128, budget=0.05, fresh=True)
    c = yardsticks.copy(4, budget=0.05, fresh=True)
    for y in (g, c):
        assert y.value > 0 and y.spread >= 0 and y.samples >= 5
    assert str(g).startswith(f"{g.value:.1f} GFLOP/s ±") and c.unit == "GB/s"
    assert yardsticks.sgemm(128) is g                        # cached per process ...
    assert yardsticks.sgemm(128, clock="cpu", budget=0.05) is not g    # ... per clock


def test_torch_anchor_matches_nbconv_on_asymmetric_padding():
    from nbconv.reports import torch_anchor

    from nbconv import ops
    from nbconv.spec import make_problem
    p = make_problem("conv", (1, 8, 8, 3), rank=2, kernel=(2, 2), strides=(2, 2), padding="same",
                     out_channels=4)
    x, w, b = ops.make_args("conv", p)
    calls = torch_anchor.conv2d_calls(p, x, w, b, 1)
    assert set(calls) == set(torch_anchor.FORMATS)
    for run in calls.values():
        assert torch_anchor.rel_error(ops.conv(x, w, b, p), run(), p) < 1e-5


def test_families_table(tmp_path, capsys):
    """`nbconv bench --families --tiny`: one row per (case, format), each family's geomeans, the
    same numbers as torch (err), ratio = torch ms / nbconv ms."""
    from nbconv.reports import families, families_cases

    from nbconv import ops
    out = tmp_path / "families.csv"
    with ops.tuning(mode="off"):                 # decisions by priority: the table's plumbing, not tuning
        rc = compare.main(["--families", "--tiny", "--batch", "1", "--samples", "2", "--min-time", "0",
                           "--csv", str(out)])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:5] == ["family", "case", "format", "N", "nbconv"]
    n = 2 * len(families_cases.TINY)
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n
    assert [(r["case"], r["format"]) for r in rows] == [(c.name, fmt) for c in families_cases.TINY
                                                        for fmt in families.FORMATS]
    for r in rows:
        assert float(r["nbconv_ms"]) > 0 and float(r["torch_ms"]) > 0 and r["impl"]
        assert float(r["ratio"]) == pytest.approx(float(r["torch_ms"]) / float(r["nbconv_ms"]), rel=1e-6)
        assert float(r["err"]) < 1e-4, r                 # torch computed the same layer
        assert r["verdict"] in ("nbconv", "torch", "tie") and int(r["samples"]) == 2
    fams = {c.family for c in families_cases.CASES}
    assert {c.family for c in families_cases.TINY} == fams        # the tiny run covers every family
    summary = lines[1 + n:]
    for fam in fams:
        for fmt in (*families.FORMATS, "all"):
            assert any(s.split()[:2] == [fam, fmt] for s in summary), (fam, fmt)
    assert summary[-1].split()[:3] == ["all", "all", str(n)]


def test_families_selection_and_arguments():
    from nbconv.reports import families, families_cases
    quick = families.select(quick=True)
    assert {c.family for c in quick} == {c.family for c in families_cases.CASES}
    assert [c.family for c in families.select(only="Conv3D")] == ["Conv3D"] * 3
    assert families.summary([dict(family="X", format="channels_last", case="a", batch=1, ratio=2.0),
                             dict(family="X", format="channels_first", case="a", batch=1, ratio=0.5)])[-1][
        "geomean"] == pytest.approx(1.0)
    assert compare.main(["--families", "--tiny", "--only", "nope"]) == 2
    for bad in (["--formats", "nhwc"], ["--batch", "0"], ["--clock", "cpu", "--threads", "2"]):
        with pytest.raises(SystemExit):
            families.main(["--tiny", *bad])
