"""CPU implementations; importing this package registers them with the tuner."""
# Fast paths (im2col/1x1 GEMM, Winograd, depthwise, pooling, locally-connected, dense BLAS).
# Every kernel above is a CPU kernel: it serves Problems of device "cpu" only (a "cuda" Problem is
# declined with the reason the CUDA kernels cannot run, if they cannot).
from dataclasses import replace as _replace  # noqa: E402

from nbconv.tuner.registry import registry as _registry  # noqa: E402

from . import (  # noqa: F401
    blocked,
    conv_via2d,
    dense_blas,
    depthwise,
    gemm,
    local_gemm,
    pool_rows,
    pool_separable,
    tiled,
    winograd,
    winograd_tiled,
)
from . import cuda as cuda  # noqa: E402  (imports nothing from numba.cuda; load() may)
from . import dense_direct as dense_direct  # noqa: E402  (direct loops: the fallbacks)
from . import direct as direct  # noqa: E402

# issue 13 kernels (grouped_*, nchw_*): channels_first without a layout copy, grouped convs
# with few channels per group (ResNeXt)
from . import grouped_last as grouped_last  # noqa: E402
from . import grouped_tiled as grouped_tiled  # noqa: E402
from . import local_direct as local_direct  # noqa: E402
from . import nchw_depthwise as nchw_depthwise  # noqa: E402
from . import nchw_grouped as nchw_grouped  # noqa: E402
from . import nchw_pointwise as nchw_pointwise  # noqa: E402
from . import nchw_tiled as nchw_tiled  # noqa: E402
from . import pool_direct as pool_direct  # noqa: E402

# issue 13: separable (depthwise then 1x1) as one op: fused, the two tuned convs, the direct pair
from . import separable as separable  # noqa: E402


def _cpu_only(applies):
    def check(p):
        if p.device != "cpu":
            ok = cuda.status()
            return "CPU kernel: serves device 'cpu' only" + ("" if ok is True else f"; CUDA cannot run: {ok}")
        return applies(p)
    return check


for _op in _registry.ops():
    for _impl in _registry.impls(_op):
        _registry.add(_replace(_impl, applies=_cpu_only(_impl.applies)))
ADAPTERS = cuda.ADAPTERS        # device -> array adapter, for nbconv.ops
cuda.load()                     # CUDA kernels register where CUDA can run (numba-cuda + driver, or simulator)
