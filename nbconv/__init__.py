"""nbconv: Keras-exact conv, pooling and locally-connected layers on auto-tuned Numba kernels."""
from .spec import Problem, make_problem

__version__ = "0.1.0"
__all__ = ["Problem", "make_problem", "__version__"]
