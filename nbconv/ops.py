"""The layers' entry to the kernels: dispatch through the auto-tuner, and what surrounds a call.

The first call of a new Problem tunes (mode from `nbconv.knobs`) on the caller's arrays, with
the float64 `nbconv.reference` as the verifier; the decision is then memoised per Problem
(frozen, hashable), so a decided call costs a dict lookup plus the kernel call.

Around the kernel, ops owns (carried out by `nbconv.runner.Runner`, one per decision):
- the array adapter: arrays are handed to the kernel where the Problem's device wants them
  (`cpu`: numpy arrays, as the layers give them; `cuda`: numpy, or any CUDA device array viewed
  as a numba one). A "cuda" Problem is tuned on a device copy of its input (kernel time alone);
  `explain` reports the copies a numpy call adds apart;
- the prepared-data cache: an implementation's `prepare(w, b, p, **config)` result (transformed
  weights, device copies) is made once per weight arrays and decision and reused on every call.
  It is keyed on the weight arrays' identity: weights change by replacing the arrays (as
  `Layer.set_weights` does), never by writing into them;
- the NaN/Inf fallback: a kernel that mixes input tiles (Winograd) spreads one NaN/Inf over a
  whole tile, so a non-finite result of such a kernel is recomputed with the op's lowest-priority
  kernel that does not mix tiles (the direct loops), which puts NaN/Inf where the reference does.

Public: `conv`, `pool`, `local`, `dense`, `run(op, p, *arrays)`, `make_args`; `chosen(op, p) ->
(fn, config)`, `decision(op, p)`, `explain(op, p)`, `records()`, `tuner()`, `reset()`, and the
context managers `tuning(mode=..., force=..., ...)` and `recording()`.
"""
from __future__ import annotations

import contextlib
import sqlite3
import threading

import numpy as np

from . import env, impls, knobs, reference  # noqa: F401  (impls registers the implementations)
from .features import features
from .runner import Runner, host_copy
from .spec import key_with_device
from .tuner import Tuner, Verifier, registry

FLOAT64_TOLERANCE = 1e-9

_tuner: Tuner | None = None
_memo: dict = {}            # Problem -> Runner of the decided candidate
_by_id: dict = {}           # id(Problem) -> (Problem, Runner.call): skips hashing the Problem
_BY_ID_MAX = 4096           # bounded: callers that build a new Problem per call only refill it
_recording: list | None = None


def make_args(op: str, p, seed: int = 0) -> tuple:
    """Random arrays in [-1, 1] for a Problem, in the kernels' argument order.

    The one argument builder: the tuner, the benchmarks and the reports all draw from it."""
    rng = np.random.default_rng(seed)

    return tuple(rng.uniform(-1.0, 1.0, shape).astype(p.dtype) for shape in p.arg_shapes)


def _error(out, ref, p) -> float:
    out = host_copy(out)                   # a CUDA kernel's output may be on the device
    if (not isinstance(out, np.ndarray) or out.dtype != np.dtype(p.dtype)
            or out.shape != tuple(p.output_shape)):
        return float("inf")
    return reference.rel_error(out, ref)


def _reference(op, p, *arrays):
    """The float64 oracle, on host copies of any device array (a "cuda" Problem tuned on them)."""
    return reference.run(op, p, *(host_copy(a) for a in arrays))


def _tolerance(impl, p) -> float:
    return impl.tolerance if p.dtype == "float32" else min(impl.tolerance, FLOAT64_TOLERANCE)


_fingerprints: dict = {}


def _fingerprint(p=None) -> dict:
    """The machine description for a Problem's device (None: the host's), once per device."""
    device = "cpu" if p is None else p.device
    fp = _fingerprints.get(device)
    if fp is None:
        fp = _fingerprints[device] = env.fingerprint(device)
    return fp


def tuner() -> Tuner:
    """The module's Tuner (global registry, reference verifier, knobs, machine fingerprint)."""
    global _tuner
    if _tuner is None:
        verifier = Verifier(reference=_reference, error=_error, tolerance=_tolerance, make_args=_make_args)
        _tuner = Tuner(registry, verifier, fingerprint=_fingerprint, settings=knobs.tuner_settings,
                       features=features)
        with contextlib.suppress(sqlite3.Error):       # the tuner warns and goes on in memory
            _tuner.db.migrate_keys("problem-key-device", key_with_device)
    return _tuner


def reset():
    """Forget every decision in memory and re-read the knobs on the next call (the DB stays)."""
    global _tuner, _memo, _by_id
    _tuner, _memo, _by_id = None, {}, {}
    _fingerprints.clear()


def _simulated(p) -> bool:
    return p.device != "cpu" and impls.cuda.status() is True and impls.cuda.simulated()


def _resident(p, arrays):
    """A "cuda" Problem is tuned with its input already on the device (copied once here), so that
    a candidate's time is its kernel's; the copies a numpy call adds are measured apart
    (`explain`'s "transfer"). Weights stay as given: `prepare` uploads them outside the timing."""
    if p.device == "cpu" or not arrays or impls.cuda.status() is not True:
        return arrays                   # (where CUDA cannot run, the tuner says why)
    return impls.cuda.arrays().resident(arrays)


def _make_args(op, p, seed=0):
    return _resident(p, make_args(op, p, seed))


