"""Sequential: construction, predict, weights, config and Keras 3's summary table."""
import warnings

import numpy as np
import pytest

from nbconv import layers as L
from nbconv import ops
from nbconv.models import Sequential

SPEC_SUMMARY = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ conv2d (Conv2D)                 │ (None, 26, 26, 32)     │           320 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d (MaxPooling2D)    │ (None, 13, 13, 32)     │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ conv2d_1 (Conv2D)               │ (None, 13, 13, 64)     │        18,496 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ global_average_pooling2d        │ (None, 64)             │             0 │
│ (GlobalAveragePooling2D)        │                        │               │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 18,816 (73.50 KB)
 Trainable params: 18,816 (73.50 KB)
 Non-trainable params: 0 (0.00 B)"""


@pytest.fixture(autouse=True)
def _setup():
    L.clear_session()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with ops.tuning(mode="off"):
            yield


def spec_model():
    return Sequential([L.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
                       L.MaxPooling2D((2, 2)), L.Conv2D(64, 3, padding="same"), L.GlobalAveragePooling2D()])


def summary_of(model):
    out = []
    model.summary(print_fn=out.append)
    return "\n".join(out)


def test_summary_matches_keras_text():
    assert summary_of(spec_model()) == SPEC_SUMMARY


def test_summary_unbuilt_long_names_and_memory_units():
    model = Sequential([L.Dense(3)])
    assert summary_of(model).splitlines()[4] == \
        "│ dense (Dense)                   │ ?                      │   0 (unbuilt) │"
    assert summary_of(model).endswith(" Total params: 0 (0.00 B)\n Trainable params: 0 (0.00 B)\n"
                                      " Non-trainable params: 0 (0.00 B)")
    L.clear_session()
    model = Sequential([L.Input((100,)), L.Dense(3000, name="a_very_long_layer_name_that_wraps_around_here")])
    lines = summary_of(model).splitlines()
    # as Keras 3 (rich): a word longer than the column ends in an ellipsis, then the type wraps
    assert lines[4] == "│ a_very_long_layer_name_that_wr… │ (None, 3000)           │       303,000 │"
    assert lines[5] == "│ (Dense)                         │                        │               │"
    assert lines[-3] == " Total params: 303,000 (1.16 MB)"
    model64 = Sequential([L.Input((5,), dtype="float64"), L.Dense(3, dtype="float64")])
    assert summary_of(model64).splitlines()[-3] == " Total params: 18 (144.00 B)"  # 8 bytes a param


def test_summary_prints(capsys):
    spec_model().summary()
    assert capsys.readouterr().out == SPEC_SUMMARY + "\n"


def test_input_shape_warns_like_keras_and_builds():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layer = L.Conv2D(2, 3, input_shape=(8, 8, 1))
    assert [w.category for w in caught] == [UserWarning]
    assert str(caught[0].message).startswith("Do not pass an `input_shape`/`input_dim` argument to a layer.")
    model = Sequential([layer, L.Conv2D(2, 3, input_shape=(99, 99, 9))])  # later input_shape is ignored
    assert model.built and model.count_params() == 20 + 38
    assert Sequential([L.Dense(2, input_dim=5)]).count_params() == 12


def test_add_and_input_first():
    model = Sequential(name="net")
    model.add(L.Input(shape=(6, 2)))
    model.add(L.Conv1D(3, 2))
    assert model.built and model.layers[0].built
    model.add(L.GlobalMaxPooling1D())
    assert model.name == "net" and len(model.layers) == 2
    assert model.count_params() == 2 * 2 * 3 + 3
    assert summary_of(model).splitlines()[6] == \
        "│ global_max_pooling1d            │ (None, 3)              │             0 │"


def test_unbuilt_model_builds_on_first_call():
    model = Sequential([L.Conv2D(2, 3), L.Flatten(), L.Dense(1)])
    assert not model.built
    y = model(np.ones((2, 5, 5, 3), "float32"))
    assert y.shape == (2, 1) and model.built and model.count_params() == 56 + 19
    assert model.input_shape == (None, 5, 5, 3) and model.output_shape == (None, 1)


def test_predict_batches_equal_one_call():
    model = Sequential([L.Input((7, 7, 2)), L.Conv2D(3, 3, activation="relu"), L.MaxPooling2D(),
                        L.Flatten(), L.Dense(2, activation="softmax")])
    x = np.random.default_rng(0).uniform(-1, 1, (5, 7, 7, 2)).astype("float32")
    full = model(x)
    for batch_size in (None, 1, 2, 5, 64):
        np.testing.assert_allclose(model.predict(x, batch_size=batch_size), full, rtol=1e-5, atol=1e-7)
    manual = x
    for layer in model.layers:
        manual = layer(manual)
    np.testing.assert_array_equal(manual, full)
    np.testing.assert_allclose(full.sum(-1), 1, rtol=1e-6)


def test_weights_and_config_round_trip():
    model = spec_model()
    clone = Sequential.from_config(model.get_config())
    assert [type(a) for a in clone.layers] == [type(b) for b in model.layers]
    assert clone.count_params() == model.count_params()
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(1).uniform(-1, 1, (2, 28, 28, 1)).astype("float32")
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))
    assert model.get_config()["layers"][0]["class_name"] == "InputLayer"
    with pytest.raises(ValueError, match="expecting 4 weights"):
        model.set_weights(model.get_weights()[:2])


def test_a_layer_that_does_not_fit_is_not_added():
    model = Sequential([L.Input((4, 4, 1)), L.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="Computed output size would be zero or negative"):
        model.add(L.Conv2D(2, 3))
    assert len(model.layers) == 1 and model.output_shape == (None, 2, 2, 2)
    assert model.predict(np.zeros((0, 4, 4, 1))).shape == (0, 2, 2, 2)


def test_pop_and_get_layer():
    model = Sequential([L.Input((6,)), L.Dense(4, name="hidden"), L.Dense(2)])
    assert model.get_layer("hidden") is model.layers[0] and model.get_layer(index=-1) is model.layers[1]
    last = model.pop()
    assert isinstance(last, L.Dense) and model.output_shape == (None, 4) and model.count_params() == 28
    with pytest.raises(ValueError, match="No such layer: nope"):
        model.get_layer("nope")


def test_input_dtypes():
    assert L.Input((3,), dtype="int32").dtype == "int32"
    model = Sequential([L.Input((3,), dtype="int64"), L.Dense(2, kernel_initializer="ones")])
    np.testing.assert_array_equal(model(np.array([[1, 2, 3]])), [[6.0, 6.0]])
    with pytest.raises(ValueError, match="Argument `dtype` of InputLayer must be a real numeric dtype"):
        L.Input((3,), dtype="bool")
