"""Every registered kernel, for every op and every config, against the float64 reference.

Kernels are found by enumerating the tuner's registry (`registry.impls(op)`, `impl.configs_for(p)`),
so a kernel added to `nbconv/impls/*` is tested here without editing this file; a kernel that
applies to no catalogue Problem fails `test_every_registered_impl_is_covered`.

Tolerances (`reference.rel_error`: max abs error / max |reference|):
- float32: each impl's own `tolerance`. The direct kernels state 1e-5 for conv, local and average
  pooling (measured max over 300 draws per op: 8e-7, 2e-7, 1.2e-7), 1e-4 for dense (long
  reductions; measured 4.6e-6 where a draw's few outputs nearly cancel); max pooling is exact.
- float64: 1e-10 for every impl.
Data: `np.random.default_rng(seed)` uniform [-1, 1], never zeros.

NaN / Inf inputs: the direct kernels must match the reference exactly on non-finite cells (they
neither reorder sums nor mix windows). Other kernels (GEMM, Winograd, ...) may legitimately turn
the reference's Inf into NaN (Inf - Inf inside a transform or a reordered sum), so for them only
"NaN wherever the reference is NaN" is required.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nbconv.impls  # noqa: F401  (registers the kernels)
from nbconv import reference
from nbconv.spec import LAYOUTS, Problem, effective_kernel, padding_pairs
from nbconv.tuner.registry import registry

OPS = ("conv", "maxpool", "avgpool", "local", "dense")
F64_TOL = 1e-10
EXACT_NONFINITE = {f"{op}_direct" for op in OPS}   # held to the reference's exact NaN/Inf pattern


# -- running every candidate --------------------------------------------------------------------

def make_arrays(p: Problem, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = [p.input_shape] if p.op in ("maxpool", "avgpool") else [p.input_shape, p.weight_shape,
                                                                      p.bias_shape]
    return [rng.uniform(-1.0, 1.0, s).astype(p.dtype) for s in shapes]


def candidates(p: Problem):
    """Every (impl, config) whose `applies` says yes; `applies` must answer, never raise."""
    out = []
    for impl in registry.impls(p.op):
        verdict = impl.applies(p)
        assert verdict is True or verdict is False or (isinstance(verdict, str) and verdict), (
            f"{p.op}/{impl.name}: applies() must return True, False or a reason; got {verdict!r}")
        if verdict is True:
            out.extend((impl, cfg) for cfg in impl.configs_for(p))
    return out


def run_candidate(impl, cfg, p: Problem, arrays):
    """The kernel's output, after checking the call convention (fresh array, inputs untouched)."""
    copies = [a.copy() for a in arrays]
    y = impl.fn(*copies, p, **cfg)
    name = f"{p.op}/{impl.name} {cfg} on {p.key()}"
    assert isinstance(y, np.ndarray), f"{name}: returned {type(y).__name__}"
    assert y.shape == p.output_shape and y.dtype == np.dtype(p.dtype), (
        f"{name}: returned {y.shape} {y.dtype}, expected {p.output_shape} {p.dtype}")
    for a, c in zip(arrays, copies):
        assert not np.shares_memory(y, c), f"{name}: output shares memory with an input"
        np.testing.assert_array_equal(c, a, err_msg=f"{name}: modified its input")
    return y


def check_all(p: Problem, seed: int) -> int:
    """Every applicable (impl, config) in float32 and float64 against the reference; returns the
    number of candidates run. The direct fallback must apply to every valid Problem."""
    failures, ran = [], 0
    for dtype in ("float32", "float64"):
        q = p.with_(dtype=dtype)
        arrays = make_arrays(q, seed)
        ref = reference.run(q.op, q, *arrays)
        cands = candidates(q)
        assert f"{q.op}_direct" in {impl.name for impl, _ in cands}, f"{q.key()}: the fallback must apply"
        for impl, cfg in cands:
            tol = impl.tolerance if dtype == "float32" else F64_TOL
            err = reference.rel_error(run_candidate(impl, cfg, q, arrays), ref)
            ran += 1
            if not err <= tol:
                failures.append(f"{impl.name} {cfg} {dtype}: rel error {err:.3g} > {tol:g}")
    assert not failures, f"{p.key()} (seed {seed}):\n  " + "\n  ".join(failures)
    return ran


