"""The GPU check, run by `benchmarks/gpu_check.sh` on a machine with an NVIDIA GPU and numba-cuda:
tune the reference Conv2D shapes on device "cuda" (CUDA-event timings, inputs already on the
device) and print, per shape, nbconv's best CUDA kernel (kernel time, and apart from it the
copies a numpy call adds) against PyTorch's cuDNN conv (TF32 off, then on), the device's fp32
peak and its copy bandwidth.

`--simulate` runs the same code path under numba's CUDA simulator on one tiny shape (no GPU
needed, timings meaningless): it proves the script runs, not how fast anything is.
Not part of the asv suite (it defines no benchmark names); everything heavy is imported in main().
"""
from __future__ import annotations

import argparse
import math
import os
import time

# fp32 lanes per SM by compute capability (CUDA C Programming Guide, arithmetic throughput table)
FP32_PER_SM = {(6, 0): 64, (7, 0): 64, (7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 7): 128, (8, 9): 128,
               (9, 0): 128, (10, 0): 128, (12, 0): 128}


def fp32_peak(dev) -> float:
    """FLOP/s: 2 (FMA) x lanes per SM x SMs x boost clock."""
    cc = tuple(dev.compute_capability)
    lanes = FP32_PER_SM.get(cc, 128)
    return 2.0 * lanes * dev.MULTIPROCESSOR_COUNT * dev.CLOCK_RATE * 1e3


def copy_bandwidth() -> float:
    """Device-to-device copy with numba (no torch needed), bytes/s (read + write of 256 MiB)."""
    from numba import cuda

    from nbconv.impls.cuda.runtime_cuda import event_timer
    a = cuda.device_array(64 * 2**20, "float32")
    b = cuda.device_array_like(a)
    b.copy_to_device(a)
    return 2 * a.size * 4 * 20 / event_timer(lambda: b.copy_to_device(a), 20)


def torch_cuda() -> str | None:
    """None when PyTorch can run cuDNN here, else why not (the anchor is then skipped)."""
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        return f"PyTorch {torch.__version__} has no CUDA (torch.version.cuda={torch.version.cuda})"
    return None


def torch_ms(fn, reps: int) -> float:
    import torch
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / reps


def cudnn_ms(p, x, w, b, tf32: bool) -> float:
    """PyTorch conv2d (cuDNN, benchmark mode) on the same shape; the (possibly asymmetric) padding
    is applied once outside the timing, so cuDNN's figure is, if anything, flattered."""
    import torch
    import torch.nn.functional as F
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    xt = torch.as_tensor(x, device="cuda").permute(0, 3, 1, 2)            # NHWC -> NCHW view
    (ph0, ph1), (pw0, pw1) = p.pads
    xt = F.pad(xt, (pw0, pw1, ph0, ph1)).contiguous(memory_format=torch.channels_last)
    wt = torch.as_tensor(w, device="cuda").permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
    bt = torch.as_tensor(b, device="cuda")
    with torch.no_grad():
        return torch_ms(lambda: F.conv2d(xt, wt, bt, p.strides, 0, p.dilation, p.groups), 20)


def _shapes(args):
    from nbconv.shapes import load_shapes
    from nbconv.spec import make_problem
    if args.simulate:               # the simulator runs Python per thread: one tiny shape
        return [("sim_tiny", make_problem("conv", (1, 5, 5, 2), rank=2, kernel=(3, 3), out_channels=3,
                                          padding="same"))]
    return load_shapes(batch=args.batch)


