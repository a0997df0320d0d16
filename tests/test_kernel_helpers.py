"""The kernels' helpers: per-thread scratch buffers (scratch.py), the layout copies (layout.py),
the thread policy (threads.py) and the threaded GEMM (`gemm.par_dot`)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from nbconv import threads
from nbconv.impls import gemm, layout, scratch
from nbconv.spec import make_problem


def test_scratch_reuses_grows_and_aligns():
    a = scratch.scratch("t_a", (3, 5), np.float32)
    assert a.shape == (3, 5) and a.dtype == np.float32 and a.flags.c_contiguous
    assert a.ctypes.data % scratch.ALIGN == 0
    b = scratch.scratch("t_a", (15,), np.float32)
    assert np.shares_memory(a, b)                          # the same buffer, reused
    big = scratch.scratch("t_a", (1000, 1000), np.float64)  # grows
    assert big.shape == (1000, 1000) and big.ctypes.data % scratch.ALIGN == 0
    other = scratch.scratch("t_b", (15,), np.float32)
    assert not np.shares_memory(other, big)                # names never alias


def test_scratch_is_per_thread():
    mine = scratch.scratch("t_c", (64,), np.float32)
    theirs = []
    t = threading.Thread(target=lambda: theirs.append(scratch.scratch("t_c", (64,), np.float32)))
    t.start()
    t.join()
    assert not np.shares_memory(mine, theirs[0])


@pytest.mark.parametrize("shape,k", [((2, 5, 37), (3,)), ((2, 3, 7, 9), (3, 3)),
                                     ((1, 4, 3, 5, 6), (1, 2, 3))])
def test_layout_copies_match_numpy_transposes(shape, k):
    p = make_problem("conv", shape, rank=len(k), kernel=k, out_channels=6, layout="channels_first")
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    xl = layout.to_channels_last(x, p)
    assert np.array_equal(xl, np.moveaxis(x, 1, -1))
    y = np.random.default_rng(1).uniform(-1, 1, p.with_(layout="channels_last").output_shape)
    yf = layout.to_channels_first(y, p)
    assert yf.shape == p.output_shape and np.array_equal(yf, np.moveaxis(y, -1, 1))


def test_thread_counts_and_blas_single_restores():
    c = threads.counts()
    assert set(c) >= {"cores", "numba", "blas"} and all(v >= 1 for v in c.values())
    before = threads.blas_threads()
    with threads.blas_single():
        assert threads.blas_threads() == 1
    assert threads.blas_threads() == before


@pytest.mark.parametrize("m,k,n", [(1, 300, 7), (5, 1024, 33), (40, 700, 9), (200, 64, 16), (3, 5, 4)])
def test_par_dot_row_and_inner_splits(m, k, n):
    """Both ways par_dot splits a GEMM over threads (rows; inner dimension for few rows)."""
    rng = np.random.default_rng(1)
    a, b = rng.uniform(-1, 1, (m, k)), rng.uniform(-1, 1, (k, n))
    out = np.empty((m, n))
    for nthreads in (1, 2, 3):
        gemm.par_dot(a, b, out, nthreads)
        np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)
