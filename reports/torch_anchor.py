"""PyTorch's CPU conv2d on the same Problem, as a yardstick. torch is optional: imported lazily."""
from __future__ import annotations


def available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


def conv2d_calls(p, x, w, b, threads) -> dict:
    """{'torch NCHW': fn, 'torch channels_last': fn}: zero-argument calls of F.conv2d on the same
    data as a rank-2 conv Problem (none for other problems).

    Asymmetric `same` pads are run as the symmetric pad giving the same output size (same cost;
    the window alignment differs, which does not matter for speed)."""
    import torch
    import torch.nn.functional as F

    if p.op != "conv" or p.rank != 2 or any(d != 1 for d in p.dilation):
        return {}
    torch.set_num_threads(threads)
    xt = torch.from_numpy(x if not p.channels_last else x.transpose(0, 3, 1, 2).copy())
    wt = torch.from_numpy(w.transpose(3, 2, 0, 1).copy())          # (F, C/g, R, S)
    bt = torch.from_numpy(b)
    pad = []
    for (lo, hi), length, k, s, o in zip(p.pads, p.spatial, p.kernel, p.strides, p.out_spatial):
        sym = max(lo, hi)
        if lo != hi and (length + 2 * sym - k) // s + 1 != o:
            sym = min(lo, hi)
        pad.append(sym)
    out = {}
    for label, xin in (("torch NCHW", xt.contiguous()),
                       ("torch channels_last", xt.contiguous(memory_format=torch.channels_last))):
        wf = wt if label == "torch NCHW" else wt.contiguous(memory_format=torch.channels_last)

        def run(xin=xin, wf=wf):
            with torch.no_grad():
                return F.conv2d(xin, wf, bt, stride=p.strides, padding=tuple(pad), groups=p.groups)
        if tuple(run().shape[2:]) == tuple(p.out_spatial):
            out[label] = run
    return out
