"""Every registered kernel, for every op and every config, against the float64 reference.

Kernels are found by enumerating the tuner's registry (`registry.ops()`, `registry.impls(op)`,
`impl.configs_for(p)`), so a kernel added to `nbconv/impls/*` is tested here without editing this
file. Each impl gets its own draws, Problems its `applies` accepts (`strategies.problems_for`:
channel counts in whole vectors for the register-tiled kernels, 3x3 stride 1 for Winograd, ...);
`test_strategies_draw_what_each_impl_accepts` fails for an impl the strategies rarely serve.

Tolerances (`reference.rel_error`: max abs error / max |reference|):
- float32: each impl's own `tolerance`. The direct kernels state 1e-5 for conv, local and average
  pooling (measured max over 300 draws per op: 8e-7, 2e-7, 1.2e-7), 1e-4 for dense (long
  reductions; measured 4.6e-6 where a draw's few outputs nearly cancel); max pooling is exact.
- float64: 1e-10 for every impl.
Data: `np.random.default_rng(seed)` uniform [-1, 1], never zeros.

NaN / Inf inputs: the direct kernels must match the reference exactly on non-finite cells (they
neither reorder sums nor mix windows). Other kernels (GEMM, Winograd, ...) may legitimately turn
the reference's Inf into NaN (Inf - Inf inside a transform or a reordered sum), so for them only
"NaN wherever the reference is NaN" is required, plus, for kernels that do not mix tiles, the
reference's finite cells within tolerance (a poisoned cell reaches only the outputs that read it).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from nbconv.tuner.registry import registry
from strategies import (
    CATALOGUE,
    IMPL_FAMILIES,
    candidate_problems,
    family_of,
    make_arrays,
    problems,
    problems_for,
)

import nbconv.impls  # noqa: F401  (registers the kernels)
from nbconv import ops, reference
from nbconv.spec import Problem

F64_TOL = 1e-10


@pytest.fixture(autouse=True, scope="module")
def _nested_calls_by_priority():
    """A kernel that calls nbconv.ops itself (separable_unfused's two convs) gets those decided
    by priority here, not measured: this file checks results (the tuner has its own tests)."""
    with ops.tuning(mode="off"):
        yield


# CPU kernels: the CUDA ones (registered only where CUDA runs) are tested by tests/test_cuda.py
IMPLS = [pytest.param(op, impl.name, id=f"{op}/{impl.name}") for op in registry.ops()
         for impl in registry.impls(op) if not impl.name.endswith("_cuda")]
SEEDS = st.integers(0, 2**32 - 1)


def fallback(op: str):
    return registry.get(op, f"{op}_direct")


def exact_nonfinite(impl) -> bool:
    """The direct kernels are held to the reference's exact NaN/Inf pattern."""
    return impl.name == f"{impl.op}_direct"


def tolerance(impl, p: Problem) -> float:
    return impl.tolerance if p.dtype == "float32" else F64_TOL


# -- running one candidate -----------------------------------------------------------------------

def run_candidate(impl, cfg, p: Problem, arrays, prepared=None):
    """The kernel's output through `impl.bind` (so `prepare` runs), after checking the call
    convention: a fresh C-contiguous array of the Problem's shape and dtype, inputs untouched."""
    copies = [a.copy() for a in arrays]
    y = impl.bind(copies, p, cfg, prepared)()
    name = f"{p.op}/{impl.name} {cfg} on {p.key()}"
    assert isinstance(y, np.ndarray), f"{name}: returned {type(y).__name__}"
    assert y.shape == p.output_shape and y.dtype == np.dtype(p.dtype), (
        f"{name}: returned {y.shape} {y.dtype}, expected {p.output_shape} {p.dtype}")
    assert y.flags.c_contiguous, f"{name}: output is not C-contiguous"
    for a, c in zip(arrays, copies, strict=True):
        assert not np.shares_memory(y, c), f"{name}: output shares memory with an input"
        np.testing.assert_array_equal(c, a, err_msg=f"{name}: modified its input")
    return y


def check_impl(impl, p: Problem, seed: int) -> int:
    """Every config of impl on p against the reference; with `prepare`, also the unprepared call
    and prepared weights reused on a second input. Returns the number of calls checked."""
    arrays = make_arrays(p, seed)
    ref = reference.run(p.op, p, *arrays)
    tol = tolerance(impl, p)
    failures, ran = [], 0
    cfgs = impl.configs_for(p)
    for cfg in cfgs:
        err = reference.rel_error(run_candidate(impl, cfg, p, arrays), ref)
        ran += 1
        if not err <= tol:
            failures.append(f"{cfg}: rel error {err:.3g} > {tol:g}")
    if impl.prepare is not None:
        cfg = cfgs[0]
        err = reference.rel_error(impl.fn(*[a.copy() for a in arrays], p, **cfg), ref)
        if not err <= tol:
            failures.append(f"{cfg} unprepared (fn directly): rel error {err:.3g} > {tol:g}")
        prepared = impl.prepare(*arrays[1:], p, **cfg)
        x2 = make_arrays(p, seed + 1)[0]
        ref2 = reference.run(p.op, p, x2, *arrays[1:])
        err = reference.rel_error(run_candidate(impl, cfg, p, [x2, *arrays[1:]], prepared), ref2)
        if not err <= tol:
            failures.append(f"{cfg} prepared weights on a second input: rel error {err:.3g} > {tol:g}")
        ran += 2
    assert not failures, f"{p.op}/{impl.name} on {p.key()} (seed {seed}):\n  " + "\n  ".join(failures)
    return ran


# -- the registry-wide test ----------------------------------------------------------------------

@pytest.mark.parametrize("op,name", IMPLS)
@settings(max_examples=20)
@given(data=st.data())
def test_impl_matches_reference(op, name, data):
    """Every registered impl, on Problems it accepts, every config, float32 and float64; each
    drawn geometry in both layouts."""
    impl = registry.get(op, name)
    p = data.draw(problems_for(impl), label="problem")
    seed = data.draw(SEEDS, label="seed")
    event(family_of(p))
    check_impl(impl, p, seed)
    other = p.with_(layout="channels_first" if p.channels_last else "channels_last")
    if p.rank and impl.check(other)[0]:      # the same geometry in the other layout
        check_impl(impl, other, seed)


@pytest.mark.parametrize("op,name", IMPLS)
def test_strategies_draw_what_each_impl_accepts(op, name):
    """An impl the strategies rarely serve would go (nearly) untested: its `applies` must accept
    most of its families' draws. `applies` answers True, False or a reason, never raises; the
    direct fallback accepts every drawn Problem."""
    impl = registry.get(op, name)
    verdicts = []

    @settings(max_examples=100, database=None, suppress_health_check=list(HealthCheck))
    @given(p=candidate_problems(impl))
    def draw(p):
        assert p.valid(), p.key()
        verdict = impl.applies(p)
        assert verdict is True or verdict is False or (isinstance(verdict, str) and verdict), (
            f"{op}/{name}: applies() must return True, False or a reason; got {verdict!r}")
        ok, why = fallback(op).check(p)
        assert ok, f"{p.key()}: the fallback {op}_direct must apply ({why})"
        verdicts.append(impl.check(p))

    draw()
    accepted = sum(ok for ok, _ in verdicts)
    reasons = sorted({why for ok, why in verdicts if not ok})
    assert accepted >= len(verdicts) // 2, (
        f"{op}/{name} accepts {accepted} of {len(verdicts)} drawn Problems (reasons: {reasons[:5]}); "
        f"describe the Problems it serves as a Family in tests/strategies.py and name it in IMPL_FAMILIES")


