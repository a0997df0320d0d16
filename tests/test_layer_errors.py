"""Bad input: Keras 3's exception types and message starts, raised before any kernel runs."""
import re

import numpy as np
import pytest

from nbconv import layers as L
from nbconv import ops
from nbconv.models import Sequential


@pytest.fixture(autouse=True)
def no_kernels(monkeypatch):
    """Every error here must come before dispatch: reaching a kernel fails the test."""
    def fail(*args):
        raise AssertionError("a kernel was reached")
    for name in ("conv", "pool", "local", "dense", "run"):
        monkeypatch.setattr(ops, name, fail)


def x(*shape, dtype="float32"):
    return np.ones(shape, dtype)


def raises(exc, start):
    return pytest.raises(exc, match="^" + re.escape(start))


# -- bad constructor arguments ------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: L.Conv2D(4, 3, strides=2, dilation_rate=2),
    lambda: L.Conv2D(4, 3, strides=(2, 1), dilation_rate=(1, 2)),
    lambda: L.Conv1D(4, 3, strides=3, dilation_rate=2),
    lambda: L.Conv3D(4, 3, strides=(1, 1, 2), dilation_rate=(2, 1, 1)),
])
def test_strides_with_dilation(make):
    with raises(ValueError, "`strides > 1` not supported in conjunction with `dilation_rate > 1`"):
        make()


def test_groups():
    with raises(ValueError, "The number of filters must be evenly divisible by the number of groups. "
                            "Received: groups=3, filters=4."):
        L.Conv2D(4, 3, groups=3)
    for groups in (0, -1):
        with raises(ValueError, "The number of groups must be a positive integer. "
                                f"Received: groups={groups}."):
            L.Conv2D(4, 3, groups=groups)
    layer = L.Conv2D(4, 3, groups=2)
    with raises(ValueError, "The number of input channels must be evenly divisible by the number of groups. "
                            "Received groups=2, but the input has 3 channels"):
        layer(x(1, 5, 5, 3))
    assert not layer.built


@pytest.mark.parametrize("make, bad", [
    (lambda: L.Conv2D(4, 3, padding="causal"), "causal"),
    (lambda: L.Conv3D(4, 3, padding="causal"), "causal"),
    (lambda: L.Conv1D(4, 3, padding="full"), "full"),
    (lambda: L.MaxPooling2D(padding="causal"), "causal"),
    (lambda: L.LocallyConnected1D(4, 3, padding="causal"), "causal"),
    (lambda: L.Conv2D(4, 3, padding=[(1, 1), (1, 1)]), "[(1, 1), (1, 1)]"),
    (lambda: L.Conv2D(4, 3, padding=None), "None"),
])
def test_padding(make, bad):
    with pytest.raises(ValueError, match=r"^The `padding` argument must be a list/tuple or one of \{.*\}. "
                                         rf"Received: {re.escape(bad)}$"):
        make()
    assert L.Conv2D(1, 1, padding="SAME").padding == "same"
    assert L.Conv1D(1, 1, padding="Causal").padding == "causal"


@pytest.mark.parametrize("filters", [0, -2, 4.0, "4", None])
def test_filters(filters):
    with raises(ValueError, "Invalid value for argument `filters`"):
        L.Conv2D(filters, 3)


