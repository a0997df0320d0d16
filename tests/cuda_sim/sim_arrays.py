"""Layers on arrays where they live, under the simulator: a device input (numba's, a
`__cuda_array_interface__` object standing in for CuPy/PyTorch) gives a device output with no
host copy, on "cuda" Problems; weights are uploaded once; bad device inputs are refused clearly."""
from __future__ import annotations

import numpy as np
import pytest
from numba import cuda

from nbconv import layers, ops, reference
from nbconv.impls.cuda import arrays_cuda, on_device, runtime_cuda
from nbconv.layers import activations, device

RNG = np.random.default_rng(7)
X = RNG.uniform(-1, 1, (2, 4, 4, 2)).astype(np.float32)         # batch 2, 4x4, 2 channels


@pytest.fixture(autouse=True)
def fresh():
    ops.reset()
    yield
    ops.reset()


class ForeignArray:
    """What CuPy or a PyTorch CUDA tensor shows nbconv: `__cuda_array_interface__` over memory it
    owns (here host memory, which is the simulator's device memory)."""

    def __init__(self, a):
        self.a = a
        self.__cuda_array_interface__ = {"shape": a.shape, "typestr": a.dtype.str, "strides": None,
                                         "data": (a.ctypes.data, False), "version": 3}


class ClaimsCuda:
    """A `__dlpack__` object that says CUDA but exports a host capsule."""

    def __init__(self, a):
        self.a = a

    def __dlpack_device__(self):
        return (2, 0)

    def __dlpack__(self, **kw):
        return self.a.__dlpack__()


def _count(monkeypatch, owner, name, what):
    """Replace owner.name by a wrapper appending what(first argument) to the returned list."""
    seen, real = [], getattr(owner, name)

    def counting(first, *rest, **kw):
        seen.append(what(first))
        return real(first, *rest, **kw)
    monkeypatch.setattr(owner, name, counting)
    return seen, real


def _expected(layer, x):
    """The float64 reference of the layer's op on its own arrays, then its activation."""
    p = next(q for q in layer._problems.values() if not isinstance(q, tuple))
    if p.op == "conv":
        y = reference.conv(x, layer._kernel, layer._bias, p)
    elif p.op == "local":
        y = reference.local(x, *layer._canonical, p)
    else:
        y = reference.pool(x, p)
    return getattr(layer, "activation", activations.linear)(y.astype(np.float32))


@pytest.mark.parametrize("make", [
    lambda: layers.Conv2D(3, 3, padding="same", activation="relu"),
    lambda: layers.MaxPooling2D(2),
    lambda: layers.LocallyConnected2D(2, 3, activation="sigmoid"),
])
def test_device_in_device_out_on_cuda_problems(make):
    layer = make()
    y = layer(cuda.to_device(X))
    assert runtime_cuda.is_device(y) and tuple(y.shape) == layer.compute_output_shape(X.shape)
    p = next(iter(layer._problems.values()))
    assert p.device == "cpu"                          # the host Problem stays for numpy calls
    assert ops._memo[device.problem(p)].fn.__name__.endswith("_cuda")
    assert reference.rel_error(y.copy_to_host(), _expected(layer, X)) <= 1e-5


def test_a_sequential_model_keeps_a_device_input_on_the_device():
    from nbconv.models import Sequential
    y = Sequential([layers.MaxPooling2D(2), layers.GlobalAveragePooling2D()])(cuda.to_device(X))
    assert runtime_cuda.is_device(y) and tuple(y.shape) == (2, 2)
    pooled = X.reshape(2, 2, 2, 2, 2, 2).max(axis=(2, 4))
    assert np.allclose(y.copy_to_host(), pooled.mean(axis=(1, 2)), atol=1e-6)


def test_a_cuda_array_interface_input_is_read_in_place():
    src = X.copy()
    foreign = ForeignArray(src)
    assert on_device(foreign)
    view = arrays_cuda.as_device(foreign, "x")
    assert np.shares_memory(view._ary, src)           # no copy: the same memory
    layer = layers.Conv2D(3, 2)
    y = layer(foreign)
    assert runtime_cuda.is_device(y)
    assert reference.rel_error(y.copy_to_host(), _expected(layer, X)) <= 1e-5
    yd = ops.conv(ForeignArray(src), layer._kernel, layer._bias, device.problem(layer._problem(X.shape)))
    assert runtime_cuda.is_device(yd)                 # the ops adapter reads it in place too


