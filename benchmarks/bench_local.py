"""Locally-connected kernels: every registered implementation x kernel size x stride x data format.

Weights are per output position, (P, *k, C, F): sizes stay small to keep them in cache range."""
from .common import KERNELS, LAYOUTS, STRIDES, Timing, applicable_names, grid, prepare, problem, tiny

SIZES = {1: (8, 256, 16, 16), 2: (2, 16, 8, 8)}               # batch, side, in, out channels
TINY_SIZES = {1: (1, 12, 3, 2), 2: (1, 8, 2, 2)}


def local_problem(rank, k, s, layout):
    n, side, c_in, c_out = (TINY_SIZES if tiny() else SIZES)[rank]
    # 'valid' as Keras's LocallyConnected default; side >= 7 keeps every kernel valid
    return problem("local", rank, k, s, layout, batch=n, spatial=side, c_in=c_in, c_out=c_out,
                   padding="valid")


def local_params(rank):
    names = applicable_names("local", grid(lambda k, s, lay: local_problem(rank, k, s, lay)))
    return [names, list(KERNELS), list(STRIDES), list(LAYOUTS)]


class _LocalBench(Timing):
    rank = 2
    param_names = ["impl", "kernel", "stride", "layout"]

    def setup(self, impl, k, s, layout):
        self.run = prepare("local", impl, local_problem(self.rank, k, s, layout))

    def time_local(self, impl, k, s, layout):
        self.run()


class LocallyConnected1D(_LocalBench):
    rank = 1
    params = local_params(1)


class LocallyConnected2D(_LocalBench):
    rank = 2
    params = local_params(2)
