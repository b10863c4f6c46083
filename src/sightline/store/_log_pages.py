"""Pages of ``GET /api/v1/logs``: the keyset cursor both stores share.

Log records carry no id, and many share a timestamp (the GenAI events of one request, a burst
of one logger). Each store completes the order with a hash of the record's other columns
(DuckDB's ``hash``, ClickHouse's ``cityHash64``), computed in the query: two records with the
same time and hash hold the same values, so which of them a page returned does not matter, only
how many. A cursor is the last record's sort key plus the number of records with exactly that
key returned so far; the next page reads from that key on, inclusive, and skips that number.

A record stored later with a time already paged past sorts by its hash on one side of the cursor
or the other: it is read once or not at all, and shifts no page. Offsets would not do that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from sightline._cursor import decode_cursor, encode_cursor, epoch_us
from sightline.errors import ConfigError
from sightline.model import LogRecord
from sightline.store.base import LogPage, LogQuery

__all__ = ["LogCursor", "decode_log_cursor", "log_page", "row_to_log_record"]

_U64 = 1 << 64


@dataclasses.dataclass(frozen=True, slots=True)
class LogCursor:
    """Where the next page starts: the last record's sort key and how many share it."""

    time: datetime
    """Aware UTC."""
    span_id: str
    """The span of the last record in the order of one trace (``""`` for none), else ``""``."""
    row_hash: int
    """The store's hash of the record's columns (an unsigned 64-bit integer)."""
    num_seen: int
    """Records with this exact key that earlier pages returned (at least 1)."""


def decode_log_cursor(query: LogQuery) -> LogCursor | None:
    """The cursor of ``query`` (None without one); ConfigError on one not made by :func:`log_page`.

    The order of one trace keeps the span id in its cursor, the newest-first order does not: a
    cursor of one order passed with a query of the other is refused.
    """
    if query.cursor is None:
        return None
    by_trace = query.trace_id is not None
    ts, ids = decode_cursor(query.cursor, 3 if by_trace else 2)
    try:
        row_hash, num_seen = int(ids[0]), int(ids[1])
    except ValueError:
        raise ConfigError("invalid cursor") from None
    span_id = ids[2] if by_trace else ""
    if not (0 <= row_hash < _U64 and 1 <= num_seen < _U64 >> 1):
        raise ConfigError("invalid cursor")
    return LogCursor(ts, span_id, row_hash, num_seen)


def log_page(
    query: LogQuery, rows: list[tuple[LogRecord, int]], after: LogCursor | None
) -> LogPage:
    """The page of ``rows``: up to ``query.limit + 1`` records and their hashes, in order.

    ``after`` is the cursor the rows were read from (its key's first ``num_seen`` skipped).
    """
    page = rows[: query.limit]
    records = [r for r, _ in page]
    if len(rows) <= query.limit or not page:
        return LogPage(records, None)
    by_trace = query.trace_id is not None

    def key(r: LogRecord, row_hash: int) -> tuple[int, str, int]:
        return epoch_us(r.time), (r.span_id or "") if by_trace else "", row_hash

    last = key(*page[-1])
    # records of one key are adjacent in the order: all of them on this page are at its end
    num_seen = sum(1 for r, h in page if key(r, h) == last)
    if after is not None and last == (epoch_us(after.time), after.span_id, after.row_hash):
        num_seen += after.num_seen  # the whole page shares the cursor's key
    ids = [str(last[2]), str(num_seen)] + ([last[1]] if by_trace else [])
    return LogPage(records, encode_cursor(page[-1][0].time, *ids))


def row_to_log_record(r: Sequence[Any]) -> LogRecord:
    """A log record from the 13 columns both stores select, in ``LogRecord``'s order.

    Times come naive UTC, attributes as JSON text.
    """
    observed: datetime | None = r[2]
    return LogRecord(
        project_id=r[0],
        time=r[1].replace(tzinfo=UTC),
        observed_time=observed.replace(tzinfo=UTC) if observed is not None else None,
        severity_number=r[3],
        severity_text=r[4],
        body=r[5],
        event_name=r[6],
        attributes=orjson.loads(r[7]),
        resource_attributes=orjson.loads(r[8]),
        service_name=r[9],
        scope=r[10],
        trace_id=r[11],
        span_id=r[12],
    )
