"""Every `NBCONV_*` environment knob, read here and nowhere else.

Values are read when asked for (not at import), so a test may set one and call
`nbconv.ops.reset()`.

| Knob                           | Default  | Meaning                                                   |
|--------------------------------|----------|-----------------------------------------------------------|
| NBCONV_TUNE                    | measure  | measure / estimate / off (modes below)                    |
| NBCONV_FORCE_IMPL              | (unset)  | impl name used wherever it applies, in every mode         |
| NBCONV_TUNING_DB               | (cache)  | SQLite tuning DB path; `:memory:` keeps it in the process |
| NBCONV_TUNE_MIN_SAMPLE_S       | 0.002    | inner repetitions double until a sample lasts this (s)    |
| NBCONV_TUNE_MIN_SAMPLES        | 5        | outer timing samples per candidate, at least              |
| NBCONV_TUNE_MAX_SAMPLES        | 20       | outer timing samples per candidate, at most               |
| NBCONV_TUNE_CANDIDATE_BUDGET_S | 0.5      | stop sampling a candidate after this (min samples taken)  |
| NBCONV_TUNE_SHAPE_BUDGET_S     | 20       | candidates not started within this are skipped (recorded) |
| NBCONV_TUNE_ALPHA              | 0.01     | significance level of the winner-vs-runner-up rank test   |
| NBCONV_TUNE_MIN_GAIN           | 0.02     | a winner must be faster by this fraction, else a tie      |
| NBCONV_TUNE_TIE_BAND           | 0.10     | a tie only among medians within this fraction of the best |
| NBCONV_VERIFY_MAX_FLOPS        | 2e10     | larger problems are not verified (recorded as skipped)    |
| NBCONV_TUNE_PRUNE              | 0        | > 1: skip measuring candidates the cost model estimates   |
|                                |          | slower than this x the best estimate (0: measure all)     |
| NBCONV_TUNE_MODEL_DB           | (unset)  | another tuning DB whose rows also train the cost model    |
| NBCONV_BENCH_TINY              | 0        | 1: benchmarks run at tiny sizes (the benchmark test)      |
| NBCONV_FINGERPRINT_EXTRA       | (unset)  | text added to the machine fingerprint (tells kinds apart) |
| NBCONV_DASK_DIE_ONCE           | (unset)  | test hook: a fleet task makes this file, then kills its   |
|                                |          | worker process (once: the file then exists)               |
| NBCONV_DEVICE                  | cpu      | cpu / cuda: where layers run (read per new input shape)   |

(cache) = `$XDG_CACHE_HOME/nbconv/tuning.sqlite`, or `~/.cache/nbconv/tuning.sqlite`.

Modes: `measure` times every applicable candidate on the first call of a new shape (the
winner is stored); `estimate` times nothing: a stored decision if valid, else stored timings
of the shape covering every candidate (fastest median), else the lowest prediction of the cost
model fitted on this machine's stored timings (`nbconv.features`), else the lowest
`estimate(problem, config)` among impls registering one, else the highest priority (the
kernel authors' order: depthwise > 1x1 GEMM > Winograd > im2col > direct, NNPACK-like); `off`
takes the highest-priority applicable candidate. `nbconv.ops.tuning(mode=..., force=...)` is
the same as a context manager.
"""
from __future__ import annotations

import os

from nbconv.tuner import MODES, Settings, default_path

from .spec import DEVICES

_FLOAT_KNOBS = {
    "min_sample_s": ("NBCONV_TUNE_MIN_SAMPLE_S", 0.002),
    "candidate_budget_s": ("NBCONV_TUNE_CANDIDATE_BUDGET_S", 0.5),
    "shape_budget_s": ("NBCONV_TUNE_SHAPE_BUDGET_S", 20.0),
    "alpha": ("NBCONV_TUNE_ALPHA", 0.01),
    "min_gain": ("NBCONV_TUNE_MIN_GAIN", 0.02),
    "tie_band": ("NBCONV_TUNE_TIE_BAND", 0.10),
    "verify_max_flops": ("NBCONV_VERIFY_MAX_FLOPS", 2e10),
    "prune": ("NBCONV_TUNE_PRUNE", 0.0),
}
_INT_KNOBS = {
    "min_samples": ("NBCONV_TUNE_MIN_SAMPLES", 5),
    "max_samples": ("NBCONV_TUNE_MAX_SAMPLES", 20),
}


