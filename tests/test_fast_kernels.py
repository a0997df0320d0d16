"""What is specific to the fast kernels (the registry-wide tests in test_kernels.py cover the rest):
Winograd accuracy at 512 input channels, the im2col workspace cap and its memory figure, strided
1x1 GEMM, every config of every fast impl, the thread policy, and argument errors. Tiny shapes.
"""
from __future__ import annotations

import numpy as np
import pytest

from nbconv import reference, threads
from nbconv.impls import dense_blas, depthwise, gemm, local_gemm, pool_separable, winograd
from nbconv.shapes import load_shapes
from nbconv.spec import Problem, make_problem
from nbconv.tuner.registry import registry

FAST_CONV = ("im2col_gemm", "gemm_1x1", "winograd_f2x2_3x3", "winograd_f4x4_3x3", "depthwise_direct",
             "tiled_direct", "depthwise_tiled", "winograd_f4x4_tiled")


def rand(shape, dtype="float32", seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(dtype)


def conv_args(p, seed=0):
    return rand(p.input_shape, p.dtype, seed), rand(p.weight_shape, p.dtype, seed + 1), \
        rand(p.bias_shape, p.dtype, seed + 2)


def conv2d(shape, k, f, layout="channels_last", **kw):
    return make_problem("conv", shape, rank=len(k), kernel=k, out_channels=f, layout=layout, **kw)


# -- Winograd ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name,bound", [("winograd_f2x2_3x3", 1e-4), ("winograd_f4x4_3x3", 1e-3)])
def test_winograd_error_with_512_input_channels(name, bound):
    """The issue's bound: F(4x4,3x3) within 1e-3 relative error at C=512, inputs in [-1, 1]."""
    p = conv2d((1, 8, 8, 512), (3, 3), 8, padding="same")
    impl = registry.get("conv", name)
    assert impl.check(p)[0], "must apply at C=512 (the bound holds there)"
    x, w, b = conv_args(p)
    err = reference.rel_error(impl.fn(x, w, b, p), reference.conv(x, w, b, p))
    assert err < bound
    assert err < impl.tolerance


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_winograd_ragged_tiles(layout, padding):
    """Output sizes that are not multiples of the tile size, both layouts."""
    shape = (2, 7, 9, 5) if layout == "channels_last" else (2, 5, 7, 9)
    p = conv2d(shape, (3, 3), 6, layout=layout, padding=padding)
    x, w, b = conv_args(p)
    ref = reference.conv(x, w, b, p)
    for fn in (winograd.winograd_f2x2_3x3, winograd.winograd_f4x4_3x3):
        for tiles in (1, 3, 256):
            assert reference.rel_error(fn(x, w, b, p, tiles=tiles), ref) < 1e-4


def test_winograd_does_not_apply_elsewhere():
    impl = registry.get("conv", "winograd_f4x4_3x3")
    for p in (conv2d((1, 8, 8, 4), (3, 3), 4, strides=(2, 2)),
              conv2d((1, 8, 8, 4), (3, 3), 4, dilation=(2, 2)),
              conv2d((1, 8, 8, 4), (5, 5), 4),
              conv2d((1, 8, 8, 4), (3, 3), 4, groups=2)):
        ok, why = impl.check(p)
        assert not ok and "winograd" in why


def test_winograd_weight_transform_matches_float64():
    w = rand((3, 3, 4, 5))
    u = winograd.transform_weights(w, winograd._F4["g"], np.float64)
    g = np.asarray(winograd._F4["g"])
    ref = np.einsum("ia,abck,jb->ijck", g, w.astype(np.float64), g).reshape(36, 4, 5)
    np.testing.assert_allclose(u, ref, rtol=1e-12, atol=1e-12)


# -- im2col workspace cap ------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_im2col_honours_a_small_cap(layout):
    shape = (2, 12, 10, 3) if layout == "channels_last" else (2, 3, 12, 10)
    p = conv2d(shape, (3, 3), 4, layout=layout, padding="same")
    cap_mb = 3000 / 2 ** 20                        # 3000 bytes: two output rows (1080 B each) per tile
    plan = gemm.im2col_plan(p, cap_mb)
    assert plan["tiles"] > 1
    assert plan["col_bytes"] <= 3000
    x, w, b = conv_args(p)
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


def test_im2col_rejects_bad_cap():
    p = conv2d((1, 5, 5, 2), (3, 3), 2)
    with pytest.raises(ValueError, match="cap_mb"):
        gemm.im2col_gemm(*conv_args(p), p, cap_mb=0)


# -- 1x1 -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
@pytest.mark.parametrize("rank,strides", [(1, (2,)), (2, (2, 2)), (2, (3, 1)), (3, (2, 1, 2)), (2, (1, 1))])
def test_gemm_1x1_strided(layout, rank, strides):
    spatial = (7, 6, 5)[:rank]
    shape = (2, *spatial, 6) if layout == "channels_last" else (2, 6, *spatial)
    p = conv2d(shape, (1,) * rank, 4, layout=layout, strides=strides)
    impl = registry.get("conv", "gemm_1x1")
    assert impl.check(p)[0]
    x, w, b = conv_args(p)
    y = impl.fn(x, w, b, p)
    assert y.shape == p.output_shape and y.dtype == np.float32 and y.flags.c_contiguous
    assert reference.rel_error(y, reference.conv(x, w, b, p)) < 1e-5


def test_gemm_1x1_does_not_apply_to_padded_or_grouped():
    impl = registry.get("conv", "gemm_1x1")
    assert not impl.check(conv2d((1, 5, 5, 4), (1, 1), 4, groups=2))[0]
    assert not impl.check(conv2d((1, 5, 5, 4), (1, 1), 4, padding=((1, 0), (0, 0))))[0]
    assert not impl.check(conv2d((1, 5, 5, 4), (3, 1), 4))[0]


# -- every config of every fast impl -------------------------------------------------------------

CATALOGUE = [
    conv2d((2, 9, 8, 6), (3, 3), 4, padding="same"),
    # whole vectors of output channels: the register-tiled kernels, dense and depthwise
    conv2d((2, 9, 11, 3), (7, 7), 64, strides=(2, 2), padding="same"),
    conv2d((1, 5, 13, 32), (3, 3), 32, padding="same", groups=32, strides=(1, 2)),
    conv2d((2, 10, 7, 5), (3, 3), 32, padding="same"),          # Winograd on register tiles
    conv2d((1, 6, 9, 8), (3, 3), 5, layout="channels_first", padding="valid"),
    conv2d((2, 9, 8, 6), (1, 1), 4, strides=(2, 2)),
    conv2d((1, 9, 8, 6), (3, 2), 6, strides=(2, 1), dilation=(1, 2), padding="same", groups=3),
    conv2d((2, 9, 8, 4), (3, 3), 8, padding="same", groups=4),
    conv2d((2, 4, 9, 8), (5, 5), 4, layout="channels_first", strides=(2, 2), padding="same", groups=4),
    conv2d((1, 7, 3), (3,), 4, padding="causal"),
    conv2d((1, 4, 5, 6, 2), (2, 3, 2), 3, padding="same"),
    conv2d((1, 3, 5, 5, 5), (3, 3, 3), 3, layout="channels_first", groups=3, padding="same"),
    conv2d((1, 6, 6, 2), (3, 3), 3, padding="same", dtype="float64"),
    # depthwise, multiplier 1, W stride 1: the flat-row path with 3+2 and 3+1 tap splits
    conv2d((2, 9, 11, 4), (3, 5), 4, padding="same", groups=4, dilation=(2, 1), strides=(2, 1)),
    conv2d((2, 12, 3), (4,), 3, padding="causal", groups=3, dilation=(2,)),
    conv2d((1, 3, 4, 9, 2), (2, 2, 3), 2, padding="same", groups=2),
]


@pytest.mark.parametrize("name", FAST_CONV)
def test_every_config_is_correct(name):
    impl = registry.get("conv", name)
    ran = 0
    for i, p in enumerate(CATALOGUE):
        if not impl.check(p)[0]:
            continue
        x, w, b = conv_args(p, seed=i)
        ref = reference.conv(x, w, b, p)
        tol = impl.tolerance if p.dtype == "float32" else 1e-10
        for cfg in impl.configs_for(p):
            y = impl.fn(x, w, b, p, **cfg)
            assert y.shape == p.output_shape and y.dtype == np.dtype(p.dtype)
            err = reference.rel_error(y, ref)
            assert err <= tol, f"{name} {cfg} {p.key()}: {err}"
            ran += 1
    assert ran > 0


def test_depthwise_channel_multiplier_and_one_channel():
    for layout in ("channels_last", "channels_first"):
        for c, f, st in ((3, 6, 1), (1, 5, 1), (4, 4, 2), (1, 3, 2)):
            shape = (2, 7, 8, c) if layout == "channels_last" else (2, c, 7, 8)
            p = conv2d(shape, (3, 3), f, layout=layout, strides=(st, st), padding="same", groups=c)
            x, w, b = conv_args(p)
            y = depthwise.depthwise_direct(x, w, b, p)
            assert reference.rel_error(y, reference.conv(x, w, b, p)) < 1e-5, (layout, c, f, st)


# -- pooling, locally connected, dense -----------------------------------------------------------

@pytest.mark.parametrize("op", ["maxpool", "avgpool"])
@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_separable_pooling_large_window(op, layout):
    shape = (2, 13, 11, 3) if layout == "channels_last" else (2, 3, 13, 11)
    p = make_problem(op, shape, rank=2, kernel=(7, 5), strides=(2, 3), padding="same", layout=layout)
    x = rand(p.input_shape)
    fn = pool_separable.maxpool_separable if op == "maxpool" else pool_separable.avgpool_separable
    y = fn(x, p)
    assert y.shape == p.output_shape and y.dtype == x.dtype
    assert reference.rel_error(y, reference.pool(x, p)) < 1e-6


def test_separable_maxpool_keeps_nan():
    p = make_problem("maxpool", (1, 6, 6, 2), rank=2, kernel=(3, 3), strides=(3, 3))
    x = rand(p.input_shape)
    x[0, 1, 1, 0] = np.nan
    y = pool_separable.maxpool_separable(x, p)
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 0, 0, 1])


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_local_batched_gemm(layout):
    shape = (3, 7, 6, 2) if layout == "channels_last" else (3, 2, 7, 6)
    p = make_problem("local", shape, rank=2, kernel=(3, 2), strides=(2, 1), padding="same",
                     out_channels=4, layout=layout)
    x, w, b = conv_args(p)
    y = local_gemm.local_gemm(x, w, b, p)
    assert reference.rel_error(y, reference.local(x, w, b, p)) < 1e-5