def _f(v, spec):
    return format(v, spec) if v is not None and math.isfinite(v) else "-"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=None, help="override the shapes' batch size")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--time-limit", type=float, default=200.0,
                    help="seconds: no new shape is started after this (the script stays under 8 min)")
    ap.add_argument("--simulate", action="store_true",
                    help="numba's CUDA simulator, one tiny shape: checks the script, measures nothing")
    args = ap.parse_args(argv)
    if args.simulate:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"       # read when numba is first imported (below)

    from numba import config, cuda

    from nbconv import ops, reference
    from nbconv.impls.cuda import arrays, status
    if status() is not True:
        print(f"CUDA cannot run here: {status()}")
        return 1
    if args.simulate and not config.ENABLE_CUDASIM:
        print("--simulate: numba was imported before the simulator could be switched on")
        return 1
    no_torch = "the simulator has no cuDNN" if args.simulate else torch_cuda()
    if args.simulate:
        peak = bw = None
        print("# numba CUDA simulator: every time below is meaningless (the code path is checked)")
    else:
        dev = cuda.get_current_device()
        peak, bw = fp32_peak(dev), copy_bandwidth()
        print(f"# {dev.name}  cc {dev.compute_capability}  fp32 peak {peak / 1e12:.1f} TFLOP/s  "
              f"copy {bw / 1e9:.0f} GB/s (device to device)")
    if no_torch:
        print(f"# cuDNN anchor skipped: {no_torch}")
    print(f"{'shape':<18}{'best CUDA kernel':<44}{'ms':>8}{'copy ms':>9}{'cuDNN ms':>10}{'x cuDNN':>9}"
          f"{'TF32 ms':>9}{'x TF32':>8}{'% peak':>8}{'% bw':>7}{'err':>9}")
    worst, start = 0.0, time.perf_counter()
    for name, p in _shapes(args):
        if time.perf_counter() - start > args.time_limit:
            print(f"# stopped before {name}: --time-limit {args.time_limit:g} s reached")
            break
        p = p.with_(device="cuda")
        x, w, b = ops.make_args("conv", p)
        xd = cuda.to_device(x)
        d = ops.decision("conv", p, (xd, w, b))          # tuned with the impls' CUDA-event timer
        impl, cfg = d.impl, d.config
        prepared = impl.prepare(w, b, p, **cfg) if impl.prepare else None
        extra = {"prepared": prepared} if impl.prepare else {}

        def call(impl=impl, cfg=cfg, extra=extra, p=p, xd=xd, w=w, b=b):
            return impl.fn(xd, w, b, p, **extra, **cfg)
        err = reference.rel_error(call().copy_to_host(), reference.conv(x, w, b, p))
        worst = max(worst, err)
        s = None if args.simulate else impl.clock()(call, args.reps) / args.reps   # kernel alone
        copies = arrays().transfer_times(p)             # what a numpy call adds, apart
        copy_s = None if copies["copy_in_s"] is None else copies["copy_in_s"] + copies["copy_out_s"]
        off = on = None
        if not no_torch:
            off, on = cudnn_ms(p, x, w, b, False), cudnn_ms(p, x, w, b, True)
        ms = s and s * 1e3
        label = f"{impl.name} " + ",".join(f"{k}={v}" for k, v in cfg.items())
        cells = [_f(ms, "8.3f"), _f(copy_s and copy_s * 1e3, "9.3f"), _f(off, "10.3f"),
                 _f(ms and off and ms / off, "9.2f"), _f(on, "9.3f"), _f(ms and on and ms / on, "8.2f"),
                 _f(s and peak and 100 * p.flops() / s / peak, "8.1f"),
                 _f(s and bw and 100 * p.bytes() / s / bw, "7.1f")]
        widths = (8, 9, 10, 9, 9, 8, 8, 7)
        print(f"{name:<18}{label[:43]:<44}" + "".join(c.rjust(n) for c, n in zip(cells, widths, strict=True))
              + f"{err:9.1e}")
    print(f"# ms: kernel on device-resident arrays; copy ms: host->device input + device->host output "
          f"(pageable numpy); x cuDNN: nbconv / cuDNN time (lower is better); worst error {worst:.2g}")
    return 0 if math.isfinite(worst) and worst <= 1e-4 else 2


if __name__ == "__main__":
    raise SystemExit(main())