@pytest.mark.parametrize("make, start", [
    (lambda: L.Conv2D(4, (3, 0)), "The `kernel_size` argument must be a tuple of 2 integers. "
                                  "Received kernel_size=(3, 0), including values {0} that do not satisfy"),
    (lambda: L.Conv2D(4, (3, 3, 3)), "The `kernel_size` argument must be a tuple of 2 integers."),
    (lambda: L.Conv2D(4, np.int64(3)), "The `kernel_size` argument must be a tuple of 2 integers. "
                                       "Received kernel_size=3"),
    (lambda: L.Conv2D(4, 3.0), "The `kernel_size` argument must be a tuple of 2 integers."),
    (lambda: L.Conv2D(4, "3"), "The `kernel_size` argument must be a tuple of 2 integers."),
    (lambda: L.Conv2D(4, (3, 2.5)), "The `kernel_size` argument must be a tuple of 2 integers."),
    (lambda: L.Conv1D(4, 3, strides=0), "The `strides` argument must be a tuple of 1 integers."),
    (lambda: L.Conv3D(4, 3, dilation_rate=(1, 2)),
     "The `dilation_rate` argument must be a tuple of 3 integers."),
    (lambda: L.MaxPooling2D(pool_size=0), "The `pool_size` argument must be a tuple of 2 integers."),
    (lambda: L.AveragePooling1D((2, 2)), "The `pool_size` argument must be a tuple of 1 integers."),
    (lambda: L.MaxPooling3D(strides=-1), "The `strides` argument must be a tuple of 3 integers."),
    (lambda: L.LocallyConnected2D(4, (3, 0)), "The `kernel_size` argument must be a tuple of 2 integers."),
])
def test_tuple_arguments(make, start):
    with raises(ValueError, start):
        make()


def test_numpy_ints_inside_a_tuple_are_fine():
    assert L.Conv2D(4, (np.int64(3), 2)).kernel_size == (3, 2)


def test_pooling_zero_stride_is_rejected_at_build():
    layer = L.MaxPooling2D(strides=0)  # Keras 3 accepts it at construction
    with raises(ValueError, "The `strides` argument must be a tuple of 2 integers."):
        layer(x(1, 4, 4, 1))


def test_data_format():
    with raises(ValueError, "The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
                            "Received: data_format=nhwc"):
        L.Conv2D(4, 3, data_format="nhwc")
    assert L.Conv2D(4, 3, data_format="Channels_First").data_format == "channels_first"
    with raises(ValueError, "The `data_format` argument must be one of"):
        L.GlobalMaxPooling2D(data_format="NCHW")


@pytest.mark.parametrize("cls, kwargs", [
    (L.Conv2D, {"border_mode": "same"}), (L.Conv2D, {"init": "he_normal"}), (L.Conv2D, {"subsample": (2, 2)}),
    (L.Conv2D, {"weights": []}), (L.Conv2D, {"batch_input_shape": (None, 4, 4, 1)}),
    (L.Conv1D, {"filter_length": 3}), (L.MaxPooling2D, {"dim_ordering": "tf"}), (L.Dense, {"output_dim": 3}),
])
def test_unknown_keyword_arguments(cls, kwargs):
    args = {L.Conv2D: (4, 3), L.Conv1D: (4, 3), L.MaxPooling2D: (), L.Dense: (3,)}[cls]
    with raises(ValueError, f"Unrecognized keyword arguments passed to {cls.__name__}: {kwargs}"):
        cls(*args, **kwargs)


def test_border_mode_message_exactly():
    with pytest.raises(ValueError) as info:
        L.Conv2D(32, 3, border_mode="same")
    assert str(info.value) == "Unrecognized keyword arguments passed to Conv2D: {'border_mode': 'same'}"


def test_average_pooling_needs_pool_size():
    for cls in (L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D):
        with pytest.raises(TypeError, match="pool_size"):
            cls()
    assert L.MaxPooling2D().pool_size == (2, 2)


def test_legacy_positional_third_int_is_strides():
    # Keras 3: Conv2D(64, 9, 9) means kernel 9, strides 9, silently
    layer = L.Conv2D(64, 9, 9)
    assert layer.kernel_size == (9, 9) and layer.strides == (9, 9)
    assert layer.compute_output_shape((None, 33, 33, 1)) == (None, 3, 3, 64)
    with pytest.raises(TypeError, match="filters"):
        L.Conv2D(nb_filter=4, kernel_size=3)


