"""The report module end to end at a tiny size: files, links, CSV, figures, header."""
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import matplotlib  # noqa: E402,F401  (test extras: missing, they fail loudly)
import pandas as pd  # noqa: E402
import pytest
from nbconv.reports import cli  # noqa: E402


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.refs.append(value)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert cli.main(["--tiny", "--out", str(out), "--no-progress", "--budget", "0.05"]) == 0
    return out


def test_every_referenced_file_exists(report):
    text = (report / "index.html").read_text()
    p = Links()
    p.feed(text)
    assert p.refs, "the report references no file"
    for ref in p.refs:
        assert "://" not in ref and not ref.startswith("/"), f"not self-contained: {ref}"
        assert (report / ref).is_file(), f"index.html references missing {ref}"
    assert any(r.endswith(".png") for r in p.refs)
    assert "results.csv" in p.refs


def test_results_csv_parses(report):
    df = pd.read_csv(report / "results.csv")
    for col in ("section", "shape", "op", "impl", "layout", "kernel", "stride", "median_s", "gflops", "gbps",
                "pct_sgemm", "source", "status"):
        assert col in df.columns
    raised = df[df.status == "raised"]
    assert raised.empty, f"candidates raised: {sorted(set(raised.reason))[:3]}"
    ok = df[df.status == "ok"]
    assert len(ok) > 0
    assert (ok.median_s > 0).all() and (ok.gflops > 0).all()
    assert {"reference", "kernel_sweep"} <= set(df.section)
    assert "nbconv (tuned)" in set(df.impl)


def test_figures_are_real_pngs(report):
    import matplotlib.image as mpimg
    pngs = sorted((report / "figures").glob("*.png"))
    assert {p.name for p in pngs} >= {"reference_shapes.png", "kernel_sweep.png"}
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = mpimg.imread(png)
        assert img.shape[0] > 200 and img.shape[1] > 300
        assert img.std() > 0.01, f"{png.name} looks blank"


def test_header_and_sections(report):
    text = (report / "index.html").read_text()
    for word in ("Machine", "Threads", "Versions", "Date", "sgemm peak", "Copy bandwidth", "numpy"):
        assert word in text
    assert "Reference shapes" in text
    if (report / "decisions.csv").exists():
        assert "Tuner decisions" in text


def test_importable_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import nbconv.reports.cli, nbconv.reports.sweep, nbconv.reports.figures\n"
            "import nbconv.reports.torch_anchor as t\n"
            "assert not t.available()\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def fake_asv_results(root):
    """A minimal asv results directory: benchmarks.json and one run with a parameterised
    conv benchmark (one n/a combination) and a plain one."""
    import json
    params = [["'conv_direct'", "'im2col_gemm'"], ["1", "3"], ["1"], ["'channels_last'"]]
    (root / "m").mkdir(parents=True)
    (root / "benchmarks.json").write_text(json.dumps({
        "bench_conv.Conv2D.time_conv": {"name": "bench_conv.Conv2D.time_conv", "type": "time",
                                        "unit": "seconds", "params": params,
                                        "param_names": ["impl", "kernel", "stride", "layout"]},
        "bench_tuner.Dispatch.track_overhead_us": {"type": "track", "unit": "us", "params": [],
                                                   "param_names": []},
        "version": 2}))
    (root / "m" / "machine.json").write_text("{}")
    (root / "m" / "abcdef12-existing.json").write_text(json.dumps({
        "commit_hash": "abcdef1234", "env_name": "existing", "date": 1795327389000,
        "result_columns": ["result", "params"],
        "results": {"bench_conv.Conv2D.time_conv": [[1e-3, 3e-3, 2e-3, None], params],
                    "bench_tuner.Dispatch.track_overhead_us": [[1.5], []]}}))


def test_asv_results_are_read(tmp_path):
    from nbconv.reports import asv_results
    fake_asv_results(tmp_path / "results")
    df, info = asv_results.load(tmp_path / "results")
    assert info["commit"] == "abcdef12"
    conv = df[df.benchmark == "bench_conv.Conv2D.time_conv"]
    assert len(conv) == 3                                   # the n/a combination is left out
    assert set(conv.impl) == {"conv_direct", "im2col_gemm"} and set(conv.kernel) == {1, 3}
    assert df[df.benchmark.str.endswith("track_overhead_us")].value.tolist() == [1.5]


