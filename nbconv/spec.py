"""The normalised description of one layer call: a frozen `Problem`.

Keras arguments are turned into explicit numbers here and nowhere else:
padding strings become `(lo, hi)` pairs per spatial axis. Standard library only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

OPS = ("conv", "maxpool", "avgpool", "local", "dense",
       "separable",     # depthwise (channel multiplier `multiplier`, no bias) then a 1x1 conv
       )
LAYOUTS = ("channels_last", "channels_first")
DEVICES = ("cpu", "cuda")
_LAYOUT_NAMES = {
    ("channels_last", 0): "NC", ("channels_first", 0): "NC",
    ("channels_last", 1): "NWC", ("channels_first", 1): "NCW",
    ("channels_last", 2): "NHWC", ("channels_first", 2): "NCHW",
    ("channels_last", 3): "NDHWC", ("channels_first", 3): "NCDHW",
}


def effective_kernel(k: int, d: int) -> int:
    return (k - 1) * d + 1


def same_pads(length: int, ke: int, stride: int) -> tuple[int, int]:
    """TensorFlow's `same` split: the extra pixel goes after (bottom/right)."""
    out = (length - 1) // stride + 1
    total = max((out - 1) * stride + ke - length, 0)
    return total // 2, total - total // 2


def padding_pairs(padding: str, spatial, kernel, strides, dilation, op: str = "conv"):
    """Explicit `(lo, hi)` pairs for a Keras padding string, per spatial axis."""
    pairs = []
    for length, k, s, d in zip(spatial, kernel, strides, dilation, strict=True):
        ke = effective_kernel(k, d)
        if padding == "valid":
            pairs.append((0, 0))
        elif padding == "causal":
            pairs.append((ke - 1, 0))
        elif padding == "same" and op == "local":
            # tf-keras LocallyConnected: output p's window starts at p*s - k//2.
            out = (length - 1) // s + 1
            lo = k // 2
            hi = max((out - 1) * s - lo + k - length, 0)
            pairs.append((lo, hi))
        elif padding == "same":
            pairs.append(same_pads(length, ke, s))
        else:
            raise ValueError(
                "The `padding` argument must be one of {'same', 'valid', 'causal'}. "
                f"Received: padding={padding}")
    return tuple(pairs)


