"""Hypothesis strategies: Problems that each registered implementation accepts.

A `Family` describes a class of Problems that some kernels serve: any convolution, a 1x1 one, a
3x3 stride-1 one (Winograd), a depthwise one, and the same with out_channels in whole vectors
(`simd.lanes`: 16 float32 / 8 float64 lanes on AVX-512) for the register-tiled kernels; for
op "separable", any one and the fused kernel's (multiplier 1, channels in whole vectors).
`FAMILIES[op]` lists an op's families; `IMPL_FAMILIES` names the ones each known impl is drawn
from. `problems_for(impl)` draws from those (an impl not named there: from all of its op's
families) and keeps what `impl.check` accepts; `test_kernels.py` fails for an impl that accepts
too few of its draws, naming the family to add here.

Sizes are tiny (Numba compiles dominate a cold run): output extents are drawn first (1-4 per
axis, 1-3 in 3-D) and input extents derived from them and the padding. Vector families draw the
last output extent from `WIDE`, which gives the tiled kernels whole tiles beside edge tiles while
bounding how many tile widths (one compile each) their configs name.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from nbconv.impls import simd
from nbconv.spec import LAYOUTS, Problem, effective_kernel, padding_pairs

DTYPES = ("float32", "float64")
OUT_EXTENT = {1: 6, 2: 4, 3: 3}       # largest drawn output extent per axis, by rank
WIDE = (6, 20)                          # last output extent of the vector families


def lanes(dtype: str) -> int:
    """Elements per vector register for dtype: out_channels of the tiled kernels are multiples."""
    return simd.lanes(np.dtype(dtype).itemsize)


@dataclass(frozen=True)
class Family:
    """A class of Problems of one op. `kernel`: None draws 1..kmax per axis, an int fixes it on
    every axis, "global" takes the input's extent. `groups`: "any", "one", "one_wide" (one group,
    whole vectors of input channels), "grouped" (2 or 3), "grouped_first" (2-3 of 2-8 channels),
    "grouped_lanes" (4 outputs a group; `vectors`), "depthwise" (channel multiplier 1-3) or
    "depthwise1" (multiplier 1); for separable, "separable" (multiplier 1-3) or "separable1"
    (multiplier 1, whole vectors of input channels). `vectors`: out_channels are 1-4 whole vectors
    of the drawn dtype (else ragged counts); the last output extent then comes from WIDE.
    `layouts`: the data formats drawn (channels_first only for the NCHW kernels)."""
    name: str
    ranks: tuple = (1, 2, 3)
    kernel: int | str | None = None
    kmax: tuple = (4, 4, 3)             # by rank 1, 2, 3
    strides: int = 3                    # largest stride ("pool": the pool size half the time)
    dilation: int = 2                   # largest dilation
    groups: str = "any"
    paddings: tuple = ("valid", "same", "explicit")
    vectors: bool = False
    layouts: tuple = LAYOUTS


_CONV_PADS = ("valid", "same", "explicit", "causal")   # causal: rank 1 only
FAMILIES: dict[str, tuple[Family, ...]] = {
    "conv": (
        Family("conv", paddings=_CONV_PADS),
        Family("pointwise", kernel=1, dilation=1, groups="one", paddings=("valid",)),
        Family("winograd", ranks=(2,), kernel=3, strides=1, dilation=1, groups="one"),
        Family("depthwise", groups="depthwise", paddings=_CONV_PADS),
        Family("conv_vectors", groups="one", paddings=_CONV_PADS, vectors=True),
        Family("winograd_vectors", ranks=(2,), kernel=3, strides=1, dilation=1, groups="one",
               vectors=True),
        Family("depthwise_vectors", groups="depthwise1", paddings=_CONV_PADS, vectors=True),
        Family("conv_first", paddings=_CONV_PADS, layouts=("channels_first",)),
        Family("depthwise_first", groups="depthwise", paddings=_CONV_PADS, layouts=("channels_first",)),
        Family("grouped_last", groups="grouped", paddings=_CONV_PADS, layouts=("channels_last",)),
        Family("grouped_first", ranks=(1, 2), strides=1, groups="grouped_first", paddings=_CONV_PADS,
               layouts=("channels_first",)),
        Family("grouped_lanes", groups="grouped_lanes", paddings=_CONV_PADS, vectors=True,
               layouts=("channels_last",)),
    ),
    "maxpool": (
        Family("pool", strides=0, dilation=1),
        Family("pool_large", ranks=(1, 2), kmax=(12, 7, 0), strides=0, dilation=1,
               paddings=("valid", "same")),
        Family("pool_global", kernel="global", strides=1, dilation=1, paddings=("valid",)),
    ),
    "local": (Family("local", kmax=(3, 3, 3), strides=2, dilation=1, groups="one"),),
    "dense": (Family("dense", ranks=(0,)), Family("dense_wide", ranks=(0,))),
    # separable: groups "separable" draws the depth multiplier 1-3 and ragged channels;
    # "separable1" multiplier 1 and whole vectors of in and out channels (the fused kernel)
    "separable": (
        Family("separable", ranks=(1, 2), groups="separable"),
        Family("separable_vectors", ranks=(1, 2), groups="separable1", vectors=True),
    ),
}
FAMILIES["avgpool"] = FAMILIES["maxpool"]
_BY_NAME = {f.name: f for fams in FAMILIES.values() for f in fams}
# Families only the impls naming them in IMPL_FAMILIES draw from (not in an op's default draws).
_NAMED_ONLY = (
    Family("pointwise_first", kernel=1, dilation=1, groups="one", paddings=("valid",),
           layouts=("channels_first",)),
    Family("conv3d_3x3x3_vectors", ranks=(3,), kernel=3, strides=1, dilation=1, groups="one_wide",
           vectors=True),
)
_BY_NAME.update({f.name: f for f in _NAMED_ONLY})

# The families each known impl is drawn from: those its `applies` accepts (nearly) all of.
IMPL_FAMILIES: dict[str, tuple[str, ...]] = {
    "gemm_1x1": ("pointwise",),
    "winograd_f2x2_3x3": ("winograd", "winograd_vectors"),
    "winograd_f4x4_3x3": ("winograd", "winograd_vectors"),
    "winograd_f4x4_tiled": ("winograd_vectors",),
    "depthwise_direct": ("depthwise", "depthwise", "depthwise_vectors"),   # multipliers twice as often
    "depthwise_tiled": ("depthwise_vectors",),
    "tiled_direct": ("conv_vectors",),
    "nchw_tiled": ("conv_first",),
    "nchw_pointwise": ("pointwise_first",),
    "nchw_depthwise": ("depthwise_first",),
    "grouped_last": ("grouped_last",),
    "grouped_tiled": ("grouped_lanes",),
    "nchw_grouped": ("grouped_first",),
    "conv3d_via_winograd": ("conv3d_3x3x3_vectors",),
    "separable_fused": ("separable_vectors",),
    "maxpool_global": ("pool_global",),
    "avgpool_global": ("pool_global",),
}


def families_for(impl) -> tuple[Family, ...]:
    names = IMPL_FAMILIES.get(impl.name)
    return tuple(_BY_NAME[n] for n in names) if names else FAMILIES[impl.op]


def _axes(draw, rank, lo, hi):
    return tuple(draw(st.integers(lo, hi)) for _ in range(rank))


def _extent(draw, op, padding, o, k, s, d):
    """An input extent with output extent o (approximately, for explicit pads) and its pads."""
    ke = effective_kernel(k, d)
    r = draw(st.integers(0, s - 1))             # slack that leaves the output extent alone
    if padding == "valid":
        return (o - 1) * s + ke + r, (0, 0)
    if padding == "explicit":
        # pooling pads stay below the window (no window is all padding, as Keras's `same`)
        m = k - 1 if op in ("maxpool", "avgpool") else ke
        lo, hi = draw(st.integers(0, m)), draw(st.integers(0, m))
        return max(1, (o - 1) * s + ke - lo - hi + r), (lo, hi)
    return (o - 1) * s + 1 + r, None            # same / causal: pads follow from the extent


def _channels(draw, fam: Family, dtype):
    """(in_channels, out_channels, groups) for conv and local."""
    lane = lanes(dtype)
    if fam.groups == "separable1":           # (in, out, multiplier): whole vectors, multiplier 1
        # (4 vectors of filters draw both tile shapes; fewer kinds, fewer compiles)
        return lane * draw(st.sampled_from([1, 2])), lane * draw(st.sampled_from([1, 4])), 1
    if fam.groups == "separable":
        return draw(st.integers(1, 5)), draw(st.integers(1, 6)), draw(st.sampled_from([1, 1, 2, 3]))
    if fam.vectors:
        f = lane * draw(st.sampled_from([1, 1, 2, 2, 3, 4]))
        if fam.groups == "depthwise1":
            return f, f, f
        if fam.groups == "grouped_lanes":        # 4 outputs and 4 or 8 inputs a group (ResNeXt-like)
            cg = draw(st.sampled_from([4, 8]))
            return f // 4 * cg, f, f // 4
        if fam.groups == "one_wide":            # whole vectors of input channels too
            return lane * draw(st.sampled_from([1, 2])), f, 1
        return draw(st.sampled_from([1, 2, 3, 5, lane])), f, 1
    if fam.groups in ("depthwise", "depthwise1"):
        c = draw(st.sampled_from([1, 1, 2, 3, 4, 8]))
        m = 1 if fam.groups == "depthwise1" else draw(st.sampled_from([1, 1, 2, 3]))
        return c, c * m, c
    if fam.groups == "grouped_first":        # 2 or 3 groups of 2-3 inputs, 2-8 outputs
        g = draw(st.sampled_from([2, 3]))
        return g * draw(st.integers(2, 3)), g * draw(st.sampled_from([2, 4, 8])), g
    if fam.groups == "grouped":              # 2 or 3 groups of 2-3 input channels (not depthwise)
        g = draw(st.sampled_from([2, 3]))
        return g * draw(st.integers(2, 3)), g * draw(st.integers(1, 3)), g
    g = 1 if fam.groups == "one" else draw(st.sampled_from([1, 1, 1, 2, 3]))
    return g * draw(st.integers(1, 8 // g)), g * draw(st.integers(1, 8 // g)), g


@st.composite
def problems(draw, op: str, family: Family | None = None) -> Problem:
    """A valid Problem of `op` from `family` (default: any of the op's families), any dtype and
    layout, batch 1-3."""
    fam = family or draw(st.sampled_from(FAMILIES[op]))
    dtype = draw(st.sampled_from(DTYPES))
    layout = draw(st.sampled_from(fam.layouts))
    batch = draw(st.sampled_from([1, 1, 2, 3]))
    if op == "dense":
        small, wide = st.integers(1, 9), st.integers(250, 300)
        which = "" if fam.name == "dense" else draw(st.sampled_from(["c", "f", "cf"]))
        c = draw(wide if "c" in which else small)
        f = draw(wide if "f" in which else small)
        return Problem(op="dense", rank=0, batch=draw(st.integers(1, 9)), in_channels=c, out_channels=f,
                       dtype=dtype)
    rank = draw(st.sampled_from(fam.ranks))
    pooling = op in ("maxpool", "avgpool")
    if fam.kernel == "global":
        spatial = _axes(draw, rank, 1, 7 if rank < 3 else 4)
        one = (1,) * rank
        c = draw(st.sampled_from([1, 2, 3, 5, 8, 17]))
        return Problem(op=op, rank=rank, batch=batch, in_channels=c, out_channels=c, spatial=spatial,
                       kernel=spatial, strides=one, dilation=one, pads=((0, 0),) * rank, layout=layout,
                       dtype=dtype)
    kmax = fam.kmax[rank - 1]
    kmin = 5 if fam.name == "pool_large" else 1
    kernel = (fam.kernel,) * rank if isinstance(fam.kernel, int) else _axes(draw, rank, kmin, kmax)
    if fam.strides == 0:            # pooling: Keras's default strides = the pool size, or any
        strides = kernel if draw(st.booleans()) else _axes(draw, rank, 1, 3)
    else:
        strides = _axes(draw, rank, 1, fam.strides)
    dilation = _axes(draw, rank, 1, fam.dilation)
    paddings = [m for m in fam.paddings if m != "causal" or (rank == 1 and op == "conv")]
    padding = draw(st.sampled_from(paddings))
    outs = [draw(st.integers(1, OUT_EXTENT[rank])) for _ in range(rank)]
    if fam.vectors and "winograd" not in fam.name:
        outs[-1] = draw(st.sampled_from(WIDE))
    elif "winograd" in fam.name:
        outs = [draw(st.integers(1, 9)) for _ in range(rank)]   # ragged 4x4 and 2x2 tiles
    spatial, pads = [], []
    for o, k, s, d in zip(outs, kernel, strides, dilation, strict=True):
        n, pad = _extent(draw, op, padding, o, k, s, d)
        spatial.append(n)
        pads.append(pad)
    if padding in ("same", "causal"):
        pads = padding_pairs(padding, spatial, kernel, strides, dilation, op)
    if pooling:
        c = draw(st.sampled_from([1, 1, 2, 3, 4, 8, 17]))
        c, f, g = c, c, 1
    elif op == "local":
        c, f, g = draw(st.integers(1, 4)), draw(st.integers(1, 5)), 1
    else:
        c, f, g = _channels(draw, fam, dtype)
    m = 1
    if op == "separable":
        g, m = 1, g
    return Problem(op=op, rank=rank, batch=batch, in_channels=c, out_channels=f, spatial=tuple(spatial),
                   kernel=kernel, strides=strides, dilation=dilation, pads=tuple(pads), groups=g,
                   layout=layout, dtype=dtype, multiplier=m)


def candidate_problems(impl) -> st.SearchStrategy[Problem]:
    """Problems from impl's families, before `impl.check` filters them."""
    return st.one_of(*(problems(impl.op, fam) for fam in families_for(impl)))


def problems_for(impl) -> st.SearchStrategy[Problem]:
    """Problems `impl` accepts (`impl.check`), from its families."""
    return candidate_problems(impl).filter(lambda p: impl.check(p)[0])


def family_of(p: Problem) -> str:
    """A short label of what a drawn Problem exercises (for hypothesis statistics)."""
    if p.rank == 0:
        return "dense"
    parts = [f"r{p.rank}", p.layout_name, p.dtype]
    if p.op == "separable":
        parts.append(f"separable m{p.multiplier}")
    if p.op == "conv" and p.groups == p.in_channels > 1:
        parts.append(f"depthwise m{p.out_channels // p.in_channels}")
    elif p.op == "conv" and p.groups > 1:
        parts.append("grouped")
    elif p.op == "conv" and p.in_channels == 1:
        parts.append("one channel")
    if p.op == "conv" and p.out_channels % lanes(p.dtype) == 0:
        parts.append(f"{p.out_channels // lanes(p.dtype)} vectors")
    return " ".join(parts)


# -- fixed Problems and data ---------------------------------------------------------------------

def make_arrays(p: Problem, seed: int) -> list[np.ndarray]:
    """The call's arrays, (x,) for pooling else (x, w, b): uniform in [-1, 1], never zeros."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1.0, 1.0, s).astype(p.dtype) for s in p.arg_shapes]


def conv2d(c, f, hw, k, s=1, pad="same", groups=1, layout="channels_last", n=2, dtype="float32"):
    spatial = hw if isinstance(hw, tuple) else (hw, hw)
    kernel = k if isinstance(k, tuple) else (k, k)
    strides = s if isinstance(s, tuple) else (s, s)
    return Problem(op="conv", rank=2, batch=n, in_channels=c, out_channels=f, spatial=spatial,
                   kernel=kernel, strides=strides, dilation=(1, 1),
                   pads=padding_pairs(pad, spatial, kernel, strides, (1, 1)), groups=groups, layout=layout,
                   dtype=dtype)


def nd(op, rank, c, f, spatial, k, s, pad, layout="channels_last", n=2, d=1, groups=1):
    kernel, strides, dilation = (k,) * rank, (s,) * rank, (d,) * rank
    return Problem(op=op, rank=rank, batch=n, in_channels=c, out_channels=f, spatial=spatial,
                   kernel=kernel, strides=strides, dilation=dilation, groups=groups,
                   pads=padding_pairs(pad, spatial, kernel, strides, dilation, op), layout=layout)


# Special cases the fast kernels serve, for the NaN/Inf and the input-handling tests.
CATALOGUE = {
    "conv_1x1_s1": conv2d(8, 16, 6, 1, pad="valid"),
    "conv_1x1_s1_nchw": conv2d(8, 8, 5, 1, pad="valid", layout="channels_first"),
    "conv_1x1_s2": conv2d(8, 12, 7, 1, s=2, pad="valid"),
    "conv_3x3_s1": conv2d(8, 8, 10, 3),
    "conv_3x3_s1_c16_valid": conv2d(16, 16, (8, 22), 3, pad="valid", n=1),
    "conv_3x3_s1_nchw": conv2d(8, 16, (9, 6), 3, layout="channels_first"),
    "conv_3x3_s2": conv2d(8, 8, 9, 3, s=2),
    "conv_dw3x3_s1": conv2d(8, 8, 9, 3, groups=8),
    "conv_dw3x3_s2": conv2d(16, 16, (9, 11), 3, s=2, groups=16),
    "conv_dw3x3_s1_nchw": conv2d(8, 8, 7, 3, groups=8, layout="channels_first"),
    "conv_dw3x5_d2x1_s2x1": nd("conv", 2, 4, 4, (9, 11), 3, 1, "same", groups=4).with_(
        kernel=(3, 5), strides=(2, 1), dilation=(2, 1), pads=((2, 2), (2, 2))),
    "conv_5x5": conv2d(4, 8, 9, 5),
    "conv_3x3_s2_f16": conv2d(3, 16, (9, 12), 3, s=2),
    "conv_dw3x3_c16": conv2d(16, 16, (7, 20), 3, groups=16),
    "conv_7x7_s2_f64": conv2d(3, 64, (9, 11), 7, s=2),
    "conv_grouped": conv2d(8, 8, 6, 3, groups=2),
    "conv_grouped_nchw": conv2d(4, 8, (4, 9), 5, s=2, groups=4, layout="channels_first"),
    "conv1d_k3": nd("conv", 1, 4, 6, (12,), 3, 1, "same"),
    "conv1d_causal_d2": nd("conv", 1, 3, 5, (10,), 3, 1, "causal", d=2),
    "conv3d_k3": nd("conv", 3, 3, 4, (5, 4, 6), 3, 1, "same"),
    "conv3d_dw_nchw": nd("conv", 3, 3, 3, (5, 5, 5), 3, 1, "same", layout="channels_first", groups=3, n=1),
    "maxpool_2x2": nd("maxpool", 2, 8, 8, (8, 8), 2, 2, "valid"),
    "avgpool_2x2": nd("avgpool", 2, 8, 8, (8, 8), 2, 2, "valid"),
    "maxpool_3x3_s2_same": nd("maxpool", 2, 4, 4, (9, 8), 3, 2, "same"),
    "avgpool_3x3_s2_same_nchw": nd("avgpool", 2, 4, 4, (9, 8), 3, 2, "same", layout="channels_first"),
    "maxpool_global": nd("maxpool", 2, 20, 20, (7, 7), 7, 1, "valid"),
    "avgpool_global_nchw": nd("avgpool", 2, 6, 6, (7, 6), 1, 1, "valid", layout="channels_first").with_(
        kernel=(7, 6)),
    "maxpool_global_nchw": nd("maxpool", 2, 3, 3, (9, 9), 9, 1, "valid", layout="channels_first"),
    "avgpool3d_global_nchw": nd("avgpool", 3, 2, 2, (3, 4, 5), 1, 1, "valid", layout="channels_first").with_(
        kernel=(3, 4, 5)),
    "maxpool1d_wide_nchw": nd("maxpool", 1, 2, 2, (40,), 20, 7, "same", layout="channels_first"),
    "maxpool1d": nd("maxpool", 1, 3, 3, (9,), 2, 2, "same"),
    "avgpool3d": nd("avgpool", 3, 2, 2, (4, 5, 4), 2, 2, "same"),
    "local1d_same": nd("local", 1, 3, 4, (9,), 3, 1, "same"),
    "local2d_valid": nd("local", 2, 3, 5, (6, 7), 3, 2, "valid"),
    "local2d_nchw": nd("local", 2, 2, 3, (5, 5), 2, 1, "same", layout="channels_first"),
    "dense": Problem(op="dense", rank=0, batch=4, in_channels=16, out_channels=10),
    "separable_3x3": nd("separable", 2, 16, 16, (5, 8), 3, 1, "same"),
    "separable_m2_nchw": nd("separable", 2, 3, 5, (6, 5), 3, 2, "same", layout="channels_first").with_(
        multiplier=2),
    "dense_batch1_wide": Problem(op="dense", rank=0, batch=1, in_channels=7, out_channels=300),
}
