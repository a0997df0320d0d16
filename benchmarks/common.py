"""Shared pieces of the asv suite: problem sizes, cached data, prepared (compiled, checked) kernels.

asv_runner re-runs `setup()` before every timed call, so everything expensive lives behind
`functools.lru_cache` here: arrays are built once and each kernel is compiled and checked against
the float64 reference once per benchmark process.

Importing it preloads Numba's registries (see `preload_numba`). `NBCONV_BENCH_TINY=1` shrinks
every size (used by tests/test_benchmarks.py); it is read at call time, so a test may set it
after importing the suite.
"""
from __future__ import annotations

import functools
import json

from nbconv.tuner import registry

import nbconv.ops  # (imports nbconv.impls: fills the registry)
from nbconv import knobs, reference
from nbconv.spec import make_problem


def preload_numba():
    """Load Numba's lazily imported typing/lowering registries (numba.np.arraymath pulls in
    scipy.linalg) now, at suite import time: asv imports the suite once in its fork server and
    forks a process per parameter combination, so each combination's first kernel call then
    only loads its cached machine code (~0.2 s instead of ~2.5 s). This runs no parallel code:
    forking after Numba's OpenMP threads started would abort."""
    from numba.core.registry import cpu_target
    cpu_target.target_context.refresh()


preload_numba()

KERNELS = (1, 3, 5, 7)
STRIDES = (1, 2)
LAYOUTS = ("channels_last", "channels_first")
NONE = "(none registered)"


class Timing:
    """asv timing attributes shared by the kernel benchmarks: no auto-calibration (one call per
    sample: the calls take milliseconds, and setup re-runs before each), 5-20 samples within
    about 1.5 s, one round. Keeps the default suite inside its 15-minute budget."""
    number = 1
    repeat = (5, 20, 1.5)
    warmup_time = 0.05
    rounds = 1
    timeout = 120


def tiny() -> bool:
    return knobs.bench_tiny()


def applicable_names(op, problems) -> list[str]:
    """Registered impls of `op` that apply to at least one of `problems` (a placeholder when
    none does): whole rows of 'n/a' would still cost asv a process per combination."""
    names = [i.name for i in registry.impls(op) if any(i.check(p)[0] for p in problems)]
    return sorted(names) or [NONE]


def grid(make, kernels=KERNELS):
    """Problems make(k, s, layout) over the suite's kernel x stride x layout grid."""
    return [make(k, s, lay) for k in kernels for s in STRIDES for lay in LAYOUTS]


def problem(op, rank, k, s, layout, *, batch, spatial, c_in, c_out, padding="same", groups=1):
    """A Problem from benchmark parameters; `spatial` is one side length."""
    shape_sp = (spatial,) * rank
    x_shape = (batch, *shape_sp, c_in) if layout == "channels_last" else (batch, c_in, *shape_sp)
    return make_problem(op, x_shape, rank=rank, kernel=(k,) * rank, strides=(s,) * rank,
                        padding=padding, out_channels=c_out, groups=groups, layout=layout)


@functools.cache
def arrays(p):
    """`nbconv.ops.make_args` (the one argument builder), built once per process and problem."""
    return nbconv.ops.make_args(p.op, p)


def check_applies(op, name, p):
    """The Impl for `name`, or NotImplementedError saying why it does not apply to p."""
    if name == NONE:
        raise NotImplementedError(f"no implementation registered for {op}")
    try:
        impl = registry.get(op, name)
    except KeyError:
        raise NotImplementedError(f"{name} is not an implementation of {op}") from None
    ok, why = impl.check(p)
    if not ok:
        raise NotImplementedError(f"{name} does not apply to {p.key()}: {why}")
    return impl


@functools.cache
def _prepared(op, name, p, cfg_json):
    impl = registry.get(op, name)
    cfg = json.loads(cfg_json) if cfg_json else impl.configs_for(p)[0]
    args = arrays(p)
    y = impl.fn(*args, p, **cfg)          # compiles (or loads Numba's cache)
    err = reference.rel_error(y, reference.run(op, p, *args))
    if not err <= impl.tolerance:
        raise RuntimeError(f"{op}/{name} {cfg} on {p.key()}: relative error {err:.3g} "
                           f"exceeds its tolerance {impl.tolerance:.3g}")
    return functools.partial(impl.fn, *args, p, **cfg)


def prepare(op, name, p, cfg=None):
    """A zero-argument callable running impl `name` with `cfg` (default: its first config) on
    cached data for p: compiled and checked against the reference once per process. Raises
    NotImplementedError where the impl does not apply."""
    check_applies(op, name, p)
    return _prepared(op, name, p, json.dumps(cfg, sort_keys=True) if cfg is not None else "")
