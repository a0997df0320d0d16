"""The report module end to end at a tiny size: files, links, CSV, figures, header."""
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

from reports import cli  # noqa: E402


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
            "import reports.cli, reports.sweep, reports.figures, reports.torch_anchor as t\n"
            "assert not t.available()\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