def _number(name, default, kind):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"The environment variable {name} must be {what}. "
                         f"Received: {name}={raw!r}") from None


def tune_mode() -> str:
    mode = os.environ.get("NBCONV_TUNE", "").strip().lower() or "measure"
    if mode not in MODES:
        raise ValueError(f"The environment variable NBCONV_TUNE must be one of {MODES}. "
                         f"Received: NBCONV_TUNE={mode!r}")
    return mode


def force_impl() -> str | None:
    return os.environ.get("NBCONV_FORCE_IMPL", "").strip() or None


def tuning_db_path() -> str:
    return os.environ.get("NBCONV_TUNING_DB", "").strip() or default_path("nbconv")


def set_tuning_db(path: str) -> None:
    """Point NBCONV_TUNING_DB at `path` (for this process and its children; the CLI's --db)."""
    os.environ["NBCONV_TUNING_DB"] = str(path)


def set_prune(factor: float) -> None:
    """Set NBCONV_TUNE_PRUNE (for this process and its children; `nbconv tune --prune`)."""
    os.environ["NBCONV_TUNE_PRUNE"] = repr(float(factor))


def bench_tiny() -> bool:
    return os.environ.get("NBCONV_BENCH_TINY", "").strip().lower() in ("1", "true", "yes", "on")


def fingerprint_extra() -> str:
    return os.environ.get("NBCONV_FINGERPRINT_EXTRA", "").strip()


def die_once_marker() -> str | None:
    return os.environ.get("NBCONV_DASK_DIE_ONCE", "").strip() or None


def worker_env(numba_threads: int = 1, *, fingerprint_extra: str | None = None,
               die_once: str | None = None, **settings) -> dict[str, str]:
    """The environment of a fleet-tuning worker process: this process's NBCONV_* knobs, an
    in-memory tuning DB (the client alone writes the file), NUMBA_NUM_THREADS (read when numba
    is imported, so it must be in the environment), NBCONV_FINGERPRINT_EXTRA, the test hook
    NBCONV_DASK_DIE_ONCE, and tuner settings by their `Settings` names (`min_samples=3`...)."""
    env = {k: v for k, v in os.environ.items()
           if k.startswith("NBCONV_") and k not in ("NBCONV_TUNING_DB", "NBCONV_DASK_DIE_ONCE")}
    env.update({"NBCONV_TUNING_DB": ":memory:", "NUMBA_NUM_THREADS": str(int(numba_threads))})
    if fingerprint_extra is not None:
        env["NBCONV_FINGERPRINT_EXTRA"] = str(fingerprint_extra)
    if die_once is not None:
        env["NBCONV_DASK_DIE_ONCE"] = str(die_once)
    for name, value in settings.items():
        if name not in _FLOAT_KNOBS and name not in _INT_KNOBS:
            raise ValueError(f"worker_env: unknown tuner setting {name!r}; "
                             f"known: {sorted(_FLOAT_KNOBS) + sorted(_INT_KNOBS)}")
        env[{**_FLOAT_KNOBS, **_INT_KNOBS}[name][0]] = str(value)
    return env


def device() -> str:
    """Where layers run: `cuda` needs the extra `cuda` and a GPU (else the call says why)."""
    value = os.environ.get("NBCONV_DEVICE", "").strip().lower() or "cpu"
    if value not in DEVICES:
        raise ValueError(f"The environment variable NBCONV_DEVICE must be one of {DEVICES}. "
                         f"Received: NBCONV_DEVICE={value!r}")
    return value


def tuner_settings() -> Settings:
    """The tuner's Settings from the environment (see the table above)."""
    kw = {k: _number(env, d, float) for k, (env, d) in _FLOAT_KNOBS.items()}
    kw.update({k: _number(env, d, int) for k, (env, d) in _INT_KNOBS.items()})
    kw["max_samples"] = max(kw["max_samples"], kw["min_samples"])
    model_db = os.environ.get("NBCONV_TUNE_MODEL_DB", "").strip() or None
    return Settings(mode=tune_mode(), force=force_impl(), db=tuning_db_path(), model_db=model_db, **kw)
