"""The same layer in Keras 3 (CPU torch backend) and in nbconv, with the same weights, agrees.

Outputs, output shapes, parameter counts, weight shapes, config keys and the errors raised for bad
constructor arguments are compared over a small grid (tiny inputs: this module runs in seconds once
Keras is imported). Keras 3.15.1's torch AveragePooling `same` with an odd total pad is buggy
(it replicates the edge and divides by the full window): those cases are checked against the
reference instead.
"""
import inspect
import itertools
import re
import warnings

import keras  # noqa: E402  (a test extra: missing, it fails loudly)
import numpy as np
import pytest

from nbconv import layers as L  # noqa: E402
from nbconv import ops, reference  # noqa: E402
from nbconv.layers.activations import ALL as ACTIVATIONS  # noqa: E402
from nbconv.models import Sequential  # noqa: E402
from nbconv.spec import make_problem, same_pads  # noqa: E402

K = keras.layers
TOL = 1e-5  # max abs error relative to the output's largest magnitude (float32 both sides)


@pytest.fixture(autouse=True)
def _setup():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with ops.tuning(mode="off"):
            yield


def rand(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype("float32")


def same_message(a, b):
    """Equal messages, up to the order of a printed set (it depends on how each .pyc was built)."""
    def norm(text):
        return re.sub(r"\{([^{}]*)\}", lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}", text)
    return norm(str(a)) == norm(str(b))


def keras_out(layer, x, **kw):
    return np.asarray(keras.ops.convert_to_numpy(layer(x, **kw)))


def compare(name, args, kwargs, shape, seed=0, **call_kw):
    """Build both, copy Keras's weights (random bias too) into nbconv, compare everything."""
    kl = getattr(K, name)(*args, **kwargs)
    nl = getattr(L, name)(*args, **kwargs)
    x = rand(shape, seed)
    kl.build(shape)
    weights = kl.get_weights()
    if len(weights) == 2:  # a random bias, so a misplaced bias cannot hide
        weights[1] = rand(weights[1].shape, seed + 1)
        kl.set_weights(weights)
    nl.build(shape)
    assert [w.shape for w in nl.get_weights()] == [w.shape for w in weights]
    nl.set_weights(weights)
    assert nl.count_params() == kl.count_params()
    assert nl.compute_output_shape((None, *shape[1:])) == tuple(kl.compute_output_shape((None, *shape[1:])))
    expect = keras_out(kl, x, **call_kw)
    got = nl(x, **call_kw)
    assert got.shape == expect.shape and got.dtype == expect.dtype
    err = reference.rel_error(got, expect)
    assert err <= TOL, err
    assert set(nl.get_config()) == set(kl.get_config()) - {"quantization_config"}


def _conv_grid():
    cases = []
    for rank, fmt, (pad, strides, dil), groups, use_bias in itertools.product(
            (1, 2, 3), ("channels_last", "channels_first"),
            [("valid", 1, 1), ("same", 1, 2), ("same", 2, 1), ("valid", 2, 1), ("causal", 1, 2)],
            (1, 2), (True, False)):
        if pad == "causal" and rank != 1:
            continue
        if rank == 3 and (groups, use_bias) != (1, True):
            continue  # keep the 3-D part small
        sp = {1: (9,), 2: (7, 6), 3: (5, 4, 4)}[rank]
        c = 4
        shape = (2, *sp, c) if fmt == "channels_last" else (2, c, *sp)
        kernel = {1: 3, 2: (3, 2), 3: (2, 3, 2)}[rank]
        kw = dict(strides=strides, padding=pad, data_format=fmt, dilation_rate=dil, groups=groups,
                  use_bias=use_bias, activation="relu" if use_bias else None)
        cases.append((f"Conv{rank}D", (4, kernel), kw, shape))
    return cases


@pytest.mark.parametrize("name, args, kwargs, shape", _conv_grid())
def test_conv(name, args, kwargs, shape):
    compare(name, args, kwargs, shape)


def test_conv_even_kernel_same_pads_after_and_kernel_larger_than_input():
    compare("Conv2D", (2, 2), dict(padding="same"), (1, 5, 5, 3))
    compare("Conv2D", (2, 4), dict(padding="same", strides=2), (1, 6, 7, 1))
    compare("Conv2D", (2, 5), dict(padding="same"), (1, 4, 4, 2))
    compare("Conv1D", (3, 5), dict(padding="causal"), (2, 4, 2))


def _odd_average_same(pool, strides, sp):
    for n, k, s in zip(sp, pool, strides, strict=True):
        lo, hi = same_pads(n, k, s)
        if lo != hi:
            return True
    return False


def _pool_grid():
    cases = []
    for rank, mode, fmt, (pool, strides, pad) in itertools.product(
            (1, 2, 3), ("Max", "Average"), ("channels_last", "channels_first"),
            [(2, None, "valid"), (3, 2, "valid"), (3, 1, "same"), (2, 2, "same"), (3, 2, "same")]):
        sp = {1: (7,), 2: (6, 5), 3: (4, 5, 3)}[rank]
        shape = (2, *sp, 3) if fmt == "channels_last" else (2, 3, *sp)
        kw = dict(strides=strides, padding=pad, data_format=fmt)
        odd = pad == "same" and _odd_average_same((pool,) * rank, (strides or pool,) * rank, sp)
        cases.append((f"{mode}Pooling{rank}D", pool, kw, shape, mode == "Average" and odd))
    return cases


@pytest.mark.parametrize("name, pool, kwargs, shape, keras_bug", _pool_grid())
def test_pooling(name, pool, kwargs, shape, keras_bug):
    if not keras_bug:
        compare(name, (pool,), kwargs, shape)
        return
    # Keras's torch backend replicates the edge and divides by the full window; nbconv excludes pads
    layer = getattr(L, name)(pool, **kwargs)
    x = rand(shape)
    p = make_problem("avgpool", shape, rank=layer.rank, kernel=layer.pool_size, strides=layer.strides,
                     padding="same", layout=layer.data_format)
    assert reference.rel_error(layer(x), reference.pool(x, p)) <= TOL
    assert layer.compute_output_shape(shape) == getattr(K, name)(pool, **kwargs).compute_output_shape(shape)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("mode", ["Max", "Average"])
@pytest.mark.parametrize("fmt, keepdims", [("channels_last", False), ("channels_first", True)])
def test_global_pooling(rank, mode, fmt, keepdims):
    sp = (4, 3, 2)[:rank]
    shape = (2, *sp, 3) if fmt == "channels_last" else (2, 3, *sp)
    compare(f"Global{mode}Pooling{rank}D", (), dict(data_format=fmt, keepdims=keepdims), shape)


def test_global_average_pooling1d_mask():
    mask = np.array([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], bool)
    compare("GlobalAveragePooling1D", (), {}, (2, 5, 3), mask=mask)


@pytest.mark.parametrize("name, args, kwargs, shape", [
    ("Dense", (5,), dict(activation="tanh"), (3, 7)),
    ("Dense", (2,), dict(use_bias=False), (2, 3, 4)),
    ("Flatten", (), dict(data_format="channels_first"), (2, 3, 4, 2)),
    ("Flatten", (), {}, (2, 3, 4, 2)),
    ("Activation", ("gelu",), {}, (2, 6)),
    ("Activation", ("hard_sigmoid",), {}, (2, 6)),
    ("Activation", ("selu",), {}, (2, 6)),
    ("Activation", ("softmax",), {}, (2, 6)),
    ("Dropout", (0.4,), {}, (2, 6)),
])
def test_core_layers(name, args, kwargs, shape):
    compare(name, args, kwargs, shape)


def test_sequential_weights_move_from_keras_unchanged():
    def build(lib):
        return [lib.Conv2D(4, 3, activation="relu", padding="same", input_shape=(10, 10, 2)),
                lib.MaxPooling2D(), lib.Conv2D(6, 2, strides=2, data_format="channels_last"),
                lib.Flatten(), lib.Dense(3, activation="softmax")]
    km = keras.Sequential(build(K))
    nm = Sequential(build(L))
    nm.set_weights(km.get_weights())
    assert nm.count_params() == km.count_params()
    x = rand((3, 10, 10, 2))
    assert reference.rel_error(nm.predict(x), km.predict(x, verbose=0)) <= TOL


def test_automatic_names_match_keras():
    keras.backend.clear_session()
    L.clear_session()
    for name in ("Conv2D", "Conv1D", "Conv2D", "MaxPooling2D", "AveragePooling3D", "GlobalMaxPooling1D",
                 "GlobalAveragePooling2D", "Dense", "Flatten", "Dropout"):
        args = {"Conv2D": (1, 1), "Conv1D": (1, 1), "AveragePooling3D": (2,), "Dense": (1,),
                "Dropout": (0.1,)}.get(name, ())
        assert getattr(L, name)(*args).name == getattr(K, name)(*args).name


@pytest.mark.parametrize("make", [
    lambda lib: lib.Conv2D(4, 3, strides=2, dilation_rate=2),
    lambda lib: lib.Conv2D(4, 3, strides=(2, 1), dilation_rate=(1, 2)),
    lambda lib: lib.Conv2D(4, 3, groups=3),
    lambda lib: lib.Conv2D(4, 3, groups=0),
    lambda lib: lib.Conv2D(4, 3, padding="causal"),
    lambda lib: lib.Conv1D(4, 3, padding="full"),
    lambda lib: lib.Conv2D(0, 3),
    lambda lib: lib.Conv2D(4, (3, 0)),
    lambda lib: lib.Conv2D(4, (3, 3, 3)),
    lambda lib: lib.Conv2D(4, np.int64(3)),
    lambda lib: lib.Conv2D(4, 3.0),
    lambda lib: lib.Conv1D(4, 3, strides=0),
    lambda lib: lib.MaxPooling2D(pool_size=0),
    lambda lib: lib.Conv2D(4, 3, border_mode="same"),
    lambda lib: lib.Conv2D(4, 3, weights=[]),
    lambda lib: lib.Conv2D(4, 3, data_format="nhwc"),
    lambda lib: lib.AveragePooling2D(),
    lambda lib: lib.Dense(0),
    lambda lib: lib.Dropout(2.0),
    lambda lib: lib.Conv2D(4, 3, activation="nope"),
])
def test_constructor_errors_match_keras(make):
    with pytest.raises(Exception) as kinfo:
        make(K)
    with pytest.raises(Exception) as ninfo:
        make(L)
    assert type(ninfo.value) is type(kinfo.value)
    if type(kinfo.value) is ValueError:
        assert same_message(ninfo.value, kinfo.value)


@pytest.mark.parametrize("make, shape", [
    (lambda lib: lib.Conv2D(4, 3, groups=2), (1, 5, 5, 3)),
    (lambda lib: lib.Conv2D(4, 3), (1, 2, 5, 1)),
    (lambda lib: lib.Conv2D(4, 3), (1, 5, 5)),
    (lambda lib: lib.MaxPooling2D(), (1, 5, 5)),
    (lambda lib: lib.GlobalMaxPooling1D(), (1, 5)),
    (lambda lib: lib.Dense(3), (4,)),
])
def test_call_errors_match_keras(make, shape):
    x = np.ones(shape, "float32")
    keras.backend.clear_session()
    with pytest.raises(ValueError) as kinfo:
        make(K)(x)
    L.clear_session()
    with pytest.raises(ValueError) as ninfo:
        make(L)(x)
    expect = str(kinfo.value).replace(" with name 'None'", "")
    expect = expect.split(" Received")[0]  # Keras's tensor repr after "Received" differs
    assert str(ninfo.value).startswith(expect)


def test_channel_mismatch_matches_keras():
    keras.backend.clear_session()
    L.clear_session()
    kl, nl = K.Conv2D(2, 3), L.Conv2D(2, 3)
    kl(np.ones((1, 5, 5, 3), "float32"))
    nl(np.ones((1, 5, 5, 3), "float32"))
    with pytest.raises(ValueError) as kinfo:
        kl(np.ones((1, 5, 5, 2), "float32"))
    with pytest.raises(ValueError) as ninfo:
        nl(np.ones((1, 5, 5, 2), "float32"))
    assert str(ninfo.value) == str(kinfo.value).replace(" with name 'None'", "")


# -- the secondary conv layers ---------------------------------------------------------------------------
def _variant_grid():
    cases = []
    for rank, fmt, (pad, strides, dil) in itertools.product(
            (1, 2), ("channels_last", "channels_first"),
            [("valid", 1, 1), ("same", 2, 1), ("same", 1, 2), ("valid", 2, 2)]):
        sp = {1: (8,), 2: (7, 6)}[rank]
        shape = (2, *sp, 3) if fmt == "channels_last" else (2, 3, *sp)
        kernel = {1: 3, 2: (3, 2)}[rank]
        kw = dict(strides=strides, padding=pad, data_format=fmt, dilation_rate=dil)
        cases.append((f"DepthwiseConv{rank}D", (kernel,), dict(kw, depth_multiplier=2), shape))
        cases.append((f"SeparableConv{rank}D", (4, kernel), dict(kw, depth_multiplier=2, activation="relu"),
                      shape))
    return cases


@pytest.mark.parametrize("name, args, kwargs, shape", _variant_grid())
def test_depthwise_and_separable(name, args, kwargs, shape):
    compare(name, args, kwargs, shape)


def _transpose_grid():
    cases = []
    for rank, fmt, (pad, strides, dil, out_pad), kernel in itertools.product(
            (1, 2, 3), ("channels_last", "channels_first"),
            [("valid", 1, 1, None), ("valid", 2, 1, None), ("same", 2, 1, None), ("valid", 3, 1, None),
             ("same", 1, 2, None), ("valid", 2, 1, 1), ("same", 3, 1, 1)], (2, 3)):
        if rank == 3 and (fmt, kernel) != ("channels_last", 3):
            continue
        if pad == "same" and out_pad is not None and kernel % 2 == 0 and out_pad == 0:
            continue  # unspecified in Keras
        sp = {1: (5,), 2: (4, 3), 3: (3, 2, 3)}[rank]
        shape = (2, *sp, 3) if fmt == "channels_last" else (2, 3, *sp)
        kw = dict(strides=strides, padding=pad, data_format=fmt, dilation_rate=dil, output_padding=out_pad)
        cases.append((f"Conv{rank}DTranspose", (4, kernel), kw, shape))
    return cases


@pytest.mark.parametrize("name, args, kwargs, shape", _transpose_grid())
def test_conv_transpose(name, args, kwargs, shape):
    compare(name, args, kwargs, shape)


@pytest.mark.parametrize("make", [
    lambda lib: lib.DepthwiseConv2D(3, depth_multiplier=0),
    lambda lib: lib.DepthwiseConv1D(3, padding="causal"),
    lambda lib: lib.SeparableConv1D(4, 3, padding="causal"),
    lambda lib: lib.SeparableConv2D(0, 3),
    lambda lib: lib.Conv2DTranspose(4, 3, output_padding=2, strides=2),
    lambda lib: lib.Conv2DTranspose(4, 3, strides=2, dilation_rate=2),
    lambda lib: lib.Conv2DTranspose(4, 3, groups=2),
    lambda lib: lib.Conv1DTranspose(4, 3, padding="causal"),
])
def test_variant_constructor_errors_match_keras(make):
    with pytest.raises(Exception) as kinfo:
        make(K)
    with pytest.raises(Exception) as ninfo:
        make(L)
    assert type(ninfo.value) is type(kinfo.value)
    if type(kinfo.value) is ValueError:
        assert same_message(ninfo.value, kinfo.value)


def test_variant_positional_order():
    # depth_multiplier is Depthwise's 4th positional; Conv3DTranspose has data_format before output_padding
    assert L.DepthwiseConv2D(3, 1, "valid", 4).depth_multiplier == 4
    assert K.DepthwiseConv2D(3, 1, "valid", 4).depth_multiplier == 4
    a = L.Conv3DTranspose(2, 3, 2, "valid", "channels_first", 1)
    b = K.Conv3DTranspose(2, 3, 2, "valid", "channels_first", 1)
    assert (a.data_format, a.output_padding) == (b.data_format, tuple(b.output_padding))


CONV_CLASSES = ["Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
                "SeparableConv2D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"]


@pytest.mark.parametrize("name", CONV_CLASSES)
def test_conv_signatures_match_keras(name):
    # names, order, kinds and defaults: positional calls mean the same in both
    ours = list(inspect.signature(getattr(L, name)).parameters.values())
    theirs = list(inspect.signature(getattr(K, name)).parameters.values())
    assert ours == theirs


@pytest.mark.parametrize("make, shape", [
    (lambda lib: lib.Conv2D(4, 3, groups=2), (None, 2, 5, 2)),
    (lambda lib: lib.Conv1D(4, 3, dilation_rate=2, data_format="channels_first"), (None, 3, 4)),
    (lambda lib: lib.DepthwiseConv2D(3, depth_multiplier=2), (None, 2, 5, 3)),
    (lambda lib: lib.DepthwiseConv1D(3, data_format="channels_first"), (None, 3, 2)),
    (lambda lib: lib.SeparableConv1D(4, 3, depth_multiplier=2), (None, 2, 3)),
])
def test_output_size_message_matches_keras(make, shape):
    with pytest.raises(ValueError) as kinfo:
        make(K).compute_output_shape(shape)
    with pytest.raises(ValueError) as ninfo:
        make(L).compute_output_shape(shape)
    assert str(ninfo.value) == str(kinfo.value)


@pytest.mark.parametrize("name", sorted(set(ACTIVATIONS) - {"hard_sigmoid_keras2"}))  # that: test_legacy*
def test_activations_match_keras(name):
    x = np.linspace(-6, 6, 25).astype("float32").reshape(1, 25)
    fn = keras.activations.get(name)
    expect = np.asarray(keras.ops.convert_to_numpy(fn(keras.ops.convert_to_tensor(x))))
    got = L.Activation(name)(x)
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)