def test_dense_blas():
    p = Problem(op="dense", rank=0, batch=3, in_channels=300, out_channels=7)
    x, w, b = conv_args(p)
    assert reference.rel_error(dense_blas.dense_blas(x, w, b, p), reference.dense(x, w, b)) < 1e-5
    with pytest.raises(TypeError, match="x"):
        dense_blas.dense_blas(x.astype(np.float64), w, b, p)


# -- threads and errors --------------------------------------------------------------------------

def test_thread_counts_and_blas_single_restores():
    c = threads.counts()
    assert set(c) >= {"cores", "numba", "blas"} and all(v >= 1 for v in c.values())
    before = threads.blas_threads()
    with threads.blas_single():
        assert threads.blas_threads() == 1
    assert threads.blas_threads() == before


def test_set_threads_rejects_bad_count():
    with pytest.raises(ValueError, match="n"):
        threads.set_threads(0)


def test_wrong_dtype_and_shape_are_named():
    p = conv2d((1, 6, 6, 4), (3, 3), 4, padding="same")
    x, w, b = conv_args(p)
    with pytest.raises(TypeError, match="`x`"):
        winograd.winograd_f4x4_3x3(x.astype(np.float64), w, b, p)
    with pytest.raises(ValueError, match="`w`"):
        gemm.im2col_gemm(x, w[:2], b, p)
    with pytest.raises(ValueError, match="tiles"):
        winograd.winograd_f2x2_3x3(x, w, b, p, tiles=0)


@pytest.mark.parametrize("m,k,n", [(1, 300, 7), (5, 1024, 33), (40, 700, 9), (200, 64, 16), (3, 5, 4)])
def test_par_dot_row_and_inner_splits(m, k, n):
    """Both ways par_dot splits a GEMM over threads (rows; inner dimension for few rows)."""
    a, b = rand((m, k), "float64", 1), rand((k, n), "float64", 2)
    out = np.empty((m, n))
    for nthreads in (1, 2, 3):
        gemm.par_dot(a, b, out, nthreads)
        np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)
