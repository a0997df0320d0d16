"""The separable op (depthwise then 1x1 as one Problem) and the SeparableConv layers that use it.

Results of every registered separable kernel against the float64 reference are checked by
test_kernels.py (families "separable", "separable_vectors" in strategies.py); here: the Problem's
description, which candidates apply and why not, argument errors, and that the layers run the op
(fused where it applies) with Keras's results.
"""
from __future__ import annotations

import numpy as np
import pytest
from nbconv.tuner.registry import registry
from strategies import CATALOGUE, lanes, make_arrays

import nbconv.impls  # noqa: F401  (registers the kernels)
from nbconv import layers, ops, reference
from nbconv.spec import Problem, make_problem, problem_from_key, separable_steps


def sep(shape=(2, 6, 9, 16), f=32, k=(3, 3), m=1, layout="channels_last", **kw):
    return make_problem("separable", shape, rank=len(k), kernel=k, out_channels=f, multiplier=m,
                        layout=layout, padding=kw.pop("padding", "same"), **kw)


def test_problem_describes_both_steps():
    p = sep(shape=(2, 7, 9, 3), f=5, m=2, strides=(2, 1), padding="valid")
    assert p.key() == "separable/r2/float32/NHWC/n2/c3-5/m2/s7x9/k3x3/st2x1/d1x1/p0:0x0:0/cpu"
    assert problem_from_key(p.key()) == p
    dw, pw = separable_steps(p)
    assert (dw.op, dw.groups, dw.in_channels, dw.out_channels) == ("conv", 3, 3, 6)
    assert (pw.kernel, pw.in_channels, pw.out_channels, pw.spatial) == ((1, 1), 6, 5, dw.out_spatial)
    assert p.output_shape == pw.output_shape == (2, 3, 7, 5)
    assert p.arg_shapes == ((2, 7, 9, 3), (3, 3, 3, 2), (1, 1, 6, 5), (5,))
    assert p.flops() == dw.flops() + pw.flops()
    with pytest.raises(ValueError, match=r"`multiplier` must be an int >= 1. Received: multiplier=0"):
        p.with_(multiplier=0)


@pytest.mark.parametrize("name", ["separable_3x3", "separable_m2_nchw"])
def test_reference_is_the_two_convs(name):
    p = CATALOGUE[name]
    x, kd, kp, b = make_arrays(p, 3)
    dw, pw = separable_steps(p)
    mid = reference.conv(x, kd.reshape(dw.weight_shape), None, dw)
    want = reference.conv(mid, kp, b, pw)
    np.testing.assert_allclose(reference.run("separable", p, x, kd, kp, b), want, rtol=1e-12)


def test_fused_applies_to_multiplier_one_and_whole_vectors_and_says_why():
    fused = registry.get("separable", "separable_fused")
    lane = lanes("float32")
    assert fused.check(sep(shape=(1, 5, 5, lane), f=2 * lane))[0]
    assert fused.check(sep(shape=(1, lane, 5, 5), f=lane, layout="channels_first"))[0]
    for p, words in ((sep(shape=(1, 5, 5, lane), f=lane, m=2), "multiplier 1"),
                     (sep(shape=(1, 5, 5, lane + 1), f=lane), "multiples of"),
                     (sep(shape=(1, 5, 5, lane), f=lane, dtype="float16"), "float16")):
        ok, why = fused.check(p)
        assert not ok and words in why, why
    ok, why = registry.get("separable", "separable_direct").check(sep(shape=(8, 56, 56, 64), f=128))
    assert not ok and "small Problems only" in why
    for name in ("separable_unfused", "separable_direct"):
        ok, why = registry.get("separable", name).check(sep(shape=(1, 4, 4, 4, 3), k=(3, 3, 3)))
        assert not ok and "rank 1 or 2" in why


def test_fused_rejects_bad_configs_and_arrays():
    p = sep()
    fn = registry.get("separable", "separable_fused").fn
    x, kd, kp, b = make_arrays(p, 0)
    for cfg, words in (({"wb": 0}, "`wb` must be an int in"), ({"rows": 0}, "`rows` must be an int >= 1"),
                       ({"fb": 24}, "`fb` must be a positive multiple")):
        with pytest.raises(ValueError, match=words):
            fn(x, kd, kp, b, p, **cfg)
    with pytest.raises(ValueError, match=r"`pointwise` must have shape \(1, 1, 16, 32\)"):
        fn(x, kd, kp[..., :16], b, p)
    with pytest.raises(TypeError, match=r"`depthwise` must have the Problem's dtype float32"):
        fn(x, kd.astype(np.float64), kp, b, p)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_layers_run_the_separable_op(data_format):
    """SeparableConv2D/1D call one "separable" Problem (the fused kernel first when nothing is
    measured), with the two convs' result."""
    lane = lanes("float32")
    rng = np.random.default_rng(1)
    for layer, shape in ((layers.SeparableConv2D(2 * lane, 3, padding="same", data_format=data_format,
                                                 activation="relu"), (2, 5, 7, lane)),
                         (layers.SeparableConv1D(lane, 3, strides=2, depth_multiplier=2,
                                                 data_format=data_format), (2, 9, 3))):
        if data_format == "channels_first":
            shape = (shape[0], shape[-1], *shape[1:-1])
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        layer.build(x.shape)
        layer.set_weights([rng.uniform(-1, 1, w.shape).astype(np.float32) for w in layer.get_weights()])
        with ops.tuning(mode="off"), ops.recording() as seen:
            y = layer(x)
        [(op, p)] = seen
        assert op == "separable" and isinstance(p, Problem) and p.multiplier == layer.depth_multiplier
        want = "separable_fused" if layer.depth_multiplier == 1 else "separable_unfused"
        with ops.tuning(mode="off"):
            assert ops.decision(op, p).impl.name == want
        kd, kp, b = layer.get_weights()
        ref = reference.run("separable", p, x, kd, kp, b)
        ref = np.maximum(ref, 0) if layer.activation.__name__ == "relu" else ref
        assert reference.rel_error(y, ref) < 1e-5
