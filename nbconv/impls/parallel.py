"""Numba's side of the thread policy (numba may only be imported under nbconv/impls).

`nbconv.threads` holds the policy itself; this module only reads and sets Numba's count.
"""
from __future__ import annotations

import os

# Numba's OpenMP workers spin after a parallel region by default; while a BLAS call follows
# (im2col's GEMM after its parallel lowering) the spinning threads take BLAS's cores: measured
# 13x slower im2col on res3a b8 at a 1 MiB cap. Passive waiting fixes it. Must be set before the
# first parallel launch; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402


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