def test_no_sweep_report_reads_the_database_and_asv(tmp_path, report):
    # `report` has tuned the tiny reference shapes into this session's tuning database
    fake_asv_results(tmp_path / "results")
    out = tmp_path / "out"
    assert cli.main(["--no-sweep", "--tiny", "--asv-results", str(tmp_path / "results"), "--out", str(out),
                     "--no-progress"]) == 0
    text = (out / "index.html").read_text()
    p = Links()
    p.feed(text)
    for ref in p.refs:
        assert (out / ref).is_file(), ref
    assert "figures/asv_bench_conv.Conv2D.time_conv.png" in p.refs
    assert "asv_results.csv" in p.refs
    df = pd.read_csv(out / "results.csv")
    assert set(df.section) <= {"reference"} and set(df.source) <= {"tuner"}


def test_missing_asv_results_is_a_clear_error(tmp_path):
    from nbconv.reports import asv_results
    with pytest.raises(FileNotFoundError, match="benchmarks.json"):
        asv_results.load(tmp_path)


def test_report_decision_rule_without_tuner_records():
    from nbconv.reports.sweep import decide_from_rows, make_row

    from nbconv.shapes import load_shapes
    p = load_shapes()[2][1]
    a_times = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98]
    rows = [make_row("reference", "s", p, "a", {}, a_times, source="report"),
            make_row("reference", "s", p, "b", {}, [2 * t for t in a_times], source="report"),
            make_row("reference", "s", p, "a", {"t": 2}, [1.5], source="report"),
            make_row("reference", "s", p, "c", {}, [], source="report", status="raised ValueError: x")]
    d = decide_from_rows(rows)
    assert (d["winner"], d["runner_up"], d["tie"]) == ("a", "b", False)
    assert abs(d["margin"] - 1.0) < 1e-9 and d["winner_spread"] >= 0
    close = [rows[0], make_row("reference", "s", p, "b", {}, [1.02, 0.95, 1.1, 1.0, 0.97, 1.01],
                               source="report")]
    assert decide_from_rows(close)["tie"] is True
    # the tuner's rule: three samples each are never significant at its alpha, however far apart
    few = [make_row("reference", "s", p, "a", {}, [1.0, 1.0, 1.0], source="report"),
           make_row("reference", "s", p, "b", {}, [2.0, 2.0, 2.0], source="report")]
    assert decide_from_rows(few)["tie"] is True


def test_every_figure_and_table_carries_its_spread(report):
    df = pd.read_csv(report / "results.csv")
    ok = df[df.status == "ok"]
    assert {"spread", "q1_s", "q3_s"} <= set(df.columns)
    assert (ok.q1_s <= ok.median_s * (1 + 1e-9)).all() and (ok.median_s <= ok.q3_s * (1 + 1e-9)).all()
    text = (report / "index.html").read_text()
    assert text.count("interquartile range") >= 2 and "GFLOP/s ±" in text and "GB/s ±" in text
    assert "timed now" in text and "tuner DB" in text          # two sources, each labelled


def test_figures_draw_error_bars(tmp_path):
    from nbconv.reports import figures
    rows = []
    for impl, med in (("a", 1e-3), ("b", 2e-3)):
        for k in (1, 3):
            rows.append(dict(section="kernel_sweep", status="ok", impl=impl, kernel=k, stride=1,
                             layout="channels_last", batch=1, c_in=4, c_out=4, flops=1e6, bytes=1e5,
                             median_s=med, q1_s=0.9 * med, q3_s=1.2 * med, gflops=1e6 / med / 1e9,
                             gbps=1e5 / med / 1e9, shape=f"k{k}"))
    import matplotlib.pyplot as plt
    seen = []
    orig = plt.Axes.errorbar

    def spy(self, x, y, yerr=None, **kw):
        seen.append(yerr)
        return orig(self, x, y, yerr=yerr, **kw)
    plt.Axes.errorbar = spy
    try:
        assert figures.kernel_sweep(pd.DataFrame(rows), tmp_path / "k.png")
    finally:
        plt.Axes.errorbar = orig
    assert seen and all(e is not None and (e > 0).all() for e in seen)


def test_bad_arguments_are_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--budget", "0", "--out", str(tmp_path)])
    assert "--budget must be > 0" in capsys.readouterr().err
    missing = str(tmp_path / "nowhere")
    assert cli.main(["--asv-results", missing, "--out", str(tmp_path), "--no-progress"]) == 2
    assert "benchmarks.json" in capsys.readouterr().err
