"""The one PyTorch anchor: torch.nn.functional.conv2d on the same Problem and the same arrays, in
NCHW and channels_last memory formats. torch is optional and imported lazily, here only; the
report (`nbconv.reports.sweep`) and `nbconv bench --reference` (`nbconv.reports.compare`) both time it
through `nbconv.reports.timing`.

Asymmetric pads (Keras 'same' with an even kernel or a stride) are applied to the input once,
untimed, and torch convolves it unpadded: the output equals nbconv's exactly (so the error is
comparable), and the padding copy is not charged to torch (in torch's favour).

`layer_call(layer, xt)`: for `nbconv bench --families`, the call a PyTorch user writes for a built
nbconv layer (conv1d/2d/3d, depthwise and depthwise + pointwise, conv_transpose2d, max/avg
pooling, mean/amax for global pooling, unfold + einsum for LocallyConnected2D), on the layer's
weights, in the memory format of the channels-first input tensor `xt`.
"""
from __future__ import annotations

import math

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


# -- every layer family (nbconv bench --families) ---------------------------------------------
def _same_pads(spatial, kernel, strides, dilation):
    """Keras 'same' as (lo, hi) per axis."""
    out = []
    for n, k, s, d in zip(spatial, kernel, strides, dilation, strict=True):
        total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
        out.append((total // 2, total - total // 2))
    return out


def _padded(F, xt, layer, spatial, fill=0.0):
    """(input, torch padding): symmetric pads go to torch, asymmetric ones are applied here."""
    k = getattr(layer, "kernel_size", None) or layer.pool_size
    d = getattr(layer, "dilation_rate", (1,) * len(k))
    if layer.padding != "same":
        return xt, (0,) * len(k)
    pads = _same_pads(spatial, k, layer.strides, d)
    if all(lo == hi for lo, hi in pads):
        return xt, tuple(lo for lo, _ in pads)
    flat = [v for lo, hi in reversed(pads) for v in (lo, hi)]
    return F.pad(xt, flat, value=fill), (0,) * len(k)


def _conv_weight(torch, w, rank, like):
    """Keras (*k, C/g, F) -> torch (F, C/g, *k), in the input's memory format."""
    wt = torch.from_numpy(np.ascontiguousarray(np.transpose(w, (rank + 1, rank, *range(rank)))))
    return _like(torch, wt, like)


def _like(torch, t, like):
    """t in like's memory format (channels_last / channels_last_3d when like is in it)."""
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(like.dim())
    if fmt is not None and t.dim() == like.dim() and not like.is_contiguous() \
            and like.is_contiguous(memory_format=fmt):
        return t.contiguous(memory_format=fmt)
    return t


def layer_call(layer, xt):
    """The zero-argument torch call for `layer` (built, weights set) on the NC... tensor `xt`."""
    import torch
    import torch.nn.functional as F

    name = type(layer).__name__
    spatial = tuple(xt.shape[2:])
    rank = len(spatial)
    ws = [torch.from_numpy(np.ascontiguousarray(w)) for w in layer.get_weights()]
    if name.startswith("Global"):
        dims = tuple(range(2, 2 + rank))
        return (lambda: xt.amax(dim=dims)) if "Max" in name else (lambda: xt.mean(dim=dims))
    if "Pooling" in name:
        mode = "max" if name.startswith("Max") else "avg"
        xin, pad = _padded(F, xt, layer, spatial, fill=-math.inf if mode == "max" else 0.0)
        fn = getattr(F, f"{mode}_pool{rank}d")
        kw = {} if mode == "max" else {"count_include_pad": False}
        return lambda: fn(xin, layer.pool_size, layer.strides, pad, **kw)
    if name == "LocallyConnected2D":
        return _local_call(torch, F, layer, xt, ws)
    if name == "Conv2DTranspose":
        return _transpose_call(torch, F, layer, xt, ws, spatial)
    xin, pad = _padded(F, xt, layer, spatial)
    conv = getattr(F, f"conv{rank}d")
    bias = ws[-1] if layer.use_bias else None
    if name in ("DepthwiseConv2D", "SeparableConv2D"):
        dw = ws[0]                                           # (kh, kw, C, m) -> (C*m, 1, kh, kw)
        c = dw.shape[2]
        dwt = _like(torch, dw.reshape(*dw.shape[:2], -1).permute(2, 0, 1).unsqueeze(1).contiguous(), xt)
        kw = dict(stride=layer.strides, padding=pad, dilation=layer.dilation_rate, groups=c)
        if name == "DepthwiseConv2D":
            return lambda: conv(xin, dwt, bias, **kw)
        pwt = _conv_weight(torch, ws[1].numpy(), rank, xt)
        return lambda: conv(conv(xin, dwt, None, **kw), pwt, bias)
    wt = _conv_weight(torch, ws[0].numpy(), rank, xt)
    groups = getattr(layer, "groups", 1)
    return lambda: conv(xin, wt, bias, layer.strides, pad, layer.dilation_rate, groups)


def _transpose_call(torch, F, layer, xt, ws, spatial):
    """F.conv_transpose2d with the padding / output_padding a torch user picks for Keras's output
    shape. torch crops (p, p - output_padding), Keras's 'same' crops (lo, hi) with lo <= hi, so
    p = hi: the same cost, the output shifted by hi - lo; `run.align` lines the two up for the error."""
    w, bias = ws[0], (ws[1] if layer.use_bias else None)
    wt = _like(torch, w.permute(3, 2, 0, 1).contiguous(), xt)          # (kh, kw, F, C) -> (C, F, kh, kw)
    cf = layer.data_format == "channels_first"
    c = xt.shape[1]
    out = layer.compute_output_shape((1, c, *spatial) if cf else (1, *spatial, c))
    out = out[2:] if cf else out[1:-1]
    pads, outpad, nb_idx, t_idx = [], [], [], []
    for n, k, s, o in zip(spatial, layer.kernel_size, layer.strides, out, strict=True):
        total = (n - 1) * s + k - o
        lo = total // 2 if layer.padding == "same" else 0
        hi = total - lo
        pads.append(hi)
        outpad.append(hi - lo)
        nb_idx.append(slice(hi - lo, None))
        t_idx.append(slice(0, o - (hi - lo)))

    def run():
        return F.conv_transpose2d(xt, wt, bias, layer.strides, tuple(pads), tuple(outpad))
    run.align = ((slice(None), slice(None), *nb_idx), (slice(None), slice(None), *t_idx))
    return run


def _local_call(torch, F, layer, xt, ws):
    """unfold + einsum, as a torch user writes a locally-connected layer (valid padding)."""
    kh, kw = layer.kernel_size
    n, c = xt.shape[:2]
    w = ws[0]
    shape = tuple(xt.shape) if layer.data_format == "channels_first" else (n, *xt.shape[2:], c)
    out = layer.compute_output_shape(shape)
    oh, ow = out[2:] if layer.data_format == "channels_first" else out[1:3]
    p, f = oh * ow, layer.filters
    if layer.data_format == "channels_last":      # patch flattened (kh, kw, C): torch's is (C, kh, kw)
        w = w.reshape(p, kh, kw, c, f).permute(0, 3, 1, 2, 4).reshape(p, c * kh * kw, f)
    w = w.contiguous()
    if layer.use_bias:
        b = ws[1].reshape(p, f).t() if layer.data_format == "channels_last" else ws[1].reshape(f, p)
        b = b.contiguous()
    else:
        b = torch.zeros(f, p)

    def run():
        cols = F.unfold(xt, (kh, kw), stride=layer.strides)              # (N, C*kh*kw, P)
        return (torch.einsum("nkp,pkf->nfp", cols, w) + b).reshape(n, f, oh, ow)
    return run
