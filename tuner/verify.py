"""How candidates are verified: the reference, the error measure, the tolerance, test arrays."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .registry import Impl
from .settings import Settings


def rel_error(y: Any, ref: Any) -> float:
    """Default verification error: max |y - ref| / max |ref| (inf on a shape mismatch)."""
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    if y.shape != ref.shape:
        return float("inf")
    if ref.size == 0:
        return 0.0
    return float(np.max(np.abs(y - ref)) / max(float(np.max(np.abs(ref))), 1e-30))


@dataclass(frozen=True)
class Verifier:
    """How candidates are checked, grouped: every field is optional.

    reference: `(op, problem, *arrays) -> expected output`; None: candidates are not verified.
    error:     `(out, ref, problem) -> float` (default: max abs error / max |ref|).
    tolerance: `(impl, problem) -> float` allowed error (default: `impl.tolerance`).
    make_args: `(op, problem) -> arrays`, used when a problem must be measured without arrays.
    """

    reference: Callable | None = None
    error: Callable | None = None
    tolerance: Callable | None = None
    make_args: Callable | None = None

    def check(self, impl: Impl, problem: Any, reference: Callable[[], Any], s: Settings) -> Callable:
        """`check(out) -> (passed, error or None, note)` for one candidate's first output;
        `reference()` computes the expected output (once, shared by the candidates)."""
        error = self.error or (lambda out, ref, problem: rel_error(out, ref))
        tolerance = self.tolerance or (lambda impl, problem: impl.tolerance)

        def check(out: Any) -> tuple[bool, float | None, str]:
            if self.reference is None:
                return True, None, "not verified: the tuner has no reference"
            flops = problem.flops() if hasattr(problem, "flops") else 0
            if flops > s.verify_max_flops:
                return True, None, f"verification skipped: {flops:.3g} flops > {s.verify_max_flops:.3g}"
            err = float(error(out, reference(), problem))
            tol = float(tolerance(impl, problem))
            if not err <= tol:
                return False, err, f"wrong: error {err:.3g} > tolerance {tol:.3g}"
            return True, err, ""
        return check
