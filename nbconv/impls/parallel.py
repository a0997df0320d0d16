"""Numba's side of the thread policy (numba may only be imported under nbconv/impls).

`nbconv.threads` holds the policy itself; this module only reads and sets Numba's count.
"""
from __future__ import annotations

import numba

# OpenMP's wait policy is left at libgomp's default (workers spin a while after a parallel
# region). That spinning once starved BLAS's own threads after im2col's lowering; since every
# GEMM now runs on Numba's threads with single-threaded BLAS (gemm.par_dot), nothing competes
# with it. torch loads the same libgomp and so runs with the same, default, settings.


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
