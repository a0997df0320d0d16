"""CPU implementations; importing this package registers them with the tuner."""
# Fast paths (im2col/1x1 GEMM, Winograd, depthwise, pooling, locally-connected, dense BLAS).
from . import (  # noqa: F401
    blocked,
    dense_blas,
    depthwise,
    gemm,
    local_gemm,
    pool_fast,
    winograd,
)
from .dense_direct import dense_direct  # noqa: F401,E402  (direct loops: the fallbacks)
from .direct import conv_direct  # noqa: F401,E402
from .local_direct import local_direct  # noqa: F401,E402
from .pool_direct import avgpool_direct, maxpool_direct  # noqa: F401,E402
