"""Legacy `.h5` files from Keras 1, Keras 2 and tf-keras 2.x, written here with h5py in the layout
Keras 2's `engine/saving.py` (and Keras 1.2's `models.py`) wrote, and loaded by nbconv. The oracle is
real Keras 3 (torch backend) built with the same weights, converted in the test by explicit transposes
and flips (Keras 3's own Keras-2 loader fails on `batch_input_shape`, so it is not used)."""

import contextlib
import json
import os

import h5py
import keras  # a test extra
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbconv import layers as L
from nbconv import ops, reference
from nbconv.models import LoadError, load_model

K = keras.layers
TOL = 1e-5
FUZZ = settings(max_examples=int(os.environ.get("NBCONV_FUZZ_EXAMPLES", 40)), deadline=None)


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
    return np.random.default_rng(seed + sum(shape)).uniform(-1, 1, shape).astype("float32")


def write_h5(path, config, weights, version="2.2.4", backend="tensorflow", keras1=False):
    """`weights`: {layer name: [(weight name, array)]} in `layer_names` order. Keras 1 wrote neither
    `backend` nor a `keras_version` on the weights group."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = version.encode()
        if not keras1:
            f.attrs["backend"] = backend.encode()
        f.attrs["model_config"] = json.dumps(config).encode()
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [n.encode() for n in weights]
        if not keras1:
            group.attrs["backend"], group.attrs["keras_version"] = backend.encode(), version.encode()
        for name, values in weights.items():
            g = group.create_group(name)
            g.attrs["weight_names"] = [n.encode() for n, _ in values]
            for n, v in values:
                g.create_dataset(n, data=v)
    return path


def _plain(value):
    """Keras 3 nested objects as Keras 2 serialised them: no `module`/`registered_name`."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy":
            return value["config"]["name"]
        return {k: _plain(v) for k, v in value.items() if k not in ("module", "registered_name")}
    return [_plain(v) for v in value] if isinstance(value, list) else value


def keras2_functional(km, tf_keras=True):
    """The Keras 2 / tf-keras `.h5` config of a Keras 3 functional model: nested-list inbound nodes,
    InputLayer `batch_input_shape`, and (tf-keras) Conv's `groups` inherited by transposed/depthwise."""
    config = json.loads(json.dumps(km.get_config()))
    layers = []
    for e in config["layers"]:
        c = _plain(e["config"])
        if e["class_name"] == "InputLayer":
            c = {
                "batch_input_shape": c["batch_shape"],
                "dtype": c["dtype"],
                "sparse": False,
                "name": c["name"],
            }
        elif tf_keras and e["class_name"] in ("DepthwiseConv2D", "Conv2DTranspose"):
            c["groups"] = 1
        nodes = []
        for node in e["inbound_nodes"]:
            arg = node["args"][0]
            refs = arg if isinstance(arg, list) else [arg]
            nodes.append([[*t["config"]["keras_history"], {}] for t in refs])
        layers.append({"name": e["name"], "class_name": e["class_name"], "config": c, "inbound_nodes": nodes})
    return {
        "class_name": "Model",
        "config": {
            "name": config["name"],
            "layers": layers,
            "input_layers": config["input_layers"],
            "output_layers": config["output_layers"],
        },
    }


def keras2_weights(km):
    return {
        la.name: [(f"{la.name}/{v.path.split('/')[-1]}:0", np.asarray(v.numpy())) for v in la.weights]
        for la in km.layers
    }


def realistic(km):
    for la in km.layers:
        la.set_weights(
            [
                rand(*w.shape, seed=i + 7) + (1.5 if "variance" in w.path else 0)
                for i, w in enumerate(la.weights)
            ]
        )
    return km


