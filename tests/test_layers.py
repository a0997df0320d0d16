"""Layer API and values through nbconv.ops against the float64 reference (tiny shapes)."""
import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbconv import layers as L
from nbconv import ops, reference
from nbconv.spec import make_problem

TOL32 = 1e-4


@pytest.fixture(autouse=True)
def _fast_dispatch():
    # the first kernel of each applicable impl, without timing: this module checks layer semantics
    with ops.tuning(mode="off"):
        yield


def rand(*shape, seed=0, dtype="float32"):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(dtype)


def close(y, ref, tol=TOL32):
    assert y.shape == ref.shape
    assert reference.rel_error(y, ref) <= tol, reference.rel_error(y, ref)


def conv_ref(layer, x):
    k, b = layer.get_weights()[0], (layer.get_weights()[1] if layer.use_bias else None)
    p = make_problem("conv", x.shape, rank=layer.rank, kernel=layer.kernel_size, strides=layer.strides,
                     dilation=layer.dilation_rate, padding=layer.padding, out_channels=layer.filters,
                     groups=layer.groups, layout=layer.data_format)
    return reference.conv(x, k, b, p)


# -- convolution ---------------------------------------------------------------------------
CONV_CASES = [
    # cls, kwargs, input shape
    (L.Conv1D, dict(filters=3, kernel_size=3), (2, 7, 2)),
    (L.Conv1D, dict(filters=4, kernel_size=2, padding="causal", dilation_rate=2), (2, 6, 2)),
    (L.Conv1D, dict(filters=2, kernel_size=3, strides=2, padding="same", data_format="channels_first"),
     (1, 3, 8)),
    (L.Conv2D, dict(filters=4, kernel_size=(3, 2), strides=(2, 1), padding="same"), (2, 6, 5, 3)),
    (L.Conv2D, dict(filters=4, kernel_size=3, groups=2, use_bias=False, activation="relu"), (1, 5, 5, 4)),
    (L.Conv2D, dict(filters=3, kernel_size=2, dilation_rate=2, data_format="channels_first"), (2, 2, 6, 6)),
    (L.Conv3D, dict(filters=2, kernel_size=2, padding="same", activation="tanh"), (1, 3, 4, 3, 2)),
    (L.Conv3D, dict(filters=2, kernel_size=(1, 2, 3), strides=2, data_format="channels_first"),
     (1, 2, 3, 4, 5)),
]


@pytest.mark.parametrize("cls, kwargs, shape", CONV_CASES)
def test_conv_matches_reference(cls, kwargs, shape):
    layer = cls(**kwargs, bias_initializer="random_normal")
    x = rand(*shape)
    y = layer(x)
    assert y.dtype == np.float32
    assert y.shape == layer.compute_output_shape(shape)
    ref = layer.activation(conv_ref(layer, x))
    close(y, ref)


def test_conv_weights_shapes_and_params():
    layer = L.Conv2D(4, 3, groups=2)
    layer.build((None, 5, 5, 4))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (3, 3, 2, 4) and bias.shape == (4,)
    assert layer.count_params() == 76
    assert np.all(bias == 0)  # zeros by default
    assert L.Conv2D(32, 3).compute_output_shape((None, 28, 28, 1)) == (None, 26, 26, 32)
    no_bias = L.Conv2D(64, 3, use_bias=False)
    no_bias.build((None, 8, 8, 32))
    assert no_bias.count_params() == 3 * 3 * 32 * 64 and len(no_bias.get_weights()) == 1


def test_set_weights_changes_output_and_get_weights_copies():
    layer = L.Conv1D(2, 2)
    x = rand(1, 4, 1)
    layer.build(x.shape)
    k = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    layer.set_weights([k, np.array([10.0, 20.0])])
    y = layer(x)
    np.testing.assert_allclose(y[0, :, 0], x[0, :-1, 0] + 10, rtol=1e-6)
    np.testing.assert_allclose(y[0, :, 1], x[0, 1:, 0] + 20, rtol=1e-6)
    got = layer.get_weights()
    got[0][...] = 0
    assert layer.get_weights()[0][0, 0, 0] == 1.0


def test_conv_spatial_may_change_between_calls_channels_may_not():
    layer = L.Conv2D(2, 3, padding="same")
    assert layer(rand(1, 4, 4, 3)).shape == (1, 4, 4, 2)
    assert layer(rand(2, 6, 5, 3)).shape == (2, 6, 5, 2)
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        layer(rand(1, 4, 4, 2))


