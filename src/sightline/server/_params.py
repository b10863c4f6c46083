"""Parsing and checks of request values shared by the API routes."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi.routing import APIRoute
from pydantic import AfterValidator
from starlette.requests import Request

from sightline.errors import ConfigError

__all__ = [
    "MAX_STEP_S",
    "MAX_TIME",
    "MIN_TIME",
    "ApiTime",
    "check_json",
    "check_time",
    "check_window",
    "known_query",
    "parse_step",
    "parse_time",
]

# Epoch seconds as ASCII digits only: float() also takes "1_767_225_600", "２０２６" (full-width
# digits) and "nan", which would otherwise be read as a time nobody meant.
_EPOCH_RE = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*", re.ASCII)
# at most 15 digits: int() of a longer one costs time (and fails past 4300 digits)
_STEP_RE = re.compile(r"^(\d{1,15})\s*(s|m|h|d)?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
# A bucket of a year holds any window worth plotting; a step of 10**8 days overflows the
# stores' INTERVAL arithmetic.
MAX_STEP_S = 366 * 86400

# The times a request may name. Wider than what is stored (ingest keeps times in 1970..2300,
# ClickHouse's DateTime64 holds 1900..2299), so open-ended bounds such as to=8000-01-01 still
# work; far enough from datetime's years 1 and 9999 that a route's arithmetic (end - 24h,
# + a silence's duration, a baseline before start) cannot overflow into a 500.
MIN_TIME = datetime(1900, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(9000, 1, 1, tzinfo=UTC)


def _utc_in_range(dt: datetime) -> datetime | None:
    try:
        utc = dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)
    except OverflowError:  # an offset that carries it past year 1 or 9999 once in UTC
        return None
    return utc if MIN_TIME <= utc <= MAX_TIME else None


def _range_error(dt: datetime) -> str:
    return (
        f"out of range: expected a time between {MIN_TIME.date()} and {MAX_TIME.date()}, "
        f"got {dt.isoformat()}"
    )


def check_time(dt: datetime, name: str) -> datetime:
    """``dt`` in UTC (naive is UTC); ConfigError outside MIN_TIME..MAX_TIME."""
    utc = _utc_in_range(dt)
    if utc is None:
        raise ConfigError(f"{name}: {_range_error(dt)}")
    return utc


def _body_time(dt: datetime) -> datetime:
    utc = _utc_in_range(dt)
    if utc is None:
        raise ValueError(_range_error(dt))  # pydantic puts the field's name in front: a 400
    return utc


ApiTime = Annotated[datetime, AfterValidator(_body_time)]
"""A datetime field of a request body: in UTC and within MIN_TIME..MAX_TIME."""


def parse_time(value: str | None, name: str) -> datetime | None:
    """Epoch seconds or ISO-8601 (UTC when no offset) to an aware UTC datetime.

    ConfigError (400) for anything else, and for a time outside MIN_TIME..MAX_TIME.
    """
    if value is None or value == "":
        return None
    epoch: float | None = None
    if _EPOCH_RE.fullmatch(value):
        epoch = float(value)
    elif value.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
        raise ConfigError(f"{name}: timestamp out of range")
    if epoch is not None:
        try:
            dt = datetime.fromtimestamp(epoch, UTC)
        except (ValueError, OverflowError, OSError):
            raise ConfigError(f"{name}: timestamp out of range") from None
        return check_time(dt, name)
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{name}: expected epoch seconds or ISO-8601, got {value!r}") from None
    return check_time(dt, name)


def check_window(start: datetime | None, end: datetime | None) -> None:
    """ConfigError (400) when both ends are given and ``from`` comes after ``to``.

    Swapped ends otherwise answer an empty list, which reads as "no data" rather than as the
    mistake it is. Equal ends are an empty window, not an error, for the list routes.
    """
    if start is not None and end is not None and start > end:
        raise ConfigError(f"from ({start.isoformat()}) is after to ({end.isoformat()})")


_known_names: dict[int, frozenset[str]] = {}


def _query_names(route: APIRoute) -> frozenset[str]:
    names = _known_names.get(id(route))
    if names is None:
        found: set[str] = set()
        stack = [route.dependant]
        while stack:
            d = stack.pop()
            found.update(f.alias for f in d.query_params)
            stack.extend(d.dependencies)
        names = _known_names[id(route)] = frozenset(found)
    return names


def known_query(request: Request) -> None:
    """A route dependency: ConfigError (400) for a query parameter the route does not take.

    A misspelt filter (``modle=gpt-4o``) would otherwise be ignored and the answer would be the
    unfiltered data, which looks like a filtered answer.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _query_names(route)
    unknown = sorted({k for k in request.query_params if k not in known})
    if unknown:
        raise ConfigError(
            f"unknown query parameter {unknown[0][:100]!r}; this route takes: "
            + ", ".join(sorted(known))
        )


def parse_step(value: str | None) -> int | None:
    """'60', '60s', '5m', '1h', '1d' to seconds; ConfigError (400) above MAX_STEP_S."""
    if value is None or value == "":
        return None
    m = _STEP_RE.match(value.strip())
    if not m or int(m.group(1)) == 0:
        raise ConfigError(f"step: expected a duration such as 60s, 5m or 1h, got {value!r}")
    step_s = int(m.group(1)) * _UNITS[m.group(2)]
    if step_s > MAX_STEP_S:
        raise ConfigError(f"step: at most {MAX_STEP_S // 86400}d, got {value!r}")
    return step_s


# Free-form JSON in a body (outcome metadata, prompt parameters) is stored as JSON: the
# serializer refuses integers beyond 64 bits (a 500 at insert) and writes NaN/Infinity as null
# (silently not what was sent), so both are refused up front.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def check_json(value: Any, name: str) -> Any:
    """``value`` unchanged, if every number in it is finite and every integer fits in 64 bits.

    ValueError otherwise, naming where (``name.key[0]``); a pydantic validator makes it a 400.
    """
    # Containers are walked with their position only (the path is spelled out for the error):
    # paths built for every element cost memory and time quadratic in the nesting depth.
    stack: list[tuple[Any, tuple[Any, ...] | None]] = [(value, None)]
    while stack:
        v, where = stack.pop()
        if isinstance(v, dict):
            stack.extend((x, (where, "key", k)) for k, x in v.items())
        elif isinstance(v, list | tuple):
            stack.extend((x, (where, "index", i)) for i, x in enumerate(v))
        elif isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"NaN and Infinity are not JSON numbers (at {_path(name, where)})")
        elif isinstance(v, int) and not isinstance(v, bool) and not _INT64_MIN <= v <= _INT64_MAX:
            raise ValueError(
                f"integers must fit in 64 bits, -2**63 to 2**63-1 (at {_path(name, where)})"
            )
    return value


def _path(name: str, where: tuple[Any, ...] | None) -> str:
    parts: list[str] = []
    while where is not None:
        where, kind, k = where
        parts.append(f".{k}" if kind == "key" else f"[{k}]")
    return name + "".join(reversed(parts))
