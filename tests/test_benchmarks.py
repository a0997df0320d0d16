"""Every asv benchmark class runs once at a tiny size (NBCONV_BENCH_TINY=1): setup_cache (its
result is passed first, as asv does), setup, the benchmark methods, teardown. Combinations whose
setup raises NotImplementedError are passed over; a class with no applicable combination at all
is skipped, saying so."""
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
    pytest.skip(f"no parameter combination applies: {skipped[:3]}")


def test_asv_discovers_the_suite():
    discovery = pytest.importorskip("asv_runner.discovery")
    from pathlib import Path
    root = Path(__file__).resolve().parents[1] / "benchmarks"
    names = {b.name for b in discovery.disc_benchmarks(str(root))}
    for expected in ("bench_conv.Conv2D.time_conv", "bench_pool.MaxPool2D.time_pool",
                     "bench_local.LocallyConnected2D.time_local", "bench_compile.Compile.track_compile",
                     "bench_memory.PeakMemory.track_peak_mib"):
        assert expected in names, sorted(names)