def test_conv_kernel_larger_than_input_same_and_causal():
    assert L.Conv2D(1, 5, padding="same")(rand(1, 4, 4, 1)).shape == (1, 4, 4, 1)
    layer = L.Conv1D(1, 5, padding="causal")
    x = rand(1, 4, 1)
    close(layer(x), conv_ref(layer, x))


def test_causal_output_depends_only_on_past():
    layer = L.Conv1D(2, 3, padding="causal", dilation_rate=2)
    x = rand(1, 10, 2)
    y = layer(x)
    x2 = x.copy()
    x2[0, 6:] += 5.0
    y2 = layer(x2)
    np.testing.assert_array_equal(y[0, :6], y2[0, :6])
    assert not np.allclose(y[0, 6:], y2[0, 6:])


# -- pooling --------------------------------------------------------------------------------
POOL_CASES = [
    (L.MaxPooling1D, dict(pool_size=3, strides=2, padding="same"), (2, 8, 3)),
    (L.AveragePooling1D, dict(pool_size=3, strides=2, padding="same"), (2, 8, 3)),
    (L.MaxPooling2D, dict(), (1, 7, 6, 2)),
    (L.AveragePooling2D, dict(pool_size=(2, 3), strides=1, padding="same", data_format="channels_first"),
     (2, 3, 5, 4)),
    (L.MaxPooling2D, dict(pool_size=1, strides=2), (1, 5, 5, 1)),
    (L.MaxPooling3D, dict(pool_size=2, padding="same"), (1, 3, 3, 3, 2)),
    (L.AveragePooling3D, dict(pool_size=(1, 2, 2), data_format="channels_first"), (1, 2, 2, 4, 4)),
]


@pytest.mark.parametrize("cls, kwargs, shape", POOL_CASES)
def test_pool_matches_reference(cls, kwargs, shape):
    layer = cls(**kwargs)
    x = rand(*shape)
    y = layer(x)
    p = make_problem("maxpool" if "Max" in cls.__name__ else "avgpool", shape, rank=layer.rank,
                     kernel=layer.pool_size, strides=layer.strides, padding=layer.padding,
                     layout=layer.data_format)
    assert y.shape == layer.compute_output_shape(shape) == p.output_shape
    close(y, reference.pool(x, p))
    assert layer.count_params() == 0 and layer.get_weights() == []


def test_pool_worked_examples():
    x = np.arange(1, 9, dtype="float32").reshape(1, 8, 1)
    y = L.AveragePooling1D(3, strides=2, padding="same")(x)
    np.testing.assert_allclose(y[0, :, 0], [2, 4, 6, 7.5], rtol=1e-6)
    neg = -np.arange(1, 9, dtype="float32").reshape(1, 8, 1)
    assert np.all(L.MaxPooling1D(3, strides=2, padding="same")(neg) < 0)  # pads are not zeros
    assert L.MaxPooling1D(2)(rand(1, 7, 1)).shape == (1, 3, 1)            # trailing cell dropped
    assert L.MaxPooling2D(strides=None).strides == (2, 2)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling(rank, data_format, keepdims):
    shape = (2, *[3, 4, 2][:rank], 3) if data_format == "channels_last" else (2, 3, *[3, 4, 2][:rank])
    x = rand(*shape)
    axes = tuple(range(1, rank + 1)) if data_format == "channels_last" else tuple(range(2, rank + 2))
    mx = getattr(L, f"GlobalMaxPooling{rank}D")(data_format=data_format, keepdims=keepdims)
    av = getattr(L, f"GlobalAveragePooling{rank}D")(data_format=data_format, keepdims=keepdims)
    np.testing.assert_allclose(mx(x), x.max(axis=axes, keepdims=keepdims), rtol=1e-6)
    np.testing.assert_allclose(av(x), x.mean(axis=axes, keepdims=keepdims, dtype=np.float64), rtol=1e-5)
    assert mx.compute_output_shape((None,) + shape[1:]) == (None,) + mx(x).shape[1:]


def test_global_average_pooling1d_mask():
    x = rand(2, 4, 3)
    mask = np.array([[1, 1, 0, 0], [1, 0, 1, 1]], bool)
    y = L.GlobalAveragePooling1D()(x, mask=mask)
    np.testing.assert_allclose(y[0], x[0, :2].mean(0), rtol=1e-6)
    np.testing.assert_allclose(y[1], x[1, [0, 2, 3]].mean(0), rtol=1e-6)
    xf = np.ascontiguousarray(np.moveaxis(x, 1, 2))
    yf = L.GlobalAveragePooling1D(data_format="channels_first", keepdims=True)(xf, mask=mask)
    np.testing.assert_allclose(yf[..., 0], y, rtol=1e-6)


