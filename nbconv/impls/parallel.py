"""Numba's side of the thread policy (numba may only be imported under nbconv/impls).

`nbconv.threads` holds the policy itself; this module only reads and sets Numba's count.
"""
from __future__ import annotations

import os

import numba

# Numba's OpenMP workers spin after a parallel region. While a BLAS call follows (im2col's GEMM
# after its parallel lowering) spinning threads take BLAS's cores: measured 20x slower im2col
# on res3a b8 with unbounded spinning. Never spinning (OMP_WAIT_POLICY=PASSIVE) costs short
# kernels a thread wake-up per call: the register-tiled depthwise layer ran at half speed. A
# short spin (GOMP_SPINCOUNT=3000, a few microseconds) keeps ~85 % of the passive im2col speed
# and all of the tiled kernels' (measured, res3a b8 / dw3x3_112 / conv5x5_28, 2 threads).
# libgomp reads the environment once, when it loads: the pool is started here with the setting
# and the environment restored, so torch's own OpenMP runtime, loaded later, keeps its defaults
# (the anchors are measured as torch ships). A wait policy or spin count the user set is kept.
_SPIN = {"GOMP_SPINCOUNT": "3000"}


def _start_pool():
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    os.environ.update(_SPIN)
    try:
        from numba.np.ufunc.parallel import _launch_threads
        _launch_threads()
    finally:
        for k in _SPIN:
            os.environ.pop(k, None)


_start_pool()


def numba_threads() -> int:
    return int(numba.get_num_threads())


def numba_max_threads() -> int:
    return int(numba.config.NUMBA_NUM_THREADS)


def set_numba_threads(n: int) -> None:
    numba.set_num_threads(int(n))


def threading_layer() -> str:
    try:
        return str(numba.threading_layer())
    except ValueError:  # no parallel function has run yet
        return "unset"
