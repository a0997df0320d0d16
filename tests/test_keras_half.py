"""Half-precision Keras models (dtype policies bfloat16, float16, mixed_*): weights widened to float32
exactly (Keras stores bfloat16 in HDF5 as tagged 2-byte opaque data), computed in float32, one
HalfPrecisionWarning per model; checked against real Keras 3 computing in float32 on the same weights."""
import io
import warnings
import zipfile

import h5py
import keras  # noqa: E402  (a test extra: missing, it fails loudly)
import numpy as np
import pytest

from nbconv import ops  # noqa: E402
from nbconv.keras_dtypes import HalfPrecisionWarning, bfloat16_to_float32  # noqa: E402
from nbconv.models import LoadError, from_keras, load_model  # noqa: E402

K = keras.layers


def _loaded_with_one_warning(load, policy):
    """load() under recorded warnings (pytest.warns would re-raise Keras's own numpy-2 deprecation)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = load()
    ours = [w for w in seen if issubclass(w.category, HalfPrecisionWarning)]
    assert len(ours) == 1 and policy in str(ours[0].message)
    return out


@pytest.fixture(autouse=True)
def _setup():
    with ops.tuning(mode="off"):
        yield
    keras.backend.clear_session()      # Keras's automatic names, as other modules expect them


def _model(policy):
    inp = keras.Input((6, 6, 3))
    y = K.Conv2D(4, 3, padding="same", activation="relu", dtype=policy)(inp)
    y = K.BatchNormalization(dtype=policy)(y)
    y = K.DepthwiseConv2D(3, dtype=policy)(y)
    y = K.GlobalAveragePooling2D(dtype=policy)(y)
    return keras.Model(inp, K.Dense(3, dtype=policy)(y))


def _float32_twin(km):
    """The same graph in float32 with the half model's weights widened exactly."""
    twin = _model("float32")
    twin.set_weights([keras.ops.convert_to_numpy(keras.ops.cast(v, "float32")) for v in km.weights])
    return twin


@pytest.mark.parametrize("policy", ["bfloat16", "mixed_bfloat16", "float16"])
def test_half_precision_models_load_and_compute_in_float32(policy, tmp_path):
    keras.utils.set_random_seed(1)
    km = _model(policy)
    path = tmp_path / "m.keras"
    km.save(path)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 6, 6, 3)).astype("float32")
    ref = _float32_twin(km).predict(x, verbose=0)
    scale = np.abs(ref).max()
    assert scale > 0
    for load in (lambda: load_model(path), lambda: from_keras(km)):
        y = _loaded_with_one_warning(load, policy).predict(x)
        assert y.dtype == np.float32
        assert np.abs(y - ref).max() / scale < 1e-5
    if policy == "bfloat16":           # the file really holds Keras's tagged opaque bfloat16 data
        with zipfile.ZipFile(path) as z, h5py.File(io.BytesIO(z.read("model.weights.h5"))) as f:
            ds = f["layers/conv2d/vars/0"]
            assert (ds.dtype.kind, ds.attrs["dtype"]) == ("V", "bfloat16")


def test_bfloat16_widening_is_exact_and_an_untagged_opaque_dataset_is_refused(tmp_path):
    import ml_dtypes
    v = np.random.default_rng(2).standard_normal(257).astype(ml_dtypes.bfloat16)
    assert np.array_equal(bfloat16_to_float32(v), v.astype(np.float32))
    assert np.array_equal(bfloat16_to_float32(v.view("V2")), v.astype(np.float32))
    keras.utils.set_random_seed(1)
    path, bad = tmp_path / "m.keras", tmp_path / "bad.keras"
    _model("bfloat16").save(path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    buf = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buf, "a") as f:
        del f["layers/conv2d/vars/0"].attrs["dtype"]      # 2-byte opaque data, not tagged bfloat16
    members["model.weights.h5"] = buf.getvalue()
    with zipfile.ZipFile(bad, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    with pytest.raises(LoadError, match="float16/32/64 or bfloat16 only"):
        _loaded_with_one_warning(lambda: load_model(bad), "bfloat16")
