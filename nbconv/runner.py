"""One decided (impl, config) for one Problem, and what surrounds its call: the host/device array
adapter, the prepared-data cache and the NaN/Inf fallback (nbconv.ops decides; this runs)."""
from __future__ import annotations

import math
import weakref

import numpy as np

from . import impls
from .tuner import registry

_PREPARED_MAX = 16          # prepared results kept per decided (Problem, impl, config)


# -- the host/device array adapter -------------------------------------------------------------
def adapter(device: str):
    """arrays -> arrays where `device`'s kernels want them; None where they already are (`cpu`:
    numpy arrays, as the layers give them; `cuda`: registered by nbconv.impls.cuda when it loads)."""
    if device == "cpu":
        return None
    try:
        return impls.ADAPTERS[device]
    except KeyError:
        raise ValueError(f"no array adapter for device {device!r}: its backend is not loaded") from None


def host_copy(a):
    """A device array's host copy (numpy arrays as they are)."""
    return a.copy_to_host() if hasattr(a, "copy_to_host") else a


def finite(y) -> bool:
    """Whether every value is finite; a device array is checked on the device (no host copy)."""
    if isinstance(y, np.ndarray):
        return math.isfinite(np.add.reduce(y, axis=None))   # NaN/Inf anywhere makes the sum so
    return impls.cuda.arrays().all_finite(y)


# -- one decided call ---------------------------------------------------------------------------
def _fallback(op, p):
    """The op's lowest-priority applicable impl that does not mix tiles (the direct loops)."""
    plain = [impl for impl, _ in registry.candidates(op, p) if not impl.mixes_tiles]
    if not plain:
        return None
    impl = plain[-1]
    return Runner(op, p, impl, impl.configs_for(p)[0])


def _same(refs, arrays) -> bool:
    """Whether the weakly referenced arrays are these very arrays (never, without references)."""
    return refs is not None and all(ref() is a for ref, a in zip(refs, arrays, strict=True))


class _Prepared:
    """`impl.prepare(*params, p, **config)`, made once per identity of the parameter arrays
    (weakly referenced, so a replaced weight array is never mistaken for its successor)."""

    __slots__ = ("impl", "p", "config", "_cache", "_last")

    def __init__(self, impl, p, config):
        self.impl, self.p, self.config, self._cache, self._last = impl, p, config, {}, None

    def get(self, params):
        hit = self._last                # the common case: the same weights as the last call
        if hit is None or not _same(hit[0], params):
            hit = self._cache.get(tuple(map(id, params)))
            if hit is None or not _same(hit[0], params):
                hit = self._make(params)
            self._last = hit
        return hit[1]

    def _make(self, params):
        value = self.impl.prepare(*params, self.p, **self.config)
        if len(self._cache) >= _PREPARED_MAX:
            self._cache.clear()
        try:
            entry = (tuple(weakref.ref(a) for a in params), value)
        except TypeError:               # no weak references: nothing to key a cache on
            return None, value
        self._cache[tuple(map(id, params))] = entry
        return entry


class Runner:
    """A decided (impl, config) for one Problem. `call(*arrays)` runs it with the adapter, the
    prepared data and the NaN/Inf fallback, each only where the impl and device need it: a CPU
    kernel without `prepare` or `mixes_tiles` is called straight."""

    __slots__ = ("op", "p", "impl", "config", "fn", "call", "prepared", "_fallback")

    def __init__(self, op, p, impl, config):
        self.op, self.p, self.impl, self.config = op, p, impl, dict(config)
        self.fn = fn = impl.fn
        self._fallback = False          # resolved on the first non-finite result
        adapt, cfg = adapter(p.device), self.config
        self.prepared = prepared = _Prepared(impl, p, cfg) if impl.prepare is not None else None
        if adapt is None and prepared is None and not impl.mixes_tiles:
            self.call = (lambda *arrays: fn(*arrays, p, **cfg)) if cfg else (lambda *arrays: fn(*arrays, p))
            return

        def call(*arrays):
            if adapt is not None:
                arrays = adapt(arrays)
            if prepared is None:
                y = fn(*arrays, p, **cfg)
            else:
                y = fn(*arrays, p, prepared=prepared.get(arrays[1:]), **cfg)
            if impl.mixes_tiles and not finite(y):
                return self._redo(arrays, y)
            return y
        self.call = call

    def _redo(self, arrays, y):
        if self._fallback is False:
            self._fallback = _fallback(self.op, self.p)
        return y if self._fallback is None else self._fallback.call(*arrays)
