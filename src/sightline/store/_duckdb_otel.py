"""SQL of OTLP metrics and logs, and of release markers, for the DuckDB store."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from sightline.errors import ConfigError, StoreError, UnstorableBatch
from sightline.model import Release
from sightline.store._histogram import Point, aggregate, increases, steps
from sightline.store._log_pages import decode_log_cursor, log_page, row_to_log_record
from sightline.store.base import (
    BATCH_KEY,
    LogPage,
    LogQuery,
    MetricQuery,
    MetricSeries,
    WindowAgg,
    WindowValue,
    newest_score,
)

if TYPE_CHECKING:
    from sightline.store._duckdb import DuckDBStore

__all__ = [
    "add_release",
    "detect_releases",
    "insert_signal_batches",
    "list_logs",
    "list_otel_metrics",
    "list_releases",
    "otel_windows",
    "query_otel_metric",
]

_TABLES = {"metrics": "otel_metric_points", "logs": "otel_logs"}
_LOG_COLS = (
    "project_id",
    '"time"',
    "observed_time",
    "severity_number",
    "severity_text",
    "body",
    "event_name",
    "attributes",
    "resource_attributes",
    "service_name",
    "scope",
    "trace_id",
    "span_id",
)
_LOG_HASH = f"hash({', '.join(_LOG_COLS[2:])})"
"""The tiebreaker of records of one time: every column but the project and the time."""
_SPAN = "coalesce(span_id, '')"
"""The span in the order of one trace: a record without one comes first among its time's."""
_MAX_POINTS = 1_000_000
"""Most data points one metric query reads (a bound on memory, not a sampling)."""


