"""Peak memory of one call of each conv implementation (the im2col path's workspace shows here).

track_ value: MiB of resident memory the call adds above what was resident before it (output
included), read from the kernel's high-water mark (/proc/self/status VmHWM after resetting it
through /proc/self/clear_refs). Linux only; elsewhere the combination is skipped.
"""
import functools
import os

from nbconv.shapes import load_shapes

from .common import impl_names, prepare, problem, tiny

SHAPES = ("unet_3x3_572", "resnet50_conv1", "vgg3x3_56_b8")


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise NotImplementedError(f"/proc/self/status has no {field}")


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


@functools.lru_cache(maxsize=None)
def shape_problem(name):
    if tiny():
        return problem("conv", 2, 3, 1, "channels_last", batch=1, spatial=12, c_in=1, c_out=4,
                       padding="valid")
    return dict(load_shapes())[name]


def peak_extra_mib(run):
    """MiB of resident memory added at the peak of run()."""
    _reset_peak()
    before = _status_kib("VmRSS")
    run()
    return (_status_kib("VmHWM") - before) / 1024.0


class PeakMemory:
    params = [impl_names("conv"), list(SHAPES)]
    param_names = ["impl", "shape"]
    unit = "MiB"
    rounds = 1
    repeat = 1
    timeout = 180

    def setup(self, impl, shape):
        if not (os.path.exists("/proc/self/clear_refs") and os.access("/proc/self/clear_refs", os.W_OK)):
            raise NotImplementedError("peak memory needs Linux's /proc/self/clear_refs")
        self.run = prepare("conv", impl, shape_problem(shape))

    def track_peak_mib(self, impl, shape):
        return peak_extra_mib(self.run)
