"""Every CUDA kernel x config against the float64 reference (`NUMBA_ENABLE_CUDASIM=1`, run by
tests/test_cuda.py in a subprocess; on a GPU, `-m requires_gpu` adds realistic sizes)."""
from __future__ import annotations

import numpy as np
import pytest
from cuda_cases import GPU, SIM
from nbconv.tuner.registry import registry
from numba import cuda

from nbconv import ops, reference
from nbconv.impls.cuda.runtime_cuda import is_device

CUDA_IMPLS = {op: [i for i in registry.impls(op) if i.name.endswith("_cuda")] for op in SIM}


def _params(cases, marks=()):
    out = []
    for op, named in cases.items():
        for impl in CUDA_IMPLS[op]:
            out += [pytest.param(op, impl.name, case, p, id=f"{impl.name}-{case}", marks=marks)
                    for case, p in named.items() if impl.check(p)[0]]
    return out


def check_all_configs(op, name, p, seed=0):
    impl = registry.get(op, name)
    arrays = ops.make_args(op, p, seed)
    ref = reference.run(op, p, *arrays)
    for cfg in impl.configs_for(p):
        y = impl.bind(arrays, p, cfg)()
        assert isinstance(y, np.ndarray) and y.shape == p.output_shape and y.dtype == np.float32
        err = reference.rel_error(y, ref)
        assert err <= impl.tolerance, f"{name} {cfg} on {p.key()}: error {err:.3g}"
    cfg = impl.configs_for(p)[0]
    # unprepared, and the input already on the device: the output stays there
    xd = cuda.to_device(arrays[0])
    y = impl.fn(xd, *arrays[1:], p, **cfg)
    assert is_device(y)
    assert reference.rel_error(y.copy_to_host(), ref) <= impl.tolerance


@pytest.mark.parametrize("op,name,case,p", _params(SIM))
def test_kernel_configs_match_reference(op, name, case, p):
    check_all_configs(op, name, p)


@pytest.mark.parametrize("op,name,case,p", _params(GPU, marks=pytest.mark.requires_gpu))
def test_kernel_configs_match_reference_at_realistic_sizes(op, name, case, p):
    check_all_configs(op, name, p)


def test_every_cuda_kernel_is_checked_on_several_cases():
    counts = {}
    for _op, name, *_ in (param.values for param in _params(SIM)):
        counts[name] = counts.get(name, 0) + 1
    names = {i.name for impls in CUDA_IMPLS.values() for i in impls}
    assert names == {"conv_direct_cuda", "conv_igemm_cuda", "conv_tiled_cuda", "conv_winograd_cuda",
                     "maxpool_direct_cuda",
                     "avgpool_direct_cuda", "local_direct_cuda"}
    assert all(counts.get(n, 0) >= 3 for n in names), counts