def _ts(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def _utc(dt: datetime | None) -> datetime | None:
    return dt.replace(tzinfo=UTC) if dt is not None else None


_KEEP_KEYS = timedelta(days=1)
"""How long a request's key is remembered: exporters resend within minutes."""
_PRUNE_AT = 100_000
"""Keys in memory past which those older than :data:`_KEEP_KEYS` are dropped."""


def _signal_keys(store: DuckDBStore, now: datetime) -> dict[str, datetime]:
    keys = store._signal_keys
    if keys is None:
        # the keys of the last day's rows (by their own time: a resent request's rows have
        # the times they had when first sent)
        with store._cursor() as cur:
            rows = cur.execute(
                "SELECT DISTINCT batch_key FROM otel_metric_points"
                ' WHERE batch_key IS NOT NULL AND "time" >= ?'
                " UNION SELECT DISTINCT batch_key FROM otel_logs"
                ' WHERE batch_key IS NOT NULL AND "time" >= ?',
                [now - _KEEP_KEYS, now - _KEEP_KEYS],
            ).fetchall()
        keys = store._signal_keys = {r[0]: now for r in rows}
    return keys


def insert_signal_batches(store: DuckDBStore, signal: str, batches: Sequence[pa.Table]) -> int:
    """Append metric points or log records in one transaction (the writer thread only).

    Batches keyed by :data:`~sightline.store.base.BATCH_KEY` are written once: a batch whose key
    was stored in the last day (or comes earlier in this group) is skipped. The key is stored
    in the rows' ``batch_key`` column, so it is durable with them, and checked in memory (the
    writer is the only one to add rows). Returns the rows written.
    """
    table_name = _TABLES.get(signal)
    if table_name is None:
        raise StoreError(f"unknown signal {signal!r}")
    store._reopen_if_invalid()
    now = datetime.now(UTC).replace(tzinfo=None)
    stored = _signal_keys(store, now)
    new: list[str] = []
    tables: list[pa.Table] = []
    for b in batches:
        key = (b.schema.metadata or {}).get(BATCH_KEY)
        k = key.decode() if key is not None else None
        if k is not None:
            if k in stored or k in new:
                continue  # a resent request: already stored, or earlier in this group
            new.append(k)
        n_rows = b.num_rows
        col = pa.DictionaryArray.from_arrays(
            pa.repeat(pa.scalar(0 if k is not None else None, pa.int32()), n_rows),
            pa.array([k or ""], pa.string()),
        )
        tables.append(b.replace_schema_metadata(None).append_column("batch_key", col))
    n = int(sum(t.num_rows for t in tables))
    if not n:
        return 0
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    con = store._write
    # read by name by DuckDB's replacement scan: cheaper than a view registered and dropped
    # around each insert (see _duckdb._INSERT)
    _sightline_incoming_signal = table  # noqa: F841
    try:
        con.execute("BEGIN")
        con.execute(
            f"INSERT INTO {table_name} BY NAME SELECT * FROM _sightline_incoming_signal"  # noqa: S608
        )
        con.execute("COMMIT")
    except duckdb.Error as e:
        store._rollback_after(e)
        if isinstance(e, duckdb.ConstraintException | duckdb.ConversionException):
            raise UnstorableBatch(f"{signal} insert refused the batch: {e}") from e
        raise StoreError(f"{signal} insert failed: {e}") from e
    for k in new:
        stored[k] = now
    if len(stored) > _PRUNE_AT:
        cutoff = now - _KEEP_KEYS
        for k in [k for k, t in stored.items() if t < cutoff]:
            del stored[k]
    return n


# -- logs ---------------------------------------------------------------------------------------


def list_logs(store: DuckDBStore, query: LogQuery) -> LogPage:
    """Log records of a project, newest first (or in time order for one trace), paged.

    The order ends with a hash of the record's columns, so records of one time come in the
    same order on every read (``sightline.store._log_pages``).
    """
    where = ["project_id = ?"]
    params: list[Any] = [query.project_id]
    for col in ("trace_id", "span_id", "service_name", "event_name"):
        v = getattr(query, col)
        if v is not None:
            where.append(f"{col} = ?")
            params.append(v)
    if query.min_severity is not None:
        where.append("severity_number >= ?")
        params.append(query.min_severity)
    if query.start is not None:
        where.append('"time" >= ?')
        params.append(_ts(query.start))
    if query.end is not None:
        where.append('"time" < ?')
        params.append(_ts(query.end))
    if query.text:
        where.append("contains(lower(body), ?)")
        params.append(query.text.lower())
    after = decode_log_cursor(query)
    by_trace = query.trace_id is not None
    if after is not None:
        # the plain time bound lets the zone maps skip row groups; the row compare does not
        t = _ts(after.time)
        if by_trace:
            where.append(f'"time" >= ? AND ("time", {_SPAN}, _h) >= (?, ?, ?::UBIGINT)')
            params += [t, t, after.span_id, after.row_hash]
        else:
            where.append('"time" <= ? AND ("time", _h) <= (?, ?::UBIGINT)')
            params += [t, t, after.row_hash]
    order = f'"time", {_SPAN}, _h' if by_trace else '"time" DESC, _h DESC'
    sql = (
        f"SELECT {', '.join(_LOG_COLS)}, _h FROM (SELECT *, {_LOG_HASH} AS _h FROM otel_logs)"  # noqa: S608
        f" WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ? OFFSET ?"
    )
    params += [query.limit + 1, after.num_seen if after is not None else 0]
    with store._cursor() as cur:
        rows = cur.execute(sql, params).fetchall()
    return log_page(query, [(row_to_log_record(r), int(r[13])) for r in rows], after)


# -- metrics ------------------------------------------------------------------------------------


def list_otel_metrics(store: DuckDBStore, project_id: str) -> list[dict[str, Any]]:
    """Metric names with data points in the project: name, alias, type, unit, points, last."""
    with store._cursor() as cur:
        rows = cur.execute(
            'SELECT name, any_value(alias), any_value("type"), any_value(unit), count(*),'
            ' max("time"), any_value(source) FROM otel_metric_points WHERE project_id = ?'
            " GROUP BY name ORDER BY name",
            [project_id],
        ).fetchall()
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


def has_otel_metric(store: DuckDBStore, project_id: str, name: str) -> bool:
    """Whether any data point of the project is named (or aliased) ``name``."""
    with store._cursor() as cur:
        rows = cur.execute(
            "SELECT 1 FROM otel_metric_points WHERE project_id = ? AND (name = ? OR alias = ?)"
            " LIMIT 1",
            [project_id, name, name],
        ).fetchall()
    return bool(rows)


def _points(
    store: DuckDBStore,
    project_id: str,
    name: str,
    start: datetime,
    end: datetime,
    filters: dict[str, str],
    group_by: Sequence[str],
) -> list[tuple[tuple[Any, ...], datetime, Point]]:
    where = ["project_id = ?", "(name = ? OR alias = ?)", '"time" >= ?', '"time" < ?']
    params: list[Any] = [project_id, name, name, _ts(start), _ts(end)]
    for k, v in filters.items():
        if k == "service_name":
            where.append("service_name = ?")
        else:
            where.append("json_extract_string(attributes, ?) = ?")
            params.append(_json_key(k))
        params.append(v)
    groups = []
    gparams: list[Any] = []
    for g in group_by:
        if g == "service_name":
            groups.append("service_name")
        else:
            groups.append("json_extract_string(attributes, ?)")
            gparams.append(_json_key(g))
    params = gparams + params
    head = ", ".join([*groups, ""]) if groups else ""
    sql = (
        f'SELECT {head}"time", start_time, "type", temporality, monotonic, value, "count",'  # noqa: S608
        ' "sum", "min", "max", bounds, bucket_counts, name, attributes, resource_attributes'
        f" FROM otel_metric_points WHERE {' AND '.join(where)} LIMIT ?"
    )
    params.append(_MAX_POINTS)
    with store._cursor() as cur:
        rows = cur.execute(sql, params).fetchall()
    ng = len(groups)
    out: list[tuple[tuple[Any, ...], datetime, Point]] = []
    for row in rows:
        gk = tuple(row[:ng])
        r = row[ng:]
        t = r[0].replace(tzinfo=UTC)
        out.append(
            (
                gk,
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
                    bounds=r[10],
                    counts=r[11],
                ),
            )
        )
    return out


