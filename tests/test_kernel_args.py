"""What the kernels say when they do not apply or are called wrongly: `applies` reasons, and
errors that name the offending argument (configs, arrays, dtypes). Tiny shapes; no results checked
here beyond what an error case needs (test_kernels.py checks results)."""
from __future__ import annotations

import numpy as np
import pytest
from nbconv.tuner.registry import registry
from strategies import CATALOGUE, conv2d, lanes, make_arrays

import nbconv.impls  # noqa: F401  (registers the kernels)
from nbconv import threads
from nbconv.impls import dense_blas, gemm, nchw_pointwise, tiled, winograd, winograd_tiled
from nbconv.spec import Problem, make_problem, padding_pairs

OPS = ("conv", "maxpool", "avgpool", "local", "dense")


def conv(shape, k, f, layout="channels_last", **kw):
    return make_problem("conv", shape, rank=len(k), kernel=k, out_channels=f, layout=layout, **kw)


def winograd_problem(batch, h, w, c, f, padding="same", dtype="float32"):
    pads = padding_pairs(padding, (h, w), (3, 3), (1, 1), (1, 1))
    return Problem(op="conv", rank=2, batch=batch, in_channels=c, out_channels=f, spatial=(h, w),
                   kernel=(3, 3), strides=(1, 1), dilation=(1, 1), pads=pads, dtype=dtype)


def tile_problem(c, f, groups=1, layout="channels_last", dtype="float32"):
    return conv2d(c, f, 6, 3, groups=groups, layout=layout, n=1, dtype=dtype)


# -- the direct fallbacks ------------------------------------------------------------------------

@pytest.mark.parametrize("op", OPS)
def test_direct_applies_to_everything_valid_and_says_why_not(op):
    impl = registry.get(op, f"{op}_direct")
    p = next(q for q in CATALOGUE.values() if q.op == op)
    assert impl.check(p) == (True, "")
    ok, why = impl.check(p.with_(dtype="float16"))
    assert not ok and "float16" in why
    if p.rank:
        bad = p.with_(spatial=tuple(1 for _ in p.spatial), pads=((0, 0),) * p.rank)
        if not bad.valid():
            ok, why = impl.check(bad)
            assert not ok and "output size" in why


@pytest.mark.parametrize("op", OPS)
def test_direct_rejects_bad_arrays(op):
    p = next(q for q in CATALOGUE.values() if q.op == op)
    impl = registry.get(op, f"{op}_direct")
    arrays = make_arrays(p, 0)
    with pytest.raises(TypeError, match=r"`x` must have the Problem's dtype float32.*x.dtype=<f8"):
        impl.fn(arrays[0].astype(np.float64), *arrays[1:], p)
    with pytest.raises(ValueError, match=r"`x` must have shape .* Received: x.shape="):
        impl.fn(arrays[0][:1], *arrays[1:], p)
    with pytest.raises(TypeError, match=r"`x` must be a numpy.ndarray"):
        impl.fn(arrays[0].tolist(), *arrays[1:], p)
    if len(arrays) == 3:
        with pytest.raises(ValueError, match=r"`w` must have shape"):
            impl.fn(arrays[0], arrays[1][..., :1], arrays[2], p)
        with pytest.raises(ValueError, match=r"`b` must have shape"):
            impl.fn(arrays[0], arrays[1], arrays[2][..., :-1], p)


# -- register-tiled kernels (tiled.py) -----------------------------------------------------------

def test_tiled_applies_only_to_whole_vectors_and_says_why():
    dense, dw = registry.get("conv", "tiled_direct"), registry.get("conv", "depthwise_tiled")
    lane = lanes("float32")
    assert dense.check(tile_problem(3, lane))[0] and dw.check(tile_problem(lane, lane, groups=lane))[0]
    assert dense.check(tile_problem(3, lane, layout="channels_first"))[0]
    assert dense.check(tile_problem(3, lanes("float64"), dtype="float64"))[0]
    for impl, p, words in ((dense, tile_problem(3, lane + 1), "multiple of"),
                           (dense, tile_problem(4, 2 * lane, groups=2), "groups must be 1"),
                           (dw, tile_problem(lane, 2 * lane, groups=lane), "multiplier 1"),
                           (dw, tile_problem(2 * lane, 2 * lane, groups=lane), "must be equal")):
        ok, why = impl.check(p)
        assert not ok and words in why


def test_tiled_bad_tile_is_a_clear_error():
    lane = lanes("float32")
    p = tile_problem(3, 2 * lane)
    x, w, b = make_arrays(p, 0)
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


# -- Winograd ------------------------------------------------------------------------------------

def test_winograd_does_not_apply_elsewhere():
    for name in ("winograd_f2x2_3x3", "winograd_f4x4_3x3", "winograd_f4x4_tiled"):
        impl = registry.get("conv", name)
        for p, words in ((conv((1, 8, 8, 16), (3, 3), 16, strides=(2, 2)), "stride 1"),
                         (conv((1, 8, 8, 16), (3, 3), 16, dilation=(2, 2)), "dilation 1"),
                         (conv((1, 8, 8, 16), (5, 5), 16), "3x3"),
                         (conv((1, 8, 8, 16), (3, 3), 16, groups=2), "groups"),
                         (conv((1, 8, 16), (3,), 16), "2-D")):
            ok, why = impl.check(p)
            prefix = "winograd_f4x4_tiled:" if name == "winograd_f4x4_tiled" else "winograd:"
            assert not ok and words in why and why.startswith(prefix), (name, why)