def test_other_constructor_arguments():
    with raises(ValueError, "Received an invalid value for `units`, expected a positive integer. "
                            "Received: units=0"):
        L.Dense(0)
    with raises(ValueError, "Invalid value received for argument `rate`. Expected a float value between 0 "
                            "and 1. Received: rate=1.5"):
        L.Dropout(1.5)
    with raises(ValueError, "Could not interpret activation function identifier: foo"):
        L.Conv2D(4, 3, activation="foo")
    with raises(ValueError, "Could not interpret activation function identifier: foo"):
        L.Activation("foo")
    with raises(ValueError, "Could not interpret initializer identifier: foo"):
        L.Conv2D(4, 3, kernel_initializer="foo")
    with raises(ValueError, "Unsupported dtype for argument `dtype`"):
        L.Conv2D(4, 3, dtype="int32")
    with raises(ValueError, "Unsupported dtype for argument `dtype`"):
        L.MaxPooling2D(dtype="float16")
    with raises(ValueError, "Invalid dtype"):
        L.Conv2D(4, 3, dtype="floaty")
    with raises(ValueError, "nbconv layers are inference-only and do not support LoRA"):
        L.Conv2D(4, 3, lora_rank=2)
    with raises(TypeError, "Argument `use_bias` must be a bool"):
        L.Conv2D(4, 3, use_bias="yes")
    with raises(ValueError, "Could not interpret regularizer identifier: l3"):
        L.Conv2D(4, 3, kernel_regularizer="l3")
    with raises(ValueError, "Could not interpret constraint identifier: positive"):
        L.Dense(4, bias_constraint="positive")
    assert L.Conv2D(4, 3, kernel_regularizer="l2", kernel_constraint="max_norm").get_config()[
        "kernel_constraint"] == "max_norm"
    with raises(TypeError, "Argument `name` must be a string"):
        L.Conv2D(4, 3, name=3)


# -- LocallyConnected (tf-keras rules) -------------------------------------------------------------
def test_locally_connected_errors():
    with raises(ValueError, 'Invalid border mode for LocallyConnected2D (only "valid" is supported if '
                            'implementation is 1): same'):
        L.LocallyConnected2D(4, 3, padding="same")
    with raises(ValueError, 'Invalid border mode for LocallyConnected1D'):
        L.LocallyConnected1D(4, 3, padding="same", implementation=1)
    layer = L.LocallyConnected1D(4, 3, implementation=4)
    with raises(ValueError, "Unrecognized implementation mode: 4."):
        layer.build((None, 6, 2))
    with raises(ValueError, "One of the dimensions in the output is <= 0"):
        L.LocallyConnected2D(4, 3)(x(1, 2, 5, 1))
    with pytest.raises(TypeError, match="Keyword argument not understood:.*dilation_rate"):
        L.LocallyConnected2D(4, 3, dilation_rate=2)
    with pytest.raises(TypeError, match="Keyword argument not understood:.*groups"):
        L.LocallyConnected1D(4, 3, groups=2)
    with raises(ValueError, "The spatial dimensions of the inputs to LocallyConnected2D should be "
                            "fully-defined"):
        L.LocallyConnected2D(4, 3).build((None, None, 5, 1))


# -- build / call --------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer, shape, start", [
    (lambda: L.Conv2D(4, 3), (2, 5, 5), "Input 0 of layer 'conv2d' is incompatible with the layer: "
                                        "expected min_ndim=4, found ndim=3. Full shape received: (2, 5, 5)"),
    (lambda: L.Conv1D(4, 3), (2, 5), "Input 0 of layer 'conv1d' is incompatible with the layer: "
                                     "expected min_ndim=3, found ndim=2."),
    (lambda: L.Conv2D(4, 3), (2, 5, 5, 1, 1), "Input 0 of layer 'conv2d' is incompatible with the layer: "
                                              "expected ndim=4, found ndim=5."),
    (lambda: L.MaxPooling2D(), (2, 5, 5), "Input 0 of layer 'max_pooling2d' is incompatible with the layer: "
                                          "expected ndim=4, found ndim=3."),
    (lambda: L.GlobalAveragePooling1D(), (2, 5, 5, 1), "Input 0 of layer 'global_average_pooling1d' is "
                                                       "incompatible with the layer: expected ndim=3"),
    (lambda: L.LocallyConnected2D(2, 2), (2, 5, 5), "Input 0 of layer 'locally_connected2d' is incompatible"),
    (lambda: L.Dense(2), (3,), "Input 0 of layer 'dense' is incompatible with the layer: "
                               "expected min_ndim=2, found ndim=1."),
])
def test_wrong_input_rank(layer, shape, start):
    L.clear_session()
    with raises(ValueError, start):
        layer()(x(*shape))


