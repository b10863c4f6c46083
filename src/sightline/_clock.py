"""Time as the server sees it: the system clock, or a fake one that tests move by hand.

``create_app(settings, clock=...)`` takes any :data:`Clock`; every stage that asks what time it
is (the monitor, drift detection, alert lifecycle) calls it instead of ``datetime.now``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["Clock", "FakeClock", "system_clock"]

Clock = Callable[[], datetime]
"""A function returning the current time as an aware UTC datetime."""


def system_clock() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


class FakeClock:
    """A clock that stands still until moved: ``clock.advance(seconds=30)``.

    Example:
        >>> clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
        >>> clock.advance(minutes=5).isoformat()
        '2026-01-01T00:05:00+00:00'
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> datetime:
        """Move forward by a ``timedelta(**delta)``; return the new time."""
        with self._lock:
            self._now += timedelta(**delta)
            return self._now

    def set(self, now: datetime) -> None:
        """Jump to ``now``."""
        with self._lock:
            self._now = now
