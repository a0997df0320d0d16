"""Peak memory of one call of each conv implementation (the im2col path's workspace shows here).

track_ value: MiB of resident memory the call adds above what was resident before it (output
included), read from the kernel's high-water mark (/proc/self/status VmHWM after resetting it
through /proc/self/clear_refs). Linux only; elsewhere the combination is skipped.

glibc keeps freed memory for reuse (and raises its mmap threshold after large frees), which
would hide the call's allocations: large blocks are pinned to mmap (returned on free) and the
heap is trimmed before measuring.
"""
import ctypes
import functools
import os

from nbconv.tuner import label, registry

from nbconv.shapes import load_shapes

from .common import NONE, check_applies, prepare, problem, tiny

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


@functools.cache
def shape_problem(name):
    if tiny():
        return problem("conv", 2, 3, 1, "channels_last", batch=1, spatial=12, c_in=1, c_out=4,
                       padding="valid")
    return dict(load_shapes())[name]


@functools.cache
def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    m_mmap_threshold = -3
    libc.mallopt(m_mmap_threshold, 256 * 1024)   # fixed: no dynamic raise after large frees
    return libc


def peak_extra_mib(run):
    """MiB of resident memory added at the peak of run()."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
    _reset_peak()
    before = _status_kib("VmRSS")
    run()
    return (_status_kib("VmHWM") - before) / 1024.0


def candidate_labels():
    """`name[key=value,...]` of every conv (impl, config) applying to one of the shapes: the
    im2col workspace cap is a config, so each cap is its own row."""
    labels = []
    for impl in registry.impls("conv"):
        for shape in SHAPES:
            p = dict(load_shapes())[shape]
            if impl.check(p)[0]:
                labels += [label(impl.name, cfg) for cfg in impl.configs_for(p)]
    return list(dict.fromkeys(labels)) or [NONE]


def find_candidate(cand, p):
    """(impl name, config) of a label for problem p, or NotImplementedError."""
    name = cand.split("[", 1)[0]
    impl = check_applies("conv", name, p)
    for cfg in impl.configs_for(p):
        if label(name, cfg) == cand:
            return name, cfg
    raise NotImplementedError(f"{cand} is not a config of {name} for {p.key()}")


class PeakMemory:
    params = [candidate_labels(), list(SHAPES)]
    param_names = ["candidate", "shape"]
    unit = "MiB"
    rounds = 1
    repeat = 1
    timeout = 180

    def setup(self, cand, shape):
        if not (os.path.exists("/proc/self/clear_refs") and os.access("/proc/self/clear_refs", os.W_OK)):
            raise NotImplementedError("peak memory needs Linux's /proc/self/clear_refs")
        _libc()                                   # before any large allocation of this process
        p = shape_problem(shape)
        name, cfg = find_candidate(cand, p)
        self.run = prepare("conv", name, p, cfg)

    def track_peak_mib(self, cand, shape):
        return peak_extra_mib(self.run)
