"""CPU implementations; importing this package registers them with the tuner."""
from . import gemm  # noqa: F401,E402  (im2col + GEMM, 1x1 GEMM)
from .dense_direct import dense_direct  # noqa: F401,E402  (direct loops: the fallbacks)
from .direct import conv_direct  # noqa: F401,E402
from .local_direct import local_direct  # noqa: F401,E402
from .pool_direct import avgpool_direct, maxpool_direct  # noqa: F401,E402
from . import winograd  # noqa: F401,E402  (Winograd F(2x2,3x3), F(4x4,3x3))
