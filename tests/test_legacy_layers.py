"""nbconv.legacy: Keras-1 constructors converted as Keras 2's `keras/legacy/interfaces.py` did, the
Keras 2 names in nbconv.layers, and Keras 2's hard_sigmoid. Each legacy call is compared with the
modern call its warning prints (evaluated), and numerically with real Keras 3 where it matters."""

import re

import keras  # a test extra
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbconv import layers as L
from nbconv import legacy, ops, reference
from nbconv.layers.transpose import transpose_output_length
from nbconv.legacy import LegacyWarning

TOL = 1e-5


@pytest.fixture(autouse=True)
def _setup():
    with ops.tuning(mode="off"):
        yield


@pytest.fixture(autouse=True, scope="module")
def _fresh_names_after():
    yield
    L.clear_session()  # automatic names as a fresh process has them, for the modules after this one
    keras.backend.clear_session()


def rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype("float32")


def config(layer):
    return {k: v for k, v in layer.get_config().items() if k != "name"}


CASES = [  # (legacy constructor, args, kwargs, the modern call it means)
    (
        "Convolution2D",
        (64, 9, 9),
        dict(border_mode="same", subsample=(2, 2), dim_ordering="th", init="he_normal"),
        'Conv2D(64, (9, 9), strides=(2, 2), padding="same", data_format="channels_first", '
        'kernel_initializer="he_normal")',
    ),
    ("Convolution2D", (8, 3), dict(nb_col=5), "Conv2D(8, (3, 5))"),
    (
        "Convolution2D",
        (),
        dict(nb_filter=8, nb_row=3, nb_col=3, W_regularizer="l2", b_constraint="non_neg", bias=False),
        'Conv2D(kernel_size=(3, 3), filters=8, kernel_regularizer="l2", bias_constraint="non_neg", '
        "use_bias=False)",
    ),
    (
        "Convolution1D",
        (4, 3),
        dict(subsample_length=2, border_mode="causal"),
        'Conv1D(4, 3, strides=2, padding="causal")',
    ),
    (
        "Convolution3D",
        (4, 3, 3, 3),
        dict(dim_ordering="tf", subsample=(1, 2, 1)),
        'Conv3D(4, (3, 3, 3), strides=(1, 2, 1), data_format="channels_last")',
    ),
    ("Convolution3D", (4,), dict(kernel_dim1=2, kernel_dim2=3, kernel_dim3=1), "Conv3D(4, (2, 3, 1))"),
    (
        "AtrousConvolution2D",
        (4, 3, 3),
        dict(atrous_rate=(2, 2), border_mode="same"),
        'Conv2D(4, (3, 3), padding="same", dilation_rate=(2, 2))',
    ),
    ("AtrousConvolution1D", (4, 3), dict(atrous_rate=2), "Conv1D(4, 3, dilation_rate=2)"),
    (
        "SeparableConvolution2D",
        (8, 3, 3),
        dict(init="he_uniform", depth_multiplier=2),
        'SeparableConv2D(8, (3, 3), depth_multiplier=2, depthwise_initializer="he_uniform", '
        'pointwise_initializer="he_uniform")',
    ),
    (
        "Deconvolution2D",
        (3, 3, 3, (None, 14, 14, 3)),
        dict(subsample=(2, 2)),
        "Conv2DTranspose(3, (3, 3), strides=(2, 2), output_padding=(1, 1))",
    ),
    (
        "Deconvolution2D",
        (3, 3, 3),
        dict(output_shape=(None, 3, 13, 13), subsample=(2, 2), dim_ordering="th"),
        'Conv2DTranspose(3, (3, 3), strides=(2, 2), data_format="channels_first", output_padding=None)',
    ),
    (
        "LocallyConnected2D",
        (4, 3, 3),
        dict(subsample=(2, 2), dim_ordering="th"),
        'LocallyConnected2D(4, (3, 3), strides=(2, 2), data_format="channels_first")',
    ),
    ("LocallyConnected1D", (4, 3), dict(subsample_length=2), "LocallyConnected1D(4, 3, strides=2)"),
    (
        "MaxPooling1D",
        (),
        dict(pool_length=3, stride=1, border_mode="same"),
        'MaxPooling1D(pool_size=3, strides=1, padding="same")',
    ),
    (
        "MaxPooling2D",
        ((2, 2), (1, 1)),
        dict(border_mode="valid", dim_ordering="th"),
        'MaxPooling2D((2, 2), (1, 1), padding="valid", data_format="channels_first")',
    ),
    (
        "AveragePooling3D",
        (),
        dict(border_mode="same", dim_ordering="tf"),
        'AveragePooling3D(padding="same", data_format="channels_last", pool_size=2)',
    ),
    (
        "GlobalAveragePooling2D",
        (),
        dict(dim_ordering="th"),
        'GlobalAveragePooling2D(data_format="channels_first")',
    ),
    ("GlobalMaxPooling3D", (), dict(dim_ordering="default"), "GlobalMaxPooling3D(data_format=None)"),
    (
        "ZeroPadding2D",
        (),
        dict(padding={"top_pad": 1, "right_pad": 2}, dim_ordering="th"),
        'ZeroPadding2D(padding=((1, 0), (0, 2)), data_format="channels_first")',
    ),
    ("ZeroPadding2D", ((1, 2, 3, 4),), {}, "ZeroPadding2D(((1, 2), (3, 4)))"),
    (
        "Cropping2D",
        (((1, 1), (2, 0)),),
        dict(dim_ordering="th"),
        'Cropping2D(((1, 1), (2, 0)), data_format="channels_first")',
    ),
    (
        "UpSampling2D",
        ((2, 3),),
        dict(dim_ordering="th"),
        'UpSampling2D((2, 3), data_format="channels_first")',
    ),
    (
        "Dense",
        (),
        dict(output_dim=5, init="uniform", bias=False),
        'Dense(units=5, kernel_initializer="random_uniform", use_bias=False)',
    ),
    ("Dropout", (), dict(p=0.3), "Dropout(rate=0.3)"),
    (
        "BatchNormalization",
        (),
        dict(mode=0, axis=1, beta_init="zero", gamma_init="one"),
        'BatchNormalization(axis=1, beta_initializer="zeros", gamma_initializer="ones")',
    ),
]