# -- locally connected: an independent tf-keras-style forward per implementation ----------------
def windows(in_sp, out_sp, kernel, strides, padding):
    """Per output position, the in-bounds input positions of its window (tf-keras conv_connected_inputs)."""
    for out in itertools.product(*[range(o) for o in out_sp]):
        ranges = []
        for o, k, s, n in zip(out, kernel, strides, in_sp, strict=True):
            start = o * s - (k // 2 if padding == "same" else 0)
            ranges.append([i for i in range(start, start + k) if 0 <= i < n])
        yield out, list(itertools.product(*ranges))


def lc_tf_keras_forward(layer, x):
    """y for the layer's Keras-layout weights, written as plain loops (float64)."""
    cl = layer.data_format == "channels_last"
    xl = x if cl else np.moveaxis(x, 1, -1)
    in_sp, c, f = xl.shape[1:-1], xl.shape[-1], layer.filters
    out_sp = layer.compute_output_shape(x.shape)[1:-1] if cl else layer.compute_output_shape(x.shape)[2:]
    kernel = layer.get_weights()[0].astype(np.float64)
    n_pos = math.prod(out_sp)
    y = np.zeros((x.shape[0], *out_sp, f))
    if layer.implementation == 1:
        for p, (out, _) in enumerate(windows(in_sp, out_sp, layer.kernel_size, layer.strides, "valid")):
            axes = zip(out, layer.strides, layer.kernel_size, strict=True)
            sl = tuple(slice(o * s, o * s + k) for o, s, k in axes)
            if cl:
                patch = xl[(slice(None), *sl)].reshape(x.shape[0], -1)                 # (k..., C)
            else:
                patch = x[(slice(None), slice(None), *sl)].reshape(x.shape[0], -1)     # (C, k...)
            y[(slice(None), *out)] = patch @ kernel[p]
    else:
        full = x.reshape(x.shape[0], -1).astype(np.float64)
        in_dims = (*in_sp, c) if cl else (c, *in_sp)
        out_dims = (*out_sp, f) if cl else (f, *out_sp)
        dense = np.zeros((math.prod(out_dims), math.prod(in_dims)))
        pairs = []
        for out, ins in windows(in_sp, out_sp, layer.kernel_size, layer.strides, layer.padding):
            for pos, ci, fo in itertools.product(ins, range(c), range(f)):
                oi = np.ravel_multi_index((*out, fo) if cl else (fo, *out), out_dims)
                ii = np.ravel_multi_index((*pos, ci) if cl else (ci, *pos), in_dims)
                pairs.append((oi, ii))
                if layer.implementation == 2:
                    kidx = (*pos, ci, *out, fo) if cl else (ci, *pos, fo, *out)
                    dense[oi, ii] = kernel[kidx]
        if layer.implementation == 3:
            for n, (oi, ii) in enumerate(sorted(pairs)):
                dense[oi, ii] = kernel[n]
        yo = (full @ dense.T).reshape(x.shape[0], *out_dims)
        y = yo if cl else np.moveaxis(yo, 1, -1)
    if layer.use_bias:
        bias = layer.get_weights()[1].astype(np.float64)
        y = y + (bias if cl else bias.reshape(f, n_pos).T.reshape(*out_sp, f))  # the reshape quirk
    return y if cl else np.moveaxis(y, -1, 1)


LC_CASES = [(cls, impl, pad, fmt, strides)
            for cls in (L.LocallyConnected1D, L.LocallyConnected2D)
            for impl in (1, 2, 3) for pad in ("valid", "same")
            for fmt in ("channels_last", "channels_first") for strides in (1, 2)
            if not (impl == 1 and pad == "same")]


@pytest.mark.parametrize("cls, impl, padding, data_format, strides", LC_CASES)
def test_locally_connected_matches_tf_keras_layouts(cls, impl, padding, data_format, strides):
    rank = 1 if cls is L.LocallyConnected1D else 2
    sp = (6,) if rank == 1 else (5, 4)
    shape = (2, *sp, 2) if data_format == "channels_last" else (2, 2, *sp)
    kernel = 3 if rank == 1 else (3, 2)
    layer = cls(3, kernel, strides=strides, padding=padding, data_format=data_format, implementation=impl,
                bias_initializer="random_uniform")
    x = rand(*shape)
    y = layer(x)
    close(y, lc_tf_keras_forward(layer, x))
    # through the reference too, with the canonical weights the layer hands to ops.local
    w, b = layer._canonical
    p = make_problem("local", shape, rank=rank, kernel=layer.kernel_size, strides=layer.strides,
                     padding=padding, out_channels=3, layout=data_format)
    close(y, reference.local(x, w, b, p))


def test_locally_connected_worked_cases():
    lc = L.LocallyConnected2D(64, (3, 3))
    lc.build((None, 32, 32, 3))
    assert lc.count_params() == 1_612_800 and lc.get_weights()[0].shape == (900, 27, 64)
    for impl, pad, params, kshape in [(1, "valid", 56, (4, 6, 2)), (2, "valid", 104, (6, 2, 4, 2)),
                                      (2, "same", 156, (6, 2, 6, 2)), (3, "valid", 56, (48,)),
                                      (3, "same", 76, (64,))]:
        layer = L.LocallyConnected1D(2, 3, padding=pad, implementation=impl)
        layer.build((None, 6, 2))
        assert (layer.count_params(), layer.get_weights()[0].shape) == (params, kshape), (impl, pad)
        assert layer.get_weights()[1].shape == layer.compute_output_shape((None, 6, 2))[1:]
    cf = L.LocallyConnected2D(4, 2, data_format="channels_first", implementation=2)
    cf.build((None, 3, 5, 5))
    assert cf.get_weights()[0].shape == (3, 5, 5, 4, 4, 4) and cf.get_weights()[1].shape == (4, 4, 4)


def test_locally_connected_channels_first_bias_is_reshaped_not_transposed():
    layer = L.LocallyConnected1D(2, 1, data_format="channels_first")
    layer.build((None, 1, 3))
    layer.set_weights([np.zeros((3, 1, 2)), np.arange(6, dtype="float32").reshape(3, 2)])
    y = layer(np.zeros((1, 1, 3), "float32"))
    # bias (P=3, F=2) read as (F, P): filter 0 gets 0,1,2 and filter 1 gets 3,4,5
    np.testing.assert_array_equal(y[0], [[0, 1, 2], [3, 4, 5]])


def test_locally_connected_spatial_fixed_after_build():
    layer = L.LocallyConnected1D(2, 3)
    layer(rand(1, 6, 2))
    with pytest.raises(ValueError, match="expected axis 1 of input shape to have value 6"):
        layer(rand(1, 7, 2))


# -- dense and core -------------------------------------------------------------------------------
def test_dense_and_flatten():
    x = rand(3, 2, 4, 5)
    flat = L.Flatten()(x)
    assert flat.shape == (3, 40)
    np.testing.assert_array_equal(flat, x.reshape(3, 40))
    cf = L.Flatten(data_format="channels_first")(x)
    np.testing.assert_array_equal(cf, np.moveaxis(x, 1, -1).reshape(3, 40))
    dense = L.Dense(6, activation="sigmoid", bias_initializer="ones")
    y = dense(flat)
    k, b = dense.get_weights()
    assert k.shape == (40, 6) and dense.count_params() == 246
    close(y, 1 / (1 + np.exp(-(flat.astype(np.float64) @ k + b))))
    y3 = L.Dense(2)(x)  # over the last axis
    assert y3.shape == (3, 2, 4, 2)
    assert L.Flatten().compute_output_shape((None, 2, None)) == (None, None)


def test_activation_and_dropout_layers():
    x = rand(2, 5)
    np.testing.assert_array_equal(L.Activation("relu")(x), np.maximum(x, 0))
    np.testing.assert_array_equal(L.Dropout(0.5)(x), x)
    np.testing.assert_allclose(L.Activation("softmax")(x).sum(-1), 1, rtol=1e-6)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softplus", "softsign", "elu", "selu", "gelu",
                                  "silu", "swish", "relu6", "hard_sigmoid", "exponential", "mish",
                                  "leaky_relu", "softmax", "log_softmax", "linear"])
