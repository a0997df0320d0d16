"""Registry of implementations: op name -> registered candidates.

Generic: a problem is any object with `key()`; `applies` is a pure predicate on it.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Impl:
    op: str
    name: str
    fn: Callable
    applies: Callable[[Any], Any]
    configs: Any = ({},)            # a list of dicts, or a callable problem -> list of dicts
    sync: Callable | None = None    # called before every clock read of the default timer
    tolerance: float = 1e-4         # max error relative to the output's largest magnitude
    priority: int = 0               # higher first when nothing is measured (mode `off`), and in ties
    estimate: Callable | None = None  # (problem, config) -> predicted cost, for mode `estimate`
    mixes_tiles: bool = False       # combines a tile of inputs before multiplying (Winograd, FFT):
                                    # one NaN/Inf spreads over its tile, so callers may redo such calls
    prepare: Callable | None = None  # (*arrays[1:], problem, **config) -> object reused across calls,
                                    # passed to fn as `prepared=` (transformed weights, device copies)
    timer: Callable | None = None   # (call, n) -> seconds for n calls; default: perf_counter around sync
    source_hash: str = field(default="", compare=False)

    def check(self, problem: Any) -> tuple[bool, str]:
        """(applies, reason). `applies` returns True, or False / a string saying why not."""
        try:
            verdict = self.applies(problem)
        except Exception as e:  # a broken predicate must not take the layer down
            return False, f"applies() raised {type(e).__name__}: {e}"
        if verdict is True:
            return True, ""
        return False, verdict if isinstance(verdict, str) and verdict else "not applicable"

    def clock(self, default: Callable | None = None) -> Callable:
        """The timer measurements of this impl use: `timer(call, n) -> seconds`: its own, else
        `default(sync)` (a clock factory such as `process_timer`), else `sync_timer(sync)`."""
        if self.timer is not None:
            return self.timer
        return (default or sync_timer)(self.sync)

    def bind(self, arrays: Sequence[Any], problem: Any, config: dict, prepared: Any = None) -> Callable:
        """A zero-argument call of this impl on these arrays (prepared data reused, if any)."""
        if self.prepare is None:
            return functools.partial(self.fn, *arrays, problem, **config)
        if prepared is None:
            prepared = self.prepare(*arrays[1:], problem, **config)
        return functools.partial(self.fn, *arrays, problem, prepared=prepared, **config)

    def configs_for(self, problem: Any) -> list[dict]:
        cfgs = self.configs(problem) if callable(self.configs) else self.configs
        return [dict(c) for c in cfgs] or [{}]


def sync_timer(sync: Callable | None = None) -> Callable:
    """`timer(call, n)`: seconds for n calls by `time.perf_counter`, `sync()` before each clock read."""
    return clock_timer(time.perf_counter, sync)


def process_timer(sync: Callable | None = None) -> Callable:
    """`timer(call, n)`: the process's CPU seconds (`time.process_time`) for n calls, `sync()`
    before each clock read. Time other processes take from the cores is not counted, so a busy
    machine does not inflate it; meaningful only when the calls run on one thread."""
    return clock_timer(time.process_time, sync)


def clock_timer(clock: Callable[[], float], sync: Callable | None = None) -> Callable:
    """`timer(call, n)`: the `clock()` seconds n calls take, `sync()` before each clock read."""
    def timer(call: Callable[[], Any], n: int) -> float:
        if sync is not None:
            sync()
        t0 = clock()
        for _ in range(n):
            call()
        if sync is not None:
            sync()
        return clock() - t0
    return timer


def _module_source(mod: Any) -> str:
    try:
        return inspect.getsource(mod)
    except (OSError, TypeError):
        return getattr(mod, "__name__", repr(mod))


_TUNER = __name__.rsplit(".", 1)[0] + "."       # this package's prefix, wherever it is installed


def _source_hash(fn: Callable) -> str:
    """Hash of the module that defines fn and of the same-package modules it uses (helpers such
    as shared views or thread policy): editing a kernel re-tunes only the rows that depend on it.
    The tuner's own modules never count, even when an application installs it inside its package."""
    mod = inspect.getmodule(fn)
    if mod is None:
        return hashlib.sha256(getattr(fn, "__qualname__", repr(fn)).encode()).hexdigest()[:16]
    package = mod.__name__.split(".")[0]
    deps = {}
    for value in vars(mod).values():
        dep = value if inspect.ismodule(value) else getattr(value, "__module__", None)
        dep = sys.modules.get(dep) if isinstance(dep, str) else dep
        if (inspect.ismodule(dep) and dep is not mod and dep.__name__.split(".")[0] == package
                and dep.__name__ != package and not dep.__name__.startswith(_TUNER)):
            deps[dep.__name__] = dep
    h = hashlib.sha256(_module_source(mod).encode())
    for name in sorted(deps):
        h.update(b"\0" + name.encode() + b"\0" + _module_source(deps[name]).encode())
    return h.hexdigest()[:16]