def _select(op, p, arrays=None):
    """The tuner's decision; under numba's CUDA simulator a "cuda" Problem's timings mean nothing,
    so it is decided by priority (mode `off`) and no simulated timing is stored."""
    if p.device == "cpu":
        return tuner().select(op, p, arrays)
    if _simulated(p):
        with tuner().using(mode="off"):
            return tuner().select(op, p, arrays)
    return tuner().select(op, p, _resident(p, arrays))


def _finite(a) -> bool:
    """No NaN/Inf in an input; one in CUDA memory is checked there (one flag comes back)."""
    if isinstance(a, np.ndarray):
        return bool(np.isfinite(a).all())
    if impls.cuda.on_device(a) and impls.cuda.status() is True:
        cuda = impls.cuda.arrays()
        d = cuda.as_device(a, "x")
        return not d.is_c_contiguous() or cuda.all_finite(d)   # (non-contiguous: refused later)
    return True


def _call(op, p, arrays):
    """The path of a call not decided for this Problem object: memo by value, else the tuner."""
    if _recording is not None:
        return _recorded(op, p, arrays)
    hit = _decided(op, p, arrays)
    if p.op == op:
        if len(_by_id) >= _BY_ID_MAX:
            _by_id.clear()
        _by_id[id(p)] = (p, hit.call)     # holding p keeps its id from being reused
    return hit.call(*arrays)


def _decided(op, p, arrays):
    hit = _memo.get(p)
    if hit is None or p.op != op:
        # Tune on the caller's arrays unless they hold NaN/Inf: kernels that reorder sums may
        # legitimately differ there, and a verdict of "wrong" would be stored for the shape.
        finite = all(_finite(a) for a in arrays)
        d = _select(op, p, arrays if finite else None)
        hit = _memo[p] = Runner(op, p, d.impl, d.config)
    return hit


_inside = threading.local()     # depth of recorded calls: a kernel's own ops calls (separable_unfused's
                                # convs, while tuned or run) are not the caller's


def _recorded(op, p, arrays):
    depth = getattr(_inside, "depth", 0)
    if depth == 0:
        _recording.append((op, p))
    _inside.depth = depth + 1
    try:
        return _decided(op, p, arrays).call(*arrays)
    finally:
        _inside.depth = depth


def run(op: str, p, *arrays):
    hit = _by_id.get(id(p))
    if hit is None or hit[0] is not p or p.op != op:
        return _call(op, p, arrays)
    return hit[1](*arrays)


def conv(x, w, b, p):
    hit = _by_id.get(id(p))
    if hit is None or hit[0] is not p:
        return _call("conv", p, (x, w, b))
    return hit[1](x, w, b)


def pool(x, p):
    hit = _by_id.get(id(p))
    if hit is None or hit[0] is not p:
        return _call(p.op, p, (x,))
    return hit[1](x)


def local(x, w, b, p):
    hit = _by_id.get(id(p))
    if hit is None or hit[0] is not p:
        return _call("local", p, (x, w, b))
    return hit[1](x, w, b)


def dense(x, w, b, p):
    hit = _by_id.get(id(p))
    if hit is None or hit[0] is not p:
        return _call("dense", p, (x, w, b))
    return hit[1](x, w, b)


def decision(op: str, p, arrays=None):
    """The tuner's Decision for a Problem (tuning on random arrays if it is new)."""
    return _select(op, p, arrays)


def chosen(op: str, p) -> tuple:
    """(kernel function, config) a decided layer call runs: `fn(*arrays, p, **config)`."""
    hit = _memo.get(p)
    if hit is None or p.op != op:
        d = decision(op, p)
        hit = _memo[p] = Runner(op, p, d.impl, d.config)
    return hit.fn, hit.config


def explain(op: str, p, arrays=None, *, measure: bool = True) -> dict:
    """The tuner's explanation; for a "cuda" Problem measured on a GPU, also "transfer": the
    seconds a numpy call adds copying the input in and the output back ({"copy_in_s",
    "copy_out_s"}), apart from the kernel times (taken on device-resident arrays)."""
    if p.device == "cpu":
        return tuner().explain(op, p, arrays, measure=measure)
    if _simulated(p):                   # nothing simulated is measured
        with tuner().using(mode="off"):
            return tuner().explain(op, p, arrays, measure=False)
    ex = tuner().explain(op, p, _resident(p, arrays), measure=measure)
    if measure and impls.cuda.status() is True:
        ex["transfer"] = impls.cuda.arrays().transfer_times(p)
    return ex


def records(*, all_machines: bool = False, op: str | None = None) -> list[dict]:
    """Every stored measurement with its decision (winner, partner, tie, margin): for reports."""
    return tuner().records(all_machines=all_machines, op=op)


@contextlib.contextmanager
def _fresh_memo():
    global _memo, _by_id
    saved = _memo, _by_id
    _memo, _by_id = {}, {}
    try:
        yield
    finally:
        _memo, _by_id = saved


@contextlib.contextmanager
def tuning(**changes):
    """Tune differently inside the block, e.g. `with nbconv.ops.tuning(mode="off", force="conv_direct"):`.

    Accepts any `nbconv.tuner.Settings` field (mode, force, budgets, ...). Decisions made inside are
    kept apart from those outside.
    """
    with _fresh_memo(), tuner().using(**changes):
        yield


@contextlib.contextmanager
def recording():
    """Collect the (op, Problem) of every ops call in the block (each goes through the tuner); the
    calls a kernel makes itself (separable_unfused's two convs) are not listed."""
    global _recording
    seen: list = []
    with _fresh_memo():
        _recording = seen
        try:
            yield seen
        finally:
            _recording = None
