"""The `nbconv` command line, run in-process through `nbconv.cli.main` on tiny shapes."""
import subprocess
import sys
import types
from importlib import metadata

import pytest

from nbconv import cli, ops
from nbconv.spec import make_problem

KEY = make_problem("conv", (1, 6, 6, 4), rank=2, kernel=(3, 3), padding="same", out_channels=4).key()
CSV = """name,N,H,W,C,K,R,S,stride,padding,groups,note
tiny3x3,1,6,6,4,4,3,3,1,same,1,a 3x3
tiny1x1,1,5,5,4,8,1,1,1,valid,1,a 1x1
"""


@pytest.fixture(autouse=True)
def own_db(tmp_path, monkeypatch):
    db = str(tmp_path / "cli.sqlite")
    monkeypatch.setenv("NBCONV_TUNING_DB", db)     # restored after the test, whatever --db did
    monkeypatch.setenv("NBCONV_TUNE_MIN_SAMPLE_S", "0.0002")
    monkeypatch.setenv("NBCONV_TUNE_MIN_SAMPLES", "3")
    monkeypatch.setenv("NBCONV_TUNE_CANDIDATE_BUDGET_S", "0")
    ops.reset()
    yield db
    ops.reset()


def test_console_script_is_declared():
    eps = {e.name: e.value for e in metadata.entry_points(group="console_scripts")}
    assert eps.get("nbconv") == "nbconv.cli:main"


def test_tune_a_csv_then_list_export_clear_import(tmp_path, capsys, own_db):
    shapes = tmp_path / "shapes.csv"
    shapes.write_text(CSV)
    assert cli.main(["tune", "--csv", str(shapes), "--no-peak"]) == 0
    out, err = capsys.readouterr()
    assert f"tuning database: {own_db}" in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("shape"))
    for col in ("winner", "tie", "partner", "margin", "median ms", "GFLOP/s"):
        assert col in lines[header]
    assert lines[header + 2].startswith("tiny3x3") and lines[header + 3].startswith("tiny1x1")
    assert "tuning" in err                         # the progress bar

    assert cli.main(["db", "list"]) == 0
    listed = capsys.readouterr().out
    assert listed.count("conv/r2/float32/NHWC/n1/") == 2

    dump = tmp_path / "dump.jsonl"
    assert cli.main(["db", "export", str(dump)]) == 0
    assert "exported" in capsys.readouterr().out and dump.read_text().count('"table": "decisions"') == 2
    assert cli.main(["db", "clear"]) == 0
    assert "deleted" in capsys.readouterr().out
    cli.main(["db", "list"])
    assert "conv/r2" not in capsys.readouterr().out
    assert cli.main(["db", "import", str(dump)]) == 0
    assert "merged" in capsys.readouterr().out
    cli.main(["db", "list"])
    assert capsys.readouterr().out.count("conv/r2/float32/NHWC/n1/") == 2


def test_explain_a_key_shows_every_candidate(capsys):
    assert cli.main(["explain", KEY, "--no-peak"]) == 0
    out = capsys.readouterr().out
    from nbconv.tuner import registry
    for impl in registry.impls("conv"):
        assert impl.name in out
    for col in ("applies", "compile s", "median ms", "IQR %", "GFLOP/s", "GB/s", "% peak", "error"):
        assert col in out
    assert "WINNER" in out and "winner:" in out
    assert "kernel must be all ones" in out        # why gemm_1x1 does not apply to a 3x3


def test_explain_a_layer_spec(capsys):
    assert cli.main(["explain", "Conv2D(4, 3, padding='same')", "--input-shape", "1,6,6,4", "--no-peak"]) == 0
    out = capsys.readouterr().out
    assert KEY in out and "WINNER" in out


def test_tune_a_model(tmp_path, monkeypatch, capsys):
    (tmp_path / "tiny_model.py").write_text(
        "from nbconv.models import Sequential\n"
        "from nbconv.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D\n"
        "def build():\n"
        "    return Sequential([Input((8, 8, 3)), Conv2D(4, 3), MaxPooling2D(2), Flatten(), Dense(2)])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli.main(["tune", "--model", "tiny_model:build", "--input-shape", "1,8,8,3", "--no-peak"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("shape"))
    ops_seen = [line.split()[1] for line in lines[header + 2:]]
    assert ops_seen == ["conv", "maxpool", "dense"]


def test_usage_errors_are_clear():
    with pytest.raises(SystemExit, match="not a problem key"):
        cli.main(["explain", "conv/r2/oops"])
    with pytest.raises(SystemExit, match="needs --input-shape"):
        cli.main(["explain", "Conv2D(4, 3)"])
    with pytest.raises(SystemExit, match="no layer named 'Conv9D'"):
        cli.main(["explain", "Conv9D(4, 3)", "--input-shape", "1,6,6,4"])
    with pytest.raises(SystemExit, match="arguments must be literals"):
        cli.main(["explain", "Conv2D(__import__('os'))", "--input-shape", "1,6,6,4"])
    with pytest.raises(SystemExit, match="comma-separated integers"):
        cli.main(["explain", "Conv2D(4, 3)", "--input-shape", "1,six,6,4"])
    with pytest.raises(SystemExit, match="--model must look like"):
        cli.main(["tune", "--model", "nocolon", "--input-shape", "1,2,2,1"])


def test_bench_and_report_delegate_with_their_arguments(monkeypatch, capsys):
    seen = {}
    fake = types.ModuleType("nbconv.reports.cli")
    fake.main = lambda argv: seen.setdefault("report", argv) and 0
    monkeypatch.setitem(sys.modules, "nbconv.reports.cli", fake)
    assert cli.main(["report", "--quick", "--out", "x"]) == 0
    assert seen["report"] == ["--quick", "--out", "x"]
    fake_bench = types.ModuleType("nbconv.reports.compare")
    fake_bench.main = lambda argv: seen.setdefault("bench", argv) and 3
    monkeypatch.setitem(sys.modules, "nbconv.reports.compare", fake_bench)
    assert cli.main(["bench", "--reference"]) == 3
    assert seen["bench"] == ["--reference"]


def test_missing_delegate_prints_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "nbconv.reports.compare", None)     # import now raises ImportError
    assert cli.main(["bench"]) == 2
    assert "nbconv bench: nbconv.reports.compare is not available" in capsys.readouterr().err


def test_nbconv_holds_no_measurement_module():
    from pathlib import Path

    import nbconv.env
    assert not (Path(nbconv.env.__file__).parent / "bench.py").exists()   # moved to reports/
    assert not hasattr(nbconv.env, "sgemm_peak_gflops") and not hasattr(nbconv.env, "copy_bandwidth_gbs")


def test_tune_reports_the_sgemm_peak_with_its_spread(tmp_path, capsys, monkeypatch):
    import nbconv.reports.yardsticks as ys
    monkeypatch.setattr(ys, "sgemm", lambda: ys.Yardstick(123.0, 0.05, "GFLOP/s", "fake", 5))
    shapes = tmp_path / "shapes.csv"
    shapes.write_text(CSV)
    assert cli.main(["tune", "--csv", str(shapes)]) == 0
    assert "sgemm peak: 123.0 GFLOP/s ±5.0 %" in capsys.readouterr().out


def test_overhead_and_db_path_run(capsys, own_db):
    assert cli.main(["overhead", "--repeats", "3"]) == 0
    out = capsys.readouterr().out
    assert "dispatch overhead" in out and "us/call" in out
    r = subprocess.run([sys.executable, "-m", "nbconv.cli", "db", "path"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == own_db
