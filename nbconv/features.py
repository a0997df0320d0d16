"""nbconv's features for the tuner's cost model (`tuner.costmodel`): what a candidate's time on a
Problem depends on, as named numbers, mostly logs (the model is linear in them: a power law).

Problem: FLOPs, bytes moved, batch, channels per group, kernel area, output and input pixels,
stride, dilation, groups (depthwise / grouped), layout, itemsize; the GEMM view of the conv
(M = output pixels x batch, K = reduction length, N = filters per group) with the reciprocals of
small dims (where vectors and tiles run part-empty). Config: every numeric value (log2) and
flag; tiled kernels' tile fill (output columns per `wb` tile, filters per `fb` block); Winograd's
tile count and edge waste (F(2x2) or F(4x4) by name); im2col's column buffer against its cap.
"""
from __future__ import annotations

import math
from functools import lru_cache

from .spec import problem_from_key


def _log(v: float) -> float:
    return math.log(max(float(v), 1e-12))


@lru_cache(maxsize=4096)
def problem_features(key: str) -> tuple | None:
    try:
        p = problem_from_key(key)
    except (ValueError, IndexError, KeyError):
        return None
    if p.op != "conv" or p.rank == 0:
        return None
    c_g, f_g = p.in_channels // p.groups, p.out_channels // p.groups
    kk = math.prod(p.kernel)
    out_px, in_px = math.prod(p.out_spatial), math.prod(p.spatial)
    m, k = p.batch * out_px, c_g * kk
    depthwise = p.groups == p.in_channels and p.groups > 1
    f = {"flops": _log(p.flops()), "bytes": _log(p.bytes()), "batch": _log(p.batch),
         "c_group": _log(c_g), "f_group": _log(f_g), "kernel": _log(kk), "out_px": _log(out_px),
         "in_px": _log(in_px), "stride": _log(math.prod(p.strides)),
         "dilated": float(any(d > 1 for d in p.dilation)), "depthwise": float(depthwise),
         "grouped": float(p.groups > 1 and not depthwise), "channels_last": float(p.channels_last),
         "itemsize": 8.0 if p.dtype == "float64" else 4.0, "gemm_m": _log(m), "gemm_k": _log(k),
         "inv_k": 1.0 / k, "inv_n": 1.0 / f_g, "inv_m": 1.0 / m,
         "weights": _log(kk * c_g * p.out_channels), "intensity": _log(p.flops() / p.bytes())}
    return tuple(sorted(f.items())), tuple(p.out_spatial), p.batch, p.out_channels, k


def features(key: str, impl: str, config: dict) -> dict | None:
    """The cost model's features of candidate (impl, config) on the problem with this key
    (None: not a conv problem; the model then predicts nothing)."""
    base = problem_features(key)
    if base is None:
        return None
    items, out, batch, filters, k = base
    f = dict(items)
    f["offset"] = f["flops"]          # the model fits seconds per FLOP of the fastest kernel
    for name, v in config.items():
        if isinstance(v, bool):
            f["cfg_" + name] = float(v)
        elif isinstance(v, (int, float)) and v > 0:
            f["cfg_" + name] = math.log2(v)
    # streaming stores pay once the output outgrows the caches; channel-outer once the weights do
    f["stream_out"] = f.get("cfg_stream", 0.0) * (f["out_px"] + f["batch"] + math.log(filters))
    f["outer_weights"] = f.get("cfg_channel_outer", 0.0) * f["weights"]
    ow = out[-1]
    if config.get("wb"):
        wb = int(config["wb"])
        f["fill_w"] = ow / (-(-ow // wb) * wb)
    if config.get("fb"):
        fb = int(config["fb"])
        f["fill_f"] = filters / (-(-filters // fb) * fb)
        f["f_blocks"] = _log(-(-filters // fb))
    tile = 4 if "f4x4" in impl else 2 if "f2x2" in impl else 0
    if tile and len(out) == 2:
        th, tw = -(-out[0] // tile), -(-out[1] // tile)
        f["wino_tiles"] = _log(batch * th * tw)
        f["wino_fill"] = out[0] * out[1] / (th * tw * tile * tile)
    if "cap_mb" in config:
        col = batch * math.prod(out) * k * f["itemsize"]
        f["col_over_cap"] = _log(col / (float(config["cap_mb"]) * 2 ** 20))
    return f