def test_weights_are_uploaded_once_per_layer(monkeypatch):
    uploads, real = _count(monkeypatch, cuda, "to_device", lambda a: a.shape)
    layer = layers.Conv2D(3, 2, activation="relu")
    xd = real(X)
    layer(xd)
    # the prepare step: kernel and bias (flat), igemm's offset table; the first call of a
    # Problem also uploads a one-int flag (its input's NaN/Inf check), which is not a weight
    first = [s for s in uploads if s != (1,)]
    assert (2 * 2 * 2 * 3,) in first and (3,) in first and len(first) <= 3 and len(uploads) <= 4
    uploads.clear()
    for _ in range(2):
        layer(xd)
    assert uploads == []                              # later calls upload nothing
    layer.set_weights([w + 1 for w in layer.get_weights()])
    layer(xd)
    assert [s for s in uploads if s != (1,)] == first  # new weights: uploaded once more


def test_device_activations_match_numpy_nan_included():
    v = np.array([-30, -2, -0.5, 0, 0.5, 3, 7, 30, np.nan], np.float32)
    for name in ("relu", "relu6", "sigmoid", "tanh", "silu"):
        got = arrays_cuda.activate(cuda.to_device(v.copy()), name).copy_to_host()
        np.testing.assert_allclose(got, activations.get(name)(v.copy()), rtol=1e-6, atol=1e-7)


def test_dlpack_capsules_are_read_as_numpy_describes_them():
    a = np.arange(48, dtype=np.float32).reshape(2, 4, 6)[:, ::2, 1:]
    kind, desc = arrays_cuda.read_capsule(a.__dlpack__())
    assert kind == 1                                  # kDLCPU
    assert desc["shape"] == a.shape and desc["strides"] == a.strides and desc["typestr"] == "<f4"
    assert desc["data"][0] == a.__array_interface__["data"][0]
    assert on_device(ClaimsCuda(a)) and not on_device(a)


def test_tuning_arrays_put_the_input_on_the_device():
    p = device.problem(layers.Conv2D(3, 2)._conv_problem(X.shape, out_channels=3))
    x, w, b = ops.make_args("conv", p)
    xd, w2, b2 = ops._resident(p, (x, w, b))
    assert runtime_cuda.is_device(xd) and w2 is w and b2 is b
    assert np.array_equal(xd.copy_to_host(), x)
    assert runtime_cuda.is_device(ops._make_args("conv", p)[0])
    assert arrays_cuda.transfer_times(p) == {"copy_in_s": None, "copy_out_s": None}   # simulated


def test_bad_device_inputs_are_refused_before_any_kernel_runs():
    conv = layers.Conv2D(3, 2)
    with pytest.raises(TypeError, match="must be float32"):
        conv(cuda.to_device(X.astype(np.float64)))
    with pytest.raises(ValueError, match="C-contiguous"):
        conv(cuda.to_device(X)[:, :, ::2])
    with pytest.raises(ValueError, match="expected min_ndim=4, found ndim=3"):
        conv(cuda.to_device(X[0]))
    with pytest.raises(ValueError, match="says CUDA, but the DLPack capsule it exports holds CPU memory"):
        conv(ClaimsCuda(X))
    with pytest.raises(TypeError, match="has no CUDA kernel"):
        layers.Dense(2)(cuda.to_device(X))
    with pytest.raises(TypeError, match="activation 'gelu' has no CUDA version"):
        layers.Conv2D(3, 2, activation="gelu")(cuda.to_device(X))
    with pytest.raises(TypeError, match="strides .* no CUDA path"):
        layers.Conv2DTranspose(2, 2, strides=2)(cuda.to_device(X))
    with pytest.raises(TypeError, match="this layer's dtype is float64"):
        layers.Conv2D(3, 2, dtype="float64")(cuda.to_device(X))
    assert ops._memo == {}                            # nothing was decided, nothing ran


def test_the_gpu_check_script_runs_under_the_simulator(capsys):
    """benchmarks/gpu_check.py --simulate: the GPU script's code path (tune, verify, copy times,
    the cuDNN anchor skipped with its reason) without a GPU; it measures nothing."""
    from benchmarks import gpu_check
    assert gpu_check.main(["--simulate"]) == 0
    out = capsys.readouterr().out
    assert "cuDNN anchor skipped: the simulator has no cuDNN" in out
    assert "sim_tiny" in out and "_cuda" in out and "worst error" in out


