"""CUDA (numba-cuda), tested without a GPU.

This process stays CPU-only: the CUDA kernels are checked under numba's simulator in a
subprocess (NUMBA_ENABLE_CUDASIM=1 must be set before numba.cuda is imported, and one process is
all-simulator), on every kernel x config (tests/cuda_sim/). The compile tier (`-m compile_tier`,
needs NVVM) compiles every kernel x config to PTX for sm_90; `-m requires_gpu` runs the same
correctness checks at realistic sizes on a GPU.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from nbconv.tuner.registry import registry

from nbconv import env, impls
from nbconv.impls import cuda as nbcuda
from nbconv.spec import make_problem

ROOT = Path(__file__).resolve().parents[1]


def _pytest(*args, simulator: bool):
    environ = dict(os.environ)
    environ.pop("NUMBA_ENABLE_CUDASIM", None)
    if simulator:
        environ["NUMBA_ENABLE_CUDASIM"] = "1"
    cmd = [sys.executable, "-m", "pytest", "tests/cuda_sim", "-o", "python_files=sim_*.py", "-q",
           "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(not nbcuda.installed(), reason="numba-cuda is not installed (extra `cuda`)")
def test_every_cuda_kernel_and_config_under_the_simulator():
    r = _pytest(simulator=True)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert " passed" in r.stdout and "skipped" not in r.stdout and "error" not in r.stdout.lower()


@pytest.mark.compile_tier
def test_every_cuda_kernel_and_config_compiles_to_ptx():
    r = _pytest("-m", "compile_tier", simulator=False)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]


def test_this_process_registers_no_cuda_kernel_without_a_device():
    """Here (no GPU, no simulator) CPU tests see the CPU registry alone, and nothing imported
    numba.cuda; a "cuda" Problem is declined with the reason."""
    if nbcuda.simulated() or nbcuda._driver_present():
        pytest.fail("tests/test_cuda.py expects a CPU-only main process")
    names = [i.name for op in registry.ops() for i in registry.impls(op)]
    assert not any(n.endswith("_cuda") for n in names)
    assert not any(m == "numba.cuda" or m.startswith("numba.cuda.") for m in sys.modules)
    p = make_problem("conv", (1, 5, 5, 2), rank=2, kernel=(3, 3), out_channels=3, device="cuda")
    verdicts = registry.applicability("conv", p)
    assert verdicts and not any(ok for _, ok, _ in verdicts)
    why = nbcuda.status()
    assert isinstance(why, str) and ("not installed" in why or "no CUDA device" in why)
    assert all(why in reason for _, _, reason in verdicts)
    with pytest.raises(ValueError, match="CUDA cannot run"):
        from nbconv import ops
        ops.decision("conv", p)


def test_no_cuda_backend_is_registered_where_no_kernel_can_run():
    assert "cuda" not in env.DEVICE_INFO and "cuda" not in impls.ADAPTERS
    assert "device" not in env.fingerprint("cpu")
    assert nbcuda.describe() == {"gpu": "none", "why": nbcuda.status()}


def test_the_device_knob(monkeypatch):
    """NBCONV_DEVICE=cuda makes layers build "cuda" Problems; where CUDA cannot run, the call
    says why. The default stays cpu."""
    import numpy as np

    from nbconv import knobs, ops
    from nbconv.layers import Conv2D
    assert knobs.device() == "cpu"
    monkeypatch.setenv("NBCONV_DEVICE", "tpu")
    with pytest.raises(ValueError, match="NBCONV_DEVICE must be one of"):
        knobs.device()
    monkeypatch.setenv("NBCONV_DEVICE", "cuda")
    layer = Conv2D(2, 3)
    with pytest.raises(ValueError, match="CUDA cannot run"):
        layer(np.ones((1, 5, 5, 1), np.float32))
    assert next(iter(layer._problems.values())).device == "cuda"
    ops.reset()


def test_a_device_input_where_cuda_cannot_run_says_why():
    """A `__cuda_array_interface__` object (CuPy, a PyTorch CUDA tensor) is recognised without
    importing numba.cuda; here, with no GPU, a layer refuses it with the reason."""
    import numpy as np

    from nbconv.layers import Conv2D, Dense

    class Foreign:
        __cuda_array_interface__ = {"shape": (1, 4, 4, 2), "typestr": "<f4", "data": (0, False),
                                    "version": 3}
    assert nbcuda.on_device(Foreign()) and not nbcuda.on_device(np.ones(3))
    with pytest.raises(ValueError, match="CUDA device array was given, but CUDA cannot run here"):
        Conv2D(2, 3)(Foreign())
    with pytest.raises(TypeError, match="Dense has no CUDA kernel"):
        Dense(2)(Foreign())
    assert not any(m == "numba.cuda" or m.startswith("numba.cuda.") for m in sys.modules)


def _row(key, impl, median, *, fp="gpu0", winner=False, partner=False, config=None):
    return {"key": key, "fp": fp, "impl": impl, "config": config or {}, "median_s": median,
            "winner": winner, "partner": partner}


def test_the_report_gains_a_gpu_section_only_when_a_gpu_was_used():
    """reports/gpu.py on a made-up tuning database: cuda rows (what a GPU run stores) make the
    section, with the GPU's name from its fingerprint; CPU rows alone make none."""
    import pandas as pd
    from nbconv.reports import cli, gpu, html
    p = make_problem("conv", (1, 8, 8, 4), rank=2, kernel=(3, 3), out_channels=8, device="cuda")
    key = p.key()
    cpu = [_row(p.with_(device="cpu").key(), "conv_direct", 1e-3, fp="host", winner=True)]
    assert gpu.tables(cpu) == {}
    rows = cpu + [_row(key, "conv_igemm_cuda", 2e-5, winner=True, config={"bm": 64}),
                  _row(key, "conv_direct_cuda", 5e-5, partner=True), _row(key, "conv_tiled_cuda", None)]
    fps = [{"fp": "gpu0", "info": '{"gpu": "NVIDIA H200", "compute_capability": "9.0"}'}]
    (title, df), = gpu.tables(rows, fps).items()
    assert title.startswith("GPU") and len(df) == 1
    r = df.iloc[0]
    assert r["gpu"] == "NVIDIA H200 (cc 9.0)" and r["problem"] == key
    assert r["winner"] == "conv_igemm_cuda[bm=64]" and r["runner-up"] == "conv_direct_cuda"
    assert r["kernel ms"] == pytest.approx(0.02) and r["margin %"] == pytest.approx(150)
    assert r["GFLOP/s"] == pytest.approx(p.flops() / 2e-5 / 1e9) and r["measured"] == 2
    sections = cli.page({}, {"Every candidate": pd.DataFrame(), title: df})
    assert [s[1] for s in sections] == ["Every candidate", title]
    meta = {"threads": {}, "versions": {}, "machine": "m", "date": "d"}
    anchors = {"sgemm_gflops": 1.0, "copy_gbps": 1.0, "source": "test"}
    assert "NVIDIA H200 (cc 9.0)" in html.render(meta, anchors, sections, [], [])


