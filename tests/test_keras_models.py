"""Functional models, the layers real CNNs need, and loading Keras 3 models (from memory and `.keras`),
each checked against real Keras 3.15.1 (CPU torch backend) on random inputs."""
import json
import warnings
import zipfile

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

from nbconv import layers as L  # noqa: E402
from nbconv import ops, reference  # noqa: E402
from nbconv.models import LoadError, Model, Sequential, from_keras, load_model  # noqa: E402

K = keras.layers
TOL = 1e-5


@pytest.fixture(autouse=True)
def _setup():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with ops.tuning(mode="off"):
            yield


def rand(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype("float32")


def kout(layer_or_model, x):
    return np.asarray(keras.ops.convert_to_numpy(layer_or_model(x)))


LAYERS = [
    ("BatchNormalization", {}, (2, 5, 5, 3)),
    ("BatchNormalization", {"axis": 1, "center": False}, (2, 4, 6)),
    ("BatchNormalization", {"scale": False, "epsilon": 0.1}, (3, 7)),
    ("ZeroPadding2D", {"padding": ((1, 2), (0, 3))}, (2, 4, 5, 3)),
    ("ZeroPadding2D", {"padding": 2, "data_format": "channels_first"}, (2, 3, 4, 5)),
    ("ZeroPadding1D", {"padding": (2, 1)}, (2, 4, 3)),
    ("ZeroPadding3D", {"padding": 1}, (1, 2, 3, 4, 2)),
    ("Cropping2D", {"cropping": ((1, 0), (2, 1))}, (2, 5, 6, 3)),
    ("Cropping1D", {"cropping": (1, 2)}, (2, 6, 3)),
    ("Cropping3D", {"cropping": 1, "data_format": "channels_first"}, (1, 2, 4, 5, 6)),
    ("ReLU", {}, (2, 9)),
    ("ReLU", {"max_value": 6.0}, (2, 9)),
    ("ReLU", {"max_value": 0.5, "negative_slope": 0.1, "threshold": 0.2}, (2, 9)),
    ("ReLU", {"negative_slope": 0.3}, (2, 9)),
    ("ReLU", {"threshold": 0.3}, (2, 9)),
    ("Reshape", {"target_shape": (3, -1)}, (2, 4, 3)),
    ("UpSampling2D", {"size": (2, 3)}, (2, 3, 4, 2)),
    ("UpSampling2D", {"data_format": "channels_first"}, (2, 3, 4, 2)),
    ("Rescaling", {"scale": 1 / 127.5, "offset": -1.0}, (2, 4, 3)),
    ("Softmax", {}, (2, 3, 5)),
    ("Softmax", {"axis": 1}, (2, 3, 5)),
]


@pytest.mark.parametrize("name,kwargs,shape", LAYERS)
def test_layer_matches_keras(name, kwargs, shape):
    kl, nl = getattr(K, name)(**kwargs), getattr(L, name)(**kwargs)
    x = rand(shape) * 3
    kl.build(shape)
    weights = [rand(w.shape, i + 1) + (1.5 if "variance" in v.path else 0)
               for i, (w, v) in enumerate(zip(kl.get_weights(), kl.weights, strict=True))]
    kl.set_weights(weights)
    nl.build(shape)
    nl.set_weights(weights)
    got, expect = nl(x), kout(kl, x)
    assert got.shape == expect.shape and got.dtype == expect.dtype
    assert reference.rel_error(got, expect) <= TOL
    assert nl.compute_output_shape((None, *shape[1:])) == tuple(kl.compute_output_shape((None, *shape[1:])))
    assert set(nl.get_config()) == set(kl.get_config())
    assert nl.count_params() == kl.count_params()
    assert len(nl.trainable_weights) == len(kl.trainable_weights)


@pytest.mark.parametrize("name", ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"])
def test_merge_layers_match_keras(name):
    xs = [rand((2, 3, 4), 1), rand((2, 3, 4), 2)] + ([] if name == "Subtract" else [rand((2, 3, 4), 3)])
    got, expect = getattr(L, name)()(xs), kout(getattr(K, name)(), xs)
    assert got.shape == expect.shape and reference.rel_error(got, expect) <= TOL
    with pytest.raises(ValueError, match="list"):
        getattr(L, name)()(xs[0])


@pytest.mark.parametrize("name,kwargs", [("ReLU", {"max_value": -1.0}), ("ReLU", {"negative_slope": -1.0}),
                                         ("ReLU", {"threshold": -1.0}), ("Reshape", {"target_shape": (-1, -1)}),
                                         ("ZeroPadding2D", {"padding": (1, 2, 3)})])
def test_bad_arguments_are_refused_as_keras(name, kwargs):
    with pytest.raises(ValueError):
        getattr(K, name)(**kwargs)
    with pytest.raises(ValueError):
        getattr(L, name)(**kwargs)


def _graph(lib):
    """Two inputs, a shared layer called twice, Add/Concatenate/Multiply: a small DAG."""
    a, b = lib.Input((6, 6, 3), name="a"), lib.Input((6, 6, 3), name="b")
    shared = lib.Conv2D(4, 3, padding="same", name="shared")
    x = lib.BatchNormalization(name="bn")(shared(a))
    y = lib.ReLU(6.0, name="relu")(shared(b))
    s = lib.Add(name="add")([x, y])
    c = lib.Concatenate(name="cat")([s, lib.Multiply(name="mul")([x, y])])
    c = lib.ZeroPadding2D(1, name="pad")(c)
    out = lib.Dense(5, name="dense")(lib.GlobalAveragePooling2D(name="gap")(c))
    return [a, b], [out, s]


def test_functional_model_matches_keras_and_shares_weights():
    km = keras.Model(*_graph(K))
    nm = Model(*_graph(L))
    assert [la.name for la in nm.layers] == [la.name for la in km.layers]
    weights = [rand(w.shape, i) + 1 for i, w in enumerate(km.get_weights())]
    km.set_weights(weights)
    nm.set_weights(weights)
    assert nm.count_params() == km.count_params() and len(nm.get_weights()) == len(weights)
    xs = [rand((3, 6, 6, 3), 7), rand((3, 6, 6, 3), 8)]
    for got, expect in zip(nm.predict(xs, batch_size=2), km.predict(xs, verbose=0), strict=True):
        assert reference.rel_error(got, expect) <= TOL
    lines = []
    nm.summary(print_fn=lines.append)
    assert "shared (Conv2D)" in lines[0] and f"Total params: {km.count_params():,}" in lines[0]
    with pytest.raises(ValueError, match="2 input"):
        nm(xs[0])


def test_input_is_symbolic_and_sequential_still_accepts_it():
    t = L.Input((4,), dtype="float64")
    assert t.shape == (None, 4) and t.dtype == "float64"
    model = Sequential([L.Input((4,)), L.Dense(2)])
    assert model.predict(rand((3, 4))).shape == (3, 2)
    with pytest.raises(ValueError, match="Graph disconnected"):
        Model(L.Input((4,)), L.Dense(2)(t))