def test_activations_against_formulas(name):
    x = np.linspace(-4, 4, 17).astype("float32").reshape(1, 17)
    xd = x.astype(np.float64)
    from scipy.special import erf
    sig = 1 / (1 + np.exp(-xd))
    soft = np.exp(xd) / np.exp(xd).sum(-1, keepdims=True)
    expect = {
        "relu": np.maximum(xd, 0), "sigmoid": sig, "tanh": np.tanh(xd), "softplus": np.log1p(np.exp(xd)),
        "softsign": xd / (1 + abs(xd)), "elu": np.where(xd > 0, xd, np.expm1(xd)),
        "selu": 1.0507009873554805 * np.where(xd > 0, xd, 1.6732632423543772 * np.expm1(xd)),
        "gelu": 0.5 * xd * (1 + erf(xd / np.sqrt(2))), "silu": xd * sig, "swish": xd * sig,
        "relu6": np.clip(xd, 0, 6), "hard_sigmoid": np.clip(xd + 3, 0, 6) / 6, "exponential": np.exp(xd),
        "mish": xd * np.tanh(np.log1p(np.exp(xd))), "leaky_relu": np.where(xd >= 0, xd, 0.2 * xd),
        "softmax": soft, "log_softmax": np.log(soft), "linear": xd,
    }[name]
    y = L.Activation(name)(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expect, rtol=2e-6, atol=2e-6)


