"""What changed at a release: each metric N hours before against N hours after, with a test.

Continuous per-request values (latency, cost, quality scores) are compared with the
Mann–Whitney U test (two-sided; no normality assumed: latencies are skewed); the error rate,
a proportion, with the two-proportion z-test (pooled). A change is ``significant`` at
``alpha`` and is labelled a ``regression`` when it moves the metric the bad way (latency, cost
and errors up, quality down).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from scipy import stats

from sightline.compare import two_proportion_z

__all__ = ["Comparison", "MetricChange", "compare_windows", "two_proportion_z"]

_LOWER_IS_BETTER = ("latency_ms", "cost_usd", "error_rate")
_MIN_SAMPLES = 5
_EXACT_MAX_N = 40


@dataclasses.dataclass(frozen=True, slots=True)
class MetricChange:
    """One metric before and after."""

    metric: str
    test: Literal["mann_whitney_u", "two_proportion_z"]
    num_before: int
    num_after: int
    before: float | None
    """Mean before (the error rate for ``error_rate``)."""
    after: float | None
    before_median: float | None
    after_median: float | None
    change: float | None
    """Relative change of the mean, (after - before) / before; None when before is 0."""
    statistic: float | None
    p_value: float | None
    significant: bool
    direction: Literal["regression", "improvement", "none"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class Comparison:
    """Every metric's change, regressions first."""

    alpha: float
    metrics: list[MetricChange]

    @property
    def regressions(self) -> list[MetricChange]:
        """The significant changes for the worse."""
        return [m for m in self.metrics if m.direction == "regression"]


def _mean(v: Sequence[float]) -> float | None:
    return sum(v) / len(v) if v else None


def _median(v: Sequence[float]) -> float | None:
    if not v:
        return None
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _direction(metric: str, shift: float, sig: bool) -> Any:
    """``shift`` > 0 when the metric went up after the release, < 0 when it went down."""
    if not sig or shift == 0:
        return "none"
    worse = shift > 0 if metric in _LOWER_IS_BETTER else shift < 0
    return "regression" if worse else "improvement"


def compare_windows(
    before: Mapping[str, Sequence[float]],
    after: Mapping[str, Sequence[float]],
    *,
    alpha: float = 0.05,
) -> Comparison:
    """Compare per-request values of the two windows (``error`` values are 0/1 per request)."""
    out: list[MetricChange] = []
    names = [n for n in before.keys() | after.keys() if n != "error"]
    for name in ["latency_ms", "cost_usd", *sorted(n for n in names if n.startswith("score:"))]:
        b, a = list(before.get(name, ())), list(after.get(name, ()))
        stat = p = None
        if len(b) >= _MIN_SAMPLES and len(a) >= _MIN_SAMPLES and (set(a) | set(b)) != {a[0]}:
            # as the A/B comparison runs it: exact p-values for small samples without ties,
            # else the normal approximation with tie and continuity corrections
            ties = len(set(a) | set(b)) < len(a) + len(b)
            method = "exact" if not ties and len(a) + len(b) <= _EXACT_MAX_N else "asymptotic"
            res = stats.mannwhitneyu(
                a, b, alternative="two-sided", method=method, use_continuity=True
            )
            stat, p = float(res.statistic), float(res.pvalue)
            if not math.isfinite(p):
                stat = p = None
        mb, ma = _mean(b), _mean(a)
        sig = p is not None and p < alpha
        # The direction is the test's: U of the after values against its null mean n_a n_b / 2
        # (after tends higher when above). The means can point the other way: one outlier
        # before the release outweighs every call getting slower after it.
        shift = 0.0 if stat is None else stat - len(a) * len(b) / 2
        out.append(
            MetricChange(
                metric=name,
                test="mann_whitney_u",
                num_before=len(b),
                num_after=len(a),
                before=mb,
                after=ma,
                before_median=_median(b),
                after_median=_median(a),
                change=(ma - mb) / mb if mb and ma is not None else None,
                statistic=stat,
                p_value=p,
                significant=sig,
                direction=_direction(name, shift, sig),
            )
        )
    eb, ea = list(before.get("error", ())), list(after.get("error", ()))
    xb, xa = int(sum(eb)), int(sum(ea))
    enough = len(eb) >= _MIN_SAMPLES and len(ea) >= _MIN_SAMPLES
    zt = two_proportion_z(xb, len(eb), xa, len(ea)) if enough else None
    rb = xb / len(eb) if eb else None
    ra = xa / len(ea) if ea else None
    sig = zt is not None and zt[1] < alpha
    out.append(
        MetricChange(
            metric="error_rate",
            test="two_proportion_z",
            num_before=len(eb),
            num_after=len(ea),
            before=rb,
            after=ra,
            before_median=None,
            after_median=None,
            change=(ra - rb) / rb if rb and ra is not None else None,
            statistic=zt[0] if zt else None,
            p_value=zt[1] if zt else None,
            significant=sig,
            direction=_direction("error_rate", 0.0 if rb is None or ra is None else ra - rb, sig),
        )
    )
    out.sort(key=lambda m: (m.direction != "regression", m.metric))
    return Comparison(alpha, out)