@pytest.mark.parametrize("name,args,kwargs,modern", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_legacy_call_means_the_modern_call_it_prints(name, args, kwargs, modern):
    with pytest.warns(
        LegacyWarning, match=re.escape(f"Update your `{name}` call to the Keras 2 API: `{modern}`")
    ):
        layer = getattr(legacy, name)(*args, **kwargs)
    assert config(layer) == config(eval(modern, vars(L)))  # the printed call, run as written
    assert type(layer).__name__ == modern.split("(")[0]


def test_keras2_names_without_legacy_arguments_do_not_warn():
    assert legacy.Conv2D(8, (3, 3), padding="same").kernel_size == (3, 3)  # filterwarnings=error
    assert legacy.Conv2D(8, 3).kernel_size == (3, 3)
    assert legacy.MaxPooling2D((2, 2), (1, 1), "same").strides == (1, 1)


def test_conv2d_64_9_9_legacy_and_modern_meanings():
    """Keras 1/2: a 9x9 kernel. Keras 3 and nbconv.layers: kernel 9, strides 9 (third positional)."""
    x = rand(1, 33, 33, 1)
    with pytest.warns(LegacyWarning, match=re.escape("`Conv2D(2, (9, 9))`")):
        old = legacy.Conv2D(2, 9, 9)
    new = L.Conv2D(2, 9, 9)
    assert (old.kernel_size, old.strides, new.kernel_size, new.strides) == ((9, 9), (1, 1), (9, 9), (9, 9))
    assert old(x).shape == (1, 25, 25, 2) and new(x).shape == (1, 3, 3, 2)
    assert keras.layers.Conv2D(2, 9, 9).compute_output_shape(x.shape) == (1, 3, 3, 2)


def test_legacy_conv_matches_keras3_numerically():
    with pytest.warns(LegacyWarning):
        ours = legacy.Convolution2D(
            4, 3, 2, subsample=(2, 2), border_mode="same", dim_ordering="th", activation="relu"
        )
    theirs = keras.layers.Conv2D(
        4, (3, 2), strides=2, padding="same", data_format="channels_first", activation="relu"
    )
    x = rand(2, 3, 7, 6)
    theirs.build(x.shape)
    ours.build((None, 3, 7, 6))
    weights = [rand(3, 2, 3, 4, seed=1), rand(4, seed=2)]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    assert reference.rel_error(ours(x), keras.ops.convert_to_numpy(theirs(x))) <= TOL


@pytest.mark.parametrize(
    "call,error,match",
    [
        (
            lambda: legacy.Convolution2D(8, 3, 3, strides=2),
            ValueError,
            "passing both `kernel_size` and `strides`",
        ),
        (lambda: legacy.Convolution2D(8, 3, 3, 3), TypeError, "at most 3 positional arguments"),
        (lambda: legacy.Convolution3D(8, 3, 3, 3, 3), TypeError, "at most 4 positional arguments"),
        (
            lambda: legacy.Conv2D(8, (3, 3), (2, 2)),
            TypeError,
            r"can accept only 2 positional arguments \('filters', ",
        ),
        (
            lambda: legacy.Conv2D(8, (3, 3), border_mode="same", padding="same"),
            TypeError,
            "received both the legacy keyword argument `border_mode` and the Keras 2 keyword argument "
            "`padding`",
        ),
        (
            lambda: legacy.BatchNormalization(mode=2),
            TypeError,
            "`mode=1` and `mode=2` are no longer supported",
        ),
        (lambda: legacy.BatchNormalization(0.9), TypeError, "does not accept positional arguments"),
        (
            lambda: legacy.Convolution2D(8, 3, 3, W_learning_rate_multiplier=2.0),
            ValueError,
            "Unrecognized keyword arguments passed to Conv2D: {'W_learning_rate_multiplier'",
        ),
        (lambda: legacy.Convolution2D(8, 3, 3, weights=[]), ValueError, "Unrecognized keyword arguments"),
        (lambda: legacy.Convolution2D(8, 3, 3, dim_ordering="nchw"), ValueError, "data_format=nchw"),
        (
            lambda: legacy.Convolution2D(8, 3, 3, init="orthogonal"),
            ValueError,
            "initializer identifier: orthogonal",
        ),
        (lambda: legacy.Deconvolution2D(3, 3, 3, (None, 2, 2, 3)), ValueError, "cannot be produced"),
        (
            lambda: legacy.Deconvolution2D(3, 3, 3, (None, 9, 9, 4)),
            ValueError,
            "4 channels but the layer has nb_filter=3",
        ),
    ],
)
def test_bad_legacy_calls_are_refused(call, error, match):
    with pytest.raises(error, match=match):  # and no LegacyWarning (filterwarnings=error)
        call()


def test_conv1d_input_dim_becomes_input_shape():
    with pytest.warns(UserWarning) as record:
        layer = legacy.Convolution1D(nb_filter=4, filter_length=3, input_dim=2, input_length=10)
    assert layer._input_shape_arg == (10, 2)
    assert any(
        isinstance(w.message, LegacyWarning) and "input_shape=(10, 2)" in str(w.message) for w in record
    )


@given(
    out=st.integers(1, 30),
    k=st.integers(1, 5),
    s=st.integers(1, 4),
    d=st.integers(1, 2),
    padding=st.sampled_from(["valid", "same"]),
)
def test_deconvolution_output_shape_is_reproduced_or_refused(out, k, s, d, padding):
    """The derived output_padding gives exactly `out` from the input size TensorFlow needed; a refusal
    means no output_padding (None or 0..s-1) gives it from that input."""
    ke = (k - 1) * d + 1
    n = -(-out // s) if padding == "same" else -(-(out - ke + 1) // s)
    try:
        op = legacy.output_padding_for((None, out, out, 2), 2, k, s, padding, None, d)
    except ValueError:
        assert n < 1 or all(transpose_output_length(n, k, s, d, padding, p) != out for p in [None, *range(s)])
    else:
        assert transpose_output_length(n, k, s, d, padding, None if op is None else op[0]) == out


def test_hard_sigmoid_is_keras2s_on_the_legacy_path_only():
    x = np.linspace(-4, 4, 17, dtype="float32").reshape(1, 17)
    eye = [np.eye(17, dtype="float32"), np.zeros(17, "float32")]
    old, new = legacy.Dense(17, activation="hard_sigmoid"), L.Dense(17, activation="hard_sigmoid")
    for layer in (old, new):
        layer.build((None, 17))
        layer.set_weights(eye)
    np.testing.assert_allclose(old(x), np.clip(0.2 * x + 0.5, 0, 1), atol=1e-7)
    np.testing.assert_allclose(
        new(x), keras.ops.convert_to_numpy(keras.activations.hard_sigmoid(x)), atol=1e-7
    )
    np.testing.assert_allclose(legacy.Activation("hard_sigmoid")(x), np.clip(0.2 * x + 0.5, 0, 1), atol=1e-7)
    assert old.get_config()["activation"] == "hard_sigmoid_keras2"


def test_keras2_names_in_nbconv_layers():
    assert L.Deconvolution2D is L.Deconv2D is L.Conv2DTranspose
    assert L.Deconvolution3D is L.Deconv3D is L.Conv3DTranspose
    with pytest.warns(LegacyWarning, match="AtrousConvolution2D"):
        layer = L.AtrousConvolution2D(4, 3, 3, atrous_rate=(2, 1))
    assert (type(layer), layer.kernel_size, layer.dilation_rate) == (L.Conv2D, (3, 3), (2, 1))
    with pytest.warns(LegacyWarning, match="AtrousConvolution1D"):
        assert L.AtrousConvolution1D(4, 3, atrous_rate=3).dilation_rate == (3,)
    for name in ("Deconvolution2D", "Deconv2D", "Deconvolution3D", "Deconv3D", "AtrousConvolution1D"):
        assert name not in L.LAYER_CLASSES  # Keras 2 configs named the canonical classes


def test_convert_kernel_flips_spatial_axes():
    w = rand(3, 2, 4, 5)
    flipped = legacy.convert_kernel(w)
    np.testing.assert_array_equal(flipped, w[::-1, ::-1])
    np.testing.assert_array_equal(legacy.convert_kernel(flipped), w)
    with pytest.raises(ValueError, match="Invalid kernel shape"):
        legacy.convert_kernel(np.zeros((3, 3)))
