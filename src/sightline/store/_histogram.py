"""Aggregating metric data points: cumulative series to increases, histograms to percentiles.

Pure functions over rows read from ``otel_metric_points``; the SQL is in ``_duckdb_otel``.

Percentiles of histograms are computed the way Prometheus' ``histogram_quantile`` does, but
across histograms of any bucket layouts at once: each histogram's CDF is linear inside its
buckets (values spread evenly within a bucket), the CDFs are summed, and the value where the
sum reaches ``q * total`` is read off between the union of all bounds. The first bucket
starts at the observed ``min`` when the point carries one (else at 0 for positive bounds),
the overflow bucket ends at ``max`` (else at the last bound).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

__all__ = ["Hist", "Point", "aggregate", "increases", "quantile", "steps"]


@dataclasses.dataclass(slots=True)
class Hist:
    """One histogram: ``counts[i]`` values in ``(bounds[i-1], bounds[i]]`` (``len+1`` counts)."""

    bounds: list[float]
    counts: list[float]
    min: float | None = None
    max: float | None = None

    def edges(self) -> list[tuple[float, float, float]]:
        """(low, high, count) of each non-empty bucket."""
        out = []
        b = self.bounds
        n = len(self.counts)
        for i, c in enumerate(self.counts):
            if c <= 0:
                continue
            if not b:
                lo = self.min if self.min is not None else 0.0
                hi = self.max if self.max is not None else lo
            elif i == 0:
                hi = b[0]
                lo = self.min if self.min is not None and self.min <= hi else min(0.0, hi)
            elif i == n - 1:
                lo = b[-1]
                hi = self.max if self.max is not None and self.max >= lo else lo
            else:
                lo, hi = b[i - 1], b[i]
            if self.min is not None and self.min > lo and self.min <= hi:
                lo = self.min
            if self.max is not None and self.max < hi and self.max >= lo:
                hi = self.max
            out.append((lo, hi, c))
        return out


@dataclasses.dataclass(slots=True)
class Point:
    """A data point as read from the store."""

    series: tuple[object, ...]
    time: datetime
    start_time: datetime | None
    type: str
    temporality: str | None
    monotonic: bool | None
    value: float | None
    count: float | None
    sum: float | None
    min: float | None
    max: float | None
    bounds: list[float] | None
    counts: list[float] | None


def quantile(hists: Sequence[Hist], q: float) -> float | None:
    """The ``q`` quantile (0-1) of the values the histograms hold together."""
    edges = [e for h in hists for e in h.edges()]
    total = sum(c for _, _, c in edges)
    if total <= 0:
        return None
    rank = q * total
    xs = sorted({x for lo, hi, _ in edges for x in (lo, hi)})

    def cdf(x: float) -> float:
        s = 0.0
        for lo, hi, c in edges:
            if x >= hi:
                s += c
            elif x > lo:
                s += c * (x - lo) / (hi - lo)
        return s

    # point masses (lo == hi) make the CDF jump; the first x whose CDF reaches the rank wins
    vals = [cdf(x) for x in xs]
    i = bisect.bisect_left(vals, rank - 1e-9 * total)
    if i >= len(xs):
        return xs[-1]
    if i == 0:
        return xs[0]
    x0, x1, f0, f1 = xs[i - 1], xs[i], vals[i - 1], vals[i]
    # mass sitting exactly at x1 (empty-width buckets) is not spread over (x0, x1]
    jump = sum(c for lo, hi, c in edges if lo == hi == x1)
    f1s = f1 - jump
    if rank <= f0 or f1s <= f0:
        return x1 if rank > f0 else x0
    return x0 + (x1 - x0) * min(1.0, (rank - f0) / (f1s - f0))


def increases(
    points: Iterable[Point],
    window_start: datetime,
    before: dict[tuple[object, ...], Point] | None = None,
) -> list[Point]:
    """Cumulative series turned into what happened inside the window; delta points as they are.

    A cumulative series (same attributes and start time) counts from its last point before the
    window when ``before`` holds one (the previous step of a query: so the increase between two
    steps is not lost), else from its first point in the window, or from zero when the series
    itself started inside the window. A value that drops (a counter reset where the exporter
    gives no new start time, as a scraped Prometheus counter) counts from zero again, as
    Prometheus' ``increase`` does. ``before`` is updated with each series' last point.
    """
    out: list[Point] = []
    series: dict[tuple[object, ...], list[Point]] = {}
    for p in points:
        if p.temporality == "cumulative" and (p.type != "sum" or p.monotonic):
            series.setdefault((*p.series, p.start_time), []).append(p)
        else:
            out.append(p)
    for key, pts in series.items():
        pts.sort(key=lambda p: p.time)
        prev = before.get(key) if before is not None else None
        if before is not None:
            before[key] = pts[-1]
        acc: Point | None = None
        if prev is None:
            first = pts[0]
            if first.start_time is not None and first.start_time >= window_start:
                acc = first  # the series started in the window: counted from zero
            prev, pts = first, pts[1:]
        for p in pts:
            d = p if _reset(p, prev) else _minus(p, prev)
            acc = d if acc is None else _plus(acc, d)
            prev = p
        if acc is not None:
            out.append(acc)  # (one point and an older start: no increase is known)
    return out


def _reset(a: Point, b: Point) -> bool:
    """Whether cumulative ``a`` restarted from zero after ``b`` (its value or count dropped)."""
    if a.value is not None and b.value is not None:
        return a.value < b.value
    return a.count is not None and b.count is not None and a.count < b.count


def _minus(a: Point, b: Point) -> Point:
    def d(x: float | None, y: float | None) -> float | None:
        return None if x is None or y is None else max(0.0, x - y)

    counts = a.counts
    if a.counts is not None and b.counts is not None and a.bounds == b.bounds:
        counts = [max(0.0, x - y) for x, y in zip(a.counts, b.counts, strict=True)]
    return dataclasses.replace(
        a,
        value=d(a.value, b.value),
        count=d(a.count, b.count),
        sum=d(a.sum, b.sum),
        counts=counts,
    )


def _plus(a: Point, b: Point) -> Point:
    """Two successive increases of one series as one (``b`` the later)."""

    def s(x: float | None, y: float | None) -> float | None:
        return y if x is None else x if y is None else x + y

    counts = b.counts
    if a.counts is not None and b.counts is not None and a.bounds == b.bounds:
        counts = [x + y for x, y in zip(a.counts, b.counts, strict=True)]
    return dataclasses.replace(
        b, value=s(a.value, b.value), count=s(a.count, b.count), sum=s(a.sum, b.sum),
        counts=counts,
    )  # fmt: skip


def steps(
    buckets: dict[int, list[Point]], start: datetime, step_s: float, agg: str
) -> list[tuple[datetime, float | None]]:
    """One aggregate per step of a query (``buckets``: the points of each step's index).

    A cumulative series' increase in a step counts from its last point in an earlier step.
    """
    before: dict[tuple[object, ...], Point] = {}
    out: list[tuple[datetime, float | None]] = []
    for b in sorted(buckets):
        bstart = start + timedelta(seconds=b * step_s)
        out.append((bstart, aggregate(increases(buckets[b], start, before), agg, step_s)))
    return out


_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def aggregate(points: Sequence[Point], agg: str, window_s: float) -> float | None:
    """One aggregate of the points of one window (after :func:`increases`)."""
    if not points:
        return None
    hists = [p for p in points if p.counts is not None or p.type in ("histogram", "summary")]
    if hists:
        n = sum(p.count or 0.0 for p in hists)
        if agg in _QUANTILES:
            return quantile(
                [
                    Hist(p.bounds or [], p.counts, p.min, p.max)
                    for p in hists
                    if p.counts is not None
                ],
                _QUANTILES[agg],
            )
        if agg == "count":
            return n
        if agg == "sum":
            return sum(p.sum or 0.0 for p in hists)
        if agg == "avg":
            return sum(p.sum or 0.0 for p in hists) / n if n else None
        if agg == "rate":
            return n / window_s
        if agg == "min":
            mins = [p.min for p in hists if p.min is not None]
            return min(mins) if mins else None
        if agg == "max":
            maxs = [p.max for p in hists if p.max is not None]
            return max(maxs) if maxs else None
        return None
    vals = sorted(p.value for p in points if p.value is not None)
    if not vals:
        return None
    if agg == "count":
        return float(len(vals))
    if agg == "sum":
        return sum(vals)
    if agg == "rate":
        return sum(vals) / window_s
    if agg == "avg":
        return sum(vals) / len(vals)
    if agg == "min":
        return vals[0]
    if agg == "max":
        return vals[-1]
    if agg in _QUANTILES:
        # linear interpolation between closest ranks, as DuckDB's quantile_cont
        pos = _QUANTILES[agg] * (len(vals) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(vals) - 1)
        return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)
    return None
