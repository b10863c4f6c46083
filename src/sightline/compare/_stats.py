"""The two significance tests of an A/B comparison.

- Continuous values (latency, cost, scores): the **Mann–Whitney U** test (``scipy.stats``):
  no normality assumed, robust to the long tails latency and cost have. Exact p-value when
  the samples are small and have no ties, else the normal approximation with tie and
  continuity corrections.
- Rates (errors, passes, positive feedback): the **two-proportion z-test** with the pooled
  standard error.

Both are two-sided. Each answer carries the sample sizes, so a reader can tell a small
difference on many calls from a large one on a few.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

__all__ = ["EXACT_MAX_N", "holm", "mann_whitney", "two_proportions"]

EXACT_MAX_N = 40
"""Up to this many values in total (and no ties), Mann–Whitney p-values are exact."""


def _summary(xs: Sequence[float]) -> dict[str, Any]:
    return {
        "n": len(xs),
        "mean": statistics.fmean(xs) if xs else None,
        "median": statistics.median(xs) if xs else None,
    }


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Mann–Whitney U test of A against B (two-sided).

    Returns ``a`` and ``b`` (n, mean, median), ``u`` (U of A: pairs where A's value is the
    larger, ties counting one half), ``p_value``, ``method`` (``exact`` or ``asymptotic``) and
    ``effect_size``, the rank-biserial correlation ``2U/(n_a n_b) - 1`` (-1: every B larger,
    +1: every A larger). With fewer than two values on a side the test is not run
    (``p_value`` None, ``status`` ``insufficient_data``).

    Example:
        >>> r = mann_whitney([1.0, 3.0, 5.0], [2.0, 4.0, 6.0])
        >>> r["u"], round(r["p_value"], 4), r["method"]
        (3.0, 0.7, 'exact')
    """
    out: dict[str, Any] = {"test": "mann_whitney_u", "a": _summary(a), "b": _summary(b)}
    if len(a) < 2 or len(b) < 2:
        return {**out, "u": None, "p_value": None, "method": None, "effect_size": None,
                "status": "insufficient_data"}  # fmt: skip
    from scipy.stats import mannwhitneyu

    ties = len(set(a) | set(b)) < len(a) + len(b)
    method = "exact" if not ties and len(a) + len(b) <= EXACT_MAX_N else "asymptotic"
    res = mannwhitneyu(a, b, alternative="two-sided", method=method, use_continuity=True)
    u = float(res.statistic)
    p = float(res.pvalue)
    return {
        **out,
        "u": u,
        "p_value": p if math.isfinite(p) else None,
        "method": method,
        "effect_size": 2.0 * u / (len(a) * len(b)) - 1.0,
        "status": "ok",
    }


def two_proportions(successes_a: int, n_a: int, successes_b: int, n_b: int) -> dict[str, Any]:
    """Two-proportion z-test of A's rate against B's (two-sided, pooled standard error).

    ``z = (p_a - p_b) / sqrt(p (1 - p) (1/n_a + 1/n_b))`` with ``p`` the pooled rate and
    ``p_value = erfc(|z| / sqrt 2)``. When both rates are 0 or both 1 the difference is
    exactly none: ``z`` 0 and ``p_value`` 1. An empty side gives ``insufficient_data``.

    Example:
        >>> r = two_proportions(45, 100, 30, 100)
        >>> round(r["z"], 4), round(r["p_value"], 4)
        (2.1909, 0.0285)
    """
    out: dict[str, Any] = {
        "test": "two_proportion_z",
        "a": {"n": n_a, "successes": successes_a, "rate": successes_a / n_a if n_a else None},
        "b": {"n": n_b, "successes": successes_b, "rate": successes_b / n_b if n_b else None},
    }
    if n_a == 0 or n_b == 0:
        return {**out, "z": None, "p_value": None, "difference": None,
                "status": "insufficient_data"}  # fmt: skip
    pa, pb = successes_a / n_a, successes_b / n_b
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    if se == 0.0:
        z, p = 0.0, 1.0
    else:
        z = (pa - pb) / se
        p = math.erfc(abs(z) / math.sqrt(2.0))
    return {**out, "z": z, "p_value": p, "difference": pb - pa, "status": "ok"}


def two_proportion_z(x_a: int, n_a: int, x_b: int, n_b: int) -> tuple[float, float] | None:
    """``(z, p_value)`` of B's rate against A's (pooled z-test, as ``two_proportions``).

    None when there is no test: an empty side, or no variance (both rates 0 or both 1).

    Example:
        >>> z, p = two_proportion_z(30, 100, 45, 100)
        >>> round(z, 4), round(p, 4)
        (2.1909, 0.0285)
    """
    if n_a == 0 or n_b == 0 or x_a + x_b in (0, n_a + n_b):
        return None
    r = two_proportions(x_b, n_b, x_a, n_a)
    return float(r["z"]), float(r["p_value"])


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values (None stays None), for testing many metrics at once.

    With the ``m`` p-values sorted ascending, the ``i``-th (from 1) becomes
    ``min(1, max over j <= i of (m - j + 1) * p_j)``. Rejecting where the adjusted value is
    below alpha keeps the chance of any false positive among the ``m`` tests below alpha.

    Example:
        >>> holm([0.01, 0.04, None, 0.03])
        [0.03, 0.06, None, 0.06]
    """
    order = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(order)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = round(running, 15)
    return out
