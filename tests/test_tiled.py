"""The register-tiled kernels (nbconv/impls/tiled.py) against the float64 reference.

The registry-wide property test draws at most 8 channels, below one vector, so these kernels
get their own draws: channel counts that fill whole vectors (16 float32 or 8 float64 lanes on
AVX-512, half that without), ranks 1-3, every padding, strides, dilations, odd and even kernels,
batch > 1, tile edges at every column offset, both layouts (channels_first through copies).
Tolerance: the impl's registered 1e-4 (float32), 1e-10 (float64); the measured errors are near
1e-7 / 1e-16.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbconv import reference
from nbconv.impls import simd, tiled
from nbconv.spec import Problem, padding_pairs
from nbconv.tuner.registry import registry

# channels_first runs the same kernels between two copies (nbconv/impls/layout.py)
LAYOUTS = ["channels_last", "channels_last", "channels_first"]


def rand(shape, dtype, seed):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(dtype)


@st.composite
def tiled_problems(draw):
    dtype = draw(st.sampled_from(["float32", "float64"]))
    lane = simd.lanes(np.dtype(dtype).itemsize)
    depthwise = draw(st.booleans())
    rank = draw(st.sampled_from([2, 2, 1, 3]))
    kernel = tuple(draw(st.integers(1, 4 if rank < 3 else 3)) for _ in range(rank))
    strides = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    padding = draw(st.sampled_from(["valid", "same"] + (["causal"] if rank == 1 else [])))
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    lo = 1 if padding != "valid" else 0
    # the last axis reaches past 2 x 16 columns: whole tiles with every tap inside (the table
    # walk) beside edge tiles (the tested rows)
    spatial = tuple(max(lo, e if padding == "valid" else 1) + draw(st.integers(0, 40 if i == rank - 1 else 4))
                    for i, e in enumerate(eff))
    f = lane * draw(st.sampled_from([1, 2, 3, 4]))
    c = f if depthwise else draw(st.integers(1, 5))
    return Problem(op="conv", rank=rank, batch=draw(st.integers(1, 2)), in_channels=c, out_channels=f,
                   spatial=spatial, kernel=kernel, strides=strides, dilation=dilation,
                   pads=padding_pairs(padding, spatial, kernel, strides, dilation),
                   groups=c if depthwise else 1, dtype=dtype, layout=draw(st.sampled_from(LAYOUTS)))


@given(p=tiled_problems(), seed=st.integers(0, 2**32 - 1))
def test_tiled_kernels_match_reference(p, seed):
    name = "depthwise_tiled" if p.groups > 1 else "tiled_direct"
    impl = registry.get("conv", name)
    ok, why = impl.check(p)
    assert ok, why
    x, w, b = rand(p.input_shape, p.dtype, seed), rand(p.weight_shape, p.dtype, seed + 1), \
        rand(p.bias_shape, p.dtype, seed + 2)
    ref = reference.conv(x, w, b, p)
    tol = impl.tolerance if p.dtype == "float32" else 1e-10
    cfgs = impl.configs_for(p)
    assert cfgs
    for cfg in cfgs:
        y = impl.fn(x, w, b, p, **cfg)
        assert y.shape == p.output_shape and y.dtype == np.dtype(p.dtype)
        err = reference.rel_error(y, ref)
        assert err <= tol, f"{name} {cfg} {p.key()}: {err}"


@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("strides", [(1, 1), (2, 3)])
def test_every_config_on_interior_and_edge_tiles(depthwise, dtype, strides):
    lane = simd.lanes(np.dtype(dtype).itemsize)
    for f in (lane, 2 * lane, 3 * lane, 4 * lane):
        c = f if depthwise else 3
        spatial, kernel = (7, 70), (3, 4)
        pads = padding_pairs("same", spatial, kernel, strides, (1, 2))
        p = Problem(op="conv", rank=2, batch=2, in_channels=c, out_channels=f, spatial=spatial, kernel=kernel,
                    strides=strides, dilation=(1, 2), pads=pads, groups=c if depthwise else 1, dtype=dtype)
        impl = registry.get("conv", "depthwise_tiled" if depthwise else "tiled_direct")
        x, w, b = (rand(s, dtype, i) for i, s in enumerate((p.input_shape, p.weight_shape, p.bias_shape)))
        ref = reference.conv(x, w, b, p)
        cfgs = impl.configs_for(p)
        # streaming stores and the channel-outer order are offered for large outputs or
        # weights only; run them here on a small problem
        for cfg in (cfgs + [dict(cfg, stream=True) for cfg in cfgs]
                    + [dict(cfg, channel_outer=True) for cfg in cfgs]):
            err = reference.rel_error(impl.fn(x, w, b, p, **cfg), ref)
            assert err <= (1e-4 if dtype == "float32" else 1e-10), (cfg, p.key(), err)


@pytest.mark.parametrize("depthwise", [False, True])
def test_channels_first_ranks_1_to_3(depthwise):
    lane = simd.lanes(4)
    impl = registry.get("conv", "depthwise_tiled" if depthwise else "tiled_direct")
    for spatial, kernel in (((37,), (3,)), ((6, 21), (2, 3)), ((3, 4, 19), (2, 1, 3))):
        c, f = (2 * lane, 2 * lane) if depthwise else (3, 2 * lane)
        pads = padding_pairs("same", spatial, kernel, (1,) * len(spatial), (1,) * len(spatial))
        p = Problem(op="conv", rank=len(spatial), batch=2, in_channels=c, out_channels=f, spatial=spatial,
                    kernel=kernel, strides=(1,) * len(spatial), dilation=(1,) * len(spatial), pads=pads,
                    groups=c if depthwise else 1, layout="channels_first")
        x, w, b = (rand(s, "float32", i) for i, s in enumerate((p.input_shape, p.weight_shape, p.bias_shape)))
        ref = reference.conv(x, w, b, p)
        for cfg in impl.configs_for(p)[:1] + [dict(impl.configs_for(p)[0], stream=True)]:
            y = impl.fn(x, w, b, p, **cfg)
            assert y.shape == p.output_shape and y.flags.c_contiguous
            assert reference.rel_error(y, ref) <= 1e-4, (cfg, p.key())


def _p(c, f, groups=1, layout="channels_last", dtype="float32"):
    return Problem(op="conv", rank=2, batch=1, in_channels=c, out_channels=f, spatial=(6, 6), kernel=(3, 3),
                   strides=(1, 1), dilation=(1, 1), pads=((1, 1), (1, 1)), groups=groups, layout=layout,
                   dtype=dtype)


@pytest.mark.parametrize("kw", [1, 2, 3, 4, 5, 7])
def test_depthwise_row_runs(kw):
    """Stride 1, dilation 1 along W: whole tiles take a kernel row's taps in runs of 3, 2, 1."""
    lane = simd.lanes(4)
    for c in (lane, 3 * lane):
        spatial, kernel = (5, 45), (2, kw)
        pads = padding_pairs("same", spatial, kernel, (1, 1), (1, 1))
        p = Problem(op="conv", rank=2, batch=2, in_channels=c, out_channels=c, spatial=spatial, kernel=kernel,
                    strides=(1, 1), dilation=(1, 1), pads=pads, groups=c)
        impl = registry.get("conv", "depthwise_tiled")
        x, w, b = (rand(s, "float32", i) for i, s in enumerate((p.input_shape, p.weight_shape, p.bias_shape)))
        ref = reference.conv(x, w, b, p)
        for cfg in impl.configs_for(p):
            assert reference.rel_error(impl.fn(x, w, b, p, **cfg), ref) <= 1e-4, (cfg, p.key())


