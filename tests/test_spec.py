"""Problem normalisation: output lengths, `same`/`causal` pad splits, and LocallyConnected's `same`."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbconv.spec import Problem, make_problem, padding_pairs, problem_from_key, same_pads


@pytest.mark.parametrize("length,ke,s,pads", [
    (5, 2, 1, (0, 1)),      # even kernel: the extra pixel goes after
    (6, 3, 2, (0, 1)),
    (7, 3, 2, (1, 1)),
    (9, 4, 1, (1, 2)),
    (4, 5, 1, (2, 2)),      # kernel larger than the input
])
def test_same_pads_follow_tensorflow(length, ke, s, pads):
    assert same_pads(length, ke, s) == pads


@given(L=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4), d=st.integers(1, 3))
def test_output_lengths_match_spec_formulas(L, k, s, d):
    ke = (k - 1) * d + 1
    for padding, expected in (("valid", (L - ke) // s + 1), ("same", (L - 1) // s + 1),
                              ("causal", (L - 1) // s + 1)):
        pads = padding_pairs(padding, (L,), (k,), (s,), (d,))
        p = Problem("conv", 1, 1, 1, 1, (L,), (k,), (s,), (d,), pads)
        assert p.out_spatial == (expected,)


@given(L=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4))
def test_locally_connected_same_starts_at_half_kernel(L, k, s):
    (lo, hi), = padding_pairs("same", (L,), (k,), (s,), (1,), op="local")
    assert lo == k // 2
    p = Problem("local", 1, 1, 1, 1, (L,), (k,), (s,), (1,), ((lo, hi),))
    assert p.out_spatial == (math.ceil(L / s),)


def test_causal_pads_left_only():
    assert padding_pairs("causal", (10,), (3,), (1,), (2,)) == ((4, 0),)


def test_key_round_trips_and_reads_well():
    p = make_problem("conv", (8, 56, 56, 64), rank=2, kernel=(3, 3), padding="same", out_channels=128)
    assert p.key() == "conv/r2/float32/NHWC/n8/c64-128/g1/s56x56/k3x3/st1x1/d1x1/p1:1x1:1/cpu"
    assert problem_from_key(p.key()) == p
    q = make_problem("avgpool", (2, 3, 9), rank=1, kernel=(2,), strides=(2,), layout="channels_first")
    assert problem_from_key(q.key()) == q
    d = Problem("dense", 0, 4, 10, 3)
    assert problem_from_key(d.key()) == d


def test_flops_count_multiply_adds_twice():
    p = make_problem("conv", (1, 28, 28, 128), rank=2, kernel=(3, 3), padding="same", out_channels=128)
    assert p.flops() == 2 * 1 * 128 * 128 * 28 * 28 * 9
    g = make_problem("conv", (1, 8, 8, 32), rank=2, kernel=(3, 3), out_channels=32, groups=32)
    assert g.flops() == 2 * 32 * 1 * 6 * 6 * 9


def test_bad_problem_fields_are_named():
    with pytest.raises(ValueError, match="`op` must be one of"):
        Problem("fft", 1, 1, 1, 1, (4,), (1,), (1,), (1,), ((0, 0),))
    with pytest.raises(ValueError, match="`kernel` must have 2 entries"):
        Problem("conv", 2, 1, 1, 1, (4, 4), (1,), (1, 1), (1, 1), ((0, 0), (0, 0)))
    with pytest.raises(ValueError, match="`padding` argument"):
        padding_pairs("full", (4,), (3,), (1,), (1,))
