"""The examples users start from (issue item 9): shapes and parameter counts hold exactly."""
import warnings

import numpy as np
import pytest

from nbconv import layers as L
from nbconv import ops
from nbconv.models import Sequential


@pytest.fixture(autouse=True)
def _quiet():
    L.clear_session()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # input_shape= warns, as in Keras 3
        yield


def _single(layer):
    model = Sequential([layer])
    return model.output_shape, model.count_params()


def _shapes(model):
    shape, out = model.input_shape, []
    for layer in model.layers:
        shape = layer.compute_output_shape(shape)
        out.append(shape)
    return out


def test_conv2d_stride2_relu():
    assert _single(L.Conv2D(filters=16, kernel_size=2, strides=2, activation="relu",
                            input_shape=(200, 200, 1))) == ((None, 100, 100, 16), 80)


def test_conv2d_same_after_first():
    model = Sequential([
        L.Conv2D(filters=16, kernel_size=2, strides=2, activation="relu", input_shape=(200, 200, 1)),
        L.Conv2D(filters=32, kernel_size=3, padding="same", activation="relu"),
    ])
    assert model.output_shape == (None, 100, 100, 32)
    assert model.layers[1].count_params() == 4640


def test_conv2d_stride2_same():
    assert _single(L.Conv2D(32, 3, strides=2, padding="same", input_shape=(128, 128, 3))) == \
        ((None, 64, 64, 32), 896)


@pytest.mark.parametrize("strides, out", [(2, (None, 50, 50, 15)), (1, (None, 99, 99, 15))])
def test_maxpooling2d(strides, out):
    assert _single(L.MaxPooling2D(pool_size=2, strides=strides, input_shape=(100, 100, 15))) == (out, 0)


def test_cnn_classifier_params():
    model = Sequential([
        L.Conv2D(32, (3, 3), activation="relu", input_shape=(128, 128, 3)),
        L.MaxPooling2D((2, 2)),
        L.Conv2D(64, (3, 3), activation="relu"),
        L.MaxPooling2D((2, 2)),
        L.Flatten(),
        L.Dense(128, activation="relu"),
        L.Dense(1, activation="sigmoid"),
    ])
    assert model.count_params() == 7_392_449
    assert _shapes(model) == [(None, 126, 126, 32), (None, 63, 63, 32), (None, 61, 61, 64),
                                    (None, 30, 30, 64), (None, 57600), (None, 128), (None, 1)]


def test_cnn_classifier_runs():
    """The same architecture at a small input, end to end through the kernels."""
    model = Sequential([
        L.Conv2D(4, (3, 3), activation="relu", input_shape=(12, 12, 3)),
        L.MaxPooling2D((2, 2)),
        L.Conv2D(6, (3, 3), activation="relu"),
        L.MaxPooling2D((2, 2)),
        L.Flatten(),
        L.Dense(5, activation="relu"),
        L.Dense(1, activation="sigmoid"),
    ])
    x = np.random.default_rng(0).uniform(-1, 1, (3, 12, 12, 3)).astype("float32")
    with ops.tuning(mode="off"):
        y = model.predict(x, batch_size=2)
    assert y.shape == (3, 1) and y.dtype == np.float32
    assert np.all((y > 0) & (y < 1))


def test_locally_connected2d_stack():
    model = Sequential([L.LocallyConnected2D(64, (3, 3), input_shape=(32, 32, 3)),
                        L.LocallyConnected2D(32, (3, 3))])
    assert _shapes(model) == [(None, 30, 30, 64), (None, 28, 28, 32)]
    assert model.layers[0].count_params() == 1_612_800
    # impl 1: 28*28 positions * (3*3*64 inputs * 32 filters + 32 biases)
    assert model.layers[1].count_params() == 28 * 28 * (3 * 3 * 64 * 32 + 32)