def _json_key(k: str) -> str:
    # A JSON Pointer (RFC 6901), which reads every key literally: in a '$.' path DuckDB takes
    # '*' as a wildcard even inside double quotes (group_by=* gave a list, a 500), and keys hold
    # dots (gen_ai.request.model). Quotes and backslashes stay refused, as ClickHouse refuses
    # them (_clickhouse_signals._attr_key).
    if '"' in k or "\\" in k or len(k) > 255:
        raise ConfigError(f"invalid attribute name {k!r}")
    return "/" + k.replace("~", "~0").replace("/", "~1")


def query_otel_metric(store: DuckDBStore, query: MetricQuery) -> list[MetricSeries]:
    """A metric of data points, aggregated per bucket (``step_s``) and group."""
    name = query.metric.otel_name
    if name is None:
        raise ConfigError(f"metric {query.metric.name!r} is not an OTLP metric")
    rows = _points(
        store, query.project_id, name, query.start, query.end, query.filters, query.group_by
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


def otel_windows(
    store: DuckDBStore, project_id: str, end: datetime, a: WindowAgg
) -> list[WindowValue]:
    """A windowed aggregate of a data-point metric, for the monitor (groups by attributes)."""
    name = a.metric.otel_name
    assert name is not None  # noqa: S101 - callers route only otel metrics here
    start = end - timedelta(seconds=a.window_s)
    filters = {k: v for k, v in a.filters.items() if k != "kind"}
    rows = _points(store, project_id, name, start, end, filters, a.group_by)
    groups: dict[tuple[Any, ...], list[Point]] = {}
    for g, _, p in rows:
        groups.setdefault(g, []).append(p)
    return [
        WindowValue(
            dict(zip(a.group_by, g, strict=True)),
            aggregate(increases(pts, start), a.agg, a.window_s),
            len(pts),
        )
        for g, pts in groups.items()
    ]


# -- releases -----------------------------------------------------------------------------------

_REL_COLS = 'project_id, release_id, kind, service, version, git_sha, "at", notes, created_at'


def _row_to_release(r: tuple[Any, ...]) -> Release:
    return Release(
        project_id=r[0],
        release_id=r[1],
        kind=r[2],
        service=r[3],
        version=r[4],
        git_sha=r[5],
        at=r[6].replace(tzinfo=UTC),
        notes=r[7],
        created_at=r[8].replace(tzinfo=UTC),
    )


def add_release(store: DuckDBStore, release: Release) -> None:
    """Record a release marker."""
    with store._admin_lock, store._cursor() as cur:
        cur.execute(
            f"INSERT INTO releases ({_REL_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            [
                release.project_id,
                release.release_id,
                release.kind,
                release.service,
                release.version,
                release.git_sha,
                _ts(release.at),
                release.notes,
                _ts(release.created_at),
            ],
        )


def list_releases(
    store: DuckDBStore,
    project_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 200,
) -> list[Release]:
    """Release markers of a project, newest first."""
    where = ["project_id = ?"]
    params: list[Any] = [project_id]
    if start is not None:
        where.append('"at" >= ?')
        params.append(_ts(start))
    if end is not None:
        where.append('"at" < ?')
        params.append(_ts(end))
    params.append(limit)
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {_REL_COLS} FROM releases WHERE {' AND '.join(where)}"  # noqa: S608
            ' ORDER BY "at" DESC, release_id LIMIT ?',
            params,
        ).fetchall()
    return [_row_to_release(r) for r in rows]