# -- hypothesis strategies: Problems for each op ----------------------------------------------

MAX_EXTRA = {1: 6, 2: 4, 3: 2}      # spatial slack beyond the kernel: tiny, compiles dominate anyway


@st.composite
def spatial_and_pads(draw, op, kernel, strides, dilation, paddings):
    """Input extents and explicit pads with output >= 1, often exactly 1 (kernel == padded input)."""
    rank = len(kernel)
    padding = draw(st.sampled_from(paddings))
    ke = [effective_kernel(k, d) for k, d in zip(kernel, dilation)]
    if padding == "explicit":
        # pooling pads stay below the window so no window is all padding (as Keras's `same`)
        limit = [k - 1 if op in ("maxpool", "avgpool") else e for k, e in zip(kernel, ke)]
        pads = tuple((draw(st.integers(0, m)), draw(st.integers(0, m))) for m in limit)
        spatial = tuple(max(1, e - lo - hi) + draw(st.integers(0, MAX_EXTRA[rank]))
                        for e, (lo, hi) in zip(ke, pads))
        return spatial, pads
    if padding == "valid":
        spatial = tuple(e + draw(st.integers(0, MAX_EXTRA[rank])) for e in ke)
    else:   # same / causal work with a kernel larger than the input too
        spatial = tuple(draw(st.integers(1, max(e, 2) + MAX_EXTRA[rank])) for e in ke)
    return spatial, padding_pairs(padding, spatial, kernel, strides, dilation, op)


def _axes(draw, rank, lo, hi):
    return tuple(draw(st.integers(lo, hi)) for _ in range(rank))


