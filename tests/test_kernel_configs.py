"""Kernel configs: which ones `configs_for` offers (the rules), and variants it offers only on
large Problems or that a caller may pass (streaming stores, channel-outer order, chunk sizes,
workspace caps, the default tile), run on tiny ones against the reference. The configs that
`configs_for` offers on tiny Problems are checked by test_kernels.py's registry-wide draws."""
from __future__ import annotations

import numpy as np
import pytest
from nbconv.tuner.registry import registry
from strategies import conv2d, lanes, make_arrays

import nbconv.impls  # noqa: F401  (registers the kernels)
from nbconv import reference
from nbconv.impls import gemm, tiled, winograd, winograd_tiled
from nbconv.shapes import load_shapes
from nbconv.spec import Problem, make_problem, padding_pairs


def tol(p: Problem, impl) -> float:
    return impl.tolerance if p.dtype == "float32" else 1e-10


def winograd_problem(batch, h, w, c, f, padding="same", dtype="float32", layout="channels_last"):
    pads = padding_pairs(padding, (h, w), (3, 3), (1, 1), (1, 1))
    return Problem(op="conv", rank=2, batch=batch, in_channels=c, out_channels=f, spatial=(h, w),
                   kernel=(3, 3), strides=(1, 1), dilation=(1, 1), pads=pads, dtype=dtype, layout=layout)


def tile_problem(c, f, groups=1):
    return conv2d(c, f, 6, 3, groups=groups, n=1)


# -- register-tiled kernels (tiled.py) -----------------------------------------------------------

def test_tiled_streaming_variant_offered_for_large_outputs_only():
    impl = registry.get("conv", "tiled_direct")
    small = tile_problem(3, lanes("float32"))
    big = small.with_(spatial=(400, 400))
    assert not any(c.get("stream") for c in impl.configs_for(small))
    cfgs = impl.configs_for(big)
    assert [c for c in cfgs if c.get("stream")] == [dict(cfgs[0], stream=True)]


def test_tiled_channel_outer_variant_offered_for_large_dense_weights_only():
    lane = lanes("float32")
    dense, dw = registry.get("conv", "tiled_direct"), registry.get("conv", "depthwise_tiled")
    small = tile_problem(16, 4 * lane).with_(spatial=(7, 7))
    big = small.with_(in_channels=160, out_channels=20 * lane)          # 9*160*320*4 = 1.8 MB
    assert not any(c.get("channel_outer") for c in dense.configs_for(small))
    cfgs = dense.configs_for(big)
    # the variant takes the 7x7 map's row-wide tile
    assert [c for c in cfgs if c.get("channel_outer")] == [{"wb": 7, "fb": 4 * lane, "channel_outer": True}]
    wide = tile_problem(lane * 64, lane * 64, groups=lane * 64).with_(spatial=(7, 7))
    assert not any(c.get("channel_outer") for c in dw.configs_for(wide))


def test_tiled_row_dividing_tile_offered_for_one_or_two_vector_blocks():
    lane = lanes("float32")
    impl = registry.get("conv", "tiled_direct")
    # conv5x5_28: 2-vector blocks, 8-column tiles leave a partial one; 14 columns divide 28
    p = tile_problem(16, 2 * lane).with_(spatial=(28, 28), kernel=(5, 5), pads=((2, 2), (2, 2)))
    assert {"wb": 14, "fb": 2 * lane} in impl.configs_for(p)
    # 4-vector blocks (24 of the registers already) get no wider tile
    wide = p.with_(out_channels=4 * lane)
    assert all(c["wb"] <= 8 for c in impl.configs_for(wide))
    # a row the first tile divides gets none either
    assert all(c["wb"] <= 16 for c in impl.configs_for(p.with_(spatial=(32, 32))))


@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tiled_streaming_channel_outer_variant(depthwise, dtype):
    """Streaming stores (an aligned output, channels_last; a scratch buffer, channels_first) and
    the channel-outer order are offered only for large outputs or weights: run them here (one
    compile, both flags) on interior and edge tiles: 70 columns, dilation 2 along W, strides 1
    and 2x3, both layouts, 2 blocks of output channels."""
    lane = lanes(dtype)
    impl = registry.get("conv", "depthwise_tiled" if depthwise else "tiled_direct")
    f = 2 * lane
    c = f if depthwise else 3
    for strides, layout in (((1, 1), "channels_last"), ((2, 3), "channels_first")):
        spatial, kernel = (5, 70), (3, 4)
        pads = padding_pairs("same", spatial, kernel, strides, (1, 2))
        p = Problem(op="conv", rank=2, batch=2, in_channels=c, out_channels=f, spatial=spatial, kernel=kernel,
                    strides=strides, dilation=(1, 2), pads=pads, groups=c if depthwise else 1, dtype=dtype,
                    layout=layout)
        x, w, b = make_arrays(p, 1)
        ref = reference.conv(x, w, b, p)
        variant = {"wb": 8, "fb": lane, "stream": True, "channel_outer": True}
        y = impl.fn(x, w, b, p, **variant)
        assert y.flags.c_contiguous
        assert reference.rel_error(y, ref) <= tol(p, impl), (variant, p.key())


