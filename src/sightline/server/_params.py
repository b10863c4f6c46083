"""Query-parameter parsing shared by the API routes."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sightline.errors import ConfigError

__all__ = ["parse_step", "parse_time"]

_STEP_RE = re.compile(r"^(\d+)\s*(s|m|h|d)?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_time(value: str | None, name: str) -> datetime | None:
    """Epoch seconds or ISO-8601 (UTC when no offset) to an aware datetime."""
    if value is None or value == "":
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        pass
    except (OverflowError, OSError):
        raise ConfigError(f"{name}: timestamp out of range") from None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{name}: expected epoch seconds or ISO-8601, got {value!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def parse_step(value: str | None) -> int | None:
    """'60', '60s', '5m', '1h', '1d' to seconds."""
    if value is None or value == "":
        return None
    m = _STEP_RE.match(value.strip())
    if not m or int(m.group(1)) == 0:
        raise ConfigError(f"step: expected a duration such as 60s, 5m or 1h, got {value!r}")
    return int(m.group(1)) * _UNITS[m.group(2)]
