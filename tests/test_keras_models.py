"""Functional models, the layers real CNNs need, and loading Keras 3 models (from memory and `.keras`),
each checked against real Keras 3.15.1 (CPU torch backend) on random inputs."""
import contextlib
import copy
import json
import os
import zipfile

import keras  # noqa: E402  (a test extra: missing, it fails loudly)
import numpy as np
import pytest
from nbconv.reports.model_bench import realistic_batchnorm  # noqa: E402

from nbconv import layers as L  # noqa: E402
from nbconv import ops, reference  # noqa: E402
from nbconv.models import LoadError, Model, Sequential, from_keras, load_model  # noqa: E402

K = keras.layers
TOL = 1e-5


@pytest.fixture(autouse=True)
def _setup():
    with ops.tuning(mode="off"):  # cheap kernels: this module measures correctness, not speed
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


@pytest.mark.parametrize("kwargs", [{}, {"axis": (1, 2)},
                                    {"mean": [0.1, 0.2, 0.3], "variance": [1.0, 2.0, 0.5]},
                                    {"mean": 0.5, "variance": 2.0, "invert": True}])
def test_normalization_matches_keras(kwargs):
    kl, nl = K.Normalization(**kwargs), L.Normalization(**kwargs)
    kl.build((2, 4, 5, 3))
    nl.build((2, 4, 5, 3))
    weights = kl.get_weights()
    if weights:  # adapt()'s state: mean, variance and an int count
        weights = [rand(weights[0].shape, 1), rand(weights[1].shape, 2) + 1.5, weights[2]]
        kl.set_weights(weights)
        nl.set_weights(weights)
    x = rand((2, 4, 5, 3))
    assert reference.rel_error(nl(x), kout(kl, x)) <= TOL
    assert set(nl.get_config()) == set(kl.get_config()) and nl.count_params() == kl.count_params()


@pytest.mark.parametrize("name", ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
                                  "Concatenate"])
def test_merge_layers_match_keras(name):
    xs = [rand((2, 3, 4), 1), rand((2, 3, 4), 2)] + ([] if name == "Subtract" else [rand((2, 3, 4), 3)])
    got, expect = getattr(L, name)()(xs), kout(getattr(K, name)(), xs)
    assert got.shape == expect.shape and reference.rel_error(got, expect) <= TOL
    with pytest.raises(ValueError, match="list"):
        getattr(L, name)()(xs[0])


@pytest.mark.parametrize("name,kwargs", [
    ("ReLU", {"max_value": -1.0}), ("ReLU", {"negative_slope": -1.0}), ("ReLU", {"threshold": -1.0}),
    ("Reshape", {"target_shape": (-1, -1)}), ("ZeroPadding2D", {"padding": (1, 2, 3)})])
def test_bad_arguments_are_refused_as_keras(name, kwargs):
    with pytest.raises(ValueError):
        getattr(K, name)(**kwargs)
    with pytest.raises(ValueError):
        getattr(L, name)(**kwargs)


def summary(model):
    lines = []
    if isinstance(model, keras.Model):
        import io
        from contextlib import redirect_stdout
        from unittest import mock
        with mock.patch.dict(os.environ, {"COLUMNS": "80"}), redirect_stdout(io.StringIO()) as out:
            model.summary()
        return out.getvalue().rstrip("\n")
    model.summary(print_fn=lines.append)
    return lines[0]


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
    L.clear_session()      # automatic names compared with Keras's: as in a fresh process
    keras.backend.clear_session()
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
    assert summary(nm) == summary(km)
    x = L.Input((4,))
    chain = Model(x, L.Dense(2, name="d2")(L.Dense(3, name="d1")(x)), name="chain")
    kx = K.Input((4,))
    assert summary(chain) == summary(keras.Model(kx, K.Dense(2, name="d2")(K.Dense(3, name="d1")(kx)),
                                                 name="chain"))
    with pytest.raises(ValueError, match="2 input"):
        nm(xs[0])


def test_input_is_symbolic_and_sequential_still_accepts_it():
    t = L.Input((4,), dtype="float64")
    assert t.shape == (None, 4) and t.dtype == "float64"
    model = Sequential([L.Input((4,)), L.Dense(2)])
    assert model.predict(rand((3, 4))).shape == (3, 2)
    with pytest.raises(ValueError, match="Graph disconnected"):
        Model(L.Input((4,)), L.Dense(2)(t))


