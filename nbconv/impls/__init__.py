"""CPU implementations; importing this package registers them with the tuner."""
from . import gemm  # noqa: F401,E402  (im2col + GEMM, 1x1 GEMM)
