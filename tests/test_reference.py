"""The float64 oracle (nbconv.reference) against brute-force loops written from Keras's rules, and
worked pooling examples checked by hand against Keras.

The brute-force loops index the input cell by cell with explicit bounds checks, so they share
nothing with the reference's padded strided-window views.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from nbconv import reference
from nbconv.spec import Problem, make_problem


def _rand(shape, rng):
    return rng.uniform(-1.0, 1.0, shape)


def _last(x, p):
    return x if p.channels_last else np.moveaxis(x, 1, -1)


def _first(y, p):
    return y if p.channels_last else np.moveaxis(y, -1, 1)


def _cells(p, o):
    """Input indices of output cell o's window (None where the cell is padding), kernel order."""
    for j in itertools.product(*(range(k) for k in p.kernel)):
        idx = tuple(oi * s - lo + ji * d for oi, s, (lo, _), ji, d
                    in zip(o, p.strides, p.pads, j, p.dilation, strict=True))
        inside = all(0 <= i < n for i, n in zip(idx, p.spatial, strict=True))
        yield j, (idx if inside else None)


def brute_conv(x, w, b, p):
    x = _last(x, p)
    cg, fg = p.in_channels // p.groups, p.out_channels // p.groups
    y = np.zeros((p.batch, *p.out_spatial, p.out_channels))
    for n in range(p.batch):
        for o in itertools.product(*(range(v) for v in p.out_spatial)):
            for f in range(p.out_channels):
                g = f // fg
                acc = b[f]
                for j, idx in _cells(p, o):
                    if idx is None:
                        continue
                    for c in range(cg):
                        acc += x[(n, *idx, g * cg + c)] * w[(*j, c, f)]
                y[(n, *o, f)] = acc
    return _first(y, p)


def brute_pool(x, p):
    x = _last(x, p)
    y = np.zeros((p.batch, *p.out_spatial, p.out_channels))
    for n in range(p.batch):
        for o in itertools.product(*(range(v) for v in p.out_spatial)):
            for c in range(p.in_channels):
                vals = [x[(n, *idx, c)] for _, idx in _cells(p, o) if idx is not None]
                y[(n, *o, c)] = max(vals) if p.op == "maxpool" else sum(vals) / len(vals)
    return _first(y, p)


def brute_local(x, w, b, p):
    x = _last(x, p)
    y = np.zeros((p.batch, *p.out_spatial, p.out_channels))
    for n in range(p.batch):
        for pos, o in enumerate(itertools.product(*(range(v) for v in p.out_spatial))):
            for f in range(p.out_channels):
                acc = b[pos, f]
                for j, idx in _cells(p, o):
                    if idx is not None:
                        for c in range(p.in_channels):
                            acc += x[(n, *idx, c)] * w[(pos, *j, c, f)]
                y[(n, *o, f)] = acc
    return _first(y, p)


def _shape(p_layout, n, spatial, c):
    return (n, *spatial, c) if p_layout == "channels_last" else (n, c, *spatial)


CONV_CASES = [
    # (rank, layout, spatial, C, F, kernel, strides, dilation, padding, groups)
    (1, "channels_last", (9,), 3, 4, (3,), (1,), (2,), "causal", 1),
    (1, "channels_first", (7,), 4, 2, (4,), (2,), (1,), "same", 2),
    (2, "channels_last", (6, 5), 4, 6, (3, 2), (2, 1), (1, 1), "same", 2),
    (2, "channels_first", (5, 6), 3, 6, (3, 3), (1, 2), (1, 1), "valid", 3),   # depthwise, multiplier 2
    (2, "channels_last", (4, 4), 2, 3, (2, 3), (1, 1), (1, 1), ((2, 0), (1, 3)), 1),  # explicit pads
    (3, "channels_last", (4, 5, 3), 2, 2, (2, 2, 1), (1, 2, 1), (1, 1, 2), "same", 1),
    (3, "channels_first", (3, 6, 4), 2, 4, (1, 3, 2), (1, 1, 1), (1, 2, 1), "valid", 2),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"r{c[0]}-{c[1]}-{c[8]}-g{c[9]}")
def test_conv_matches_brute_force(case):
    rank, layout, spatial, c, f, k, s, d, pad, g = case
    rng = np.random.default_rng(1)
    p = make_problem("conv", _shape(layout, 2, spatial, c), rank=rank, kernel=k, strides=s, dilation=d,
                     padding=pad, out_channels=f, groups=g, layout=layout, dtype="float64")
    x, w, b = _rand(p.input_shape, rng), _rand(p.weight_shape, rng), _rand(p.bias_shape, rng)
    y = reference.conv(x, w, b, p)
    assert y.shape == p.output_shape and y.dtype == np.float64
    np.testing.assert_allclose(y, brute_conv(x, w, b, p), rtol=1e-12, atol=1e-12)


POOL_CASES = [
    # (rank, layout, spatial, C, pool, strides, padding)
    (1, "channels_last", (8,), 2, (3,), (2,), "same"),
    (1, "channels_first", (7,), 2, (2,), (2,), "valid"),
    (2, "channels_last", (5, 6), 3, (3, 2), (2, 2), "same"),
    (2, "channels_first", (6, 5), 2, (2, 4), (1, 3), "same"),
    (2, "channels_last", (4, 5), 2, (4, 5), (1, 1), "valid"),       # global
    (3, "channels_last", (3, 4, 5), 2, (2, 2, 3), (2, 1, 2), "same"),
    (2, "channels_last", (4, 4), 1, (3, 3), (2, 1), ((1, 2), (0, 2)), ),  # explicit pads
]