def test_nchw_tiled_streaming_variant_offered_for_large_whole_vector_rows_only():
    impl = registry.get("conv", "nchw_tiled")
    lane = lanes("float32")
    small = tile_problem(3, 32).with_(layout="channels_first")
    assert not any(c.get("stream") for c in impl.configs_for(small))
    big = small.with_(spatial=(400, 16 * lane))        # 'same': 16 vectors a row, 13 MB
    cfgs = impl.configs_for(big)
    assert [c for c in cfgs if c.get("stream")] == [dict(cfgs[0], stream=True)]
    ragged = big.with_(spatial=(400, 16 * lane + 1))
    assert not any(c.get("stream") for c in impl.configs_for(ragged))


def test_nchw_tiled_streaming_stores(dtype="float32"):
    """Streaming stores need whole vectors a row (else plain stores are used): 2 and 3 vectors a
    row plus a ragged one, a strided 3x3 and a strided 1x1, groups, ragged output channels."""
    lane = lanes(dtype)
    impl = registry.get("conv", "nchw_tiled")
    for ow, kernel, strides, groups, f in ((2 * lane, (3, 3), (1, 1), 1, 5), (3 * lane, (3, 3), (2, 2), 2, 6),
                                           (2 * lane + 1, (1, 1), (1, 2), 1, 17)):
        spatial = (5, (ow - 1) * strides[1] + kernel[1])
        p = Problem(op="conv", rank=2, batch=2, in_channels=2 * groups, out_channels=f, spatial=spatial,
                    kernel=kernel, strides=strides, dilation=(1, 1), pads=((0, 0), (0, 0)), groups=groups,
                    dtype=dtype, layout="channels_first")
        x, w, b = make_arrays(p, 1)
        y = impl.fn(x, w, b, p, wb=16, fb=lane, stream=True)   # the draws' tile: one more compile
        assert reference.rel_error(y, reference.conv(x, w, b, p)) <= tol(p, impl), p.key()
    with pytest.raises(TypeError, match="`stream`"):
        impl.fn(x, w, b, p, wb=16, fb=lane, stream=1)


def test_nchw_pointwise_patch_convs():
    """Kernels whose taps never share an input element run as a 1x1 conv of a space-to-depth
    copy: 2x2x2 stride 2, stride above the kernel, dilated taps inside the stride, rank 1; a
    3x3 stride-2 kernel (overlapping taps) is declined. The draws in test_kernels.py are 1x1."""
    impl = registry.get("conv", "nchw_pointwise")
    for shape, k, s, d in (((2, 3, 5, 6, 7), (2, 2, 2), (2, 2, 2), (1, 1, 1)),
                           ((1, 4, 9, 10), (2, 1), (3, 3), (1, 1)),
                           ((1, 2, 7, 9), (2, 2), (3, 2), (2, 1)), ((2, 3, 9), (3,), (3,), (1,))):
        p = make_problem("conv", shape, rank=len(k), kernel=k, strides=s, dilation=d, out_channels=17,
                         layout="channels_first")
        x, w, b = make_arrays(p, 1)
        ref = reference.conv(x, w, b, p)
        for cfg in impl.configs_for(p):
            assert reference.rel_error(impl.fn(x, w, b, p, **cfg), ref) <= tol(p, impl), (cfg, p.key())
    overlapping = make_problem("conv", (1, 3, 9, 9), rank=2, kernel=(3, 3), strides=(2, 2), out_channels=4,
                               layout="channels_first")
    ok, why = impl.check(overlapping)
    assert not ok and "at most the stride" in why


@pytest.mark.parametrize("kw", [1, 2, 3, 4, 5, 7])
def test_depthwise_tiled_row_runs(kw):
    """Stride 1, dilation 1 along W: whole tiles take a kernel row's taps in runs of 3, 2, 1."""
    lane = lanes("float32")
    impl = registry.get("conv", "depthwise_tiled")
    for c in (lane, 3 * lane):
        spatial, kernel = (5, 45), (2, kw)
        pads = padding_pairs("same", spatial, kernel, (1, 1), (1, 1))
        p = Problem(op="conv", rank=2, batch=2, in_channels=c, out_channels=c, spatial=spatial, kernel=kernel,
                    strides=(1, 1), dilation=(1, 1), pads=pads, groups=c)
        x, w, b = make_arrays(p, kw)
        ref = reference.conv(x, w, b, p)
        for cfg in impl.configs_for(p):
            assert reference.rel_error(impl.fn(x, w, b, p, **cfg), ref) <= 1e-4, (cfg, p.key())