# -- loading: real networks ------------------------------------------------------------------------
# Few and small, for CI time (DenseNet121, Xception at 71 and InceptionV3 at 75 also match, by hand);
# VGG16 without its 120M-parameter top, which would only time Keras's saving.
NETWORKS = [("MobileNetV2", 32, {}), ("MobileNet", 32, {}), ("ResNet50", 32, {}), ("EfficientNetB0", 32, {}),
            ("VGG16", 32, {"include_top": False}), ("MobileNetV3Small", 32, {})]
# slow on a cold Numba cache: deselected by default, run with `pytest -m all_networks`
NETWORKS += [pytest.param(name, size, {}, marks=pytest.mark.all_networks) for name, size in
             [("VGG16", 32), ("DenseNet121", 32), ("Xception", 71), ("InceptionV3", 75)]]


@pytest.mark.parametrize("name,size,kwargs", NETWORKS)
def test_keras_application_loads_and_matches(name, size, kwargs, tmp_path):
    if kwargs.get("include_top", True):
        kwargs = {**kwargs, "classifier_activation": None}  # logits: a softmax would hide errors
    km = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), **kwargs)
    realistic_batchnorm(km)
    path = tmp_path / f"{name}.keras"
    km.save(path)
    loaded, converted = load_model(path), from_keras(km)
    assert [la.name for la in loaded.layers] == [la.name for la in km.layers]
    assert loaded.count_params() == km.count_params()
    for batch in (1, 8):
        x = rand((batch, size, size, 3), batch)
        expect = np.asarray(km.predict(x, verbose=0))
        for model in (loaded, converted):
            got = model.predict(x)
            assert got.shape == expect.shape and reference.rel_error(got, expect) <= 1e-4


def test_sequential_loads(tmp_path):
    km = keras.Sequential([K.Input((8, 8, 2)), K.Conv2D(3, 3), K.BatchNormalization(), K.ReLU(),
                           K.Flatten(), K.Dense(4, activation="softmax")])
    realistic_batchnorm(km)
    km.save(tmp_path / "s.keras")
    x = rand((2, 8, 8, 2))
    for model in (load_model(tmp_path / "s.keras"), from_keras(km)):
        assert isinstance(model, Sequential)
        assert reference.rel_error(model.predict(x), km.predict(x, verbose=0)) <= TOL


def test_keras_operation_nodes_load_and_are_not_layers(tmp_path):
    """`x + 3.0` and `x * (1 / 6)` in a Keras graph are keras.src.ops.numpy nodes (MobileNetV3's
    hard_sigmoid): loaded as such, left out of `layers`, their arguments checked."""
    x = K.Input((5, 5, 2))
    c = K.Conv2D(3, 3, name="c")(x)
    y = K.Multiply(name="hard_swish")([c, K.ReLU(6.0, name="r")(c + 3.0) * (1.0 / 6.0)])
    km = keras.Model(x, 2.0 * y + c)
    km.save(tmp_path / "ops.keras")
    model = load_model(tmp_path / "ops.keras")
    assert [la.name for la in model.layers] == [la.name for la in km.layers]
    inp = rand((2, 5, 5, 2)) * 3
    assert reference.rel_error(model.predict(inp), km.predict(inp, verbose=0)) <= TOL
    with zipfile.ZipFile(tmp_path / "ops.keras") as z:
        members = {n: z.read(n) for n in z.namelist()}
    for bad in ("3", True, [1, 2], float("inf"), None, 10 ** 400):
        config = json.loads(members["config.json"])
        node = next(e for e in config["config"]["layers"] if e["module"] == "keras.src.ops.numpy")
        node["inbound_nodes"][0]["args"][1] = bad
        path = write(tmp_path, {**members, "config.json": json.dumps(config)}, name="bad.keras")
        with pytest.raises(LoadError, match="only layer outputs|must be a tensor|must be finite"):
            load_model(path)


# -- loading: what is refused ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_archive(tmp_path_factory):
    """The members of a small saved Functional model, and its config."""
    x = K.Input((6, 6, 2))
    y = K.Dense(3, activation="relu", name="d")(K.BatchNormalization(name="bn")(K.Conv2D(2, 3, name="c")(x)))
    path = tmp_path_factory.mktemp("small") / "m.keras"
    keras.Model(x, y).save(path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    return members, json.loads(members["config.json"])


def write(tmp_path, members, name="m.keras", compression=zipfile.ZIP_STORED):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", compression) as z:
        for n, data in members.items():  # a fixed date: the same members give the same bytes
            z.writestr(zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0)), data, compress_type=compression)
    return path


