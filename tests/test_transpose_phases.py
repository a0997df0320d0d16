"""ConvNDTranspose without zero insertion: the per-phase sub-convolutions against the transposed
conv's own definition, a scatter (output i*s + j*d - crop += x[i] W[j]) in float64.

Kernels 2-5, strides 1-3, both paddings, output_padding, dilation (stride 1: Keras rejects it with
strides), both data formats, ranks 1-3. Tolerance 1e-5 relative to the output's largest magnitude
(float32 sums of at most 5*5*3 products; measured max 3e-7 over this grid). The Keras conformance
tests compare the same layers with Keras itself on kernels 2-3.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import nbconv.layers as L
from nbconv import ops
from nbconv.layers.transpose import output_phases

TOL = 1e-5


def scatter_reference(x, kernel, bias, strides, dilation, crop, out):
    """float64 transposed conv of channels_last x with the Keras kernel (*k, F, C)."""
    rank = x.ndim - 2
    k = kernel.shape[:rank]
    ext = [(n - 1) * s + (kk - 1) * d + 1 for n, s, kk, d in zip(x.shape[1:-1], strides, k, dilation,
                                                                    strict=True)]
    acc = np.zeros((x.shape[0], *[max(e, c + o) for e, c, o in zip(ext, crop, out, strict=True)],
                    kernel.shape[-2]))
    w = kernel.astype(np.float64)
    for idx in itertools.product(*(range(n) for n in x.shape[1:-1])):
        xi = x[(slice(None), *idx)].astype(np.float64)
        for tap in itertools.product(*(range(kk) for kk in k)):
            pos = tuple(i * s + t * d for i, t, s, d in zip(idx, tap, strides, dilation, strict=True))
            acc[(slice(None), *pos)] += xi @ w[tap].T
    return acc[(slice(None), *(slice(c, c + o) for c, o in zip(crop, out, strict=True)))] + bias


def _cases():
    spatial = {1: (5,), 2: (4, 3), 3: (3, 2, 2)}
    for rank, k, s, pad, op, d, fmt in itertools.product(
            (1, 2), (2, 3, 4, 5), (1, 2, 3), ("valid", "same"), (None, 0, 1, 2), (1, 2),
            ("channels_last", "channels_first")):
        if (op is not None and op >= s) or (s > 1 and d > 1):
            continue
        if rank == 2 and (k == 4 or op not in (None, 1) or (d > 1 and fmt == "channels_first")):
            continue                    # rank 2: a lighter grid (CI time)
        yield rank, spatial[rank], k, s, pad, op, d, fmt
    yield 3, spatial[3], 3, 2, "same", 1, 1, "channels_first"
    yield 3, spatial[3], 2, 3, "valid", None, 1, "channels_last"


@pytest.mark.parametrize("rank, sp, k, s, pad, op, d, fmt", list(_cases()))
def test_transpose_matches_scatter_definition(rank, sp, k, s, pad, op, d, fmt):
    cls = {1: L.Conv1DTranspose, 2: L.Conv2DTranspose, 3: L.Conv3DTranspose}[rank]
    layer = cls(4, k, strides=s, padding=pad, output_padding=op, dilation_rate=d, data_format=fmt,
                bias_initializer="random_uniform")
    shape = (2, *sp, 3) if fmt == "channels_last" else (2, 3, *sp)
    x = np.random.default_rng(k * 10 + s).uniform(-1, 1, shape).astype("float32")
    with ops.tuning(mode="off"):
        y = layer(x)
    kernel, bias = layer.get_weights()
    xl = x if fmt == "channels_last" else np.moveaxis(x, 1, -1)
    yl = y if fmt == "channels_last" else np.moveaxis(y, 1, -1)
    out = yl.shape[1:-1]
    ke = (k - 1) * d + 1
    crop = [0 if pad == "valid" else max((n - 1) * s + ke - o, 0) // 2 for n, o in zip(sp, out, strict=True)]
    ref = scatter_reference(xl, kernel, bias, (s,) * rank, (d,) * rank, crop, out)
    err = np.abs(ref - yl).max() / np.abs(ref).max()
    assert err <= TOL, f"rel error {err:.3g}"


def test_phases_cover_every_output_once_and_skip_zero_taps():
    """Phases partition the outputs; together they use each kernel tap exactly once."""
    for n, k, s, lo, out in [(5, 3, 2, 2, 11), (4, 2, 3, 1, 12), (3, 5, 2, 3, 6), (4, 1, 3, 0, 10)]:
        phases = output_phases(n, k, s, lo, out)
        assert sum(m for _, m, *_ in phases) == out
        taps = sorted(j for _, _, j0, kr, *_ in phases for j in range(j0, k, s)[:kr])
        assert taps == list(range(k))
