"""The ClickHouse trace store: the scale-out backend (``--store clickhouse://...``).

Tables keep the DuckDB store's names and columns, so the two backends read alike. What
differs, and why:

- ClickHouse has no transactions and no unique keys. Spans are a ``ReplacingMergeTree`` keyed
  by their ids, and ``insert_batches`` drops the rows of a batch that are already stored, so a
  re-sent batch adds nothing; two nodes racing on the same batch leave two copies only until
  the next merge.
- ``ingest_seq`` is the commit time in microseconds (strictly increasing per process), not a
  counter: several ingest nodes write at once. On a server, ``last_ingest_seq`` lags the clock
  by ``SEQ_SETTLE_US`` so that a reader never moves past a commit another node has not made
  visible yet.
- Tables are partitioned by day and ordered for the dashboard's reads (project, hour, ids).

The store is split into mixins, one per area, each owning its tables (``DDL``) and methods.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import structlog

from sightline import _cursor
from sightline.errors import ConfigError, StoreError
from sightline.model import SPAN_FIELDS, Span
from sightline.store._arrow import JSON_FIELDS as _JSON_FIELDS
from sightline.store._clickhouse_analysis import AnalysisMixin
from sightline.store._clickhouse_base import CHBase, ch_ts
from sightline.store._clickhouse_control import ControlMixin
from sightline.store._clickhouse_coord import CoordMixin
from sightline.store._clickhouse_evals import EvalsMixin
from sightline.store._clickhouse_monitor import MonitorMixin
from sightline.store._clickhouse_signals import SignalsMixin
from sightline.store.base import (
    MetricQuery,
    MetricSeries,
    SpanPage,
    SpanQuery,
    TraceRollup,
    TraceSummary,
)

__all__ = ["ClickHouseStore", "SEQ_SETTLE_US"]

log = structlog.get_logger("sightline.store")

SEQ_SETTLE_US = 5_000_000
"""How far behind the clock a shared store's readers stay (a commit on another node is
visible to every reader within this)."""

_STR = "Nullable(String)"
_SPAN_COLUMNS: list[tuple[str, str]] = [
    ("project_id", "String"),
    ("trace_id", "String"),
    ("span_id", "String"),
    ("parent_span_id", _STR),
    ("name", "String"),
    ("kind", "LowCardinality(String)"),
    ("start_time", "DateTime64(6, 'UTC')"),
    ("end_time", "DateTime64(6, 'UTC')"),
    ("duration_ms", "Float64"),
    ("status", "LowCardinality(String)"),
    ("status_message", _STR),
    ("service_name", "LowCardinality(Nullable(String))"),
    ("service_version", "LowCardinality(Nullable(String))"),
    ("environment", "LowCardinality(Nullable(String))"),
    ("operation", "LowCardinality(Nullable(String))"),
    ("provider", "LowCardinality(Nullable(String))"),
    ("request_model", "LowCardinality(Nullable(String))"),
    ("response_model", "LowCardinality(Nullable(String))"),
    ("model", "LowCardinality(Nullable(String))"),
    ("input_tokens", "Nullable(Int64)"),
    ("output_tokens", "Nullable(Int64)"),
    ("total_tokens", "Nullable(Int64)"),
    ("cached_input_tokens", "Nullable(Int64)"),
    ("cache_write_tokens", "Nullable(Int64)"),
    ("reasoning_tokens", "Nullable(Int64)"),
    ("ttft_ms", "Nullable(Float64)"),
    ("tpot_ms", "Nullable(Float64)"),
    ("finish_reason", "LowCardinality(Nullable(String))"),
    ("temperature", "Nullable(Float64)"),
    ("top_p", "Nullable(Float64)"),
    ("max_tokens", "Nullable(Int64)"),
    ("seed", "Nullable(Int64)"),
    ("is_streaming", "Nullable(Bool)"),
    ("user_id", _STR),
    ("session_id", _STR),
    ("tenant_id", _STR),
    ("feature", _STR),
    ("prompt_name", _STR),
    ("prompt_version", _STR),
    ("variant", _STR),
    ("input", _STR),
    ("output", _STR),
    ("input_messages", _STR),
    ("output_messages", _STR),
    ("documents", _STR),
    ("cost_usd", "Nullable(Float64)"),
    ("attributes", _STR),
    ("resource_attributes", _STR),
    ("ingest_notes", "Array(String)"),
]
if tuple(c for c, _ in _SPAN_COLUMNS) != SPAN_FIELDS:  # pragma: no cover - a programming error
    raise ImportError("ClickHouse span columns and model.Span disagree")

_SELECT = ", ".join(f"`{c}`" for c in SPAN_FIELDS)


class ClickHouseStore(
    MonitorMixin, AnalysisMixin, ControlMixin, SignalsMixin, CoordMixin, EvalsMixin, CHBase
):
    """TraceStore on ClickHouse (a server, or the engine embedded by chdb)."""

    DDL: ClassVar[list[str]] = [
        """CREATE TABLE IF NOT EXISTS schema_migrations (
            version Int32, applied_at DateTime64(6, 'UTC')
        ) ENGINE = ReplacingMergeTree ORDER BY version""",
        "CREATE TABLE IF NOT EXISTS spans ("
        + ", ".join(f"`{c}` {t}" for c, t in _SPAN_COLUMNS)
        + """, ingest_seq Int64,
            INDEX idx_trace trace_id TYPE bloom_filter GRANULARITY 4,
            INDEX idx_seq ingest_seq TYPE minmax GRANULARITY 1
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMMDD(start_time)
        ORDER BY (project_id, toStartOfHour(start_time), trace_id, span_id)""",
        # the ingest writer's test write while the store is failing (one row, replaced)
        """CREATE TABLE IF NOT EXISTS store_probe (
            id Int32, at DateTime64(6, 'UTC')
        ) ENGINE = ReplacingMergeTree ORDER BY id""",
    ]
    SCHEMA_VERSION: ClassVar[int] = 1

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._ingest_seq = 0

    # -- lifecycle -----------------------------------------------------------------------------

    def migrate(self) -> int:
        self._create_schema()
        rows = self._q("SELECT max(version) FROM schema_migrations")
        if not rows or not rows[0][0] or rows[0][0] < self.SCHEMA_VERSION:
            self._insert_rows(
                "schema_migrations",
                ["version", "applied_at"],
                [[self.SCHEMA_VERSION, datetime.now(UTC).replace(tzinfo=None)]],
            )
            log.info("migration_applied", version=self.SCHEMA_VERSION, backend="clickhouse")
        self._ingest_seq = int(self._q("SELECT max(ingest_seq) FROM spans")[0][0] or 0)
        return self.SCHEMA_VERSION

    def check_writable(self) -> None:
        try:
            self._insert_rows(
                "store_probe", ["id", "at"], [[1, datetime.now(UTC).replace(tzinfo=None)]]
            )
        except StoreError as e:
            raise StoreError(f"store not writable: {e}") from e

    def checkpoint_when_idle(self) -> bool:
        return False  # the server merges parts in the background

    # -- writes --------------------------------------------------------------------------------

    def insert_batches(self, batches: Sequence[pa.Table]) -> int:
        table = batches[0] if len(batches) == 1 else pa.concat_tables(batches)
        if table.num_rows == 0:
            return 0
        table = self._new_rows(table)
        seq = max(self._ingest_seq + 1, time.time_ns() // 1000)
        table = table.append_column("ingest_seq", pa.array([seq] * table.num_rows, pa.int64()))
        try:
            self._insert_arrow("spans", table)
        except StoreError as e:
            raise StoreError(f"span insert failed: {e}") from e
        self._ingest_seq = seq
        return int(table.num_rows)

    def _new_rows(self, table: pa.Table) -> pa.Table:
        """The rows of ``table`` not stored yet, each key once (a re-sent batch is a no-op)."""
        projects = table.column("project_id").to_pylist()
        traces = table.column("trace_id").to_pylist()
        spans = table.column("span_id").to_pylist()
        keys = list(zip(projects, traces, spans, strict=True))
        # A re-sent span has its first copy's start time, so only the batch's hours (a prefix
        # of the sorting key) are looked at: the check stays as cheap at 10M spans as at 10k.
        hours = pc.unique(
            pc.floor_temporal(
                table.column("start_time").cast(pa.timestamp("us"), safe=False), unit="hour"
            )
        ).to_pylist()
        stored = {
            (r[0], r[1], r[2])
            for r in self._q(
                "SELECT project_id, trace_id, span_id FROM spans"
                " WHERE project_id IN {p:Array(String)}"
                " AND toStartOfHour(start_time) IN {h:Array(DateTime('UTC'))}"
                " AND trace_id IN {t:Array(String)} AND span_id IN {s:Array(String)}",
                {
                    "p": sorted(set(projects)),
                    "h": hours,
                    "t": sorted(set(traces)),
                    "s": sorted(set(spans)),
                },
            )
        }
        keep: list[bool] = []
        for k in keys:
            keep.append(k not in stored)
            stored.add(k)
        if all(keep):
            return table
        return table.filter(pa.array(keep))

    # -- span reads ----------------------------------------------------------------------------

    def last_ingest_seq(self) -> int:
        if self.shared:
            return time.time_ns() // 1000 - SEQ_SETTLE_US
        return self._ingest_seq

    def list_spans(self, query: SpanQuery) -> SpanPage:
        where = ["project_id = {project_id:String}"]
        params: dict[str, Any] = {"project_id": query.project_id}
        for col in ("kind", "model", "user_id", "session_id", "trace_id", "status"):
            v = getattr(query, col)
            if v is not None:
                where.append(f"`{col}` = {{{col}:String}}")
                params[col] = v
        if query.start is not None:
            where.append("start_time >= {start:DateTime64(6, 'UTC')}")
            params["start"] = ch_ts(query.start)
        if query.end is not None:
            where.append("start_time < {end:DateTime64(6, 'UTC')}")
            params["end"] = ch_ts(query.end)
        if query.root_only:
            where.append("parent_span_id IS NULL")
        if query.trace_status is not None:
            op = "IN" if query.trace_status == "error" else "NOT IN"
            # an errored span starts after its root but for an hour of clock skew
            since = ""
            if query.start is not None:
                since = " AND start_time >= {skew_start:DateTime64(6, 'UTC')}"
                params["skew_start"] = ch_ts(query.start - timedelta(hours=1))
            where.append(
                f"trace_id {op} (SELECT trace_id FROM spans"  # noqa: S608 - constants
                f" WHERE project_id = {{project_id:String}} AND status = 'error'{since})"
            )
        if query.text:
            where.append(
                "(positionCaseInsensitiveUTF8(coalesce(input, ''), {text:String}) > 0"
                " OR positionCaseInsensitiveUTF8(coalesce(output, ''), {text:String}) > 0)"
            )
            params["text"] = query.text
        if query.cursor:
            ts, tid, sid = decode_cursor(query.cursor)
            where.append(
                "(start_time, trace_id, span_id)"
                " < ({c_ts:DateTime64(6, 'UTC')}, {c_tid:String}, {c_sid:String})"
            )
            params.update(c_ts=ts, c_tid=tid, c_sid=sid)
        params["limit"] = query.limit + 1
        rows = self._q(
            f"SELECT {_SELECT} FROM spans WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY start_time DESC, trace_id DESC, span_id DESC LIMIT {limit:UInt32}",
            params,
        )
        more = len(rows) > query.limit
        spans = [row_to_span(r) for r in rows[: query.limit]]
        cursor = None
        if more and spans:
            last = spans[-1]
            cursor = encode_cursor(last.start_time, last.trace_id, last.span_id)
        return SpanPage(spans, cursor)

    def get_trace(
        self,
        project_id: str,
        trace_id: str,
        *,
        limit: int | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[Span]:
        # Two steps: the trace's hours from the narrow key columns, then the whole rows within
        # those hours (a prefix of the sorting key). Filtering all 49 columns by trace_id alone
        # reads every granule the bloom filter keeps: 2x slower here at 200k spans.
        hours = self._trace_hours(project_id, trace_id)
        if not hours:
            return []
        params: dict[str, Any] = {"p": project_id, "t": trace_id, "h": hours}
        sql = (
            f"SELECT {_SELECT} FROM spans"  # noqa: S608
            " WHERE project_id = {p:String}"
            " AND toStartOfHour(start_time) IN {h:Array(DateTime('UTC'))}"
            " AND trace_id = {t:String}"
        )
        if after is not None:
            sql += " AND (start_time, span_id) > ({a_ts:DateTime64(6, 'UTC')}, {a_sid:String})"
            params.update(a_ts=ch_ts(after[0]), a_sid=after[1])
        sql += " ORDER BY start_time, span_id LIMIT 1 BY span_id"
        if limit is not None:
            sql += " LIMIT {limit:UInt64}"
            params["limit"] = limit
        return [row_to_span(r) for r in self._q(sql, params)]

    def _trace_hours(self, project_id: str, trace_id: str) -> list[Any]:
        return [
            r[0]
            for r in self._q(
                "SELECT DISTINCT toStartOfHour(start_time) FROM spans"
                " WHERE project_id = {p:String} AND trace_id = {t:String}",
                {"p": project_id, "t": trace_id},
            )
        ]

    def summarize_trace(self, project_id: str, trace_id: str) -> TraceSummary | None:
        hours = self._trace_hours(project_id, trace_id)
        if not hours:
            return None
        # each span once: a retried batch may still hold a second row until a merge
        rows = self._q(
            "SELECT count(), min(start_time), max(end_time), sum(coalesce(cost_usd, 0)),"
            " sum(if(kind = 'llm', coalesce(input_tokens, 0), 0)),"
            " sum(if(kind = 'llm', coalesce(output_tokens, 0), 0))"
            " FROM (SELECT start_time, end_time, cost_usd, kind, input_tokens, output_tokens"
            " FROM spans WHERE project_id = {p:String}"
            " AND toStartOfHour(start_time) IN {h:Array(DateTime('UTC'))}"
            " AND trace_id = {t:String} LIMIT 1 BY span_id)",
            {"p": project_id, "t": trace_id, "h": hours},
        )
        if not rows or not rows[0][0]:
            return None
        n, start, end, cost, inp, out = rows[0]
        return TraceSummary(
            num_spans=int(n),
            start_time=start.replace(tzinfo=UTC),
            end_time=end.replace(tzinfo=UTC),
            cost_usd=float(cost or 0.0),
            input_tokens=int(inp or 0),
            output_tokens=int(out or 0),
        )

    def summarize_traces(
        self, project_id: str, trace_ids: Sequence[str], *, since: datetime | None = None
    ) -> list[TraceRollup]:
        ids = sorted(set(trace_ids))
        if not ids:
            return []
        params: dict[str, Any] = {"p": project_id, "t": ids}
        bound = ""
        if since is not None:
            bound = " AND start_time >= {since:DateTime64(6, 'UTC')}"
            params["since"] = ch_ts(since)
        # each span once: a retried batch may still hold a second row until a merge
        rows = self._q(
            "SELECT trace_id, count(), countIf(status = 'error'),"  # noqa: S608 - bound: constant
            " arraySort(groupUniqArrayIf(assumeNotNull(model),"
            " kind = 'llm' AND model IS NOT NULL)),"
            " sum(coalesce(cost_usd, 0)),"
            " sum(if(kind = 'llm', coalesce(input_tokens, 0), 0)),"
            " sum(if(kind = 'llm', coalesce(output_tokens, 0), 0))"
            " FROM (SELECT trace_id, status, model, kind, cost_usd, input_tokens, output_tokens"
            " FROM spans WHERE project_id = {p:String} AND trace_id IN {t:Array(String)}"
            + bound
            + " LIMIT 1 BY trace_id, span_id) GROUP BY trace_id",
            params,
        )
        return [TraceRollup.from_row(r) for r in rows]

    def query_metrics(self, queries: Sequence[MetricQuery]) -> list[list[MetricSeries]]:
        # One query each: ClickHouse scans the columns of each metric in parallel anyway, and
        # the page that asks (the overview) measured fast enough this way (docs/benchmarks.md).
        return [self.query_metric(q) for q in queries]

    def find_span_trace(self, project_id: str, span_id: str) -> str | None:
        rows = self._q(
            "SELECT trace_id FROM spans WHERE project_id = {p:String} AND span_id = {s:String}"
            " LIMIT 1",
            {"p": project_id, "s": span_id},
        )
        return str(rows[0][0]) if rows else None

    def count_spans(self, project_id: str) -> int:
        rows = self._q("SELECT count() FROM spans WHERE project_id = {p:String}", {"p": project_id})
        return int(rows[0][0]) if rows else 0

    def first_span_time(self, project_id: str) -> datetime | None:
        rows = self._q(
            "SELECT minOrNull(start_time) FROM spans WHERE project_id = {p:String}",
            {"p": project_id},
        )
        if not rows or rows[0][0] is None:
            return None
        at: datetime = rows[0][0]
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def row_to_span(row: Sequence[Any]) -> Span:
    d = dict(zip(SPAN_FIELDS, row, strict=True))
    for f in _JSON_FIELDS:
        v = d[f]
        d[f] = orjson.loads(v) if v is not None else ({} if f.endswith("attributes") else None)
    d["start_time"] = d["start_time"].replace(tzinfo=UTC)
    d["end_time"] = d["end_time"].replace(tzinfo=UTC)
    d["ingest_notes"] = list(d["ingest_notes"] or [])
    return Span(**d)


def encode_cursor(ts: datetime, trace_id: str, span_id: str) -> str:
    return _cursor.encode_cursor(ts, trace_id, span_id)


def decode_cursor(cursor: str) -> tuple[datetime, str, str]:
    ts, (tid, sid) = _cursor.decode_cursor(cursor, 2)
    try:
        bytes.fromhex(tid)
        bytes.fromhex(sid)
    except ValueError:
        raise ConfigError("invalid cursor") from None
    return ts.replace(tzinfo=None), tid, sid