def test_the_asv_cuda_classes_are_not_applicable_without_a_gpu():
    from benchmarks import bench_cuda
    for cls in (bench_cuda.CudaConv, bench_cuda.CudaPool, bench_cuda.CudaLocal):
        with pytest.raises(NotImplementedError, match="no GPU here"):
            cls().setup(cls.params[0][0], cls.params[1][0])
    assert not any(m == "numba.cuda" or m.startswith("numba.cuda.") for m in sys.modules)


def test_explain_prints_the_copy_times_of_a_numpy_call_apart(monkeypatch, capsys):
    """What `nbconv explain` shows for a "cuda" Problem on a GPU (ops.explain's "transfer" is
    measured only there): the copy-in/out time a numpy call adds, apart from the kernel rows."""
    from nbconv import cli, ops
    real = ops.explain

    def with_copies(op, p, arrays=None, *, measure=True):
        return {**real(op, p, arrays, measure=measure), "transfer": {"copy_in_s": 2e-4, "copy_out_s": 1e-4}}
    monkeypatch.setattr(ops, "explain", with_copies)
    p = make_problem("maxpool", (1, 4, 4, 2), rank=2, kernel=(2, 2), strides=(2, 2))
    assert cli.main(["explain", p.key(), "--no-measure", "--no-peak"]) == 0
    assert "numpy in/out adds 0.2000 ms copy in, 0.1000 ms copy out" in capsys.readouterr().out