@dataclass(frozen=True)
class Problem:
    """Everything that decides a kernel's result and its fastest choice.

    `spatial` is the input's spatial shape; `pads` holds explicit (lo, hi) pairs.
    For pooling, `kernel` is the pool size and in_channels == out_channels.
    For dense, rank is 0 and `in_channels`/`out_channels` are the feature sizes.
    For separable, `out_channels` are the pointwise filters and `multiplier` the depthwise step's
    channel multiplier (its output has in_channels * multiplier channels); `groups` is unused (1).
    """

    op: str
    rank: int
    batch: int
    in_channels: int
    out_channels: int
    spatial: tuple = ()
    kernel: tuple = ()
    strides: tuple = ()
    dilation: tuple = ()
    pads: tuple = ()
    groups: int = 1
    layout: str = "channels_last"
    dtype: str = "float32"
    device: str = "cpu"             # where the arrays live: kernels, timers and fingerprints differ
    multiplier: int = 1             # separable only: the depthwise step's channel multiplier
    out_spatial: tuple = field(init=False, compare=False, repr=False)

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"Problem: `op` must be one of {OPS}. Received: op={self.op!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"Problem: `layout` must be one of {LAYOUTS}. Received: layout={self.layout!r}")
        if self.device not in DEVICES:
            raise ValueError(f"Problem: `device` must be one of {DEVICES}. Received: device={self.device!r}")
        if not (isinstance(self.multiplier, int) and self.multiplier >= 1):
            raise ValueError("Problem: `multiplier` must be an int >= 1. "
                             f"Received: multiplier={self.multiplier!r}")
        r = self.rank
        for name in ("spatial", "kernel", "strides", "dilation", "pads"):
            v = tuple(tuple(int(a) for a in e) if name == "pads" else int(e) for e in getattr(self, name))
            if len(v) != r:
                raise ValueError(f"Problem: `{name}` must have {r} entries. Received: {name}={v}")
            object.__setattr__(self, name, v)
        out = []
        axes = zip(self.spatial, self.kernel, self.strides, self.dilation, self.pads, strict=True)
        for length, k, s, d, (lo, hi) in axes:
            out.append((length + lo + hi - effective_kernel(k, d)) // s + 1)
        object.__setattr__(self, "out_spatial", tuple(out))

    # -- shapes -----------------------------------------------------------------
    @property
    def layout_name(self) -> str:
        return _LAYOUT_NAMES[(self.layout, self.rank)]

    @property
    def channels_last(self) -> bool:
        return self.layout == "channels_last"

    def _shape(self, channels, spatial):
        if self.rank == 0 or self.channels_last:
            return (self.batch, *spatial, channels)
        return (self.batch, channels, *spatial)

    @property
    def input_shape(self) -> tuple:
        return self._shape(self.in_channels, self.spatial)

    @property
    def output_shape(self) -> tuple:
        return self._shape(self.out_channels, self.out_spatial)

    @property
    def weight_shape(self) -> tuple | None:
        """Keras kernel layout for conv/dense; the canonical (P, *k, C, F) layout for local."""
        if self.op == "conv":
            return (*self.kernel, self.in_channels // self.groups, self.out_channels)
        if self.op == "separable":          # the depthwise kernel, Keras's layout
            return (*self.kernel, self.in_channels, self.multiplier)
        if self.op == "dense":
            return (self.in_channels, self.out_channels)
        if self.op == "local":
            return (math.prod(self.out_spatial), *self.kernel, self.in_channels, self.out_channels)
        return None

    @property
    def bias_shape(self) -> tuple | None:
        if self.op in ("conv", "dense", "separable"):
            return (self.out_channels,)
        if self.op == "local":
            return (math.prod(self.out_spatial), self.out_channels)
        return None

    @property
    def arg_shapes(self) -> tuple:
        """The shapes of a kernel's arrays, in order: (x,) for pooling, (x, w, b), and for
        separable (x, depthwise kernel, pointwise kernel, b) in Keras's layouts ((*k, C, M) and
        (*1, C*M, F))."""
        if self.op in ("maxpool", "avgpool"):
            return (self.input_shape,)
        if self.op == "separable":
            pointwise = (*(1,) * self.rank, self.in_channels * self.multiplier, self.out_channels)
            return self.input_shape, self.weight_shape, pointwise, self.bias_shape
        return self.input_shape, self.weight_shape, self.bias_shape

    def valid(self) -> bool:
        return all(o >= 1 for o in self.out_spatial)

    # -- identity and cost ------------------------------------------------------
    def key(self) -> str:
        """Readable string holding everything that changes the result or the fastest choice."""
        def x(t):
            return "x".join(str(v) for v in t) or "-"
        group = f"m{self.multiplier}" if self.op == "separable" else f"g{self.groups}"
        parts = [self.op, f"r{self.rank}", self.dtype, self.layout_name, f"n{self.batch}",
                 f"c{self.in_channels}-{self.out_channels}", group]
        if self.rank:
            parts += [f"s{x(self.spatial)}", f"k{x(self.kernel)}", f"st{x(self.strides)}",
                      f"d{x(self.dilation)}", "p" + "x".join(f"{lo}:{hi}" for lo, hi in self.pads)]
        return "/".join([*parts, self.device])

    def flops(self) -> int:
        """Useful floating-point operations (a multiply-add counts 2; pooling counts 1 per window cell)."""
        n_out = self.batch * math.prod(self.out_spatial)
        kk = math.prod(self.kernel)
        if self.op == "conv":
            return 2 * n_out * self.out_channels * (self.in_channels // self.groups) * kk
        if self.op == "separable":
            mid = self.in_channels * self.multiplier
            return 2 * n_out * mid * (kk + self.out_channels)
        if self.op == "local":
            return 2 * n_out * self.out_channels * self.in_channels * kk
        if self.op == "dense":
            return 2 * self.batch * self.in_channels * self.out_channels
        return n_out * self.out_channels * kk

    def bytes(self, itemsize: int | None = None) -> int:
        """Minimum memory traffic: input, weights and output read or written once."""
        itemsize = itemsize or (8 if self.dtype == "float64" else 4)
        return sum(math.prod(s) for s in (*self.arg_shapes, self.output_shape)) * itemsize

    def with_(self, **changes) -> Problem:
        return replace(self, **changes)


def make_problem(op, x_shape, *, rank, kernel, strides=None, dilation=None, padding="valid",
                 out_channels=None, groups=1, layout="channels_last", dtype="float32", device="cpu",
                 multiplier=1):
    """Problem from an input shape and Keras-style arguments (already validated by the layer)."""
    x_shape = tuple(int(s) for s in x_shape)
    if layout == "channels_last":
        spatial, channels = x_shape[1:-1], x_shape[-1]
    else:
        spatial, channels = x_shape[2:], x_shape[1]
    strides = tuple(strides or (1,) * rank)
    dilation = tuple(dilation or (1,) * rank)
    pads = padding if not isinstance(padding, str) else padding_pairs(
        padding, spatial, kernel, strides, dilation, op)
    return Problem(op=op, rank=rank, batch=x_shape[0], in_channels=channels,
                   out_channels=channels if out_channels is None else out_channels,
                   spatial=spatial, kernel=tuple(kernel), strides=strides, dilation=dilation,
                   pads=tuple(pads), groups=groups, layout=layout, dtype=str(dtype), device=device,
                   multiplier=multiplier)


def separable_steps(p: Problem) -> tuple[Problem, Problem]:
    """The two convs a separable Problem stands for: the depthwise one (groups = in_channels,
    kernel (*k, 1, C*M)) and the 1x1 one over its output."""
    mid = p.in_channels * p.multiplier
    depthwise = replace(p, op="conv", out_channels=mid, groups=p.in_channels, multiplier=1)
    ones = (1,) * p.rank
    pointwise = replace(p, op="conv", in_channels=mid, spatial=p.out_spatial, kernel=ones, strides=ones,
                        dilation=ones, pads=((0, 0),) * p.rank, multiplier=1)
    return depthwise, pointwise


def key_with_device(key: str) -> str:
    """A key written before the device was part of keys (it then meant `cpu`), in today's form."""
    return key if key.rsplit("/", 1)[-1] in DEVICES else key + "/cpu"


def problem_from_key(key: str) -> Problem:
    """Inverse of `Problem.key()` (keys written before the device was part of them mean `cpu`)."""
    parts = key.split("/")
    device = parts.pop() if parts[-1] in DEVICES else "cpu"
    names = {v: k for k, v in _LAYOUT_NAMES.items() if k[1] > 0}
    op, r, dtype, layout_name, n, c, g = parts[:7]
    rank = int(r[1:])
    multiplier = int(g[1:]) if g.startswith("m") else 1
    g = "g1" if g.startswith("m") else g
    c_in, c_out = (int(v) for v in c[1:].split("-"))
    if rank == 0:
        return Problem(op=op, rank=0, dtype=dtype, batch=int(n[1:]), in_channels=c_in,
                       out_channels=c_out, groups=int(g[1:]), device=device)

    def ints(s: str, prefix: str) -> tuple:
        return tuple(int(v) for v in s[len(prefix):].split("x"))
    s, k, st, d, p = parts[7:12]
    pads = tuple(tuple(int(v) for v in pair.split(":")) for pair in p[1:].split("x"))
    return Problem(op=op, rank=rank, dtype=dtype, batch=int(n[1:]), in_channels=c_in, out_channels=c_out,
                   groups=int(g[1:]), device=device, layout=names[layout_name][0], spatial=ints(s, "s"),
                   kernel=ints(k, "k"), strides=ints(st, "st"), dilation=ints(d, "d"), pads=pads,
                   multiplier=multiplier)
