"""CPU implementations; importing this package registers them with the tuner."""
# Fast paths (im2col/1x1 GEMM, Winograd, depthwise, pooling, locally-connected, dense BLAS).
from . import (  # noqa: F401
    blocked,
    dense_blas,
    depthwise,
    gemm,
    local_gemm,
    pool_separable,
    tiled,
    winograd,
    winograd_tiled,
)
from . import dense_direct as dense_direct  # noqa: E402  (direct loops: the fallbacks)
from . import direct as direct  # noqa: E402
from . import local_direct as local_direct  # noqa: E402
from . import pool_direct as pool_direct  # noqa: E402