def test_streaming_variant_offered_for_large_outputs_only():
    lane = simd.lanes(4)
    impl = registry.get("conv", "tiled_direct")
    small = _p(3, lane)
    big = small.with_(spatial=(400, 400))
    assert not any(c.get("stream") for c in impl.configs_for(small))
    cfgs = impl.configs_for(big)
    assert [c for c in cfgs if c.get("stream")] == [dict(cfgs[0], stream=True)]


def test_channel_outer_variant_offered_for_large_dense_weights_only():
    lane = simd.lanes(4)
    dense, dw = registry.get("conv", "tiled_direct"), registry.get("conv", "depthwise_tiled")
    small = _p(16, 4 * lane).with_(spatial=(7, 7))
    big = small.with_(in_channels=160, out_channels=20 * lane)          # 9*160*320*4 = 1.8 MB
    assert not any(c.get("channel_outer") for c in dense.configs_for(small))
    cfgs = dense.configs_for(big)
    # the variant takes the 7x7 map's row-wide tile
    assert [c for c in cfgs if c.get("channel_outer")] == [{"wb": 7, "fb": 4 * lane, "channel_outer": True}]
    wide = _p(lane * 64, lane * 64, groups=lane * 64).with_(spatial=(7, 7))
    assert not any(c.get("channel_outer") for c in dw.configs_for(wide))


