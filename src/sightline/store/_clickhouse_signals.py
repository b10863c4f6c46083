"""OTLP metric points and log records, and business outcomes, in the ClickHouse store.

The tables keep the DuckDB store's columns. Differences:

- ``bounds`` and ``bucket_counts`` are ``Array(Float64)``, which cannot be NULL: a point that
  is not a histogram stores two empty arrays and reads back ``None`` for both.
- Attribute filters and groups of OTLP metrics read the JSON with ``JSONExtract*``; a missing
  attribute is NULL and a non-string value its JSON text, as DuckDB's ``json_extract_string``.
- Percentiles of histograms and the increase of cumulative series are computed in Python
  (``sightline.store._histogram``) over the points the query returns, as in DuckDB.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson
import pyarrow as pa

from sightline.errors import ConfigError, StoreError
from sightline.model import Outcome
from sightline.store._clickhouse_base import CH_DT as _TS
from sightline.store._clickhouse_base import CH_NDT as _NTS
from sightline.store._clickhouse_base import CH_NF as _F
from sightline.store._clickhouse_base import CH_NSTR as _S
from sightline.store._clickhouse_base import CHBase, ch_ts
from sightline.store._clickhouse_base import ch_aware as _utc
from sightline.store._histogram import Point, aggregate, increases, steps
from sightline.store._log_pages import decode_log_cursor, log_page, row_to_log_record
from sightline.store.base import (
    BATCH_KEY,
    DIMENSIONS,
    LogPage,
    LogQuery,
    MetricQuery,
    MetricSeries,
    OutcomeGroup,
    OutcomeQuery,
    WindowAgg,
    WindowValue,
)

__all__ = ["SignalsMixin"]

_LC = "LowCardinality(Nullable(String))"
_TABLES = {"metrics": "otel_metric_points", "logs": "otel_logs"}
_LOG_COLS = (
    "project_id, `time`, observed_time, severity_number, severity_text, body, event_name,"
    " attributes, resource_attributes, service_name, scope, trace_id, span_id"
)
_LOG_HASH = f"cityHash64(tuple({_LOG_COLS.split(', ', 2)[2]}))"
"""The tiebreaker of records of one time: every column but the project and the time (in a tuple:
``cityHash64`` of a NULL is NULL, a tuple's hash tells NULL from empty)."""
_OUTCOME_COLS = (
    "project_id, outcome_id, trace_id, session_id, name, value, user_id, metadata, created_at"
)
_MAX_POINTS = 1_000_000
"""Most data points one metric query reads (a bound on memory, not a sampling)."""


def _attr_key(k: str) -> str:
    # the same names DuckDB's JSON paths accept, so both backends refuse the same input
    if '"' in k or "\\" in k or len(k) > 255:
        raise ConfigError(f"invalid attribute name {k!r}")
    return k


def _attr_sql(param: str) -> str:
    """An attribute of the ``attributes`` JSON as text (NULL when absent or null)."""
    return (
        f"multiIf(NOT JSONHas(attributes, {{{param}:String}}), NULL,"
        f" JSONType(attributes, {{{param}:String}}) = 'Null', NULL,"
        f" JSONType(attributes, {{{param}:String}}) = 'String',"
        f" JSONExtractString(attributes, {{{param}:String}}),"
        f" JSONExtractRaw(attributes, {{{param}:String}}))"
    )


class SignalsMixin(CHBase):
    """OTLP metrics and logs, and business outcomes."""

    DDL: ClassVar[list[str]] = [
        # Ordered by time within a project: queries select a metric by name OR alias, which a
        # sorting key cannot serve; the bloom filters skip the granules of other metrics.
        f"""CREATE TABLE IF NOT EXISTS otel_metric_points (
            project_id String, name LowCardinality(String), alias {_LC},
            `type` LowCardinality(String), unit {_LC}, temporality {_LC},
            monotonic Nullable(Bool), service_name {_LC}, attributes String,
            resource_attributes String, source LowCardinality(String), `time` {_TS},
            start_time {_NTS}, value {_F}, `count` {_F}, `sum` {_F}, `min` {_F}, `max` {_F},
            bounds Array(Float64), bucket_counts Array(Float64), exp_scale Nullable(Int32),
            batch_key {_S},
            INDEX idx_name name TYPE bloom_filter GRANULARITY 1,
            INDEX idx_batch batch_key TYPE bloom_filter GRANULARITY 4,
            INDEX idx_alias alias TYPE bloom_filter GRANULARITY 1
        ) ENGINE = MergeTree PARTITION BY toYYYYMMDD(`time`)
        ORDER BY (project_id, `time`)""",
        f"""CREATE TABLE IF NOT EXISTS otel_logs (
            project_id String, `time` {_TS}, observed_time {_NTS},
            severity_number Nullable(Int32), severity_text {_LC}, body {_S}, event_name {_LC},
            attributes String, resource_attributes String, service_name {_LC}, scope {_S},
            trace_id {_S}, span_id {_S}, batch_key {_S},
            INDEX idx_trace trace_id TYPE bloom_filter GRANULARITY 4,
            INDEX idx_batch batch_key TYPE bloom_filter GRANULARITY 4
        ) ENGINE = MergeTree PARTITION BY toYYYYMMDD(`time`)
        ORDER BY (project_id, `time`)""",
        f"""CREATE TABLE IF NOT EXISTS outcomes (
            project_id String, outcome_id String, trace_id {_S}, session_id {_S},
            name LowCardinality(String), value Float64, user_id {_S}, metadata {_S},
            created_at {_TS},
            INDEX idx_trace trace_id TYPE bloom_filter GRANULARITY 4,
            INDEX idx_session session_id TYPE bloom_filter GRANULARITY 4
        ) ENGINE = MergeTree PARTITION BY toYYYYMM(created_at)
        ORDER BY (project_id, name, created_at)""",
    ]

    # -- writes --------------------------------------------------------------------------------

    def insert_signal_batches(self, signal: str, batches: Sequence[pa.Table]) -> int:
        """Append metric points or log records (one insert: one part, atomic)."""
        table_name = _TABLES.get(signal)
        if table_name is None:
            raise StoreError(f"unknown signal {signal!r}")
        # A batch carrying the key of its OTLP request (BATCH_KEY) is skipped when a row of
        # that key is stored: an exporter's retry of a committed request adds nothing.
        keyed = [(b, _batch_key(b)) for b in batches]
        wanted = sorted({k for _, k in keyed if k is not None})
        stored: set[str] = set()
        if wanted:
            stored = {
                str(r[0])
                for r in self._q(
                    f"SELECT DISTINCT batch_key FROM {table_name}"  # noqa: S608
                    " WHERE batch_key IN {k:Array(String)}",
                    {"k": wanted},
                )
            }
        tables: list[pa.Table] = []
        for b, k in keyed:
            if k is not None:
                if k in stored:
                    continue
                stored.add(k)
            col = pa.array([k] * b.num_rows, pa.string())
            tables.append(b.replace_schema_metadata(None).append_column("batch_key", col))
        if not tables:
            return 0
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        if table.num_rows == 0:
            return 0
        # Ingest builds repeated strings as dictionary columns, one dictionary per request;
        # Arrow IPC (the insert's format) allows one per column, so they go over decoded.
        for i, field in enumerate(table.schema):
            if pa.types.is_dictionary(field.type):
                table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
        if signal == "metrics":
            for col in ("bounds", "bucket_counts"):
                i = table.schema.get_field_index(col)
                if i >= 0 and table.column(i).null_count:
                    lists = [v if v is not None else [] for v in table.column(i).to_pylist()]
                    table = table.set_column(i, col, pa.array(lists, pa.list_(pa.float64())))
        try:
            self._insert_arrow(table_name, table)
        except StoreError as e:
            raise StoreError(f"{signal} insert failed: {e}") from e
        return int(table.num_rows)

    # -- logs ----------------------------------------------------------------------------------

    def list_logs(self, query: LogQuery) -> LogPage:
        """Log records of a project, newest first (or in time order for one trace), paged.

        The order ends with a hash of the record's columns (``sightline.store._log_pages``).
        """
        where = ["project_id = {p:String}"]
        params: dict[str, Any] = {"p": query.project_id}
        for col in ("trace_id", "span_id", "service_name", "event_name"):
            v = getattr(query, col)
            if v is not None:
                where.append(f"{col} = {{{col}:String}}")
                params[col] = v
        if query.min_severity is not None:
            where.append("severity_number >= {sev:Int64}")
            params["sev"] = int(query.min_severity)
        if query.start is not None:
            where.append("`time` >= {start:DateTime64(6, 'UTC')}")
            params["start"] = ch_ts(query.start)
        if query.end is not None:
            where.append("`time` < {end:DateTime64(6, 'UTC')}")
            params["end"] = ch_ts(query.end)
        if query.text:
            where.append("positionCaseInsensitiveUTF8(coalesce(body, ''), {text:String}) > 0")
            params["text"] = query.text
        after = decode_log_cursor(query)
        by_trace = query.trace_id is not None
        if after is not None:
            # the hash is computed (short-circuit) only for the records of the cursor's time
            params.update(c_t=ch_ts(after.time), c_sid=after.span_id, c_h=after.row_hash)
            c_t = "{c_t:DateTime64(6, 'UTC')}"
            if by_trace:
                where.append(
                    f"`time` >= {c_t} AND (`time` > {c_t} OR (coalesce(span_id, ''), {_LOG_HASH})"
                    " >= ({c_sid:String}, {c_h:UInt64}))"
                )
            else:
                where.append(
                    f"`time` <= {c_t} AND (`time` < {c_t} OR {_LOG_HASH} <= {{c_h:UInt64}})"
                )
        params["limit"] = max(0, int(query.limit)) + 1
        params["offset"] = after.num_seen if after is not None else 0
        # The page's last time first, in the table's order (reads the times alone), then the
        # page's records, hashed only from that time on. Sorting every record of the project by
        # its hash read all its columns: 1M records, 76 ms a page; this way 28 (8 without the
        # hash, which paged nothing).
        cond = " AND ".join(where)
        if by_trace:
            edge, order = "`time` <= (SELECT max(`time`)", "`time`, coalesce(span_id, ''), _h"
        else:
            edge, order = "`time` >= (SELECT min(`time`)", "`time` DESC, _h DESC"
        sql = (
            f"SELECT {_LOG_COLS}, {_LOG_HASH} AS _h FROM otel_logs WHERE {cond} AND {edge}"  # noqa: S608
            f" FROM (SELECT `time` FROM otel_logs WHERE {cond} ORDER BY {order.split(',')[0]}"
            " LIMIT {limit:UInt64} + {offset:UInt64}))"
            f" ORDER BY {order} LIMIT {{limit:UInt64}} OFFSET {{offset:UInt64}}"
        )
        rows = self._q(sql, params)
        return log_page(query, [(row_to_log_record(r), int(r[13])) for r in rows], after)

    # -- OTLP metrics --------------------------------------------------------------------------

    def list_otel_metrics(self, project_id: str) -> list[dict[str, Any]]:
        """Metric names with data points in the project: name, alias, type, unit, points, last."""
        rows = self._q(
            "SELECT name, any(alias), any(`type`), any(unit), count(), max(`time`), any(source)"
            " FROM otel_metric_points WHERE project_id = {p:String} GROUP BY name ORDER BY name",
            {"p": project_id},
        )
        return [
            {
                "name": r[0],
                "alias": r[1],
                "type": r[2],
                "unit": r[3],
                "num_points": int(r[4]),
                "last_time": r[5].replace(tzinfo=UTC).isoformat(),
                "source": r[6],
            }
            for r in rows
        ]

    def has_otel_metric(self, project_id: str, name: str) -> bool:
        """Whether any data point of the project is named (or aliased) ``name``."""
        rows = self._q(
            "SELECT 1 FROM otel_metric_points WHERE project_id = {p:String}"
            " AND (name = {n:String} OR alias = {n:String}) LIMIT 1",
            {"p": project_id, "n": name},
        )
        return bool(rows)

    def _otel_points(
        self,
        project_id: str,
        name: str,
        start: datetime,
        end: datetime,
        filters: dict[str, str],
        group_by: Sequence[str],
    ) -> list[tuple[tuple[Any, ...], datetime, Point]]:
        """(group key, time, point) of a metric's data points in ``[start, end)``."""
        where = [
            "project_id = {p:String}",
            "(name = {n:String} OR alias = {n:String})",
            "`time` >= {start:DateTime64(6, 'UTC')}",
            "`time` < {end:DateTime64(6, 'UTC')}",
        ]
        params: dict[str, Any] = {
            "p": project_id,
            "n": name,
            "start": ch_ts(start),
            "end": ch_ts(end),
            "limit": _MAX_POINTS,
        }
        for i, (k, v) in enumerate(filters.items()):
            params[f"fv{i}"] = v
            if k == "service_name":
                where.append(f"service_name = {{fv{i}:String}}")
            else:
                params[f"fk{i}"] = _attr_key(k)
                where.append(f"{_attr_sql(f'fk{i}')} = {{fv{i}:String}}")
        groups = []
        for i, g in enumerate(group_by):
            if g == "service_name":
                groups.append("service_name")
            else:
                params[f"gk{i}"] = _attr_key(g)
                groups.append(_attr_sql(f"gk{i}"))
        head = ", ".join([*groups, ""]) if groups else ""
        rows = self._q(
            f"SELECT {head}`time`, start_time, `type`, temporality, monotonic, value, `count`,"  # noqa: S608
            " `sum`, `min`, `max`, bounds, bucket_counts, name, attributes, resource_attributes"
            f" FROM otel_metric_points WHERE {' AND '.join(where)} LIMIT {{limit:UInt64}}",
            params,
        )
        ng = len(groups)
        out: list[tuple[tuple[Any, ...], datetime, Point]] = []
        for row in rows:
            r = row[ng:]
            t = r[0].replace(tzinfo=UTC)
            bounds, counts = list(r[10]), list(r[11])
            histogram = bool(bounds or counts)
            out.append(
                (
                    tuple(row[:ng]),
                    t,
                    Point(
                        series=(r[12], r[13], r[14]),
                        time=t,
                        start_time=_utc(r[1]),
                        type=r[2],
                        temporality=r[3],
                        monotonic=r[4],
                        value=r[5],
                        count=r[6],
                        sum=r[7],
                        min=r[8],
                        max=r[9],
                        bounds=bounds if histogram else None,
                        counts=counts if histogram else None,
                    ),
                )
            )
        return out

    def _query_otel_metric(self, query: MetricQuery) -> list[MetricSeries]:
        """A metric of data points, aggregated per bucket (``step_s``) and group."""
        name = query.metric.otel_name
        if name is None:
            raise ConfigError(f"metric {query.metric.name!r} is not an OTLP metric")
        rows = self._otel_points(
            query.project_id, name, query.start, query.end, query.filters, query.group_by
        )
        step = query.step_s or (query.end - query.start).total_seconds()
        by: dict[tuple[Any, ...], dict[int, list[Point]]] = {}
        for g, t, p in rows:
            b = int((t - query.start).total_seconds() // step)
            by.setdefault(g, {}).setdefault(b, []).append(p)
        out = []
        for g, buckets in sorted(by.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
            pts = steps(buckets, query.start, step, query.agg)
            out.append(MetricSeries(dict(zip(query.group_by, g, strict=True)), pts))
        return out

    def _otel_windows(self, project_id: str, end: datetime, a: WindowAgg) -> list[WindowValue]:
        """A windowed aggregate of a data-point metric, for the monitor (groups by attributes)."""
        name = a.metric.otel_name
        if name is None:
            raise ConfigError(f"metric {a.metric.name!r} is not an OTLP metric")
        start = end - timedelta(seconds=a.window_s)
        filters = {k: v for k, v in a.filters.items() if k != "kind"}
        groups: dict[tuple[Any, ...], list[Point]] = {}
        for g, _, p in self._otel_points(project_id, name, start, end, filters, a.group_by):
            groups.setdefault(g, []).append(p)
        return [
            WindowValue(
                dict(zip(a.group_by, g, strict=True)),
                aggregate(increases(pts, start), a.agg, a.window_s),
                len(pts),
            )
            for g, pts in groups.items()
        ]

    # -- business outcomes ---------------------------------------------------------------------

    def add_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        self._insert_rows(
            "outcomes",
            [c.strip() for c in _OUTCOME_COLS.split(",")],
            [
                [o.project_id, o.outcome_id, o.trace_id, o.session_id, o.name, float(o.value),
                 o.user_id, orjson.dumps(o.metadata).decode(), ch_ts(o.created_at)]
                for o in outcomes
            ],
        )  # fmt: skip

    def list_outcomes(
        self,
        project_id: str,
        *,
        trace_id: str | None = None,
        session_id: str | None = None,
        name: str | None = None,
        limit: int = 100,
    ) -> list[Outcome]:
        where = ["project_id = {p:String}"]
        params: dict[str, Any] = {"p": project_id, "limit": max(0, int(limit))}
        for col, v in (("trace_id", trace_id), ("session_id", session_id), ("name", name)):
            if v is not None:
                where.append(f"{col} = {{{col}:String}}")
                params[col] = v
        rows = self._q(
            f"SELECT {_OUTCOME_COLS} FROM outcomes WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY created_at DESC, outcome_id LIMIT {limit:UInt64}",
            params,
        )
        return [
            Outcome(
                project_id=r[0],
                outcome_id=r[1],
                trace_id=r[2],
                session_id=r[3],
                name=r[4],
                value=float(r[5]),
                user_id=r[6],
                metadata=orjson.loads(r[7]) if r[7] else {},
                created_at=r[8].replace(tzinfo=UTC),
            )
            for r in rows
        ]

    def query_outcomes(self, query: OutcomeQuery) -> list[OutcomeGroup]:
        """Units, outcomes and cost per group (see ``_duckdb_outcomes``' docstring)."""
        q = query
        for d in (*q.group_by, *q.filters):
            if d not in DIMENSIONS:
                raise ConfigError(f"cannot filter or group by {d!r}")
        dims = [f"`{d}`" for d in q.group_by]
        where = [
            "project_id = {p:String}",
            "kind = 'llm'",
            "start_time >= {start:DateTime64(6, 'UTC')}",
            "start_time < {end:DateTime64(6, 'UTC')}",
        ]
        params: dict[str, Any] = {
            "p": q.project_id,
            "start": ch_ts(q.start),
            "end": ch_ts(q.end),
            "completion": list(q.completion_names),
            "conversion": list(q.conversion_names),
            "named": list(q.outcome_names),
        }
        for i, (d, v) in enumerate(q.filters.items()):
            where.append(f"`{d}` = {{f{i}:String}}")
            params[f"f{i}"] = v
        if q.step_s:
            params["step_us"] = int(q.step_s) * 1_000_000
            bucket = (
                "fromUnixTimestamp64Micro(toUnixTimestamp64Micro({start:DateTime64(6, 'UTC')})"
                " + intDiv(toUnixTimestamp64Micro(min(start_time))"
                " - toUnixTimestamp64Micro({start:DateTime64(6, 'UTC')}), {step_us:Int64})"
                " * {step_us:Int64}, 'UTC')"
            )
        else:
            bucket = "{start:DateTime64(6, 'UTC')}"
        dim_cols = "".join(f"{d}, " for d in dims)
        group_dims = ", ".join(dims)
        outcome_filter = "has({named:Array(String)}, name)" if q.outcome_names else "1"
        sql = f"""
            WITH s AS (
                SELECT trace_id, session_id, start_time, cost_usd, {dim_cols}
                    coalesce(session_id, concat('~trace:', trace_id)) AS unit
                FROM spans WHERE {" AND ".join(where)}
            ),
            o AS (
                SELECT trace_id, session_id, name FROM outcomes
                WHERE project_id = {{p:String}} AND value > 0
            ),
            hits AS (
                SELECT s.unit AS unit, o.name AS name FROM s INNER JOIN o ON o.trace_id = s.trace_id
                UNION DISTINCT
                SELECT s.unit AS unit, o.name AS name FROM s INNER JOIN o
                    ON o.session_id = s.session_id
            ),
            flags AS (
                SELECT unit,
                    max(has({{completion:Array(String)}}, name)) AS completed,
                    max(has({{conversion:Array(String)}}, name)) AS converted,
                    max({outcome_filter}) AS outcome
                FROM hits GROUP BY unit
            ),
            units AS (
                SELECT {dim_cols} unit, {bucket} AS _t, sum(coalesce(cost_usd, 0)) AS cost
                FROM s GROUP BY {group_dims + ", " if dims else ""}unit
            )
            SELECT _t, {dim_cols} count(), countIf(f.completed = 1),
                countIf(f.converted = 1), countIf(f.outcome = 1), sum(cost)
            FROM units LEFT JOIN flags AS f ON f.unit = units.unit
            GROUP BY _t{", " + group_dims if dims else ""}
            ORDER BY {group_dims + ", " if dims else ""}_t
        """  # noqa: S608
        rows = self._q(sql, params)
        n = len(dims)
        out = []
        for r in rows:
            units, completed, converted, with_outcome, cost = r[1 + n :]
            out.append(
                OutcomeGroup(
                    group=dict(zip(q.group_by, r[1 : 1 + n], strict=True)),
                    t=r[0].replace(tzinfo=UTC),
                    num_units=int(units),
                    num_completed=int(completed),
                    num_converted=int(converted),
                    num_outcomes=int(with_outcome),
                    cost_usd=float(cost or 0.0),
                )
            )
        return out

    def _query_outcome_metric(self, query: MetricQuery) -> list[MetricSeries]:
        """``task_completion_rate``, ``conversion_rate`` or ``cost_per_outcome`` as a metric."""
        filters = {k: v for k, v in query.filters.items() if k != "kind"}
        groups = self.query_outcomes(
            OutcomeQuery(
                project_id=query.project_id,
                start=query.start,
                end=query.end,
                step_s=query.step_s,
                group_by=query.group_by,
                filters=filters,
            )
        )
        series: dict[tuple[Any, ...], MetricSeries] = {}
        for g in groups:
            key = tuple(g.group.get(d) for d in query.group_by)
            s = series.get(key)
            if s is None:
                s = series[key] = MetricSeries(dict(g.group), [])
            s.points.append((g.t, getattr(g, query.metric.name)))
        return list(series.values())


def _batch_key(b: pa.Table) -> str | None:
    key = (b.schema.metadata or {}).get(BATCH_KEY)
    return key.decode() if key is not None else None