@pytest.mark.parametrize("op", ["maxpool", "avgpool"])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: f"r{c[0]}-{c[1]}-{c[6]}")
def test_pool_matches_brute_force(op, case):
    rank, layout, spatial, c, k, s, pad = case
    rng = np.random.default_rng(2)
    p = make_problem(op, _shape(layout, 2, spatial, c), rank=rank, kernel=k, strides=s, padding=pad,
                     layout=layout, dtype="float64")
    x = _rand(p.input_shape, rng)
    y = reference.pool(x, p)
    assert y.shape == p.output_shape
    np.testing.assert_allclose(y, brute_pool(x, p), rtol=1e-12, atol=1e-12)


LOCAL_CASES = [
    (1, "channels_last", (7,), 2, 3, (3,), (2,), "same"),
    (1, "channels_first", (6,), 3, 2, (2,), (1,), "same"),
    (2, "channels_last", (5, 6), 2, 3, (3, 2), (2, 1), "valid"),
    (2, "channels_first", (6, 5), 2, 2, (2, 3), (2, 2), "same"),
]


@pytest.mark.parametrize("case", LOCAL_CASES, ids=lambda c: f"r{c[0]}-{c[1]}-{c[7]}")
def test_local_matches_brute_force(case):
    rank, layout, spatial, c, f, k, s, pad = case
    rng = np.random.default_rng(3)
    p = make_problem("local", _shape(layout, 2, spatial, c), rank=rank, kernel=k, strides=s,
                     padding=pad, out_channels=f, layout=layout, dtype="float64")
    x, w, b = _rand(p.input_shape, rng), _rand(p.weight_shape, rng), _rand(p.bias_shape, rng)
    np.testing.assert_allclose(reference.local(x, w, b, p), brute_local(x, w, b, p), rtol=1e-12, atol=1e-12)


def test_local_same_pads_left_by_k_over_2():
    # tf-keras LC `same`: k=2 s=1 pads one on the LEFT, unlike conv `same`.
    p = make_problem("local", (1, 4, 1), rank=1, kernel=(2,), padding="same", out_channels=1)
    assert p.pads == ((1, 0),) and p.out_spatial == (4,)
    x = np.arange(1.0, 5.0).reshape(1, 4, 1)
    w = np.ones(p.weight_shape)
    np.testing.assert_array_equal(reference.local(x, w, None, p).ravel(), [1, 3, 5, 7])


def test_dense_matches_loops():
    rng = np.random.default_rng(4)
    p = Problem(op="dense", rank=0, batch=3, in_channels=5, out_channels=4, dtype="float64")
    x, w, b = _rand((3, 5), rng), _rand((5, 4), rng), _rand((4,), rng)
    want = [[b[f] + math.fsum(x[n, c] * w[c, f] for c in range(5)) for f in range(4)] for n in range(3)]
    np.testing.assert_allclose(reference.dense(x, w, b, p), want, rtol=1e-12)
    np.testing.assert_allclose(reference.run("dense", p, x, w, b), want, rtol=1e-12)


# -- the spec's worked pooling examples ----------------------------------

def _pool1d(op, values, k, s, padding):
    x = np.asarray(values, np.float64).reshape(1, -1, 1)
    p = make_problem(op, x.shape, rank=1, kernel=(k,), strides=(s,), padding=padding)
    return p, reference.pool(x, p).ravel()


def test_avgpool_same_divides_by_in_bounds_count():
    p, y = _pool1d("avgpool", range(1, 9), 3, 2, "same")
    assert p.pads == ((0, 1),)
    np.testing.assert_array_equal(y, [2, 4, 6, 7.5])       # last window is (7 + 8) / 2


def test_maxpool_same_ignores_pads():
    _, y = _pool1d("maxpool", [-3, -1, -2, -5], 2, 1, "same")
    np.testing.assert_array_equal(y, [-1, -1, -2, -5])      # never 0 from a padded cell


def test_pool_valid_drops_trailing_cells():
    _, y = _pool1d("maxpool", range(7), 2, 2, "valid")
    np.testing.assert_array_equal(y, [1, 3, 5])              # L=7, pool 2 -> 3 outputs


def test_pool_2d_same_worked_example():
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    for op, want in (("avgpool", [[3, 4.5], [7.5, 9]]), ("maxpool", [[5, 6], [8, 9]])):
        p = make_problem(op, x.shape, rank=2, kernel=(2, 2), strides=(2, 2), padding="same")
        assert p.pads == ((0, 1), (0, 1))
        np.testing.assert_array_equal(reference.pool(x, p)[0, :, :, 0], want)


def test_pool_channels_first_is_a_transpose():
    rng = np.random.default_rng(5)
    x = _rand((2, 5, 6, 3), rng)
    for op in ("maxpool", "avgpool"):
        kw = dict(rank=2, kernel=(3, 2), strides=(2, 1), padding="same")
        p_last = make_problem(op, x.shape, **kw)
        p_first = make_problem(op, np.moveaxis(x, -1, 1).shape, layout="channels_first", **kw)
        np.testing.assert_array_equal(reference.pool(np.moveaxis(x, -1, 1), p_first),
                                      np.moveaxis(reference.pool(x, p_last), -1, 1))


def test_rel_error_treats_non_finite_cells_exactly():
    ref = np.array([1.0, np.inf, np.nan, -2.0])
    assert reference.rel_error(ref.copy(), ref) == 0.0
    assert reference.rel_error([1.0, np.inf, np.nan, -2.5], ref) == pytest.approx(0.25)
    assert reference.rel_error([1.0, -np.inf, np.nan, -2.0], ref) == float("inf")
    assert reference.rel_error([1.0, np.inf, 0.0, -2.0], ref) == float("inf")
    assert reference.rel_error(np.zeros(3), ref) == float("inf")    # shape mismatch
