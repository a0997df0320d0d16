"""The one PyTorch anchor: torch.nn.functional.conv2d on the same Problem and the same arrays, in
NCHW and channels_last memory formats. torch is optional and imported lazily, here only; the
report (`nbconv.reports.sweep`) and `nbconv bench --reference` (`nbconv.reports.compare`) both time it
through `nbconv.reports.timing`.

Asymmetric pads (Keras 'same' with an even kernel or a stride) are applied to the input once,
untimed, and torch convolves it unpadded: the output equals nbconv's exactly (so the error is
comparable), and the padding copy is not charged to torch (in torch's favour).
"""
from __future__ import annotations

import numpy as np

# label -> short name (the `fmt` column of `nbconv bench --reference`)
FORMATS = {"torch NCHW": "nchw", "torch channels_last": "channels_last"}


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


def applies(p) -> bool:
    return p.op == "conv" and p.rank == 2


def to_nchw(y, p):
    """An nbconv array (input or output) of p in torch's NCHW order."""
    return y if not p.channels_last else np.ascontiguousarray(np.moveaxis(y, -1, 1))


def conv2d_calls(p, x, w, b, threads) -> dict:
    """{'torch NCHW': fn, 'torch channels_last': fn}: zero-argument calls of F.conv2d on the data
    of a rank-2 conv Problem (empty for other problems). Sets torch's thread count."""
    if not applies(p):
        return {}
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    xt = torch.from_numpy(to_nchw(x, p))
    (t, bo), (lo, r) = p.pads
    if t != bo or lo != r:
        xt = F.pad(xt, (lo, r, t, bo))
        pad = (0, 0)
    else:
        pad = (t, lo)
    wt = torch.from_numpy(np.ascontiguousarray(np.transpose(w, (3, 2, 0, 1))))      # (F, C/g, R, S)
    bt = torch.from_numpy(b)
    kw = dict(bias=bt, stride=tuple(p.strides), padding=pad, dilation=tuple(p.dilation), groups=p.groups)
    cl = torch.channels_last
    out = {}
    for label, xin, wf in (("torch NCHW", xt.contiguous(), wt.contiguous()),
                           ("torch channels_last", xt.contiguous(memory_format=cl),
                            wt.contiguous(memory_format=cl))):
        def run(xin=xin, wf=wf):
            with torch.no_grad():
                return F.conv2d(xin, wf, **kw)
        out[label] = run
    return out


def rel_error(y_nbconv, y_torch, p) -> float:
    """max |nbconv - torch| / max |torch|, in NCHW."""
    ref = y_torch.detach().numpy()
    scale = max(float(np.abs(ref).max()), 1e-30)
    return float(np.abs(to_nchw(y_nbconv, p) - ref).max() / scale)