def test_winograd_f4x4_tiled_applies_only_to_whole_vectors_and_says_why():
    impl = registry.get("conv", "winograd_f4x4_tiled")
    lane = lanes("float32")
    assert impl.check(winograd_problem(1, 8, 8, 3, lane))[0]
    for p, words in ((winograd_problem(1, 8, 8, 3, lane + 1), "multiple of"),
                     (winograd_problem(1, 8, 8, 3, lane).with_(strides=(2, 2)), "stride 1"),
                     (winograd_problem(1, 8, 8, 3, lane).with_(kernel=(5, 5)), "3x3")):
        ok, why = impl.check(p)
        assert not ok and words in why and why.startswith("winograd_f4x4_tiled")


def test_winograd_f4x4_tiled_bad_config_is_a_clear_error():
    lane = lanes("float32")
    p = winograd_problem(1, 8, 8, 3, 2 * lane)
    x, w, b = make_arrays(p, 0)
    fn = winograd_tiled.winograd_f4x4_tiled
    with pytest.raises(ValueError, match="`fb`"):
        fn(x, w, b, p, wb=4, fb=3 * lane)
    with pytest.raises(ValueError, match="`wb`"):
        fn(x, w, b, p, wb=40, fb=lane)
    with pytest.raises(ValueError, match="`tiles`"):
        fn(x, w, b, p, tiles=0)
    with pytest.raises(TypeError, match="`x`"):
        fn(x.astype(np.float64), w, b, p)


# -- GEMM, dense, the rest -----------------------------------------------------------------------

def test_gemm_1x1_does_not_apply_to_padded_or_grouped():
    impl = registry.get("conv", "gemm_1x1")
    for p, words in ((conv((1, 5, 5, 4), (1, 1), 4, groups=2), "groups"),
                     (conv((1, 5, 5, 4), (1, 1), 4, padding=((1, 0), (0, 0))), "padding"),
                     (conv((1, 5, 5, 4), (3, 1), 4), "kernel")):
        ok, why = impl.check(p)
        assert not ok and words in why


def test_nchw_pointwise_applies_to_unpadded_1x1_or_patch_channels_first_and_says_why():
    impl = registry.get("conv", "nchw_pointwise")
    assert impl.check(conv((2, 4, 5, 5), (1, 1), 3, layout="channels_first", strides=(2, 1)))[0]
    for p, words in ((conv((1, 4, 5, 5), (1, 1), 4, layout="channels_first", groups=2), "groups"),
                     (conv((1, 4, 5, 5), (1, 1), 4, layout="channels_first",
                           padding=((1, 0), (0, 0))), "no padding"),
                     (conv((1, 4, 5, 5), (3, 1), 4, layout="channels_first"), "at most the stride"),
                     (conv((1, 5, 5, 4), (1, 1), 4), "channels_first only")):
        ok, why = impl.check(p)
        assert not ok and words in why


def test_nchw_pointwise_bad_tile_is_a_clear_error():
    lane = lanes("float32")
    p = conv((1, 3, 4, 4), (1, 1), 5, layout="channels_first")
    x, w, b = make_arrays(p, 0)
    with pytest.raises(ValueError, match="`fb`"):
        nchw_pointwise.nchw_pointwise(x, w, b, p, wb=4, fb=lane + 1)
    with pytest.raises(ValueError, match="`wb`"):
        nchw_pointwise.nchw_pointwise(x, w, b, p, wb=0, fb=lane)
    with pytest.raises(TypeError, match="`x`"):
        nchw_pointwise.nchw_pointwise(x.astype(np.float64), w, b, p)


def test_im2col_rejects_bad_cap():
    p = conv((1, 5, 5, 2), (3, 3), 2)
    with pytest.raises(ValueError, match="cap_mb"):
        gemm.im2col_gemm(*make_arrays(p, 0), p, cap_mb=0)


def test_wrong_dtype_and_shape_are_named():
    p = conv((1, 6, 6, 4), (3, 3), 4, padding="same")
    x, w, b = make_arrays(p, 0)
    with pytest.raises(TypeError, match="`x`"):
        winograd.winograd_f4x4_3x3(x.astype(np.float64), w, b, p)
    with pytest.raises(ValueError, match="`w`"):
        gemm.im2col_gemm(x, w[:2], b, p)
    with pytest.raises(ValueError, match="tiles"):
        winograd.winograd_f2x2_3x3(x, w, b, p, tiles=0)
    d = Problem(op="dense", rank=0, batch=3, in_channels=30, out_channels=7)
    x, w, b = make_arrays(d, 0)
    with pytest.raises(TypeError, match="`x`"):
        dense_blas.dense_blas(x.astype(np.float64), w, b, d)


def test_set_threads_rejects_bad_count():
    with pytest.raises(ValueError, match="n"):
        threads.set_threads(0)