def get_release(store: DuckDBStore, project_id: str, release_id: str) -> Release | None:
    """One release marker."""
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {_REL_COLS} FROM releases WHERE project_id = ? AND release_id = ?",  # noqa: S608
            [project_id, release_id],
        ).fetchall()
    return _row_to_release(rows[0]) if rows else None


# Each kind of automatic marker: (kind, the span column naming what changed, the version column)
_AUTO = (
    ("service_version", "service_name", "service_version"),
    ("model", "provider", "model"),
    ("prompt_version", "prompt_name", "prompt_version"),
)


def detect_releases(
    store: DuckDBStore, project_id: str, now: datetime, *, after_seq: int = 0
) -> list[Release]:
    """Record a marker for each version first seen in spans since the last check.

    A version counts as new when no marker of its kind, subject and version exists; the first
    version of a subject ever seen is recorded too (it is the first release), so the marker's
    time is the version's first span.
    """
    found: list[Release] = []
    with store._admin_lock, store._cursor() as cur:
        for kind, subject, col in _AUTO:
            rows = cur.execute(
                f"SELECT s.{subject}, s.{col}, min(s.start_time) FROM spans s"  # noqa: S608
                f" WHERE s.project_id = ? AND s.ingest_seq > ? AND s.{col} IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM releases r WHERE r.project_id = s.project_id"
                f" AND r.kind = ? AND r.version = s.{col}"
                f" AND r.service IS NOT DISTINCT FROM s.{subject})"
                f" GROUP BY s.{subject}, s.{col}",
                [project_id, after_seq, kind],
            ).fetchall()
            for subj, version, first in rows:
                rel = Release(
                    project_id=project_id,
                    release_id=uuid.uuid4().hex,
                    kind=kind,  # type: ignore[arg-type]
                    service=subj,
                    version=str(version),
                    at=first.replace(tzinfo=UTC),
                    notes="first seen in spans",
                    created_at=now,
                )
                cur.execute(
                    f"INSERT INTO releases ({_REL_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                    [
                        rel.project_id,
                        rel.release_id,
                        rel.kind,
                        rel.service,
                        rel.version,
                        None,
                        _ts(rel.at),
                        rel.notes,
                        _ts(now),
                    ],
                )
                found.append(rel)
    return found


def compare_values(
    store: DuckDBStore, project_id: str, start: datetime, end: datetime, service: str | None
) -> dict[str, list[float]]:
    """Per-request values of an interval: latency_ms, cost_usd, error (0/1), and quality scores.

    Quality is every evaluator score and human label on the interval's LLM spans, by score
    name (a label as ``human.<name>``, as in :meth:`compare_sample`: a person's verdict is not
    mixed into an evaluator's distribution): the newest of each span, score name and source
    (``SCORE_KEY``), so an evaluator re-run does not count a span twice.
    """
    where = ["project_id = ?", "kind = 'llm'", "start_time >= ?", "start_time < ?"]
    params: list[Any] = [project_id, _ts(start), _ts(end)]
    if service is not None:
        where.append("service_name = ?")
        params.append(service)
    w = " AND ".join(where)
    with store._cursor() as cur:
        rows = cur.execute(
            "SELECT duration_ms, cost_usd, CASE WHEN status = 'error' THEN 1.0 ELSE 0.0 END"  # noqa: S608
            f" FROM spans WHERE {w} LIMIT 200000",
            params,
        ).fetchall()
        scores = cur.execute(
            "SELECT CASE WHEN sc.source = 'human' THEN 'human.' || sc.name ELSE sc.name END,"  # noqa: S608
            f" ({newest_score('value', q='sc.')}).value FROM scores sc"
            " JOIN spans s ON s.project_id ="
            " sc.project_id AND s.trace_id = sc.trace_id AND s.span_id = sc.span_id"
            " WHERE sc.value IS NOT NULL AND sc.source IN ('evaluator', 'human')"
            f" AND {' AND '.join('s.' + x for x in where)}"
            # the joined span's integer primary key stands for (trace_id, span_id): cheaper
            " GROUP BY s._key_trace, s._key_span, sc.name, sc.source LIMIT 200000",
            params,
        ).fetchall()
    out: dict[str, list[float]] = {
        "latency_ms": [float(r[0]) for r in rows if r[0] is not None],
        "cost_usd": [float(r[1]) for r in rows if r[1] is not None],
        "error": [float(r[2]) for r in rows],
    }
    for name, value in scores:
        out.setdefault(f"score:{name}", []).append(float(value))
    return out