@pytest.fixture(scope="module")
def tf_keras_file(tmp_path_factory):
    x = K.Input((6, 6, 3), name="img")
    a = K.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    b = K.BatchNormalization(name="bn")(a)
    c = K.DepthwiseConv2D(3, padding="same", name="dw")(b)
    shared = K.Conv2D(4, 1, name="pw")  # two inbound nodes: the second is referred to as ["pw", 1, 0]
    d = K.Concatenate(name="cat")([K.Add(name="add")([shared(b), shared(c)]), a])
    e = K.Conv2DTranspose(2, 3, strides=2, name="up")(d)
    y = K.Dense(3, activation="softmax", name="head")(K.GlobalAveragePooling2D(name="gap")(e))
    km = realistic(keras.Model(x, y))
    path = write_h5(
        tmp_path_factory.mktemp("k2") / "m.h5", keras2_functional(km), keras2_weights(km), version="2.15.0"
    )
    return km, path


def test_tf_keras_functional_file_matches_keras(tf_keras_file):
    km, path = tf_keras_file
    model = load_model(path)
    assert [la.name for la in model.layers] == [la.name for la in km.layers]
    x = rand(2, 6, 6, 3)
    assert reference.rel_error(model.predict(x), km.predict(x, verbose=0)) <= TOL


def test_keras1_functional_file(tmp_path, tf_keras_file):
    """Keras 1's functional form: `Model`, 3-element node references, `input_dtype`; its 'tf'
    Deconvolution2D kernels were (rows, cols, in, filters)."""
    km, _ = tf_keras_file
    config, weights = keras2_functional(km, tf_keras=False), keras2_weights(km)
    for entry in config["config"]["layers"]:
        entry["inbound_nodes"] = [[ref[:3] for ref in node] for node in entry["inbound_nodes"]]
        if entry["class_name"] == "InputLayer":
            entry["config"]["input_dtype"] = entry["config"].pop("dtype")
    name, kernel = weights["up"][0]
    weights["up"][0] = (name, kernel.transpose(0, 1, 3, 2))
    model = load_model(write_h5(tmp_path / "k1.h5", config, weights, version="1.2.2", keras1=True))
    x = rand(2, 6, 6, 3)
    assert reference.rel_error(model.predict(x), km.predict(x, verbose=0)) <= TOL


def test_chunked_name_attributes(tmp_path, tf_keras_file):
    """Keras 2 split attributes larger than HDF5's header limit into `layer_names0`, `layer_names1`..."""
    km, raw = tf_keras_file
    path = tmp_path / "m.h5"
    path.write_bytes(raw.read_bytes())
    with h5py.File(path, "r+") as f:
        group = f["model_weights"]
        names = np.array([str(n).encode() for n in group.attrs.pop("layer_names")])
        group.attrs["layer_names0"], group.attrs["layer_names1"] = names[:4], names[4:]
        conv = f["model_weights/conv"]
        weight_names = np.array([str(n).encode() for n in conv.attrs.pop("weight_names")])
        conv.attrs["weight_names0"], conv.attrs["weight_names1"] = weight_names[:1], weight_names[1:]
    x = rand(1, 6, 6, 3)
    assert reference.rel_error(load_model(path).predict(x), km.predict(x, verbose=0)) <= TOL


KERAS2_OBJECTS = {"bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
                  "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
                  "bias_constraint": None}
KERAS1_OBJECTS = {"W_regularizer": None, "b_regularizer": None, "activity_regularizer": None,
                  "W_constraint": None, "b_constraint": None, "bias": True}
KERAS224_LAYERS = [  # Keras 2.2.4 wrote Sequential configs as a bare list
    {
        "class_name": "Conv2D",
        "config": {
            "name": "conv2d_1",
            "trainable": True,
            "batch_input_shape": [None, 8, 8, 3],
            "dtype": "float32",
            "filters": 4,
            "kernel_size": [3, 3],
            "strides": [1, 1],
            "padding": "same",
            "data_format": "channels_last",
            "dilation_rate": [1, 1],
            "activation": "relu",
            "use_bias": True,
            "kernel_initializer": {
                "class_name": "VarianceScaling",
                "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None},
            },
            **KERAS2_OBJECTS,
        },
    },
    {
        "class_name": "MaxPooling2D",
        "config": {
            "name": "max_pooling2d_1",
            "trainable": True,
            "pool_size": [2, 2],
            "padding": "valid",
            "strides": [2, 2],
            "data_format": "channels_last",
        },
    },
    {
        "class_name": "Flatten",
        "config": {"name": "flatten_1", "trainable": True, "data_format": "channels_last"},
    },
    {
        "class_name": "Activation",
        "config": {"name": "activation_1", "trainable": True, "activation": "hard_sigmoid"},
    },
    {
        "class_name": "Dense",
        "config": {
            "name": "dense_1",
            "trainable": True,
            "units": 5,
            "activation": "softmax",
            "use_bias": True,
            "kernel_initializer": {
                "class_name": "VarianceScaling",
                "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "normal", "seed": None},
            },
            **KERAS2_OBJECTS,
        },
    },
]


