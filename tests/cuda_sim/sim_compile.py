"""The compile tier (`-m compile_tier`, run without the simulator; needs NVVM, not a GPU): every
CUDA kernel x config compiled to PTX for sm_90, with no `.local` spill (register tiles stay in
registers) and no f64 instruction (float32 kernels accumulate in float32)."""
from __future__ import annotations

import re

import pytest
from numba import types

pytestmark = pytest.mark.compile_tier

F32, I64 = types.float32[::1], types.int64
GEOM = (I64,) * 3 + (I64,) * 3 + (I64,) * 12          # D H W, OD OH OW, KD..PW


def _kernels():
    from nbconv.impls.cuda import (
        arrays_cuda,
        direct_cuda,
        igemm_cuda,
        local_cuda,
        pool_cuda,
        tiled_cuda,
        winograd_cuda,
    )
    flag = types.boolean
    yield "conv_direct", direct_cuda.conv_direct_kernel, (F32, F32, F32, F32, flag) + (I64,) * 4 + GEOM
    yield "pool", pool_cuda.pool_kernel, (F32, F32, types.boolean, types.boolean) + (I64,) * 2 + GEOM
    yield "local", local_cuda.local_kernel, (F32, F32, F32, F32, types.boolean) + (I64,) * 3 + GEOM
    for cfg in tiled_cuda.CONFIGS:
        name = f"tiled_rp{cfg['rp']}_rf{cfg['rf']}"
        yield name, tiled_cuda.make_kernel(cfg["rp"], cfg["rf"]), (F32,) * 4 + (flag,) + (I64,) * 3 + GEOM
    yield "activation", arrays_cuda.activation_kernel, (F32, I64)
    yield "nonfinite", arrays_cuda.nonfinite_kernel, (F32, types.int32[::1])
    yield "winograd_in", winograd_cuda.input_transform, (F32, F32) + (I64,) * 8
    yield "winograd_gemm", winograd_cuda.batched_gemm, (F32, F32, F32) + (I64,) * 3
    yield "winograd_out", winograd_cuda.output_transform, (F32, F32, F32) + (I64,) * 6
    for cfg in igemm_cuda.CONFIGS:
        name = "igemm_" + "_".join(f"{k}{v}" for k, v in cfg.items())
        sig = (F32, F32, F32, types.int32[::1], F32) + (I64,) * 4 + (I64,) * 12
        yield name, igemm_cuda.make_kernel(**cfg), sig


@pytest.mark.parametrize("name", [name for name, *_ in _kernels()])
def test_compiles_to_ptx_without_spills_or_doubles(name):
    from numba import cuda
    kernel, sig = next((k, s) for n, k, s in _kernels() if n == name)
    ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
    assert ".entry" in ptx
    assert not re.search(r"\.local\b", ptx), f"{name}: local memory (spilled or unpromoted array)"
    doubles = sorted(set(re.findall(r"\b\w+(?:\.\w+)*\.f64\b", ptx)))
    assert not doubles, f"{name}: f64 instructions {doubles[:5]}"
