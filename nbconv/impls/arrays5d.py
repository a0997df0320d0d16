"""Argument checks, 5-D views and zero padding for the kernels' Python wrappers (no numba here).

Ranks 1-3 are seen as 5-D arrays, (N, D, H, W, C) for channels_last and (N, C, D, H, W) for
channels_first, with size-1 leading spatial axes: one Numba compile per (layout, dtype) serves
every rank.
"""
from __future__ import annotations

import numpy as np

from ..spec import Problem

DTYPES = ("float32", "float64")


def three(values, fill) -> tuple:
    """A rank-r tuple as three entries, size-`fill` axes first (D, H, W order)."""
    values = tuple(values)
    return (fill,) * (3 - len(values)) + values


def applies_common(p: Problem):
    """True, or a string saying why the Problem is outside what the direct kernels accept."""
    if p.dtype not in DTYPES:
        return f"dtype must be one of {DTYPES}; got {p.dtype!r}"
    if not 1 <= p.rank <= 3 and p.op != "dense":
        return f"rank must be 1, 2 or 3; got {p.rank}"
    if any(lo < 0 or hi < 0 for lo, hi in p.pads):
        return f"pads must be non-negative; got {p.pads}"
    if not p.valid():
        return f"output size must be >= 1 on every axis; got {p.out_spatial}"
    if p.batch < 0 or p.in_channels < 0 or p.out_channels < 0 or p.groups < 1:
        return (f"batch and channels must be >= 0 and groups >= 1; got n={p.batch} "
                f"c={p.in_channels}-{p.out_channels} g={p.groups}")
    return True


def check_array(name: str, a, shape, p: Problem) -> np.ndarray:
    """`a` as a C-contiguous, writeable ndarray of p.dtype and `shape`, or TypeError/ValueError.

    Writeable and C-contiguous matter: Numba compiles a new specialisation for readonly or
    non-contiguous arrays, so they are copied here instead.
    """
    if not isinstance(a, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy.ndarray. Received: {name} of type {type(a).__name__}")
    if a.dtype != np.dtype(p.dtype):
        raise TypeError(f"`{name}` must have the Problem's dtype {p.dtype} (native byte order). "
                        f"Received: {name}.dtype={a.dtype.str}")
    if a.shape != tuple(shape):
        raise ValueError(f"`{name}` must have shape {tuple(shape)} for problem {p.key()}. "
                         f"Received: {name}.shape={a.shape}")
    f = a.flags
    if f.c_contiguous and f.writeable and f.aligned:    # (np.require alone costs ~3 us a call)
        return a
    return np.require(a, requirements=("C", "W", "A"))


def view5(a: np.ndarray, p: Problem, out: bool = False) -> np.ndarray:
    """The 5-D view of an input (or, with out=True, output) array of Problem p."""
    spatial = three(p.out_spatial if out else p.spatial, 1)
    c = p.out_channels if out else p.in_channels
    shape = (p.batch, *spatial, c) if p.channels_last else (p.batch, c, *spatial)
    return a.reshape(shape)


def zero_pad5(x5: np.ndarray, p: Problem) -> np.ndarray:
    """A zero-padded C-contiguous copy of the 5-D input (x5 itself when there is no padding)."""
    pads = three(p.pads, (0, 0))
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x5
    sp = x5.shape[1:4] if p.channels_last else x5.shape[2:5]
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(sp, pads, strict=True))
    inner = tuple(slice(lo, lo + s) for s, (lo, _) in zip(sp, pads, strict=True))
    if p.channels_last:
        xp = np.zeros((x5.shape[0], *padded, x5.shape[4]), x5.dtype)
        xp[(slice(None), *inner, slice(None))] = x5
    else:
        xp = np.zeros((x5.shape[0], x5.shape[1], *padded), x5.dtype)
        xp[(slice(None), slice(None), *inner)] = x5
    return xp