def keras2_hard_sigmoid(x):
    return np.clip(0.2 * x + 0.5, 0, 1)


@pytest.mark.parametrize("form", ["list (Keras <= 2.2.4)", "dict (Keras 2.2.5+, tf-keras)"])
def test_keras2_sequential_file_matches_keras(tmp_path, form):
    config = {
        "class_name": "Sequential",
        "config": KERAS224_LAYERS
        if form.startswith("list")
        else {"name": "sequential_1", "layers": KERAS224_LAYERS},
    }
    kernel, bias, dense, dbias = rand(3, 3, 3, 4), rand(4), rand(64, 5), rand(5)
    weights = {
        "conv2d_1": [("conv2d_1/kernel:0", kernel), ("conv2d_1/bias:0", bias)],
        "max_pooling2d_1": [],
        "flatten_1": [],
        "activation_1": [],
        "dense_1": [("dense_1/kernel:0", dense), ("dense_1/bias:0", dbias)],
    }
    model = load_model(write_h5(tmp_path / "m.h5", config, weights))
    assert [la.name for la in model.layers] == list(weights)
    features = keras.Sequential(
        [K.Input((8, 8, 3)), K.Conv2D(4, 3, padding="same", activation="relu"), K.MaxPooling2D(), K.Flatten()]
    )
    features.layers[0].set_weights([kernel, bias])
    x = rand(2, 8, 8, 3)
    logits = keras2_hard_sigmoid(np.asarray(features.predict(x, verbose=0), np.float64)) @ dense + dbias
    expect = np.exp(logits - logits.max(1, keepdims=True))
    assert reference.rel_error(model.predict(x), expect / expect.sum(1, keepdims=True)) <= TOL


