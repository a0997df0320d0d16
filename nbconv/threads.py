"""Thread policy: Numba threads and BLAS threads never oversubscribe the cores.

Rules the kernels follow:
- every kernel that calls BLAS runs it under `blas_single()`, split over Numba's threads
  where it is large (`impls.gemm.par_dot`): BLAS's own pool never wakes, because its
  workers busy-wait for ~0.1 s after a call and slowed whatever ran next 9-60x (measured);
- Numba-parallel kernels without BLAS need nothing: BLAS is idle while they run.
`counts()` is what the tuner puts in its fingerprint.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from functools import lru_cache


@lru_cache(maxsize=1)
def _controller():
    # np.dot inside @njit goes through SciPy's BLAS: load it so the controller sees it.
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()


def _blas_pools():
    return _controller().select(user_api="blas")


def blas_threads() -> int:
    """Largest thread count among the loaded BLAS libraries (numpy's and SciPy's)."""
    return max((lib.get_num_threads() for lib in _blas_pools().lib_controllers), default=1)


def counts() -> dict:
    """Thread counts that decide which kernel is fastest: part of the tuning fingerprint."""
    from .impls import parallel

    return {"cores": os.cpu_count() or 1, "numba": parallel.numba_threads(),
            "blas": blas_threads()}


def set_threads(n: int) -> None:
    """Use n threads for both Numba kernels and BLAS calls (never more than Numba's maximum)."""
    from .impls import parallel

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"set_threads: `n` must be a positive int. Received: n={n!r}")
    parallel.set_numba_threads(min(n, parallel.numba_max_threads()))
    _blas_pools().limit(limits=n)


@contextmanager
def blas_single():
    """BLAS on one thread for the duration: for BLAS calls made inside Numba's prange."""
    libs = _blas_pools().lib_controllers
    before = [lib.get_num_threads() for lib in libs]
    if all(b == 1 for b in before):
        yield
        return
    for lib in libs:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(libs, before, strict=True):
            lib.set_num_threads(n)