def test_channel_count_fixed_after_build():
    conv = L.Conv2D(4, 3, data_format="channels_first")
    conv.build((None, 3, 8, 8))
    with raises(ValueError, f"Input 0 of layer '{conv.name}' is incompatible with the layer: expected axis 1 "
                            "of input shape to have value 3, but received input with shape (1, 2, 8, 8)"):
        conv(x(1, 2, 8, 8))
    dense = L.Dense(2)
    dense.build((None, 5))
    with raises(ValueError, f"Input 0 of layer '{dense.name}' is incompatible with the layer: "
                            "expected axis -1"):
        dense(x(1, 4))


@pytest.mark.parametrize("layer, shape", [
    (lambda: L.Conv2D(4, 3), (1, 2, 5, 1)), (lambda: L.Conv1D(4, 3, dilation_rate=3), (1, 6, 1)),
    (lambda: L.Conv3D(1, (1, 1, 4)), (1, 2, 2, 3, 1)), (lambda: L.MaxPooling2D(3), (1, 2, 5, 1)),
    (lambda: L.AveragePooling1D(4), (1, 3, 2)),
])
def test_output_size_zero_or_negative(layer, shape):
    with raises(ValueError, "Computed output size would be zero or negative"):
        layer()(x(*shape))


def test_conv_output_size_checked_on_later_calls_too():
    layer = L.Conv2D(4, 3)
    layer.build((None, 8, 8, 1))
    with raises(ValueError, "Computed output size would be zero or negative"):
        layer(x(1, 2, 8, 1))


@pytest.mark.parametrize("dtype", [bool, np.complex64, object, str])
@pytest.mark.parametrize("layer", [lambda: L.Conv2D(4, 3), lambda: L.MaxPooling2D(), lambda: L.Dense(2),
                                   lambda: L.GlobalMaxPooling2D(), lambda: L.Flatten()])
def test_non_numeric_inputs(dtype, layer):
    data = np.zeros((1, 4, 4, 2)).astype(dtype)
    layer = layer()
    with pytest.raises(TypeError, match="must be a real numeric array"):
        layer(data)
    assert layer.get_weights() == []


def test_weights_errors():
    layer = L.Conv2D(4, 3)
    with raises(ValueError, f"You tried to call `count_params` on layer '{layer.name}', but the layer isn't "
                            "built."):
        layer.count_params()
    layer.build((None, 5, 5, 3))
    with raises(ValueError, f"You called `set_weights(weights)` on layer '{layer.name}' with a weight "
                            "list of length 1, but the layer was expecting 2 weights."):
        layer.set_weights([np.zeros((3, 3, 3, 4))])
    with raises(ValueError, f"Layer {layer.name} weight shape (3, 3, 3, 4) is not compatible with provided "
                            "weight shape (3, 3, 3, 5)."):
        layer.set_weights([np.zeros((3, 3, 3, 5)), np.zeros(4)])
    with raises(TypeError, f"Layer {layer.name}: weight `kernel` must be real numbers"):
        layer.set_weights([np.zeros((3, 3, 3, 4), complex), np.zeros(4)])


def test_mask_shape_checked():
    with raises(ValueError, "Argument `mask` must have shape (batch, steps)"):
        L.GlobalAveragePooling1D()(x(2, 4, 3), mask=np.ones((2, 3)))


def test_sequential_errors():
    with raises(ValueError, "Only instances of `nbconv.layers.Layer` can be added to a Sequential model"):
        Sequential([lambda v: v])
    model = Sequential([L.Dense(2)])
    with raises(ValueError, "You tried to call `count_params`"):
        model.count_params()
    with raises(ValueError, "Argument `batch_size` must be a positive int"):
        model.predict(x(2, 3), batch_size=0)
    with pytest.raises(ValueError, match="has no layers"):
        Sequential()(x(1, 2))
    with pytest.raises(ValueError, match="an InputLayer can only be its first layer"):
        Sequential([L.Input((3,)), L.Input((3,))])