def keras1_conv_model(tmp_path):
    """A Keras 1.2 (Theano-style 'th' ordering) Sequential: Convolution2D, BN, Deconvolution2D,
    Flatten, Dropout and Dense(hard_sigmoid), with the Keras 1 weight layouts."""
    w1, b1 = rand(4, 3, 3, 3), rand(4)  # (nb_filter, stack, rows, cols)
    gamma, beta, mean, var = rand(4) + 1.5, rand(4), rand(4), rand(4) + 1.5
    w2, b2 = rand(2, 4, 3, 3), rand(2)  # Deconvolution2D 'th': (nb_filter, stack, rows, cols)
    w3, b3 = rand(2 * 18 * 18, 3), rand(3)
    layers = [
        {
            "class_name": "Convolution2D",
            "config": {
                "name": "convolution2d_1",
                "trainable": True,
                "batch_input_shape": [None, 3, 8, 8],
                "input_dtype": "float32",
                "nb_filter": 4,
                "nb_row": 3,
                "nb_col": 3,
                "init": "glorot_uniform",
                "activation": "relu",
                "border_mode": "same",
                "subsample": [1, 1],
                "dim_ordering": "th",
                **KERAS1_OBJECTS,
            },
        },
        {
            "class_name": "BatchNormalization",
            "config": {
                "name": "batchnormalization_1",
                "trainable": True,
                "epsilon": 0.001,
                "mode": 0,
                "axis": 1,
                "gamma_regularizer": None,
                "beta_regularizer": None,
                "momentum": 0.99,
            },
        },
        {
            "class_name": "Deconvolution2D",
            "config": {
                "name": "deconvolution2d_1",
                "trainable": True,
                "nb_filter": 2,
                "nb_row": 3,
                "nb_col": 3,
                "init": "uniform",
                "activation": "linear",
                "border_mode": "valid",
                "subsample": [2, 2],
                "dim_ordering": "th",
                "output_shape": [None, 2, 18, 18],
                **KERAS1_OBJECTS,
            },
        },
        {"class_name": "Flatten", "config": {"name": "flatten_1", "trainable": True}},
        {"class_name": "Dropout", "config": {"name": "dropout_1", "trainable": True, "p": 0.5}},
        {
            "class_name": "Dense",
            "config": {
                "name": "dense_1",
                "trainable": True,
                "output_dim": 3,
                "init": "glorot_uniform",
                "activation": "hard_sigmoid",
                **KERAS1_OBJECTS,
                "input_dim": 648,
            },
        },
    ]
    weights = {
        "convolution2d_1": [("convolution2d_1_W", w1), ("convolution2d_1_b", b1)],
        "batchnormalization_1": [
            ("batchnormalization_1_gamma", gamma),
            ("batchnormalization_1_beta", beta),
            ("batchnormalization_1_running_mean", mean),
            ("batchnormalization_1_running_std", var),
        ],
        "deconvolution2d_1": [("deconvolution2d_1_W", w2), ("deconvolution2d_1_b", b2)],
        "flatten_1": [],
        "dropout_1": [],
        "dense_1": [("dense_1_W", w3), ("dense_1_b", b3)],
    }
    path = write_h5(
        tmp_path / "k1.h5",
        {"class_name": "Sequential", "config": layers},
        weights,
        version="1.2.2",
        keras1=True,
    )
    oracle = keras.Sequential(
        [
            K.Input((3, 8, 8)),
            K.Conv2D(4, 3, padding="same", activation="relu", data_format="channels_first"),
            K.BatchNormalization(axis=1, epsilon=1e-3),
            K.Conv2DTranspose(2, 3, strides=2, output_padding=1, data_format="channels_first"),
            K.Flatten(),
            K.Dense(3),
        ]
    )
    for la, values in zip(
        oracle.layers,
        [
            [w1.transpose(2, 3, 1, 0), b1],
            [gamma, beta, mean, var],
            [w2.transpose(2, 3, 0, 1), b2],
            [],
            [w3, b3],
        ],
        strict=True,
    ):
        la.set_weights(values)
    return path, oracle


def test_keras1_file_converts_layouts_and_arguments(tmp_path):
    path, oracle = keras1_conv_model(tmp_path)
    model = load_model(path)
    conv, _, deconv, *_ = model.layers
    assert (conv.kernel_size, conv.padding, conv.data_format) == ((3, 3), "same", "channels_first")
    assert (deconv.strides, deconv.output_padding) == ((2, 2), (1, 1))
    x = rand(2, 3, 8, 8)
    expect = keras2_hard_sigmoid(np.asarray(oracle.predict(x, verbose=0), np.float64))
    assert reference.rel_error(model.predict(x), expect) <= TOL


@pytest.mark.parametrize(
    "layout", ["keras 1.1 (length, 1, input_dim, nb_filter)", "keras 1.0 (nb_filter, input_dim, length, 1)"]
)
def test_keras1_conv1d_kernels(tmp_path, layout):
    w, b = rand(5, 1, 2, 3), rand(3)
    stored = w if layout.startswith("keras 1.1") else w.transpose(3, 2, 0, 1)
    layers = [
        {
            "class_name": "Convolution1D",
            "config": {
                "name": "convolution1d_1",
                "trainable": True,
                "batch_input_shape": [None, 10, 2],
                "input_dtype": "float32",
                "nb_filter": 3,
                "filter_length": 5,
                "init": "uniform",
                "activation": "linear",
                "border_mode": "valid",
                "subsample_length": 2,
                **KERAS1_OBJECTS,
                "input_dim": 2,
                "input_length": 10,
            },
        }
    ]
    path = write_h5(
        tmp_path / "c1.h5",
        {"class_name": "Sequential", "config": layers},
        {"convolution1d_1": [("convolution1d_1_W", stored), ("convolution1d_1_b", b)]},
        version="1.2.2",
        keras1=True,
    )
    oracle = keras.Sequential([K.Input((10, 2)), K.Conv1D(3, 5, strides=2)])
    oracle.layers[0].set_weights([w[:, 0], b])
    x = rand(2, 10, 2)
    assert reference.rel_error(load_model(path).predict(x), oracle.predict(x, verbose=0)) <= TOL