def test_depthwise_tiled_default_tile_keeps_nan_to_its_window():
    """No config: the first one's tile. A NaN reaches exactly the 3x3 outputs that read it."""
    lane = lanes("float32")
    p = tile_problem(lane, lane, groups=lane)
    x, w, b = make_arrays(p, 0)
    x[0, 2, 3, 1] = np.nan
    y = tiled.depthwise_tiled(x, w, b, p)
    ref = reference.conv(x, w, b, p)
    assert np.array_equal(np.isnan(y), np.isnan(ref)) and np.isnan(y).sum() == 9
    ok = ~np.isnan(ref)
    assert reference.rel_error(y[ok], ref[ok]) < 1e-4


# -- Winograd ------------------------------------------------------------------------------------

def test_winograd_f4x4_tiled_chunk_sizes_follow_the_byte_budget():
    impl = registry.get("conv", "winograd_f4x4_tiled")
    # res3a at batch 8: 36 * (128 + 128) * 4 bytes a tile, 392 tiles
    cfgs = impl.configs_for(winograd_problem(8, 28, 28, 128, 128))
    assert [c["tiles"] for c in cfgs] == [(4 << 20) // 36864] * 2 + [(1 << 20) // 36864]
    assert [c["wb"] for c in cfgs] == [6, 8, 6]
    # a small image: one chunk holds every tile, no second chunk size
    assert [c["tiles"] for c in impl.configs_for(winograd_problem(2, 8, 8, 3, lanes("float32")))] == [8]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_winograd_f4x4_tiled_chunks_smaller_than_the_image(dtype, padding):
    """Every config with chunks of 7 tiles (a chunk ends inside a row group of the products) and
    of 1 tile (fewer rows than a tile row), besides its own; ragged 4x4 tiles at both edges."""
    impl = registry.get("conv", "winograd_f4x4_tiled")
    lane = lanes(dtype)
    for f, layout in ((lane, "channels_last"), (2 * lane, "channels_first"), (4 * lane, "channels_last")):
        p = winograd_problem(2, 11, 18, 5, f, padding, dtype, layout)
        x, w, b = make_arrays(p, f)
        ref = reference.conv(x, w, b, p)
        for cfg in impl.configs_for(p):
            for tiles in (cfg["tiles"], 7, 1):
                y = winograd_tiled.winograd_f4x4_tiled(x, w, b, p, **dict(cfg, tiles=tiles))
                assert reference.rel_error(y, ref) <= tol(p, impl), (cfg, tiles, p.key())


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_winograd_chunks_smaller_than_the_image(layout, padding):
    """The generic F(2x2) and F(4x4) with chunks of 1 and 3 tiles as well as 256, ragged tiles."""
    shape = (2, 7, 9, 5) if layout == "channels_last" else (2, 5, 7, 9)
    p = make_problem("conv", shape, rank=2, kernel=(3, 3), out_channels=6, layout=layout, padding=padding)
    x, w, b = make_arrays(p, 0)
    ref = reference.conv(x, w, b, p)
    for fn in (winograd.winograd_f2x2_3x3, winograd.winograd_f4x4_3x3):
        for tiles in (1, 3, 256):
            assert reference.rel_error(fn(x, w, b, p, tiles=tiles), ref) < 1e-4, (fn.__name__, tiles)


# -- im2col workspace cap ------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_im2col_honours_a_small_cap(layout):
    shape = (2, 12, 10, 3) if layout == "channels_last" else (2, 3, 12, 10)
    p = make_problem("conv", shape, rank=2, kernel=(3, 3), out_channels=4, layout=layout, padding="same")
    cap_mb = 3000 / 2 ** 20                        # 3000 bytes: two output rows (1080 B each) per tile
    plan = gemm.im2col_plan(p, cap_mb)
    assert plan["tiles"] > 1
    assert plan["col_bytes"] <= 3000
    x, w, b = make_arrays(p, 0)
    y = gemm.im2col_gemm(x, w, b, p, cap_mb=cap_mb)
    assert gemm.last_run["tiles_run"] == plan["tiles"] > 1
    assert reference.rel_error(y, reference.conv(x, w, b, p)) < 1e-5
    big = gemm.im2col_plan(p, 256)
    assert big["tiles"] == (1 if layout == "channels_last" else p.batch)


def test_im2col_peak_memory_on_unet_572():
    """A 572x572 image under a 4 MiB cap: the workspace stays under the cap, not the full 11.7 MB."""
    p = dict(load_shapes())["unet_3x3_572"]
    full = 570 * 570 * 9 * 4
    plan = gemm.im2col_plan(p, 4)
    assert plan["col_bytes"] <= 4 * 2 ** 20 < full
    assert plan["tiles"] >= 3
    assert plan["peak_extra_bytes"] < full