def with_config(tmp_path, small_archive, edit):
    members, config = small_archive
    config = json.loads(json.dumps(config))
    edit(config)
    return write(tmp_path, {**members, "config.json": json.dumps(config)})


def layer_entry(config, name):
    return next(e for e in config["config"]["layers"] if e["config"]["name"] == name)


def test_small_archive_loads(tmp_path, small_archive):
    assert load_model(write(tmp_path, small_archive[0])).output_shape == (None, 4, 4, 3)


def _lambda(config):
    entry = layer_entry(config, "d")
    entry.update(class_name="Lambda", config={"name": "d", "function": {"class_name": "__lambda__"}})


def _unknown_key(config):
    layer_entry(config, "c")["config"]["exec"] = "import os"


def _custom(config):
    layer_entry(config, "c").update(module="my_package.layers", registered_name="Custom>Conv2D")


def _custom_activation(config):
    layer_entry(config, "d")["config"]["activation"] = {
        "module": "builtins", "class_name": "function", "config": "my_fn", "registered_name": "function"}


def _huge(config):
    layer_entry(config, "d")["config"]["units"] = 10 ** 12


def _slash_name(config):
    layer_entry(config, "d")["config"]["name"] = "../c"


def _many_layers(config):
    config["config"]["layers"] *= 2000


def _op(config):
    layer_entry(config, "d").update(module="keras.src.ops.numpy", class_name="Add")


def _unlisted_op(config):
    layer_entry(config, "d").update(module="keras.src.ops.numpy", class_name="Subtract", config={"name": "d"})


@pytest.mark.parametrize("edit,match", [
    (_lambda, r"Layer 'd' \(class 'Lambda'\) is not supported"),
    (_unknown_key, r"Layer 'c' \(class 'Conv2D'\): unknown config keys \['exec'\]"),
    (_custom, r"Layer 'c' \(class 'Conv2D'\).*my_package"),
    (_custom_activation, r"Layer 'd' \(class 'Dense'\).*builtins"),
    (_huge, "size limit"),
    (_op, r"class 'Add'\): an operation entry holds exactly a `name`"),
    (_unlisted_op, r"class 'Subtract'\).*keras.src.ops.numpy"),
    (_slash_name, "without `/`"), (_many_layers, "at most 5000 layers"),
])
def test_unsupported_configs_are_refused_naming_the_layer(tmp_path, small_archive, edit, match):
    with pytest.raises(LoadError, match=match):
        load_model(with_config(tmp_path, small_archive, edit))


def _h5_edit(tmp_path, small_archive, edit):
    import h5py
    members = dict(small_archive[0])
    h5 = tmp_path / "w.h5"
    h5.write_bytes(members["model.weights.h5"])
    with h5py.File(h5, "r+") as f:
        edit(f)
    members["model.weights.h5"] = h5.read_bytes()
    return write(tmp_path, members)


def _wrong_shape(f):
    del f["layers/dense/vars/0"]
    f["layers/dense/vars/0"] = np.zeros((3, 3), "float32")


def _int_weights(f):
    del f["layers/dense/vars/1"]
    f["layers/dense/vars/1"] = np.zeros(3, "int32")


def _soft_link(f):
    import h5py
    del f["layers/dense/vars/1"]
    f["layers/dense/vars/1"] = h5py.SoftLink("/layers/conv2d/vars/1")


def _external_link(f):
    import h5py
    del f["layers/dense/vars/1"]
    f["layers/dense/vars/1"] = h5py.ExternalLink("/etc/passwd", "/x")


def _external_storage(f):
    del f["layers/dense/vars/1"]
    f.create_dataset("layers/dense/vars/1", shape=(3,), dtype="float32", external=[("/etc/hostname", 0, 12)])


def _extra_group(f):
    f["layers/evil/vars/0"] = np.zeros(2, "float32")