def test_impl_families_name_registered_impls():
    names = {impl.name for op in registry.ops() for impl in registry.impls(op)}
    assert set(IMPL_FAMILIES) <= names, f"stale entries: {sorted(set(IMPL_FAMILIES) - names)}"


# -- NaN and Inf ---------------------------------------------------------------------------------

def read_cells(p: Problem) -> list[list[int]]:
    """Per spatial axis, the input positions some output reads (an axis may have none: windows
    that are all padding)."""
    return [sorted({o * s - lo + j * d for o in range(n_out) for j in range(k)} & set(range(n_in)))
            for n_in, n_out, k, s, d, (lo, _) in zip(p.spatial, p.out_spatial, p.kernel, p.strides,
                                                      p.dilation, p.pads, strict=True)]


def _poison(x, p: Problem, rng):
    """Put NaN, +Inf, -Inf, +Inf into four input cells that some output reads (in place)."""
    read = read_cells(p)
    for value in (np.nan, np.inf, -np.inf, np.inf):
        pos = [int(rng.choice(r)) for r in read]
        n, c = int(rng.integers(p.batch)), int(rng.integers(p.in_channels))
        x[(n, *pos, c) if p.channels_last or p.rank == 0 else (n, c, *pos)] = value


def nonfinite_failures(impl, p: Problem, seed: int) -> list[str]:
    """Every config of impl on a poisoned input: exact for the direct kernels; else NaN where the
    reference is NaN, and (kernels that do not mix tiles) finite cells within tolerance."""
    rng = np.random.default_rng(seed)
    arrays = make_arrays(p, seed)
    _poison(arrays[0], p, rng)
    with np.errstate(invalid="ignore"):
        ref = reference.run(p.op, p, *arrays)
    assert not np.isfinite(ref).all(), "the poisoned cells must reach the output"
    tol = tolerance(impl, p)
    finite = np.isfinite(ref)
    failures = []
    for cfg in impl.configs_for(p):
        with np.errstate(invalid="ignore", over="ignore"):
            y = run_candidate(impl, cfg, p, arrays)
        name = f"{impl.name} {cfg} {p.dtype}"
        if exact_nonfinite(impl):
            err = reference.rel_error(y, ref)
            if not err <= tol:
                failures.append(f"{name}: rel error {err:.3g} (non-finite cells must match exactly)")
            continue
        if not np.isnan(y[np.isnan(ref)]).all():
            failures.append(f"{name}: finite where the reference is NaN")
        if not impl.mixes_tiles and finite.any():
            err = reference.rel_error(y[finite], ref[finite])
            if not err <= tol:
                failures.append(f"{name}: cells the poison does not reach: rel error {err:.3g} > {tol:g}")
    return failures


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_nan_and_inf_propagate_catalogue(name):
    """Every candidate on fixed special cases, float32 and float64."""
    failures = []
    for dtype in ("float32", "float64"):
        p = CATALOGUE[name].with_(dtype=dtype)
        for impl in registry.impls(p.op):
            if impl.check(p)[0]:
                failures += nonfinite_failures(impl, p, seed=7)
    assert not failures, f"{name}:\n  " + "\n  ".join(failures)


