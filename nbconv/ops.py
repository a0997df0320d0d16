"""The layers' entry to the kernels: one function per op.

Provisional: takes the highest-priority applicable implementation until the tuner lands.
"""
from __future__ import annotations

from tuner import registry

from . import impls  # noqa: F401  (registers the implementations)


def run(op: str, p, *arrays):
    cands = registry.candidates(op, p)
    if not cands:
        raise ValueError(f"no implementation applies to {p.key()}")
    impl, cfg = cands[0]
    return impl.fn(*arrays, p, **cfg)


def conv(x, w, b, p):
    return run("conv", p, x, w, b)


def pool(x, p):
    return run(p.op, p, x)


def local(x, w, b, p):
    return run("local", p, x, w, b)


def dense(x, w, b, p):
    return run("dense", p, x, w, b)