def test_theano_backend_kernels_are_flipped(tmp_path):
    """Keras 2 files from the Theano backend hold true-convolution kernels: flipped, as Keras 2 did."""
    x = K.Input((3, 7, 7))
    km = realistic(keras.Model(x, K.Conv2D(2, (3, 2), data_format="channels_first", name="c")(x)))
    config, weights = keras2_functional(km), keras2_weights(km)
    kernel = weights["c"][0][1]
    flipped = kernel[::-1, ::-1].copy()
    weights["c"][0] = ("c/kernel:0", flipped)
    model = load_model(write_h5(tmp_path / "th.h5", config, weights, backend="theano"))
    xs = rand(2, 3, 7, 7)
    assert reference.rel_error(model.predict(xs), km.predict(xs, verbose=0)) <= TOL
    np.testing.assert_array_equal(model.layers[1].get_weights()[0], kernel)
    tf_file = load_model(write_h5(tmp_path / "tf.h5", config, weights, backend="tensorflow"))
    np.testing.assert_array_equal(tf_file.layers[1].get_weights()[0], flipped)  # no flip for TensorFlow


# -- refusals ------------------------------------------------------------------------------------------
def _edit_config(fn):
    def edit(f):
        config = json.loads(f.attrs["model_config"])
        fn(config["config"]["layers"])
        f.attrs["model_config"] = json.dumps(config).encode()

    return edit


def _layer(name):
    return lambda layers: next(e for e in layers if e["name"] == name)


def _lambda(layers):
    _layer("gap")(layers).update(class_name="Lambda", config={"name": "gap", "function": "os.system"})


def _groups(layers):
    _layer("dw")(layers)["config"]["groups"] = 2


def _keras3_entry(layers):
    _layer("dw")(layers)["module"] = "keras.layers"


def _keras3_nodes(layers):
    _layer("dw")(layers)["inbound_nodes"] = [{"args": [], "kwargs": {}}]


def _unknown_key(layers):
    _layer("conv")(layers)["config"]["border_mod"] = "same"


def _soft_link(f):
    del f["model_weights/head/head/bias:0"]
    f["model_weights/head/head/bias:0"] = h5py.SoftLink("/model_weights/up/up/bias:0")


def _wrong_shape(f):
    del f["model_weights/up/up/kernel:0"]
    f["model_weights/up/up/kernel:0"] = np.zeros((3, 3, 12, 2), "float32")


def _missing_layer(f):
    names = [str(n) for n in f["model_weights"].attrs["layer_names"]]
    f["model_weights"].attrs["layer_names"] = np.array([n.encode() for n in names if n != "bn"])  # 'S' dtype


def _int_weights(f):
    del f["model_weights/head/head/bias:0"]
    f["model_weights/head/head/bias:0"] = np.zeros(3, "int32")


def _version(f):
    f.attrs["keras_version"] = b"4.0.0"


@pytest.mark.parametrize(
    "edit,match",
    [
        (_edit_config(_lambda), r"'Lambda'\) is not supported"),
        (_edit_config(_groups), "`groups` other than 1"),
        (_edit_config(_keras3_entry), "a Keras 3 entry"),
        (_edit_config(_keras3_nodes), "Keras 3.s form"),
        (_edit_config(_unknown_key), r"unknown config keys \['border_mod'\]"),
        (_soft_link, "SoftLink"),
        (_wrong_shape, r"\(3, 3, 12, 2\)"),
        (_missing_layer, "not in `layer_names`"),
        (_int_weights, "int32"),
        (_version, "Keras 4.0.0 are not supported"),
    ],
)
def test_keras2_file_refusals(tmp_path, tf_keras_file, edit, match):
    path = tmp_path / "m.h5"
    path.write_bytes(tf_keras_file[1].read_bytes())
    with h5py.File(path, "r+") as f:
        edit(f)
    with pytest.raises(LoadError, match=match):
        load_model(path)


