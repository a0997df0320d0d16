"""Convolution kernels: every registered conv implementation x kernel size x stride x data format.

Sizes are small (milliseconds per call) so the whole grid stays inside the suite's time budget;
GFLOP/s is derived in the report module (Problem.flops() / seconds).
"""
from .common import KERNELS, LAYOUTS, STRIDES, Timing, applicable_names, grid, prepare, problem, tiny

# rank -> (batch, spatial side, in channels, out channels); tiny sizes for the test run
SIZES = {1: (4, 512, 32, 32), 2: (1, 32, 32, 32), 3: (1, 12, 8, 8)}
TINY_SIZES = {1: (1, 16, 4, 4), 2: (1, 8, 4, 4), 3: (1, 5, 2, 2)}


def conv_problem(rank, k, s, layout, depthwise=False):
    n, side, c_in, c_out = (TINY_SIZES if tiny() else SIZES)[rank]
    if depthwise:
        c_in = c_out = 4 * c_in          # depthwise layers are wide and cheap per channel
    return problem("conv", rank, k, s, layout, batch=n, spatial=side, c_in=c_in, c_out=c_out,
                   groups=c_in if depthwise else 1)


def conv_params(rank, depthwise=False):
    names = applicable_names("conv", grid(lambda k, s, lay: conv_problem(rank, k, s, lay, depthwise)))
    return [names, list(KERNELS), list(STRIDES), list(LAYOUTS)]


class _ConvBench(Timing):
    rank = 2
    depthwise = False
    param_names = ["impl", "kernel", "stride", "layout"]

    def setup(self, impl, k, s, layout):
        self.run = prepare("conv", impl, conv_problem(self.rank, k, s, layout, self.depthwise))

    def time_conv(self, impl, k, s, layout):
        self.run()


class Conv1D(_ConvBench):
    rank = 1
    params = conv_params(1)


class Conv2D(_ConvBench):
    rank = 2
    params = conv_params(2)


class Conv3D(_ConvBench):
    rank = 3
    params = conv_params(3)


class DepthwiseConv2D(_ConvBench):
    """Conv2D with groups == channels (Keras DepthwiseConv2D with depth_multiplier 1)."""
    rank, depthwise = 2, True
    params = conv_params(2, depthwise=True)
