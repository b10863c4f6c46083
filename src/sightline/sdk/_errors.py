"""Containment: a bug in instrumentation is logged once and never reaches the application."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["handle_internal_errors", "logger"]

logger = logging.getLogger("sightline")
_seen: set[str] = set()


@contextmanager
def handle_internal_errors(where: str) -> Iterator[None]:
    """Swallow and log (once per place) any exception raised by Sightline's own code."""
    try:
        yield
    except Exception:  # instrumentation must never raise into user code
        if where not in _seen:
            _seen.add(where)
            logger.exception("sightline internal error in %s; telemetry dropped", where)