@pytest.mark.parametrize("edit,match", [
    (_wrong_shape, r"variable 0 has shape \(3, 3\); its config implies \(2, 3\)"),
    (_int_weights, "float16/32/64 or bfloat16 only"), (_soft_link, "SoftLink"),
    (_external_link, "ExternalLink"),
    (_external_storage, "external"), (_extra_group, "belong to no layer"),
])
def test_unsafe_weights_files_are_refused(tmp_path, small_archive, edit, match):
    with pytest.raises(LoadError, match=match):
        load_model(_h5_edit(tmp_path, small_archive, edit))


@pytest.mark.parametrize("name", ["../config.json", "/abs/file", "assets/../../x"])
def test_unsafe_member_names_are_refused(tmp_path, small_archive, name):
    with pytest.raises(LoadError, match="Unsafe member name"):
        load_model(write(tmp_path, {**small_archive[0], name: b"x"}))


def test_zip_bomb_is_refused_before_it_is_inflated(tmp_path, small_archive):
    members = {**small_archive[0], "config.json": b" " * (20 << 20)}
    with pytest.raises(LoadError, match="compressed too much"):
        load_model(write(tmp_path, members, compression=zipfile.ZIP_DEFLATED))


def test_missing_h5py_names_the_extra(tmp_path, small_archive, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "h5py", None)
    with pytest.raises(ImportError, match=r"nbconv\[keras\]"):
        load_model(write(tmp_path, small_archive[0]))


# -- fuzzing: anything malformed gives LoadError (or loads), never another error ---------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
FUZZ = settings(max_examples=int(os.environ.get("NBCONV_FUZZ_EXAMPLES", 40)))  # more: a longer local run


def loads_or_refuses(path):
    with contextlib.suppress(LoadError):
        load_model(path)


@FUZZ
@given(target=st.sampled_from(["archive", "model.weights.h5"]), cut=st.none() | st.integers(0, 10 ** 6),
       edits=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), max_size=8))
def test_fuzz_truncated_and_mutated_archives(tmp_path_factory, small_archive, target, cut, edits):
    """The archive's bytes, or (past the zip's CRCs) the weights file's bytes, truncated and mutated."""
    raw = (small_archive[0][target] if target != "archive"
           else write(tmp_path_factory.mktemp("f"), small_archive[0]).read_bytes())
    mutated = bytearray(raw)
    for pos, value in edits:
        mutated[pos % len(raw)] = value
    mutated = bytes(mutated if cut is None else mutated[:cut % len(raw)])
    if target == "archive":
        path = tmp_path_factory.mktemp("f") / "m.keras"
        path.write_bytes(mutated)
    else:
        path = write(tmp_path_factory.mktemp("f"), {**small_archive[0], target: mutated})
    loads_or_refuses(path)


def _leaves(value, path=()):
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))] + [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))] + [path]
    return [path]


@FUZZ
@given(whole=st.none() | JSON,
       edits=st.lists(st.tuples(st.integers(0, 10 ** 6), JSON), min_size=1, max_size=3))
def test_fuzz_configs(tmp_path_factory, small_archive, whole, edits):
    """A random JSON config, or the real one with 1-3 random nodes replaced by random JSON."""
    members, config = small_archive
    config = json.loads(json.dumps(config)) if whole is None else whole
    for index, value in edits if whole is None else ():
        paths = [p for p in _leaves(config) if p]
        path = paths[index % len(paths)]
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = copy.deepcopy(value)  # later edits must not touch drawn values
    loads_or_refuses(write(tmp_path_factory.mktemp("f"), {**members, "config.json": json.dumps(config)}))


IMPLIED = {"dense/vars/0": (2, 3), "conv2d/vars/1": (2,), "batch_normalization/vars/3": (2,)}


@FUZZ
@given(shape=st.lists(st.integers(0, 5), max_size=4), name=st.sampled_from(sorted(IMPLIED)))
def test_fuzz_dataset_shapes(tmp_path_factory, small_archive, shape, name):
    def edit(f):
        del f["layers/" + name]
        f["layers/" + name] = np.zeros(shape, "float32")
    path = _h5_edit(tmp_path_factory.mktemp("f"), small_archive, edit)
    if tuple(shape) == IMPLIED[name]:
        load_model(path)
    else:
        with pytest.raises(LoadError, match="shape"):
            load_model(path)