@st.composite
def conv_problems(draw):
    kind = draw(st.sampled_from(["general", "general", "general", "1x1", "3x3", "depthwise3x3"]))
    layout = draw(st.sampled_from(LAYOUTS))
    batch = draw(st.integers(1, 3))
    if kind == "general":
        rank = draw(st.sampled_from([2, 1, 3]))
        groups = draw(st.sampled_from([1, 1, 2, 4, "depthwise"]))
        kernel = _axes(draw, rank, 1, 4 if rank < 3 else 3)
        strides = _axes(draw, rank, 1, 3)
        dilation = _axes(draw, rank, 1, 2)
        paddings = ["valid", "same", "explicit"] + (["causal"] if rank == 1 else [])
    else:
        rank, kernel = 2, ((1, 1) if kind == "1x1" else (3, 3))
        s = 1 if kind == "3x3" else draw(st.integers(1, 2))
        strides, dilation = (s, s), (1, 1)
        groups = "depthwise" if kind == "depthwise3x3" else 1
        paddings = ["valid"] if kind == "1x1" else ["same", "valid"]
    if groups == "depthwise":
        c = draw(st.integers(1, 8))
        groups, f = c, c * draw(st.sampled_from([1, 1, 2]))
    else:
        c = groups * draw(st.integers(1, 8 // groups))
        f = groups * draw(st.integers(1, 8 // groups))
    spatial, pads = draw(spatial_and_pads("conv", kernel, strides, dilation, paddings))
    return Problem(op="conv", rank=rank, batch=batch, in_channels=c, out_channels=f, spatial=spatial,
                   kernel=kernel, strides=strides, dilation=dilation, pads=pads, groups=groups,
                   layout=layout)


@st.composite
def pool_problems(draw, op):
    kind = draw(st.sampled_from(["general", "general", "2x2", "3x3s2same", "global"]))
    layout = draw(st.sampled_from(LAYOUTS))
    batch = draw(st.integers(1, 3))
    c = draw(st.integers(1, 8))
    rank = draw(st.sampled_from([2, 1, 3])) if kind in ("general", "global") else 2
    one = (1,) * rank
    if kind == "global":
        spatial = _axes(draw, rank, 1, 7 if rank < 3 else 4)
        return Problem(op=op, rank=rank, batch=batch, in_channels=c, out_channels=c, spatial=spatial,
                       kernel=spatial, strides=one, dilation=one, pads=((0, 0),) * rank, layout=layout)
    if kind == "general":
        kernel = _axes(draw, rank, 1, 4 if rank < 3 else 3)
        # Keras's default strides = pool size; otherwise any stride, also larger than the pool
        strides = kernel if draw(st.booleans()) else _axes(draw, rank, 1, 3)
        paddings = ["valid", "same", "explicit"]
    elif kind == "2x2":
        kernel = strides = (2, 2)
        paddings = ["valid", "same"]
    else:
        kernel, strides, paddings = (3, 3), (2, 2), ["same"]
    spatial, pads = draw(spatial_and_pads(op, kernel, strides, one, paddings))
    return Problem(op=op, rank=rank, batch=batch, in_channels=c, out_channels=c, spatial=spatial,
                   kernel=kernel, strides=strides, dilation=one, pads=pads, layout=layout)


@st.composite
def local_problems(draw):
    rank = draw(st.sampled_from([1, 2, 2, 3]))
    kernel = _axes(draw, rank, 1, 3)
    strides = _axes(draw, rank, 1, 2)
    one = (1,) * rank
    spatial, pads = draw(spatial_and_pads("local", kernel, strides, one, ["valid", "same", "explicit"]))
    return Problem(op="local", rank=rank, batch=draw(st.integers(1, 3)), in_channels=draw(st.integers(1, 4)),
                   out_channels=draw(st.integers(1, 5)), spatial=spatial, kernel=kernel, strides=strides,
                   dilation=one, pads=pads, layout=draw(st.sampled_from(LAYOUTS)))


@st.composite
def dense_problems(draw):
    features = st.one_of(st.integers(1, 9), st.integers(1, 9), st.integers(250, 300))
    return Problem(op="dense", rank=0, batch=draw(st.integers(1, 9)), in_channels=draw(features),
                   out_channels=draw(features))


SEEDS = st.integers(0, 2**32 - 1)


@given(p=conv_problems(), seed=SEEDS)
def test_conv_kernels_match_reference(p, seed):
    check_all(p, seed)


@given(p=pool_problems("maxpool"), seed=SEEDS)
def test_maxpool_kernels_match_reference(p, seed):
    check_all(p, seed)


@given(p=pool_problems("avgpool"), seed=SEEDS)
def test_avgpool_kernels_match_reference(p, seed):
    check_all(p, seed)


@given(p=local_problems(), seed=SEEDS)
def test_local_kernels_match_reference(p, seed):
    check_all(p, seed)


@given(p=dense_problems(), seed=SEEDS)
def test_dense_kernels_match_reference(p, seed):
    check_all(p, seed)


# -- a fixed catalogue of the special cases fast kernels apply to -----------------------------

def conv2d(c, f, hw, k, s=1, pad="same", groups=1, layout="channels_last", n=2):
    spatial, kernel, strides = (hw, hw), (k, k), (s, s)
    return Problem(op="conv", rank=2, batch=n, in_channels=c, out_channels=f, spatial=spatial,
                   kernel=kernel, strides=strides, dilation=(1, 1),
                   pads=padding_pairs(pad, spatial, kernel, strides, (1, 1)), groups=groups, layout=layout)


def nd(op, rank, c, f, spatial, k, s, pad, layout="channels_last", n=2, d=1):
    kernel, strides, dilation = (k,) * rank, (s,) * rank, (d,) * rank
    return Problem(op=op, rank=rank, batch=n, in_channels=c, out_channels=f, spatial=spatial,
                   kernel=kernel, strides=strides, dilation=dilation,
                   pads=padding_pairs(pad, spatial, kernel, strides, dilation, op), layout=layout)


CATALOGUE = {
    "conv_1x1_s1": conv2d(8, 16, 6, 1, pad="valid"),
    "conv_1x1_s1_nchw": conv2d(8, 8, 5, 1, pad="valid", layout="channels_first"),
    "conv_1x1_s2": conv2d(8, 12, 7, 1, s=2, pad="valid"),
    "conv_3x3_s1": conv2d(8, 8, 10, 3),
    "conv_3x3_s1_c16_valid": conv2d(16, 16, 12, 3, pad="valid", n=1),
    "conv_3x3_s1_nchw": conv2d(8, 16, 9, 3, layout="channels_first"),
    "conv_3x3_s2": conv2d(8, 8, 9, 3, s=2),
    "conv_dw3x3_s1": conv2d(8, 8, 9, 3, groups=8),
    "conv_dw3x3_s2": conv2d(16, 16, 9, 3, s=2, groups=16),
    "conv_dw3x3_s1_nchw": conv2d(8, 8, 7, 3, groups=8, layout="channels_first"),
    "conv_5x5": conv2d(4, 8, 9, 5),
    # channel counts that fill whole vectors: the register-tiled kernels apply
    "conv_3x3_s2_f16": conv2d(3, 16, 9, 3, s=2),
    "conv_dw3x3_c16": conv2d(16, 16, 7, 3, groups=16),
    "conv_7x7_s2": conv2d(3, 8, 13, 7, s=2),
    "conv_grouped": conv2d(8, 8, 6, 3, groups=2),
    "conv1d_k3": nd("conv", 1, 4, 6, (12,), 3, 1, "same"),
    "conv1d_causal_d2": nd("conv", 1, 3, 5, (10,), 3, 1, "causal", d=2),
    "conv3d_k3": nd("conv", 3, 3, 4, (5, 4, 6), 3, 1, "same"),
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
    "dense_batch1_wide": Problem(op="dense", rank=0, batch=1, in_channels=7, out_channels=300),
}


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_catalogue(name):
    p = CATALOGUE[name]
    assert p.valid(), f"catalogue entry {name} is not a valid Problem"
    check_all(p, seed=sum(map(ord, name)))


@pytest.mark.parametrize("op", OPS)
def test_every_registered_impl_is_covered(op):
    """A kernel that applies to no catalogue Problem would go untested: extend the catalogue."""
    problems = [p for p in CATALOGUE.values() if p.op == op]
    assert problems, f"no catalogue Problem for op {op}"
    assert registry.impls(op), f"no implementation registered for op {op}"
    for impl in registry.impls(op):
        reasons = [impl.check(p)[1] for p in problems]
        assert any(r == "" for r in reasons), (
            f"{op}/{impl.name} applies to no catalogue Problem (reasons: {sorted(set(reasons))}); "
            "add a Problem it serves to CATALOGUE in tests/test_kernels.py")


# -- NaN and Inf ---------------------------------------------------------------------------------

def _poison(x, p: Problem, rng):
    """Put NaN, +Inf, -Inf, +Inf into four input cells that some output reads (in place)."""
    read = [sorted({o * s - lo + j * d for o in range(n_out) for j in range(k)} & set(range(n_in)))
            for n_in, n_out, k, s, d, (lo, _) in zip(p.spatial, p.out_spatial, p.kernel, p.strides,
                                                      p.dilation, p.pads)]
    for value in (np.nan, np.inf, -np.inf, np.inf):
        pos = [int(rng.choice(r)) for r in read]
        n, c = int(rng.integers(p.batch)), int(rng.integers(p.in_channels))
        x[(n, *pos, c) if p.channels_last or p.rank == 0 else (n, c, *pos)] = value


def check_nonfinite(p: Problem, seed: int):
    """Poisoned inputs: exact non-finite pattern for the direct kernels, NaN-where-NaN for others."""
    rng = np.random.default_rng(seed)
    failures = []
    for dtype in ("float32", "float64"):
        q = p.with_(dtype=dtype)
        arrays = make_arrays(q, seed)
        _poison(arrays[0], q, rng)
        with np.errstate(invalid="ignore"):
            ref = reference.run(q.op, q, *arrays)
        assert not np.isfinite(ref).all(), "the poisoned cells must reach the output"
        for impl, cfg in candidates(q):
            with np.errstate(invalid="ignore", over="ignore"):
                y = run_candidate(impl, cfg, q, arrays)
            if impl.name in EXACT_NONFINITE:
                tol = impl.tolerance if dtype == "float32" else F64_TOL
                err = reference.rel_error(y, ref)
                if not err <= tol:
                    failures.append(f"{impl.name} {cfg} {dtype}: rel error {err:.3g} (non-finite cells "
                                    f"must match exactly)")
            elif not np.isnan(y[np.isnan(ref)]).all():
                failures.append(f"{impl.name} {cfg} {dtype}: finite where the reference is NaN")
    assert not failures, f"{p.key()} (seed {seed}):\n  " + "\n  ".join(failures)


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_nan_and_inf_propagate(name):
    check_nonfinite(CATALOGUE[name], seed=7)


@settings(max_examples=40)
@given(p=st.one_of(conv_problems(), pool_problems("maxpool"), pool_problems("avgpool"), local_problems(),
                   dense_problems()),
       seed=SEEDS)
def test_nan_and_inf_propagate_drawn(p, seed):
    check_nonfinite(p, seed)


def test_maxpool_direct_is_exact():
    impl = registry.get("maxpool", "maxpool_direct")
    for name, p in CATALOGUE.items():
        if p.op == "maxpool":
            x = make_arrays(p, 3)[0]
            np.testing.assert_array_equal(impl.fn(x, p), reference.pool(x, p).astype(p.dtype), err_msg=name)


# -- bad input to the direct kernels -------------------------------------------------------------

@pytest.mark.parametrize("op", OPS)
def test_direct_rejects_bad_arrays(op):
    p = next(q for q in CATALOGUE.values() if q.op == op)
    impl = registry.get(op, f"{op}_direct")
    arrays = make_arrays(p, 0)
    with pytest.raises(TypeError, match=r"`x` must have the Problem's dtype float32.*x.dtype=<f8"):
        impl.fn(arrays[0].astype(np.float64), *arrays[1:], p)
    with pytest.raises(ValueError, match=r"`x` must have shape .* Received: x.shape="):
        impl.fn(arrays[0][:1], *arrays[1:], p)
    with pytest.raises(TypeError, match=r"`x` must be a numpy.ndarray"):
        impl.fn(arrays[0].tolist(), *arrays[1:], p)
    if len(arrays) == 3:
        with pytest.raises(ValueError, match=r"`w` must have shape"):
            impl.fn(arrays[0], arrays[1][..., :1], arrays[2], p)
        with pytest.raises(ValueError, match=r"`b` must have shape"):
            impl.fn(arrays[0], arrays[1], arrays[2][..., :-1], p)


@pytest.mark.parametrize("op", OPS)
def test_direct_handles_empty_batch_and_channels(op):
    """Zero-size Problems are valid: empty outputs, or only the bias when nothing is summed."""
    p = next(q for q in CATALOGUE.values() if q.op == op)
    impl = registry.get(op, f"{op}_direct")
    pooling = op in ("maxpool", "avgpool")
    no_channels = dict(in_channels=0, groups=1, **({"out_channels": 0} if pooling else {}))
    cases = [p.with_(batch=0), p.with_(**no_channels), p.with_(batch=9, **no_channels)]
    for q in cases:
        assert impl.check(q) == (True, ""), q.key()
        arrays = make_arrays(q, 1)
        y = impl.fn(*arrays, q)
        assert y.shape == q.output_shape and y.dtype == np.dtype(q.dtype)
        np.testing.assert_allclose(y, reference.run(op, q, *arrays), rtol=1e-6, err_msg=q.key())


def test_direct_accepts_readonly_and_strided_inputs():
    p = CATALOGUE["conv_3x3_s1"]
    x, w, b = make_arrays(p, 5)
    ref = reference.conv(x, w, b, p)
    x_view = np.repeat(x, 2, axis=-1)[..., ::2]             # non-contiguous, same values
    w.flags.writeable = False
    y = registry.get("conv", "conv_direct").fn(x_view, w, b, p)
    assert reference.rel_error(y, ref) <= 1e-5


@pytest.mark.parametrize("op", OPS)
def test_direct_applies_to_everything_valid_and_says_why_not(op):
    impl = registry.get(op, f"{op}_direct")
    p = next(q for q in CATALOGUE.values() if q.op == op)
    assert impl.check(p) == (True, "")
    ok, why = impl.check(p.with_(dtype="float16"))
    assert not ok and "float16" in why
    if p.rank:
        bad = p.with_(spatial=tuple(1 for _ in p.spatial), pads=((0, 0),) * p.rank)
        if not bad.valid():
            ok, why = impl.check(bad)
            assert not ok and "output size" in why
