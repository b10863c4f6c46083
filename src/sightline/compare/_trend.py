"""The trend of a series: least-squares slope per day and change from first to last point."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

__all__ = ["trend"]


def trend(points: Sequence[tuple[datetime, float]]) -> tuple[float | None, float | None]:
    """``(slope per day, change in percent)`` of ``(time, value)`` points, oldest first.

    The slope is the ordinary least-squares fit of value on time in days; the change is
    ``(last - first) / first * 100``. Either is None when it is undefined (fewer than two
    points, a zero first value).

    Example:
        >>> from datetime import datetime, timedelta
        >>> t0 = datetime(2026, 1, 1)
        >>> trend([(t0, 100.0), (t0 + timedelta(days=1), 110.0), (t0 + timedelta(days=2), 120.0)])
        (10.0, 20.0)
    """
    if len(points) < 2:
        return None, None
    t0 = points[0][0]
    xs = [(t - t0).total_seconds() / 86400.0 for t, _ in points]
    ys = [v for _, v in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else None
    change = (ys[-1] - ys[0]) / ys[0] * 100.0 if ys[0] else None
    return slope, change