class Registry:
    def __init__(self) -> None:
        self._impls: dict[str, dict[str, Impl]] = {}

    def add(self, impl: Impl) -> Impl:
        ops = self._impls.setdefault(impl.op, {})
        if impl.name in ops and ops[impl.name].fn is not impl.fn:
            raise ValueError(f"register: an implementation named {impl.name!r} is already "
                             f"registered for op {impl.op!r}")
        ops[impl.name] = impl
        return impl

    def ops(self) -> list[str]:
        return sorted(self._impls)

    def impls(self, op: str) -> list[Impl]:
        return sorted(self._impls.get(op, {}).values(), key=lambda i: (-i.priority, i.name))

    def get(self, op: str, name: str) -> Impl:
        try:
            return self._impls[op][name]
        except KeyError:
            known = sorted(self._impls.get(op, {}))
            raise KeyError(f"no implementation {name!r} for op {op!r}; known: {known}") from None

    def applicability(self, op: str, problem: Any) -> list[tuple[Impl, bool, str]]:
        """Every impl of `op` with (applies, reason why not)."""
        return [(impl, *impl.check(problem)) for impl in self.impls(op)]

    def candidates(self, op: str, problem: Any) -> list[tuple[Impl, dict]]:
        """Applicable (impl, config) pairs, highest priority first."""
        out: list[tuple[Impl, dict]] = []
        for impl in self.impls(op):
            ok, _ = impl.check(problem)
            if ok:
                out.extend((impl, cfg) for cfg in impl.configs_for(problem))
        return out


registry = Registry()


def register(op: str, name: str | None = None, *, applies: Callable | None = None, configs: Any = ({},),
             sync: Callable | None = None, tolerance: float = 1e-4, priority: int = 0,
             estimate: Callable | None = None, mixes_tiles: bool = False,
             prepare: Callable | None = None, timer: Callable | None = None,
             registry: Registry = registry) -> Callable[[Callable], Callable]:
    """Decorator: register `fn(*arrays, problem, **config)` as a candidate for `op`.

    `name` defaults to the function's name (a registered name and its function agree).
    `estimate(problem, config) -> float` is optional: a predicted cost (any unit, lower is
    better) used by mode `estimate`. `prepare(*arrays[1:], problem, **config)` is optional: its
    result is computed once per parameter arrays and decision and passed to `fn` as `prepared=`;
    it is never timed with the calls. `registry` defaults to the global one (tests pass their own).
    """
    def deco(fn: Callable) -> Callable:
        registry.add(Impl(op=op, name=name or fn.__name__, fn=fn, applies=applies or (lambda p: True),
                          configs=configs, sync=sync, tolerance=tolerance, priority=priority,
                          estimate=estimate, mixes_tiles=mixes_tiles, prepare=prepare, timer=timer,
                          source_hash=_source_hash(fn)))
        return fn
    return deco