# -- naming, config, initializers ------------------------------------------------------------------
def test_automatic_names_like_keras():
    L.clear_session()
    names = [L.Conv2D(1, 1).name, L.Conv2D(1, 1).name, L.Convolution2D(1, 1).name, L.MaxPool2D().name,
             L.MaxPooling2D().name, L.GlobalAvgPool2D().name, L.LocallyConnected2D(1, 1).name,
             L.Dense(1).name, L.Conv1D(1, 1).name, L.Conv2D(1, 1, name="mine").name]
    assert names == ["conv2d", "conv2d_1", "conv2d_2", "max_pooling2d", "max_pooling2d_1",
                     "global_average_pooling2d", "locally_connected2d", "dense", "conv1d", "mine"]
    L.clear_session()
    assert L.Conv2D(1, 1).name == "conv2d"


def test_training_argument_is_accepted_and_ignored_except_by_dropout():
    x = rand(1, 5, 5, 2)
    conv = L.Conv2D(2, 3)
    np.testing.assert_array_equal(conv(x, training=False), conv(x))
    with pytest.raises(ValueError, match="inference-only"):
        L.Dropout(0.5)(x, training=True)


def test_variant_names_and_params():
    L.clear_session()
    dw, sep, tr = L.DepthwiseConv2D(3, depth_multiplier=2), L.SeparableConv2D(8, 3), L.Conv2DTranspose(4, 3)
    assert (dw.name, sep.name, tr.name) == ("depthwise_conv2d", "separable_conv2d", "conv2d_transpose")
    dw.build((None, 8, 8, 5))
    sep.build((None, 8, 8, 32))
    tr.build((None, 8, 8, 8))
    assert dw.count_params() == 3 * 3 * 5 * 2 + 10
    assert sep.count_params() == 552
    assert [w.shape for w in sep.get_weights()] == [(3, 3, 32, 1), (1, 1, 32, 8), (8,)]
    assert tr.count_params() == 292 and tr.get_weights()[0].shape == (3, 3, 4, 8)
    assert L.Conv1DTranspose(1, 2, strides=3).compute_output_shape((None, 5, 1)) == (None, 15, 1)
    assert L.Conv1DTranspose(1, 1, strides=2).compute_output_shape((None, 3, 1)) == (None, 6, 1)


@pytest.mark.parametrize("make, shape, names", [
    (lambda: L.Conv2D(3, 2), (1, 5, 5, 2), ("kernel", "bias")),
    (lambda: L.DepthwiseConv2D(2, depth_multiplier=2), (1, 5, 5, 2), ("kernel", "bias")),
    (lambda: L.SeparableConv1D(3, 2), (1, 6, 2), ("depthwise_kernel", "pointwise_kernel", "bias")),
    (lambda: L.Conv2DTranspose(3, 2, strides=2), (1, 3, 3, 2), ("kernel", "bias")),
    (lambda: L.Dense(3), (2, 4), ("kernel", "bias")),
    (lambda: L.LocallyConnected1D(3, 2), (1, 5, 2), ("kernel", "bias")),
])
def test_public_weights_are_read_only_and_set_weights_takes_effect(make, shape, names):
    # ops caches prepared weights by the arrays' identity: an in-place write would be silently ignored
    layer = make()
    x = rand(*shape)
    y = layer(x)
    for view in [getattr(layer, n) for n in names] + layer.weights:
        with pytest.raises(ValueError, match="read-only"):
            view[...] = 0
    weights = layer.get_weights()
    assert all(w.flags.writeable for w in weights)
    weights[0][...] = 0  # a copy: the layer does not change
    np.testing.assert_array_equal(layer(x), y)
    layer.set_weights(weights)
    np.testing.assert_array_equal(getattr(layer, names[0]), 0)
    np.testing.assert_array_equal(layer(x), np.zeros_like(y))  # zero kernel, zero bias


def test_transpose_tail_cells_hold_only_the_bias():
    layer = L.Conv1DTranspose(1, 2, strides=3, bias_initializer="ones")
    y = layer(rand(1, 5, 1))
    np.testing.assert_array_equal(y[0, 2::3, 0], 1.0)


