"""The execution plan's inference rewrites (nbconv.plan): BatchNormalization folded into the
convolution before it, activations fused in place. Outputs equal the layer-by-layer run within float32
rounding (the fold multiplies the kernel by gamma / sqrt(var + eps) before the sums: 1e-5 of the
output's largest magnitude is ~100 float32 ulps at these depths), and the layers stay Keras's."""
import numpy as np
import pytest

from nbconv import layers as L
from nbconv import ops, reference
from nbconv.models import Model

TOL = 1e-5


@pytest.fixture(autouse=True)
def _cheap():
    with ops.tuning(mode="off"):
        yield
    L.clear_session()     # automatic layer names as a fresh process has them, for the next module


def rand(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype("float32")


def realistic(model, seed=0):
    """Random weights and BatchNormalization statistics well away from the identity."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            n = layer.moving_mean.shape[0]
            stats = {"gamma": rng.uniform(0.3, 2, n), "beta": rng.uniform(-1, 1, n),
                     "moving_mean": rng.uniform(-1, 1, n), "moving_variance": rng.uniform(0.2, 3, n)}
            names = [k for k in ("gamma", "beta") if getattr(layer, k) is not None]
            layer.set_weights([stats[k] for k in [*names, "moving_mean", "moving_variance"]])
        elif layer.weights:
            layer.set_weights([rng.uniform(-1, 1, w.shape) for w in layer.weights])


def graph():
    x = L.Input((9, 9, 3))
    a = L.Conv2D(6, 3, padding="same", use_bias=False, name="conv_nobias")(x)
    a = L.ReLU(6.0, name="relu6")(L.BatchNormalization(name="bn1")(a))
    d = L.DepthwiseConv2D(3, strides=2, name="dw")(a)
    d = L.Activation("swish", name="swish")(L.BatchNormalization(name="bn_dw")(d))
    c = L.Conv2D(6, 1, name="conv_shared_out")(d)
    shared = L.BatchNormalization(name="bn_two_readers")(c)        # its input is read twice: no fold
    e = L.Add(name="add")([shared, c])
    e = L.Activation("relu", name="relu_after_add")(e)
    s = L.SeparableConv2D(5, 3, padding="same", name="sep")(e)
    s = L.BatchNormalization(name="bn_sep", center=False)(s)
    v = L.Conv1D(4, 2, data_format="channels_first", name="conv_cf")(L.Reshape((5, 16))(s))
    v = L.BatchNormalization(axis=1, scale=False, name="bn_cf")(v)
    f = L.Dense(7, name="dense")(L.Flatten()(v))
    f = L.Activation("hard_sigmoid")(L.BatchNormalization(name="bn_dense")(f))
    return Model(x, [f, shared])


def test_folded_model_equals_the_layer_by_layer_run():
    model = graph()
    realistic(model)
    x = rand((3, 9, 9, 3)) * 2
    model.rewrites = False
    expect = model.predict(x)
    model.rewrites = True
    got = model.predict(x)
    plan = model._plan
    assert sorted(plan.folded) == [("conv_cf", "bn_cf"), ("conv_nobias", "bn1"), ("dense", "bn_dense"),
                                   ("dw", "bn_dw"), ("sep", "bn_sep")]
    assert ("conv_nobias", "relu6") in plan.fused and ("dw", "swish") in plan.fused
    assert ("add", "relu_after_add") in plan.fused
    for g, e in zip(got, expect, strict=True):
        assert g.shape == e.shape and g.dtype == e.dtype
        assert reference.rel_error(g, e) <= TOL


def test_layers_stay_keras_exact_and_set_weights_invalidates_the_plan():
    model = graph()
    realistic(model)
    before, names, table = model.get_weights(), [la.name for la in model.layers], []
    model.summary(print_fn=table.append)
    x = rand((2, 9, 9, 3))
    first = model.predict(x)[0]
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before, strict=True))
    model.summary(print_fn=table.append)
    assert table[0] == table[1] and [la.name for la in model.layers] == names and "bn1" in names
    realistic(model, seed=1)                     # each layer's set_weights: the plan sees it
    model.rewrites = False
    expect = model.predict(x)[0]
    model.rewrites = True
    got = model.predict(x)[0]
    assert reference.rel_error(got, expect) <= TOL and reference.rel_error(got, first) > 1e-2
    model.set_weights(before)                    # the model's set_weights too
    assert reference.rel_error(model.predict(x)[0], first) <= TOL


def test_a_conv_with_its_own_activation_is_not_folded():
    x = L.Input((6, 6, 2))
    y = L.BatchNormalization(name="bn")(L.Conv2D(3, 3, activation="relu", name="c")(x))
    model = Model(x, y)
    realistic(model)
    out = model.predict(rand((2, 6, 6, 2)))
    assert model._plan.folded == []
    model.rewrites = False
    assert reference.rel_error(out, model.predict(rand((2, 6, 6, 2)))) <= TOL


def test_batch_zero_and_in_place_never_touches_inputs_or_outputs():
    x = L.Input((5,))
    d = L.Dense(4, name="d")(x)
    y = L.Activation("relu")(d)           # d is also an output: not fused in place
    model = Model(x, [d, y])
    realistic(model)
    inp = rand((3, 5))
    keep = inp.copy()
    dd, yy = model.predict(inp)
    assert np.array_equal(inp, keep) and model._plan.fused == []
    assert np.array_equal(yy, np.maximum(dd, 0)) and (dd < 0).any()
    assert [a.shape for a in model.predict(np.zeros((0, 5), "float32"))] == [(0, 4), (0, 4)]


@pytest.mark.parametrize("size,kernel,strides,dilation,depthwise", [
    (1, 3, 1, 1, False), (2, 5, 1, 1, False), (3, 7, 2, 1, False), (2, 3, 1, 2, False), (1, 3, 1, 1, True),
    (4, 3, 2, 1, True), (5, 3, 1, 1, False)])
def test_taps_that_read_only_padding_are_cut_exactly(size, kernel, strides, dilation, depthwise):
    x = L.Input((size, size + 1, 4))
    conv = (L.DepthwiseConv2D(kernel, strides, padding="same", dilation_rate=dilation, name="c") if depthwise
            else L.Conv2D(6, kernel, strides, padding="same", dilation_rate=dilation, name="c"))
    model = Model(x, L.BatchNormalization()(conv(x)))
    realistic(model)
    inp = rand((2, size, size + 1, 4))
    model.rewrites = False
    expect = model.predict(inp)
    model.rewrites = True
    got = model.predict(inp)
    assert got.shape == expect.shape and reference.rel_error(got, expect) <= TOL
    cut = [t for t in model._plan.trimmed if t[0] == "c"]
    if size * 2 + 1 <= kernel * dilation or (size, kernel) == (1, 3):   # some taps see only padding
        assert cut and cut[0][3] != cut[0][2]
    if (size, kernel) == (5, 3):
        assert not cut


def test_sequential_runs_through_the_plan_too():
    import pickle

    from nbconv.models import Sequential
    model = Sequential([L.Input((7, 7, 2)), L.Conv2D(4, 3, use_bias=False), L.BatchNormalization(),
                        L.ReLU(), L.Flatten(), L.Dense(3), L.BatchNormalization(), L.Activation("sigmoid")])
    realistic(model)
    x = rand((2, 7, 7, 2)) * 2
    got = model.predict(x)
    assert len(model._plan.folded) == 2 and len(model._plan.fused) == 2
    model.rewrites = False
    expect = model.predict(x)
    assert reference.rel_error(got, expect) <= TOL
    model.rewrites = True
    assert reference.rel_error(pickle.loads(pickle.dumps(model)).predict(x), expect) <= TOL
    model.pop()                                   # the plan follows the layers
    assert model.predict(x).shape == (2, 3) and len(model._plan.steps) == 3
