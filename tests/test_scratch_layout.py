"""Per-thread scratch buffers (nbconv/impls/scratch.py) and the layout copies (layout.py)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from nbconv.impls import layout, scratch
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
