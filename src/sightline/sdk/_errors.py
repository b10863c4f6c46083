"""Containment: a bug in instrumentation is logged once and never reaches the application."""

from __future__ import annotations

import json
import logging
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["failure_reason", "handle_internal_errors", "internal_error", "logger"]

logger = logging.getLogger("sightline")
_seen: set[str] = set()


def internal_error(where: str) -> None:
    """Log the exception being handled, once per place; call from an ``except`` block.

    The hot paths use ``try/except Exception: internal_error(...)`` rather than the context
    manager below, which costs ~2 µs a use.
    """
    if where not in _seen:
        _seen.add(where)
        logger.exception("sightline internal error in %s; telemetry dropped", where)


@contextmanager
def handle_internal_errors(where: str) -> Iterator[None]:
    """Swallow and log (once per place) any exception raised by Sightline's own code."""
    try:
        yield
    except Exception:  # instrumentation must never raise into user code
        internal_error(where)


def failure_reason(e: Exception) -> str:
    """Why a request to the server failed, with the server's own message when it sent one."""
    if isinstance(e, urllib.error.HTTPError):
        try:
            msg = json.loads(e.read())["error"]["message"]
        except (ValueError, KeyError, TypeError, OSError):
            msg = e.reason
        return f"server answered {e.code}: {msg}"
    if isinstance(e, urllib.error.URLError):
        return f"server unreachable: {e.reason}"
    return f"{type(e).__name__}: {e}"
