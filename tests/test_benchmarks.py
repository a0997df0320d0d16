"""The asv suite, run for real at a tiny size (NBCONV_BENCH_TINY=1), in this process.

Every benchmark class runs once: setup_cache (its result is passed first, as asv does), setup,
the benchmark methods, teardown, on its first applicable parameter combination (those whose
setup raises NotImplementedError, asv's `n/a`, are passed over; a class with none fails). Then
asv_runner's own discovery and `asv check` validation run on this checkout's `benchmarks/`.

Why in-process rather than an `asv run` subprocess: asv strips PYTHONPATH and imports only the
`benchmarks` package from the benchmark directory, so a subprocess would pair this checkout's
suite with whatever nbconv is pip-installed (another checkout, in an editable install), and its
forked processes cost minutes. asv is in the `test` extra: nothing here skips for want of it."""
import importlib
import inspect
import itertools
import numbers

import pytest

MODULES = ["bench_conv", "bench_pool", "bench_local", "bench_tuner", "bench_compile", "bench_memory"]
PREFIXES = ("time_", "track_", "peakmem_", "mem_", "timeraw_")


def bench_classes():
    out = []
    for mod_name in MODULES:
        mod = importlib.import_module(f"benchmarks.{mod_name}")
        for name, cls in vars(mod).items():
            if name.startswith("_") or not inspect.isclass(cls) or cls.__module__ != mod.__name__:
                continue
            if any(m.startswith(PREFIXES) for m in dir(cls)):
                out.append(pytest.param(cls, id=f"{mod_name}.{name}"))
    return out


def combos(cls):
    params = getattr(cls, "params", [])
    if not params:
        return [()]
    if not isinstance(params[0], (list, tuple)):
        params = [params]
    return itertools.product(*params)


@pytest.mark.parametrize("cls", bench_classes())
def test_benchmark_class_runs_once(cls, monkeypatch):
    monkeypatch.setenv("NBCONV_BENCH_TINY", "1")
    methods = sorted(m for m in dir(cls) if m.startswith(PREFIXES))
    cached = ()
    if hasattr(cls, "setup_cache"):                  # asv passes its result first to every method
        cached = (cls().setup_cache(),)
    skipped = []
    for combo in combos(cls):
        combo = cached + tuple(combo)
        bench = cls()
        try:
            if hasattr(bench, "setup"):
                bench.setup(*combo)
        except NotImplementedError as e:
            skipped.append(str(e))
            continue
        try:
            for m in methods:
                value = getattr(bench, m)(*combo)
                if m.startswith("track_"):
                    assert isinstance(value, numbers.Real) and value >= 0, (m, combo, value)
        finally:
            if hasattr(bench, "teardown"):
                bench.teardown(*combo)
        return
    pytest.fail(f"{cls.__name__}: no parameter combination applies at the tiny size: {skipped[:3]}")


def test_asv_discovers_and_checks_the_suite(capsys):
    from pathlib import Path

    import asv
    from asv_runner import discovery

    assert asv.__version__ == "0.6.6"                # the `test` extra's pin: the commands in docs/
    root = Path(__file__).resolve().parents[1] / "benchmarks"
    found = list(discovery.disc_benchmarks(str(root)))
    names = {b.name for b in found}
    for expected in ("bench_conv.Conv2D.time_conv", "bench_pool.MaxPool2D.time_pool",
                     "bench_local.LocallyConnected2D.time_local", "bench_compile.Compile.track_compile",
                     "bench_memory.PeakMemory.track_peak_mib", "bench_tuner.Dispatch.track_overhead_us"):
        assert expected in names, sorted(names)
    bad = [b.name for b in found if not b.check(str(root))]  # what `asv check` validates (signatures)
    assert bad == [], capsys.readouterr()
    for b in found:                                   # the suite under test is this checkout's
        assert Path(b.func.__code__.co_filename).resolve().is_relative_to(root), b.name