def test_the_asv_cuda_classes_skip_under_the_simulator_and_run_given_a_device(monkeypatch):
    """benchmarks/bench_cuda.py: n/a (NotImplementedError) wherever timings mean nothing; with
    the simulator standing in for a GPU, each class's setup and both timings run (tiny sizes)."""
    from benchmarks import bench_cuda
    with pytest.raises(NotImplementedError, match="simulator"):
        bench_cuda.CudaConv().setup("conv_direct_cuda", "conv3x3_56")
    monkeypatch.setenv("NBCONV_BENCH_TINY", "1")
    monkeypatch.setattr(bench_cuda, "gpu_or_skip", lambda: cuda)
    for cls in (bench_cuda.CudaConv, bench_cuda.CudaPool, bench_cuda.CudaLocal):
        impl, shape = cls.params[0][0], cls.params[1][0]
        bench = cls()
        bench.setup(impl, shape)
        bench.time_kernel(impl, shape)
        bench.time_with_transfer(impl, shape)
    with pytest.raises(NotImplementedError, match="conv_winograd_cuda does not apply"):
        bench_cuda.CudaConv().setup("conv_winograd_cuda", "conv1x1_28")


def test_winograds_nan_check_on_a_device_output_copies_one_flag_not_the_array(monkeypatch):
    """The NaN/Inf fallback check of a tile-mixing kernel runs on the device: a device call
    brings back one int32, and a NaN in the input still ends where the reference puts it."""
    from cuda_cases import SIM
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
    p = SIM["conv"]["r2_3x3_valid_odd"]
    x, w, b = ops.make_args("conv", p)
    copied, real = _count(monkeypatch, FakeCUDAArray, "copy_to_host", lambda a: a.size)
    with ops.tuning(force="conv_winograd_cuda"):
        y = ops.conv(cuda.to_device(x), w, b, p)
        assert copied and set(copied) == {1}          # flags only (input, output): nothing else came back
        assert reference.rel_error(real(y), reference.conv(x, w, b, p)) <= 1e-5
        x[0, 2, 3, 1] = np.nan
        y = real(ops.conv(cuda.to_device(x), w, b, p))
    assert np.array_equal(np.isnan(y), np.isnan(reference.conv(x, w, b, p)))


@pytest.mark.requires_gpu
def test_on_a_gpu_foreign_device_arrays_dlpack_and_copy_times():
    """What the simulator cannot show: real `__cuda_array_interface__` pointers (numba's own, and a
    PyTorch CUDA tensor's when torch has CUDA), a CUDA DLPack capsule, and measured copy times."""
    d = cuda.to_device(X)

    class Foreign:
        def __init__(self, owner):
            self.owner, self.__cuda_array_interface__ = owner, owner.__cuda_array_interface__

    class DLPackOnly:
        def __init__(self, t):
            self.t = t

        def __dlpack_device__(self):
            return self.t.__dlpack_device__()

        def __dlpack__(self, **kw):
            return self.t.__dlpack__(**kw)
    layer = layers.Conv2D(3, 2, activation="relu")
    inputs = [Foreign(d)]
    from benchmarks.gpu_check import torch_cuda
    if torch_cuda() is None:
        import torch
        t = torch.as_tensor(X, device="cuda")
        inputs += [t, DLPackOnly(t)]
    for a in inputs:
        y = layer(a)
        assert runtime_cuda.is_device(y)
        assert reference.rel_error(y.copy_to_host(), _expected(layer, X)) <= 1e-5
    ex = ops.explain("conv", device.problem(layer._problem(X.shape)))      # kernels timed on the device
    assert any(r["median_s"] for r in ex["rows"])
    assert ex["transfer"]["copy_in_s"] > 0 and ex["transfer"]["copy_out_s"] > 0


def test_a_device_input_holding_nan_is_not_tuned_on(monkeypatch):
    """As for numpy inputs: a first call whose device input holds NaN/Inf tunes on random arrays
    (checked on the device), never on the caller's."""
    seen = []
    real = ops._select
    monkeypatch.setattr(ops, "_select", lambda op, p, arrays=None: seen.append(arrays) or real(op, p, arrays))
    p = device.problem(layers.MaxPooling2D(2)._problem(X.shape))
    bad = X.copy()
    bad[1, 2, 3, 0] = np.inf
    for a, tuned_on_it in ((bad, False), (X, True)):
        ops.reset()
        seen.clear()
        ops.pool(cuda.to_device(a), p)
        assert (seen[0] is not None) == tuned_on_it
