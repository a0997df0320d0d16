"""Pooling kernels: every registered max/average pooling implementation x pool size x stride x
data format ('same' padding: pads are not values). GB/s is derived in the report module."""
from .common import KERNELS, LAYOUTS, STRIDES, Timing, applicable_names, grid, prepare, problem, tiny

SIZES = {1: (4, 2048, 32), 2: (1, 64, 32), 3: (1, 16, 16)}    # batch, side, channels
TINY_SIZES = {1: (1, 16, 4), 2: (1, 8, 4), 3: (1, 5, 2)}


def pool_problem(op, rank, k, s, layout):
    n, side, c = (TINY_SIZES if tiny() else SIZES)[rank]
    return problem(op, rank, k, s, layout, batch=n, spatial=side, c_in=c, c_out=c)


def pool_params(op, rank):
    names = applicable_names(op, grid(lambda k, s, lay: pool_problem(op, rank, k, s, lay)))
    return [names, list(KERNELS), list(STRIDES), list(LAYOUTS)]


class _PoolBench(Timing):
    op = "maxpool"
    rank = 2
    param_names = ["impl", "pool_size", "stride", "layout"]

    def setup(self, impl, k, s, layout):
        self.run = prepare(self.op, impl, pool_problem(self.op, self.rank, k, s, layout))

    def time_pool(self, impl, k, s, layout):
        self.run()


class MaxPool1D(_PoolBench):
    op, rank = "maxpool", 1
    params = pool_params("maxpool", 1)


class MaxPool2D(_PoolBench):
    op, rank = "maxpool", 2
    params = pool_params("maxpool", 2)


class MaxPool3D(_PoolBench):
    op, rank = "maxpool", 3
    params = pool_params("maxpool", 3)


class AvgPool1D(_PoolBench):
    op, rank = "avgpool", 1
    params = pool_params("avgpool", 1)


class AvgPool2D(_PoolBench):
    op, rank = "avgpool", 2
    params = pool_params("avgpool", 2)


class AvgPool3D(_PoolBench):
    op, rank = "avgpool", 3
    params = pool_params("avgpool", 3)
