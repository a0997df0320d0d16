"""Dispatch of "cuda" Problems under the simulator: arrays where they live, prepared weights,
priority decisions with nothing stored, the device description, launch limits."""
from __future__ import annotations

import numpy as np
import pytest
from cuda_cases import SIM
from nbconv.tuner.registry import registry
from numba import config, cuda

from nbconv import env, ops, reference
from nbconv.impls.cuda import igemm_cuda, runtime_cuda, simulated, status

P = SIM["conv"]["r2_same_n2"]
simulator_only = pytest.mark.skipif(not config.ENABLE_CUDASIM, reason="simulator behaviour")


@pytest.fixture(autouse=True)
def fresh():
    ops.reset()
    yield
    ops.reset()


def test_cuda_runs_here():
    assert status() is True


@simulator_only
def test_simulator_is_described_and_decides_by_priority_storing_nothing():
    assert simulated()
    assert env.fingerprint("cuda")["gpu"] == "simulator"
    fn, cfg = ops.chosen("conv", P)
    assert fn.__name__ == "conv_igemm_cuda"            # highest priority applicable
    assert cfg == registry.get("conv", "conv_igemm_cuda").configs_for(P)[0]
    assert ops.tuner().stored("conv", P) == {}        # no simulated timing kept
    assert ops.decision("conv", P).how == "priority"
    ops.explain("conv", P)                            # explains without measuring
    assert ops.tuner().stored("conv", P) == {}


def test_numpy_in_numpy_out_and_weights_prepared_once():
    x, w, b = ops.make_args("conv", P)
    y = ops.conv(x, w, b, P)
    assert isinstance(y, np.ndarray) and y.shape == P.output_shape
    assert reference.rel_error(y, reference.conv(x, w, b, P)) <= 1e-5
    x2 = ops.make_args("conv", P, seed=1)[0]
    y2 = ops.conv(x2, w, b, P)
    assert reference.rel_error(y2, reference.conv(x2, w, b, P)) <= 1e-5
    runner = ops._memo[P]
    assert len(runner.prepared._cache) == 1           # uploaded once for these weights
    wd = runner.prepared._cache[(id(w), id(b))][1][0]
    assert runtime_cuda.is_device(wd)


def test_device_in_device_out():
    x, w, b = ops.make_args("conv", P)
    yd = ops.conv(cuda.to_device(x), w, b, P)
    assert runtime_cuda.is_device(yd) and yd.shape == P.output_shape
    assert reference.rel_error(yd.copy_to_host(), reference.conv(x, w, b, P)) <= 1e-5


@pytest.mark.parametrize("op", ["maxpool", "avgpool", "local", "conv"])
def test_every_op_dispatches_to_a_cuda_kernel(op):
    p = next(iter(SIM[op].values())) if op != "conv" else SIM["conv"]["r2_nchw_g2_st"]
    arrays = ops.make_args(op, p)
    y = ops.run(op, p, *arrays)
    assert reference.rel_error(y, reference.run(op, p, *arrays)) <= 1e-5
    assert ops.chosen(op, p)[0].__name__.endswith("_cuda")


def test_cpu_problems_are_untouched():
    p = P.with_(device="cpu")
    names = [impl.name for impl, _ in registry.candidates("conv", p)]
    assert "conv_direct" in names and not any(n.endswith("_cuda") for n in names)
    for impl in registry.impls("conv"):
        ok, why = impl.check(p if impl.name.endswith("_cuda") else P)
        assert not ok and ("device" in why)


def test_launch_limits_decline_oversized_configs():
    assert "threads per block" in igemm_cuda.limits(256, 256, 8, 2, 2)
    assert "shared memory" in igemm_cuda.limits(128, 128, 64, 8, 8)
    assert "register tile" in igemm_cuda.limits(64, 64, 8, 3, 4)
    assert "threads per block" in runtime_cuda.launch_check(2048)
    x, w, b = ops.make_args("conv", P)
    with pytest.raises(ValueError, match="launch declined"):
        igemm_cuda.conv_igemm_cuda(x, w, b, P, bm=256, bn=256, bk=8, tm=2, tn=2)
    assert all(igemm_cuda.limits(**c) is True for c in igemm_cuda.CONFIGS)


def test_igemm_declines_what_it_does_not_serve():
    impl = registry.get("conv", "conv_igemm_cuda")
    assert "channels_last" in impl.check(SIM["conv"]["r1_ncw_st3"])[1]
    assert "groups" in impl.check(SIM["conv"]["r2_depthwise_x2"])[1]
    assert "float32" in impl.check(P.with_(dtype="float64"))[1]


def test_layers_run_on_cuda_with_the_knob(monkeypatch):
    from nbconv.layers import Conv2D, MaxPooling2D
    monkeypatch.setenv("NBCONV_DEVICE", "cuda")
    x = ops.make_args("maxpool", SIM["maxpool"]["r2_same_st2"])[0]
    conv, pool = Conv2D(4, 3, padding="same", activation="relu"), MaxPooling2D(2)
    y = pool(conv(x))
    assert isinstance(y, np.ndarray)
    kernel, bias = conv.get_weights()
    pc = next(iter(conv._problems.values()))
    pp = next(iter(pool._problems.values()))
    assert pc.device == pp.device == "cuda"
    mid = np.maximum(reference.conv(x, kernel, bias, pc), 0)
    assert reference.rel_error(y, reference.pool(mid, pp)) <= 1e-5
    assert ops.chosen("conv", pc)[0].__name__ == "conv_igemm_cuda"


def test_decisions_and_verification_accept_device_arrays():
    """What benchmarks/gpu_check.py does on a GPU, tune with the input already on the device:
    decisions accept device arrays, and the verifier's reference and error read them (the
    measuring itself needs a GPU: the simulator's timings mean nothing)."""
    x, w, b = ops.make_args("conv", P)
    for name in ("conv_direct_cuda", "conv_igemm_cuda"):
        with ops.tuning(mode="measure", force=name, min_samples=1, max_samples=1):
            d = ops.decision("conv", P, (cuda.to_device(x), w, b))
        assert d.impl.name == name
    err = ops._error(registry.get("conv", "conv_igemm_cuda").fn(cuda.to_device(x), w, b, P),
                     ops._reference("conv", P, cuda.to_device(x), w, b), P)
    assert err <= 1e-5


@pytest.mark.parametrize("on_device", [False, True])
def test_winograd_nan_falls_back_to_the_direct_kernel(on_device):
    p = SIM["conv"]["r2_3x3_valid_odd"]
    x, w, b = ops.make_args("conv", p)
    x[0, 2, 3, 1] = np.nan
    ref = reference.conv(x, w, b, p)
    with ops.tuning(force="conv_winograd_cuda"):
        assert ops.chosen("conv", p)[0].__name__ == "conv_winograd_cuda"
        y = ops.conv(cuda.to_device(x) if on_device else x, w, b, p)
    y = y.copy_to_host() if on_device else y
    assert reference.rel_error(y, ref) <= 1e-5          # NaN exactly where the reference has it
