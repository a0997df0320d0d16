"""Sample statistics for the tuner: median, spread, and a one-sided Mann-Whitney U test.

numpy only (no scipy): the exact null distribution for small samples, the normal
approximation with tie correction for large ones.
"""
from __future__ import annotations

import math

import numpy as np

EXACT_MAX = 30  # exact distribution while both samples have at most this many values


def median(samples) -> float:
    return float(np.median(np.asarray(samples, dtype=float)))


def spread(samples) -> float:
    """Interquartile range relative to the median (0.05 = 5 %); 0 for fewer than 2 samples."""
    a = np.asarray(samples, dtype=float)
    if a.size < 2:
        return 0.0
    q1, q2, q3 = np.percentile(a, [25, 50, 75])
    return float((q3 - q1) / q2) if q2 > 0 else 0.0


def _u_statistic(a, b) -> float:
    """Number of pairs with a_i < b_j, ties counting one half."""
    a = np.asarray(a, dtype=float)[:, None]
    b = np.asarray(b, dtype=float)[None, :]
    return float((a < b).sum() + 0.5 * (a == b).sum())


def _exact_upper_tail(n1: int, n2: int, u: float) -> float:
    """P(U >= u) under the null for sample sizes n1, n2 (all orderings equally likely)."""
    # counts[j][k]: number of arrangements of i a's and j b's with U == k, built up over i.
    umax = n1 * n2
    counts = [np.zeros(umax + 1) for _ in range(n2 + 1)]
    for j in range(n2 + 1):
        counts[j][0] = 1.0            # i == 0: U is 0
    for i in range(1, n1 + 1):
        new = [np.zeros(umax + 1) for _ in range(n2 + 1)]
        new[0][0] = 1.0               # j == 0: U is 0
        for j in range(1, n2 + 1):
            # the largest value is an a (then it beats no b: U unchanged over the rest, a's
            # count drops) or a b (it is beaten by all i a's: U grows by i).
            nxt = counts[j].copy()
            nxt[i:] += new[j - 1][:umax + 1 - i]
            new[j] = nxt
        counts = new
    dist = counts[n2]
    k = math.ceil(u - 1e-9)
    return float(dist[k:].sum() / dist.sum())


def mann_whitney_less(a, b) -> float:
    """One-sided p-value of H1: values of `a` tend to be smaller than values of `b`."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return 1.0
    u = _u_statistic(a, b)
    if n1 <= EXACT_MAX and n2 <= EXACT_MAX:
        return _exact_upper_tail(n1, n2, u)
    both = np.concatenate([np.asarray(a, float), np.asarray(b, float)])
    _, tie_counts = np.unique(both, return_counts=True)
    n = n1 + n2
    var = n1 * n2 / 12.0 * ((n + 1) - float((tie_counts ** 3 - tie_counts).sum()) / (n * (n - 1)))
    if var <= 0:
        return 1.0
    z = (u - n1 * n2 / 2.0 - 0.5) / math.sqrt(var)   # continuity correction
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def faster(a, b, *, alpha: float, min_gain: float) -> tuple[bool, float]:
    """Is sample `a` significantly faster than `b` by at least `min_gain` (0.02 = 2 %)?

    Tests the shifted hypothesis: a * (1 + min_gain) still tends to be below b. Returns
    (significant, p-value). The minimum gain keeps equal-speed kernels from flipping the
    decision on a noise-free machine, where any tiny drift would be "significant".
    """
    p = mann_whitney_less(np.asarray(a, float) * (1.0 + min_gain), b)
    return p < alpha, p