def test_aliases_are_the_same_classes():
    assert L.Convolution1D is L.Conv1D and L.Convolution3D is L.Conv3D
    assert L.MaxPool3D is L.MaxPooling3D and L.AvgPool1D is L.AveragePooling1D
    assert L.GlobalMaxPool1D is L.GlobalMaxPooling1D and L.GlobalAvgPool3D is L.GlobalAveragePooling3D
    assert L.Convolution2DTranspose is L.Conv2DTranspose and L.SeparableConvolution1D is L.SeparableConv1D
    assert L.Deconvolution2D is L.Conv2DTranspose  # Keras 2.0-2.3's name (not Keras 3's): tests/test_legacy*


@pytest.mark.parametrize("layer", [
    lambda: L.Conv2D(4, (3, 2), strides=(2, 1), padding="same", data_format="channels_first",
                     activation="relu", use_bias=False, kernel_initializer="he_normal",
                     kernel_regularizer="l2", name="c"),
    lambda: L.Conv1D(2, 3, padding="causal", dilation_rate=2, groups=2),
    lambda: L.AveragePooling3D(2, strides=1, padding="same"),
    lambda: L.GlobalMaxPooling2D(keepdims=True),
    lambda: L.LocallyConnected2D(3, 2, padding="same", implementation=3, data_format="channels_first"),
    lambda: L.Dense(3, activation="tanh",
                    bias_initializer={"class_name": "Constant", "config": {"value": 2}}),
    lambda: L.Flatten(), lambda: L.Dropout(0.3, seed=1), lambda: L.Activation("gelu"),
    lambda: L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", data_format="channels_first"),
    lambda: L.SeparableConv1D(4, 3, strides=2, depthwise_initializer="he_uniform"),
    lambda: L.Conv3DTranspose(2, 3, strides=2, output_padding=1, activation="sigmoid"),
])
def test_config_round_trip(layer):
    layer = layer()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert config["dtype"]["config"]["name"] == "float32"


def test_from_keras_style_config():
    config = {"name": "conv2d", "trainable": True,
              "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float64"},
                        "registered_name": None},
              "filters": 4, "kernel_size": (3, 3), "strides": (1, 1), "padding": "valid",
              "data_format": "channels_last", "dilation_rate": (1, 1), "groups": 1, "activation": "linear",
              "use_bias": True,
              "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                     "config": {"seed": None, "input_axes": None, "output_axes": None},
                                     "registered_name": None},
              "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                                   "registered_name": None},
              "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
              "kernel_constraint": None, "bias_constraint": None}
    layer = L.Conv2D.from_config(config)
    assert layer.dtype == "float64" and layer.kernel_size == (3, 3)


@pytest.mark.parametrize("name, check", [
    ("glorot_uniform", lambda w, fi, fo: np.abs(w).max() <= np.sqrt(6 / (fi + fo))),
    ("he_uniform", lambda w, fi, fo: np.abs(w).max() <= np.sqrt(6 / fi)),
    ("lecun_uniform", lambda w, fi, fo: np.abs(w).max() <= np.sqrt(3 / fi)),
    ("glorot_normal", lambda w, fi, fo: abs(w.std() / np.sqrt(2 / (fi + fo)) - 1) < 0.1),
    ("he_normal", lambda w, fi, fo: abs(w.std() / np.sqrt(2 / fi) - 1) < 0.1),
    ("lecun_normal", lambda w, fi, fo: abs(w.std() / np.sqrt(1 / fi) - 1) < 0.1),
    ("random_normal", lambda w, fi, fo: abs(w.std() / 0.05 - 1) < 0.1),
    ("random_uniform", lambda w, fi, fo: np.abs(w).max() <= 0.05 and w.std() > 0.02),
    ("zeros", lambda w, fi, fo: np.all(w == 0)),
    ("ones", lambda w, fi, fo: np.all(w == 1)),
])
def test_initializers(name, check):
    layer = L.Conv2D(32, 3, kernel_initializer=name)
    layer.build((None, 8, 8, 16))
    w = layer.get_weights()[0]
    fan_in, fan_out = 9 * 16, 9 * 32
    assert w.dtype == np.float32 and check(w.astype(np.float64), fan_in, fan_out)


