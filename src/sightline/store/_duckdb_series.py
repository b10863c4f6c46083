"""Many metric series in few SQL passes: what one dashboard page's charts ask of the store.

A page draws several charts over the same range and buckets (requests, errors, p95 latency and
cost by model). One ``query_metric`` each scans the range once per chart; span metrics that
share a project, range, step, span kind, filters and ``group_by`` are instead computed by one
``SELECT`` (measured on 1M spans over 7 days: 29 ms for the overview's charts against 74 ms in
four queries). Different ``group_by`` are different passes, not ``GROUPING SETS``: DuckDB
computes every aggregate in every set, so a quantile asked by model only would also be computed
over all models. Other metrics (score-derived, OTLP data points, outcomes) are answered by
``query_metric``, one query each.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

from sightline.errors import ConfigError
from sightline.store._duckdb_windows import SPAN_METRICS
from sightline.store.base import DIMENSIONS, METRICS, MetricQuery, MetricSeries

if TYPE_CHECKING:
    from sightline.store._duckdb import DuckDBStore

__all__ = ["query_metrics"]

_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def _batchable(q: MetricQuery) -> bool:
    m = q.metric
    return m.name in SPAN_METRICS and METRICS.get(m.name) == m


def query_metrics(store: DuckDBStore, queries: Sequence[MetricQuery]) -> list[list[MetricSeries]]:
    """See :meth:`TraceStore.query_metrics`."""
    out: list[list[MetricSeries]] = [[] for _ in queries]
    passes: dict[tuple[Any, ...], list[tuple[int, MetricQuery]]] = {}
    for i, q in enumerate(queries):
        if not _batchable(q):
            out[i] = store.query_metric(q)
            continue
        for d in (*q.filters, *q.group_by):
            if d != "kind" and d not in DIMENSIONS:
                raise ConfigError(f"cannot filter or group by {d!r}")
        if "kind" in q.group_by:
            raise ConfigError("cannot group by 'kind'")
        kind = q.filters.get("kind", q.metric.kind)
        flt = tuple(sorted((k, v) for k, v in q.filters.items() if k != "kind"))
        key = (q.project_id, q.start, q.end, q.step_s, kind, flt, q.group_by)
        passes.setdefault(key, []).append((i, q))
    for (*_, kind, flt, _), items in passes.items():
        if len(items) == 1:
            i, q = items[0]
            out[i] = store.query_metric(q)
            continue
        for i, series in _run_pass(store, kind, dict(flt), items).items():
            out[i] = series
    return out


def _value_sql(q: MetricQuery) -> tuple[str, str | None, float | None]:
    """(SQL, quantile column key, q): a quantile shares one list expression per column."""
    m = q.metric
    if m.formula is not None:
        return m.formula, None, None
    if m.column is None:
        raise ConfigError(f"metric {m.name!r} has neither a column nor a formula")
    if q.agg in _QUANTILES:
        return "", m.column, _QUANTILES[q.agg]
    from sightline.store._duckdb import _AGG_SQL

    return _AGG_SQL[q.agg].format(f'"{m.column}"'), None, None


def _run_pass(
    store: DuckDBStore,
    kind: str | None,
    filters: dict[str, str],
    items: list[tuple[int, MetricQuery]],
) -> dict[int, list[MetricSeries]]:
    from sightline.store._duckdb import _ts

    first = items[0][1]
    quantiles: dict[str, list[float]] = {}
    plain: list[str] = []
    for _, q in items:
        sql, qcol, qv = _value_sql(q)
        if qcol is not None and qv is not None:
            if qv not in quantiles.setdefault(qcol, []):
                quantiles[qcol].append(qv)
        elif sql not in plain:
            plain.append(sql)
    q_sql = {c: f'quantile_cont("{c}", {qs!r})' for c, qs in quantiles.items()}
    exprs = [*q_sql.values(), *plain]
    dims = first.group_by
    params: list[Any] = [_ts(first.start)]
    if first.step_s:
        bucket = f"time_bucket(INTERVAL '{int(first.step_s)} seconds', start_time, ?)"
    else:
        bucket = "CAST(? AS TIMESTAMP)"
    where = ["project_id = ?", "start_time >= ?", "start_time < ?"]
    params += [first.project_id, _ts(first.start), _ts(first.end)]
    if kind is not None:
        where.append("kind = ?")
        params.append(kind)
    for d, v in filters.items():
        where.append(f'"{d}" = ?')
        params.append(v)
    qdims = [f'"{d}"' for d in dims]
    select = ", ".join([f"{bucket} AS _t", *qdims, *exprs])
    sql = (
        f"SELECT {select} FROM spans WHERE {' AND '.join(where)}"  # noqa: S608
        f" GROUP BY {', '.join(['_t', *qdims])} ORDER BY {', '.join([*qdims, '_t'])}"
    )
    with store._cursor() as cur:
        rows = cur.execute(sql, params).fetchall()
    base = 1 + len(dims)
    out: dict[int, list[MetricSeries]] = {}
    for i, q in items:
        sql_v, qcol, qv = _value_sql(q)
        if qcol is not None and qv is not None:
            col = base + list(q_sql).index(qcol)
            at: int | None = quantiles[qcol].index(qv)
        else:
            col, at = base + len(q_sql) + plain.index(sql_v), None
        # as query_metric builds them: one series per group, in the rows' order
        series: dict[tuple[Any, ...], MetricSeries] = {}
        for r in rows:
            key = tuple(r[1:base])
            s = series.get(key)
            if s is None:
                s = series[key] = MetricSeries(dict(zip(dims, key, strict=True)), [])
            got = r[col] if at is None else (r[col][at] if r[col] is not None else None)
            s.points.append((r[0].replace(tzinfo=UTC), None if got is None else float(got)))
        out[i] = list(series.values())
    return out