@pytest.mark.parametrize("op,name", IMPLS)
@settings(max_examples=8)
@given(data=st.data())
def test_nan_and_inf_propagate(op, name, data):
    impl = registry.get(op, name)
    p = data.draw(problems_for(impl).filter(lambda q: all(read_cells(q))), label="problem")
    seed = data.draw(SEEDS, label="seed")
    failures = nonfinite_failures(impl, p, seed)
    assert not failures, f"{p.key()} (seed {seed}):\n  " + "\n  ".join(failures)


# -- inputs the kernels must take as they come -------------------------------------------------

@pytest.mark.parametrize("name", ["conv_3x3_s1_c16_valid", "conv_3x3_s1_nchw", "conv_dw3x3_c16",
                                  "conv_1x1_s1", "maxpool_3x3_s2_same", "avgpool_2x2", "local2d_nchw",
                                  "dense"])
def test_readonly_and_strided_inputs(name):
    """Every candidate takes read-only weights and a non-contiguous input (same values)."""
    p = CATALOGUE[name]
    arrays = make_arrays(p, 5)
    ref = reference.run(p.op, p, *arrays)
    x_view = np.repeat(arrays[0], 2, axis=-1)[..., ::2]
    assert not x_view.flags.c_contiguous
    for a in arrays[1:]:
        a.flags.writeable = False
    for impl, cfg in registry.candidates(p.op, p):
        y = impl.bind([x_view, *arrays[1:]], p, cfg)()
        assert reference.rel_error(y, ref) <= impl.tolerance, (impl.name, cfg)


@pytest.mark.parametrize("op", ["conv", "maxpool", "avgpool", "local", "dense"])
def test_direct_handles_empty_batch_and_channels(op):
    """Zero-size Problems are valid: empty outputs, or only the bias when nothing is summed."""
    p = next(q for q in CATALOGUE.values() if q.op == op)
    impl = fallback(op)
    pooling = op in ("maxpool", "avgpool")
    no_channels = dict(in_channels=0, groups=1, **({"out_channels": 0} if pooling else {}))
    cases = [p.with_(batch=0), p.with_(**no_channels), p.with_(batch=9, **no_channels)]
    for q in cases:
        assert impl.check(q) == (True, ""), q.key()
        arrays = make_arrays(q, 1)
        y = impl.fn(*arrays, q)
        assert y.shape == q.output_shape and y.dtype == np.dtype(q.dtype)
        np.testing.assert_allclose(y, reference.run(op, q, *arrays), rtol=1e-6, err_msg=q.key())


def test_default_families_draw_every_op():
    """`problems(op)` (no family) draws valid Problems of every op, for callers outside this file."""
    seen = set()

    @settings(max_examples=30, database=None)
    @given(p=st.sampled_from(registry.ops()).flatmap(problems))
    def draw(p):
        assert p.valid()
        seen.add(p.op)

    draw()
    assert seen == set(registry.ops())
