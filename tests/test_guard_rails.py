"""Lint and type checks as tests, so the README's one test command runs them every time."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_with_the_bug_catching_rules():
    """pyproject.toml selects pycodestyle, pyflakes, isort, bugbear (B), pyupgrade (UP), simplify (SIM)."""
    res = _run("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_on_the_tuner_and_the_problem_spec():
    """The generic tuner and nbconv.spec are typed (py.typed ships with both)."""
    res = _run("mypy", "--no-incremental", "--cache-dir", "/dev/null", "tuner", "nbconv/spec.py")
    assert res.returncode == 0, res.stdout + res.stderr