# -- legacy .h5 as Keras 3 writes it -------------------------------------------------------------------
@pytest.fixture(scope="module")
def legacy_h5(tmp_path_factory):
    x = K.Input((6, 6, 2))
    c = K.Conv2D(2, 3, name="c")(x)
    y = K.Dense(3, activation="relu", name="d")(K.Add(name="add")([K.BatchNormalization(name="bn")(c), c]))
    km = keras.Model(x, y)
    realistic_batchnorm(km)
    path = tmp_path_factory.mktemp("h5") / "m.h5"
    km.save(path)
    return km, path.read_bytes()


def test_legacy_h5_written_by_keras3_loads(tmp_path, legacy_h5):
    km, raw = legacy_h5
    (tmp_path / "m.h5").write_bytes(raw)
    x = rand((2, 6, 6, 2))
    assert reference.rel_error(load_model(tmp_path / "m.h5").predict(x), km.predict(x, verbose=0)) <= TOL


def _keras2(f):
    f.attrs["keras_version"] = "2.15.0"


def _absolute_weight_name(f):
    f["model_weights/d"].attrs["weight_names"] = [b"/model_weights/c/c/kernel", b"d/bias"]


def _legacy_soft_link(f):
    import h5py
    del f["model_weights/d/d/bias"]
    f["model_weights/d/d/bias"] = h5py.SoftLink("/model_weights/c/c/bias")


def _legacy_wrong_shape(f):
    del f["model_weights/d/d/bias"]
    f["model_weights/d/d/bias"] = np.zeros(4, "float32")


@pytest.mark.parametrize("edit,match", [
    (_keras2, "Keras 3's form in a Keras 1/2 file"), (_absolute_weight_name, "bad weight name"),
    (_legacy_soft_link, "SoftLink"), (_legacy_wrong_shape, r"shape \(4,\)")])
def test_legacy_h5_refusals(tmp_path, legacy_h5, edit, match):
    import h5py
    path = tmp_path / "m.h5"
    path.write_bytes(legacy_h5[1])
    with h5py.File(path, "r+") as f:
        edit(f)
    with pytest.raises(LoadError, match=match):
        load_model(path)


@FUZZ
@given(cut=st.none() | st.integers(0, 10 ** 6),
       edits=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), min_size=1, max_size=8))
def test_fuzz_legacy_h5(tmp_path_factory, legacy_h5, cut, edits):
    raw = bytearray(legacy_h5[1])
    for pos, value in edits:
        raw[pos % len(raw)] = value
    path = tmp_path_factory.mktemp("f") / "m.h5"
    path.write_bytes(bytes(raw if cut is None else raw[:cut % len(raw)]))
    loads_or_refuses(path)


# -- a whole model measured: nbconv bench --model, nbconv tune --model PATH ---------------------------
def test_bench_and_tune_a_saved_model(tmp_path, capsys):
    import torch

    from nbconv import cli, threads
    x = K.Input((8, 8, 3))
    y = K.ReLU(6.0)(K.BatchNormalization()(K.Conv2D(4, 3, padding="same", use_bias=False)(x)))
    y = K.Add()([y, K.BatchNormalization()(K.DepthwiseConv2D(3, padding="same")(y))])
    km = keras.Model(x, K.Dense(3)(K.GlobalAveragePooling2D()(y * 0.5)))
    realistic_batchnorm(km)
    km.save(tmp_path / "m.keras")
    before = threads.counts()["numba"], torch.get_num_threads()
    try:
        assert cli.main(["bench", "--model", str(tmp_path / "m.keras"), "--batch", "1,2", "--samples", "1",
                         "--min-time", "0", "--threads", "1"]) == 0
    finally:
        threads.set_threads(before[0])
        torch.set_num_threads(before[1])
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("m.keras")]
    assert [r[1] for r in rows] == ["1", "2"]
    for r in rows:       # error vs Keras, then nbconv, Keras and PyTorch images/s: all measured
        assert float(r[2]) <= TOL and all(float(v) > 0 for v in r[3:6])
    assert cli.main(["tune", "--model", str(tmp_path / "m.keras"), "--batch", "1,2", "--no-peak"]) == 0
    out = capsys.readouterr().out
    assert "conv2d" in out and "depthwise_conv2d" in out and "dense" in out
    with pytest.raises(SystemExit, match="several batch sizes"):
        cli.main(["tune", "--batch", "1,2"])
    with pytest.raises(SystemExit, match="cannot load model"):
        cli.main(["tune", "--model", str(tmp_path / "missing.keras")])