@pytest.mark.parametrize(
    "key,value,match",
    [("mode", 2, "`mode=1` and `mode=2` are no longer supported"), ("gamma_init", "ones", None)],
)
def test_keras1_batchnorm_mode(tmp_path, key, value, match):
    path, _ = keras1_conv_model(tmp_path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"][1]["config"][key] = value
        f.attrs["model_config"] = json.dumps(config).encode()
    if match is None:
        assert load_model(path).layers[1].gamma_initializer is not None
    else:
        with pytest.raises(LoadError, match=match):
            load_model(path)


@pytest.mark.parametrize(
    "output_shape,match",
    [
        ([None, 2, 2, 2], "cannot be produced"),
        ([None, 5, 18, 18], "5 channels but the layer has nb_filter=2"),
        ([None, 2, 18], "must be"),
    ],
)
def test_bad_deconvolution_output_shape_is_refused(tmp_path, output_shape, match):
    path, _ = keras1_conv_model(tmp_path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"][2]["config"]["output_shape"] = output_shape
        f.attrs["model_config"] = json.dumps(config).encode()
    with pytest.raises(LoadError, match=match):
        load_model(path)


# -- fuzzing: only LoadError (or a model) ---------------------------------------------------------------
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def loads_or_refuses(path):
    with contextlib.suppress(LoadError):
        load_model(path)


@FUZZ
@given(
    which=st.sampled_from(["keras 2", "keras 1"]),
    cut=st.none() | st.integers(0, 10**6),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_fuzz_legacy_file_bytes(tmp_path_factory, tf_keras_file, which, cut, edits):
    tmp = tmp_path_factory.mktemp("f")
    raw = bytearray((tf_keras_file[1] if which == "keras 2" else keras1_conv_model(tmp)[0]).read_bytes())
    for pos, value in edits:
        raw[pos % len(raw)] = value
    path = tmp / "m.h5"
    path.write_bytes(bytes(raw if cut is None else raw[: cut % len(raw)]))
    loads_or_refuses(path)


@FUZZ
@given(data=st.data())
def test_fuzz_legacy_configs(tmp_path_factory, tf_keras_file, data):
    """Random JSON in place of the whole config, of one layer entry, or of one value in it."""
    path = tmp_path_factory.mktemp("c") / "m.h5"
    path.write_bytes(tf_keras_file[1].read_bytes())
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        layers = config["config"]["layers"]
        where = data.draw(st.sampled_from(["whole", "entry", "value", "node"]))
        i = data.draw(st.integers(0, len(layers) - 1))
        if where == "whole":
            config = data.draw(JSON)
        elif where == "entry":
            layers[i] = data.draw(JSON)
        elif where == "value":
            key = data.draw(st.sampled_from(sorted(layers[i]["config"])))
            layers[i]["config"][key] = data.draw(JSON)
        else:
            layers[i]["inbound_nodes"] = data.draw(JSON)
        f.attrs["model_config"] = json.dumps(config).encode()
    loads_or_refuses(path)


@FUZZ
@given(shape=st.lists(st.integers(0, 20), max_size=5).map(tuple), keras1=st.booleans())
def test_fuzz_legacy_dataset_shapes(tmp_path_factory, shape, keras1):
    tmp = tmp_path_factory.mktemp("s")
    path = keras1_conv_model(tmp)[0]
    name = "model_weights/deconvolution2d_1/deconvolution2d_1_W"
    with h5py.File(path, "r+") as f:
        if not keras1:
            f["model_weights"].attrs["keras_version"], f["model_weights"].attrs["backend"] = (
                b"2.1.0",
                b"theano",
            )
        del f[name]
        f[name] = np.zeros(shape, "float32")
    if shape in ((2, 4, 3, 3), (3, 3, 2, 4)):  # Keras 1's layout, or Keras 2's fallback transpose of it
        load_model(path)
    else:
        with pytest.raises(LoadError, match="shape"):
            load_model(path)