def test_seeded_initializers_repeat_and_unseeded_differ():
    def kernel(init):
        layer = L.Dense(50, kernel_initializer=init)
        layer.build((None, 40))
        return layer.get_weights()[0]
    seeded = {"class_name": "HeNormal", "config": {"seed": 7}}
    np.testing.assert_array_equal(kernel(seeded), kernel(seeded))
    assert not np.array_equal(kernel("he_normal"), kernel("he_normal"))
    assert np.abs(kernel(seeded)).max() <= 2 * np.sqrt(2 / 40) / 0.8796 + 1e-6  # truncated at 2 stddev


# -- inputs: dtypes, layouts, empty batches, non-finite values -------------------------------------
def test_inputs_are_cast_to_the_layer_dtype():
    layer = L.Conv2D(2, 2)
    x64 = rand(2, 5, 5, 3, dtype="float64")
    y = layer(x64)
    assert y.dtype == np.float32
    close(y, conv_ref(layer, x64.astype("float32")))
    np.testing.assert_array_equal(layer(x64[:, ::1]), y)
    big = np.ascontiguousarray(x64.astype(">f4"))          # non-native byte order
    np.testing.assert_array_equal(layer(big), y)
    wide = rand(2, 10, 5, 3)
    np.testing.assert_array_equal(layer(wide[:, ::2]), layer(np.ascontiguousarray(wide[:, ::2])))
    nhwc = np.transpose(rand(2, 3, 5, 5), (0, 2, 3, 1))      # a transposed (non-contiguous) view
    close(layer(nhwc), conv_ref(layer, np.ascontiguousarray(nhwc)))
    ints = np.arange(2 * 5 * 5 * 3).reshape(2, 5, 5, 3) % 7
    close(layer(ints), conv_ref(layer, ints.astype("float32")))
    assert layer(x64.tolist()).shape == y.shape


def test_float64_layer():
    layer = L.Conv1D(3, 2, dtype="float64")
    x = rand(2, 6, 2, dtype="float64")
    y = layer(x)
    assert y.dtype == np.float64 and layer.get_weights()[0].dtype == np.float64
    close(y, conv_ref(layer, x), tol=1e-12)
    assert layer(x.astype("float32")).dtype == np.float64
    pool = L.AveragePooling1D(2, dtype="float64")
    assert pool(x).dtype == np.float64


@pytest.mark.parametrize("layer, shape", [
    (lambda: L.Conv2D(3, 2), (0, 5, 5, 2)), (lambda: L.MaxPooling1D(), (0, 4, 2)),
    (lambda: L.GlobalAveragePooling2D(), (0, 3, 3, 2)), (lambda: L.LocallyConnected1D(2, 2), (0, 4, 2)),
    (lambda: L.Dense(4), (0, 3)), (lambda: L.Flatten(), (0, 2, 3)),
])
def test_batch_zero_returns_empty(layer, shape):
    layer = layer()
    y = layer(np.zeros(shape, "float32"))
    assert y.shape == (0, *layer.compute_output_shape((None, *shape[1:]))[1:])
    assert y.dtype == np.float32


def test_nan_and_inf_propagate_like_the_reference():
    x = rand(1, 6, 6, 2)
    x[0, 1, 1, 0] = np.nan
    x[0, 4, 4, 1] = np.inf
    conv = L.Conv2D(2, 3, kernel_initializer="ones")
    y = conv(x)
    ref = conv_ref(conv, x)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(np.isposinf(y), np.isposinf(ref))
    assert np.isnan(y).any() and np.isposinf(y).any()
    mp = L.MaxPooling2D()(x)
    assert np.isnan(mp[0, 0, 0, 0]) and np.isposinf(mp[0, 2, 2, 1])
    assert np.isnan(L.Activation("relu")(np.array([[np.nan]], "float32")))[0, 0]


def test_nan_in_weights_stays_where_the_reference_puts_it():
    conv = L.Conv2D(1, 3, padding="same")
    x = rand(1, 8, 8, 1)
    conv.build(x.shape)
    kernel = np.zeros((3, 3, 1, 1), "float32")
    kernel[1, 1] = np.nan  # only the centre tap: every output reads one in-bounds input there
    conv.set_weights([kernel, np.zeros(1)])
    y = conv(x)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(conv_ref(conv, x)))
    kernel[1, 1] = 1
    conv.set_weights([kernel, np.zeros(1)])
    np.testing.assert_allclose(conv(x), x, atol=1e-5)  # (Winograd rounds even an identity kernel)


# -- random configurations: the layer's Problem agrees with the reference -------------------------------


