"""nchw_depthwise's variants that the registry-wide draws (test_kernels.py) do not reach: the
streaming-store config (offered on large outputs only), and its per-worker plane buffer, reused
across calls of different geometry (its padding is zeroed once per call, not per plane)."""
from __future__ import annotations

import numpy as np
import pytest
from nbconv.tuner.registry import registry
from strategies import conv2d, lanes, make_arrays

import nbconv.impls  # noqa: F401  (registers the kernels)
from nbconv import reference
from nbconv.impls import nchw_depthwise as nd


def tol(p):
    return 1e-4 if p.dtype == "float32" else 1e-10


def check(p, seed=0, **cfg):
    x, w, b = make_arrays(p, seed)
    y = nd.nchw_depthwise(x, w, b, p, **cfg)
    err = reference.rel_error(y, reference.conv(x, w, b, p))
    assert err <= tol(p), (p, cfg, err)


def test_stream_offered_for_large_whole_vector_rows_only():
    impl = registry.get("conv", "nchw_depthwise")
    lane = lanes("float32")
    small = conv2d(4, 4, 4 * lane, 3, groups=4, layout="channels_first")
    big = small.with_(batch=8, in_channels=64, out_channels=64, groups=64)      # 8 MiB out
    ragged = big.with_(spatial=(4 * lane + 1, 4 * lane + 1))
    assert not any(c.get("stream") for c in impl.configs_for(small))
    assert not any(c.get("stream") for c in impl.configs_for(ragged))
    cfgs = impl.configs_for(big)
    assert [c for c in cfgs if c.get("stream")] == [dict(cfgs[0], stream=True)]


# stride 1 runs KH = 3 through tile_fma_run, stride 2 does not: two compiles cover both dtypes
@pytest.mark.parametrize(("dtype", "stride"), [("float32", 1), ("float64", 2)])
def test_streaming_stores_match_the_reference(dtype, stride):
    lane = lanes(dtype)
    # output rows of 2 whole vectors (stream applies) and of 1.5 (it falls back to plain stores)
    for ow in (2 * lane, 3 * lane // 2):
        p = conv2d(3, 6, (5, ow * stride), 3, s=stride, groups=3, layout="channels_first",
                   dtype=dtype)
        assert p.out_spatial[-1] == ow
        check(p, wb=16, fb=lane, stream=True)           # a tile of _SHAPES: no extra compile


def test_plane_buffer_reused_by_a_call_of_other_padding():
    """A large padded call, then a valid one of another geometry through the same buffer: stale
    values (here NaN) in the first call's padding must not leak into the second."""
    first = conv2d(2, 2, 9, 5, pad="same", groups=2, layout="channels_first", n=1)
    x, w, b = make_arrays(first, 1)
    x[:] = np.nan
    nd.nchw_depthwise(x, w, b, first, wb=16, fb=lanes("float32"))
    for pad in ("valid", "same"):
        check(conv2d(3, 3, 7, 3, pad=pad, groups=3, layout="channels_first", n=2), seed=2,
              wb=16, fb=lanes("float32"))


def test_stream_must_be_a_bool():
    p = conv2d(2, 2, 6, 3, groups=2, layout="channels_first")
    x, w, b = make_arrays(p, 0)
    with pytest.raises(TypeError, match="`stream` must be a bool. Received: stream=1"):
        nd.nchw_depthwise(x, w, b, p, stream=1)


@pytest.mark.parametrize("pad", ["same", "valid"])
def test_five_row_kernels_share_input_rows(pad):
    """KH = 5 at stride 1 runs through tile_fma_run (the draws go up to KH = 4), multiplier 2."""
    p = conv2d(2, 4, (9, 7), 5, pad=pad, groups=2, layout="channels_first")
    assert nd._run_taps(p) == 5
    check(p, wb=16, fb=lanes("float32"))


@pytest.mark.parametrize("pw", [(0, 0), (1, 2), (2, 0), (3, 1)])
@pytest.mark.parametrize("w_", [5, 2 * lanes("float32") + 3, 4 * lanes("float32")])
def test_stride_2_rows_split_into_phases(pw, w_):
    """The stride-2 copy splits pairs of columns at once (`split_vector2`): odd and even left
    pads, runs shorter and longer than a vector, and inputs wider than the rows that are read."""
    p = conv2d(2, 2, (6, w_), 3, s=2, groups=2, layout="channels_first").with_(pads=((1, 0), pw))
    check(p, seed=3, wb=16, fb=lanes("float32"))
