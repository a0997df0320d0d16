"""CUDA kernels on a GPU: every CUDA implementation x a few shapes, the kernel alone and a numpy
call with its copies. Without a GPU (no numba-cuda, no device, or numba's simulator, whose
timings mean nothing) every setup raises NotImplementedError: asv reports n/a, nothing fails.

time_kernel: the kernel on device-resident arrays (weights prepared once), synchronised.
time_with_transfer: the same kernel called as a layer with numpy arrays calls it: the input
copied in, the kernel, the output copied back (pageable host memory).
"""
from .common import Timing, check_applies, tiny

# shape name -> (op, input shape (channels_last), kernel, out channels, padding)
SHAPES = {
    "conv3x3_56": ("conv", (8, 56, 56, 64), (3, 3), 64, "same"),
    "conv1x1_28": ("conv", (8, 28, 28, 128), (1, 1), 256, "valid"),
    "maxpool2_56": ("maxpool", (8, 56, 56, 64), (2, 2), None, "valid"),
    "local3_16": ("local", (8, 16, 16, 16), (3, 3), 16, "valid"),
}
TINY = {"conv": ((1, 5, 5, 2), 3), "maxpool": ((1, 4, 4, 2), None), "local": ((1, 5, 5, 2), 2)}
IMPLS = {"conv": ["conv_direct_cuda", "conv_tiled_cuda", "conv_igemm_cuda", "conv_winograd_cuda"],
         "maxpool": ["maxpool_direct_cuda"], "local": ["local_direct_cuda"]}


def gpu_or_skip():
    """numba.cuda, only where a GPU is: else NotImplementedError saying why (asv's n/a)."""
    from nbconv.impls import cuda as nbcuda
    ok = nbcuda.status()
    if ok is not True:
        raise NotImplementedError(f"no GPU here: {ok}")
    if nbcuda.simulated():
        raise NotImplementedError("numba's CUDA simulator: its timings mean nothing")
    from numba import cuda
    return cuda


def cuda_problem(name):
    from nbconv.spec import make_problem
    op, shape, kernel, filters, padding = SHAPES[name]
    if tiny():
        shape, filters = TINY[op]
    return make_problem(op, shape, rank=2, kernel=kernel, out_channels=filters,
                        padding=padding, strides=kernel if op == "maxpool" else None, device="cuda")


class _CudaBench(Timing):
    param_names = ["impl", "shape"]
    op = "conv"

    def setup(self, impl, shape):
        cuda = gpu_or_skip()
        from nbconv import ops, reference
        p = cuda_problem(shape)
        if p.op != self.op:
            raise NotImplementedError(f"{shape} is a {p.op} shape")
        found = check_applies(self.op, impl, p)
        cfg = found.configs_for(p)[0]
        args = ops.make_args(self.op, p)
        extra = {"prepared": found.prepare(*args[1:], p, **cfg)} if found.prepare else {}
        xd = cuda.to_device(args[0])
        y = found.fn(xd, *args[1:], p, **extra, **cfg)
        err = reference.rel_error(y.copy_to_host(), reference.run(self.op, p, *args))
        if not err <= found.tolerance:
            raise RuntimeError(f"{impl} on {p.key()}: relative error {err:.3g} > {found.tolerance:.3g}")
        self.sync = cuda.synchronize
        self.kernel = lambda: found.fn(xd, *args[1:], p, **extra, **cfg)
        self.numpy_call = lambda: found.fn(*args, p, **extra, **cfg)

    def time_kernel(self, impl, shape):
        self.kernel()
        self.sync()

    def time_with_transfer(self, impl, shape):
        self.numpy_call()                # returns the host copy: synchronous


class CudaConv(_CudaBench):
    op = "conv"
    params = [IMPLS["conv"], ["conv3x3_56", "conv1x1_28"]]


class CudaPool(_CudaBench):
    op = "maxpool"
    params = [IMPLS["maxpool"], ["maxpool2_56"]]


class CudaLocal(_CudaBench):
    op = "local"
    params = [IMPLS["local"], ["local3_16"]]
