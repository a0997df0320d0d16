"""`nbconv bench` on tiny shapes: the table's shape, not its timings (no timed assertions)."""
from __future__ import annotations

import csv

import pytest

pytest.importorskip("torch")

from nbconv import bench  # noqa: E402


def test_reference_table(tmp_path, capsys):
    out = tmp_path / "rows.csv"
    rc = bench.main(["--reference", "--quick", "--batch", "1", "--samples", "1", "--min-time", "0",
                     "--csv", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    lines = text.strip().splitlines()
    assert lines[0].split()[:3] == ["shape", "N", "nbconv"]
    assert len(lines) == 1 + len(bench.QUICK) + 1
    assert lines[-1].startswith("geometric mean of ratios")
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == [n for n, _ in bench.QUICK]
    for r in rows:
        assert float(r["nbconv"]) > 0 and float(r["torch"]) > 0
        assert r["fmt"] in ("nchw", "channels_last")
        assert float(r["err"]) < 1e-3            # same numbers as torch's conv2d
        ratio = float(r["nbconv"]) / float(r["torch"])
        assert float(r["ratio"]) == pytest.approx(ratio, rel=1e-6)


def test_impls_table(capsys):
    rc = bench.main(["--impls", "--quick", "--batch", "1", "--only", "quick_1x1_s2", "--samples", "1",
                     "--min-time", "0"])
    assert rc == 0
    text = capsys.readouterr().out
    assert text.startswith("sgemm peak")
    assert "gemm_1x1" in text and "im2col_gemm" in text


def test_memory_table(capsys):
    assert bench.main(["--memory", "--quick", "--batch", "1", "--only", "quick_3x3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["shape", "N", "cap"]
    assert len(lines) == 1 + 3                    # one row per im2col workspace cap
    for line in lines[1:]:
        cells = line.split()
        assert cells[0] == "quick_3x3" and len(cells) == 7 and int(cells[3]) >= 1 and float(cells[5]) >= 0


def test_bad_arguments():
    with pytest.raises(SystemExit):
        bench.main(["--threads", "0", "--quick"])
    with pytest.raises(SystemExit):
        bench.main(["--clock", "cpu", "--threads", "2", "--quick"])
    assert bench.main(["--quick", "--only", "nope"]) == 2


def test_geomean():
    assert bench.geomean([2.0, 0.5]) == pytest.approx(1.0)
