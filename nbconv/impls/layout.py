"""channels_first <-> channels_last copies, for kernels that run channels_last only.

The register-tiled kernels vectorise over channels, so they need channels innermost: a
channels_first call copies its input to channels_last and its output back (the tuner times the
copies with the kernel). Numba's threads do the copy in 32x32 blocks, in about half the time of
numpy's single-threaded transpose copy on two cores.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..spec import Problem
from .scratch import scratch


@njit(parallel=True, cache=True)
def _swap(a, out):
    """out[n, j, i] = a[n, i, j], in 32x32 blocks."""
    n_, r_, c_ = a.shape
    nbr, nbc = (r_ + 31) // 32, (c_ + 31) // 32
    for t in prange(n_ * nbr * nbc):
        n = t // (nbr * nbc)
        i0, j0 = ((t // nbc) % nbr) * 32, (t % nbc) * 32
        for j in range(j0, min(c_, j0 + 32)):
            for i in range(i0, min(r_, i0 + 32)):
                out[n, j, i] = a[n, i, j]


def to_channels_last(x: np.ndarray, p: Problem) -> np.ndarray:
    """A channels_last copy of p's channels_first input x, in this thread's scratch buffer
    `layout_x` (the caller's temporary)."""
    s = int(np.prod(p.spatial))
    out = scratch("layout_x", (p.batch, s, p.in_channels), x.dtype)
    _swap(x.reshape(p.batch, p.in_channels, s), out)
    return out.reshape(p.batch, *p.spatial, p.in_channels)


def to_channels_first(y: np.ndarray, p: Problem) -> np.ndarray:
    """A channels_first copy of the channels_last output y of p (itself channels_first)."""
    s = int(np.prod(p.out_spatial))
    out = np.empty((p.batch, p.out_channels, s), y.dtype)
    _swap(y.reshape(p.batch, s, p.out_channels), out)
    return out.reshape(p.output_shape)