def test_row_dividing_tile_offered_for_one_or_two_vector_blocks():
    lane = simd.lanes(4)
    impl = registry.get("conv", "tiled_direct")
    # conv5x5_28: 2-vector blocks, 8-column tiles leave a partial one; 14 columns divide 28
    p = _p(16, 2 * lane).with_(spatial=(28, 28), kernel=(5, 5), pads=((2, 2), (2, 2)))
    assert {"wb": 14, "fb": 2 * lane} in impl.configs_for(p)
    # 4-vector blocks (24 of the registers already) get no wider tile
    wide = p.with_(out_channels=4 * lane)
    assert all(c["wb"] <= 8 for c in impl.configs_for(wide))
    # a row the first tile divides gets none either
    assert all(c["wb"] <= 16 for c in impl.configs_for(p.with_(spatial=(32, 32))))


def test_applies_only_to_whole_vectors_and_says_why():
    dense, dw = registry.get("conv", "tiled_direct"), registry.get("conv", "depthwise_tiled")
    lane = simd.lanes(4)
    assert dense.check(_p(3, lane))[0] and dw.check(_p(lane, lane, groups=lane))[0]
    assert dense.check(_p(3, lane, layout="channels_first"))[0]
    for impl, p, words in ((dense, _p(3, lane + 1), "multiple of"),
                           (dense, _p(4, 2 * lane, groups=2), "groups must be 1"),
                           (dw, _p(lane, 2 * lane, groups=lane), "multiplier 1"),
                           (dw, _p(2 * lane, 2 * lane, groups=lane), "must be equal")):
        ok, why = impl.check(p)
        assert not ok and words in why


def test_bad_tile_is_a_clear_error():
    lane = simd.lanes(4)
    p = _p(3, 2 * lane)
    x, w, b = (rand(s, "float32", i) for i, s in enumerate((p.input_shape, p.weight_shape, p.bias_shape)))
    with pytest.raises(ValueError, match="`fb`"):
        tiled.tiled_direct(x, w, b, p, wb=4, fb=lane + 1)
    with pytest.raises(ValueError, match="`fb`"):
        tiled.tiled_direct(x, w, b, p, wb=4, fb=4 * lane)      # does not divide the channels
    with pytest.raises(ValueError, match="`wb`"):
        tiled.tiled_direct(x, w, b, p, wb=0, fb=lane)
    with pytest.raises(ValueError, match="`wb`"):
        tiled.tiled_direct(x, w, b, p, wb=0)          # not replaced by the default tile
    with pytest.raises(TypeError, match="`stream`"):
        tiled.tiled_direct(x, w, b, p, stream=1)
    with pytest.raises(TypeError, match="`channel_outer`"):
        tiled.tiled_direct(x, w, b, p, channel_outer="yes")
    with pytest.raises(TypeError, match="`x`"):
        tiled.tiled_direct(x.astype(np.float64), w, b, p)


def test_default_tile_and_nan_propagate():
    lane = simd.lanes(4)
    p = _p(lane, lane, groups=lane)
    x, w, b = (rand(s, "float32", i) for i, s in enumerate((p.input_shape, p.weight_shape, p.bias_shape)))
    x[0, 2, 3, 1] = np.nan
    y = tiled.depthwise_tiled(x, w, b, p)
    ref = reference.conv(x, w, b, p)
    assert np.array_equal(np.isnan(y), np.isnan(ref)) and np.isnan(y).sum() == 9
    ok = ~np.isnan(ref)
    assert reference.rel_error(y[ok], ref[ok]) < 1e-4