@st.composite
def conv_configs(draw):
    rank = draw(st.integers(1, 3))
    fmt = draw(st.sampled_from(["channels_last", "channels_first"]))
    groups = draw(st.sampled_from([1, 2]))
    c = groups * draw(st.integers(1, 2))
    filters = groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    use_stride = draw(st.booleans())
    strides = tuple(draw(st.integers(1, 2)) if use_stride else 1 for _ in range(rank))
    dilation = tuple(1 if use_stride else draw(st.integers(1, 2)) for _ in range(rank))
    padding = draw(st.sampled_from(["valid", "same"] + (["causal"] if rank == 1 else [])))
    spatial = tuple(draw(st.integers((k - 1) * d + 1, (k - 1) * d + 4))
                    for k, d in zip(kernel, dilation, strict=True))
    batch = draw(st.integers(1, 2))
    shape = (batch, *spatial, c) if fmt == "channels_last" else (batch, c, *spatial)
    kw = dict(strides=strides, padding=padding, data_format=fmt, dilation_rate=dilation, groups=groups,
              use_bias=draw(st.booleans()), bias_initializer="random_normal")
    return getattr(L, f"Conv{rank}D"), filters, kernel, kw, shape


@given(conv_configs())
def test_random_conv_layers_match_reference(config):
    cls, filters, kernel, kw, shape = config
    layer = cls(filters, kernel, **kw)
    x = rand(*shape)
    y = layer(x)
    assert y.shape == layer.compute_output_shape(shape)
    close(y, conv_ref(layer, x))


@st.composite
def pool_configs(draw):
    rank = draw(st.integers(1, 3))
    fmt = draw(st.sampled_from(["channels_last", "channels_first"]))
    pool = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    strides = draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 3)] * rank)))
    padding = draw(st.sampled_from(["valid", "same"]))
    spatial = tuple(draw(st.integers(k, k + 4)) for k in pool)
    shape = (draw(st.integers(1, 2)), *spatial, 2) if fmt == "channels_last" else \
        (draw(st.integers(1, 2)), 2, *spatial)
    mode = draw(st.sampled_from(["Max", "Average"]))
    kw = dict(strides=strides, padding=padding, data_format=fmt)
    return getattr(L, f"{mode}Pooling{rank}D"), pool, kw, shape


@given(pool_configs())
def test_random_pool_layers_match_reference(config):
    cls, pool, kw, shape = config
    layer = cls(pool, **kw)
    x = rand(*shape)
    p = make_problem("maxpool" if "Max" in cls.__name__ else "avgpool", shape, rank=layer.rank,
                     kernel=layer.pool_size, strides=layer.strides, padding=layer.padding,
                     layout=layer.data_format)
    close(layer(x), reference.pool(x, p))


def test_locally_connected_tf_keras_kwargs():
    kernel = rand(4, 3 * 2, 2)
    bias = rand(4, 2)
    with pytest.warns(UserWarning, match="Do not pass an `input_shape`"):
        layer = L.LocallyConnected1D(2, 3, weights=[kernel, bias], batch_input_shape=(None, 6, 2))
    assert layer._input_shape_arg == (6, 2)
    y = layer(rand(1, 6, 2))
    np.testing.assert_array_equal(layer.get_weights()[0], kernel)
    close(y, lc_tf_keras_forward(layer, rand(1, 6, 2)))


@pytest.mark.parametrize("layer, shape, out", [
    (lambda: L.Conv2D(4, 3, padding="same", bias_initializer="ones"), (1, 5, 5, 0), (1, 5, 5, 4)),
    (lambda: L.MaxPooling2D(), (1, 4, 4, 0), (1, 2, 2, 0)),
    (lambda: L.Dense(3, bias_initializer="ones"), (2, 0), (2, 3)),
    (lambda: L.GlobalMaxPooling2D(), (1, 3, 3, 0), (1, 0)),
    (lambda: L.Flatten(), (2, 0, 3), (2, 0)),
])
def test_zero_channels(layer, shape, out):
    y = layer()(np.ones(shape, "float32"))
    assert y.shape == out
    if y.size:
        np.testing.assert_array_equal(y, 1.0)  # nothing to sum: only the bias


@pytest.mark.parametrize("impl", ["winograd_f2x2_3x3", "winograd_f4x4_3x3"])
def test_nan_lands_like_the_reference_when_winograd_is_chosen(impl):
    x = rand(2, 9, 9, 3)
    x[1, 4, 4, 2] = np.nan
    conv = L.Conv2D(4, 3, padding="same")
    with ops.tuning(force=impl):
        assert ops.decision("conv", conv._problem(x.shape)).impl.mixes_tiles
        y = conv(x)
    ref = conv_ref(conv, x)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    assert np.isnan(y).sum() == 9 * 4  # the 3x3 windows that read the NaN, every filter
