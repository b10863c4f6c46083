"""Many windowed aggregates in few SQL passes: what one monitor tick asks of the store.

A tick evaluates every rule of a project at once. One query per rule costs DuckDB's fixed
per-query overhead fifty times over; rules that share a span kind, filters and window are
instead answered by one ``SELECT`` computing every aggregate they need, with ``GROUPING SETS``
for their different ``group_by``. Metrics this module does not know how to compute from spans
(the evaluation stage's score-derived ones) are answered by ``query_metric``, one query each.

Dashboard pages ask the same way, with ``approx`` quantiles: those are left out of the pass and
read by one more query per group set over a hashed sample of each large group
(:func:`_sampled_quantiles`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sightline.errors import ConfigError
from sightline.store._duckdb_otel import otel_windows
from sightline.store.base import (
    APPROX_SAMPLE,
    DIMENSIONS,
    METRICS,
    MetricQuery,
    WindowAgg,
    WindowValue,
)

if TYPE_CHECKING:
    from sightline.store._duckdb import DuckDBStore

__all__ = ["SPAN_METRICS", "query_windows"]

SPAN_METRICS = frozenset(
    {
        "requests",
        "errors",
        "error_rate",
        "latency_ms",
        "ttft_ms",
        "tpot_ms",
        "token_weighted_latency_ms",
        "tokens_per_s",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cost_usd",
        "cost_per_request",
        "cost_per_session",
        "guardrail_block_rate",
        "guardrail_latency_ms",
        "fallback_rate",
    }
)
"""Metrics computed from span columns alone, which the batched passes can compute."""

_AGG_SQL = {
    "count": "count({})",
    "sum": "sum({})",
    "avg": "avg({})",
    "min": "min({})",
    "max": "max({})",
    "p50": "quantile_cont({}, 0.5)",
    "p90": "quantile_cont({}, 0.9)",
    "p95": "quantile_cont({}, 0.95)",
    "p99": "quantile_cont({}, 0.99)",
}


def _expr(a: WindowAgg) -> str:
    m = a.metric
    if a.agg == "share_above":
        if m.column is None or a.above is None or not math.isfinite(a.above):
            raise ConfigError(f"share_above needs a column metric and a finite bound ({m.name})")
        col = f'"{m.column}"'
        # repr of a finite float is digits, '.', 'e' and a sign: safe to inline.
        return (
            f"avg(CASE WHEN {col} IS NULL THEN NULL"
            f" WHEN {col} > {float(a.above)!r} THEN 1.0 ELSE 0.0 END)"
        )
    if m.formula is not None:
        return m.formula
    if m.column is None:
        raise ConfigError(f"metric {m.name!r} has neither a column nor a formula")
    if a.agg not in _AGG_SQL:
        raise ConfigError(f"agg {a.agg!r} does not apply to metric {m.name!r}")
    return _AGG_SQL[a.agg].format(f'"{m.column}"')


_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def _quantile_of(a: WindowAgg) -> tuple[str, float] | None:
    """(column, q) when ``a`` is a plain quantile of a span column, else None."""
    m = a.metric
    if a.agg in _QUANTILES and m.formula is None and m.column is not None:
        return m.column, _QUANTILES[a.agg]
    return None


def _check_dims(a: WindowAgg) -> None:
    for d in (*a.filters, *a.group_by):
        if d != "kind" and d not in DIMENSIONS:
            raise ConfigError(f"cannot filter or group by {d!r}")
    if "kind" in a.group_by:
        raise ConfigError("cannot group by kind in a windowed aggregate")


def query_windows(
    store: DuckDBStore, project_id: str, end: datetime, aggs: Sequence[WindowAgg]
) -> list[list[WindowValue]]:
    """See :meth:`TraceStore.query_windows`."""
    out: list[list[WindowValue]] = [[] for _ in aggs]
    batched: list[tuple[int, WindowAgg]] = []
    fallback: list[tuple[int, WindowAgg]] = []
    otel: list[tuple[int, WindowAgg]] = []
    for i, a in enumerate(aggs):
        if a.metric.otel_name is not None:
            # data-point metrics group and filter by their own attributes, not span fields
            otel.append((i, a))
            continue
        _check_dims(a)
        if a.window_s <= 0:
            raise ConfigError("window must be positive")
        if a.metric.name in SPAN_METRICS and METRICS.get(a.metric.name) == a.metric:
            batched.append((i, a))
        else:
            fallback.append((i, a))
    # A fallback metric still needs its span count per group (min_requests): a "requests"
    # aggregate over the same window and group joins the batch.
    count_of: dict[int, int] = {}
    requests = METRICS["requests"]
    for i, a in fallback:
        count_of[i] = len(aggs) + len(count_of)
        count_filters = {k: v for k, v in a.filters.items() if k != "kind"}
        if a.metric.kind not in (None, "llm"):
            # a metric of other spans (guardrail checks) counts those spans
            count_filters["kind"] = a.metric.kind
        batched.append(
            (
                count_of[i],
                WindowAgg(
                    metric=requests,
                    agg="count",
                    window_s=a.window_s,
                    filters=count_filters,
                    group_by=a.group_by,
                ),
            )
        )
    extra: dict[int, list[WindowValue]] = {}
    passes: dict[tuple[Any, ...], list[tuple[int, WindowAgg]]] = {}
    for i, a in batched:
        kind = a.filters.get("kind", a.metric.kind)
        flt = tuple(sorted((k, v) for k, v in a.filters.items() if k != "kind"))
        passes.setdefault((kind, flt, a.window_s), []).append((i, a))
    with store._cursor() as cur:
        for (kind, flt, window_s), items in passes.items():
            results = _run_pass(cur, project_id, end, kind, dict(flt), window_s, items)
            for i, values in results.items():
                if i < len(aggs):
                    out[i] = values
                else:
                    extra[i] = values
    for i, a in otel:
        out[i] = otel_windows(store, project_id, end, a)
    for i, a in fallback:
        counts = {_gkey(v.group): v.num_spans for v in extra.get(count_of[i], [])}
        series = store.query_metric(
            MetricQuery(
                project_id=project_id,
                metric=a.metric,
                agg=a.agg,  # type: ignore[arg-type]
                start=end - timedelta(seconds=a.window_s),
                end=end,
                group_by=a.group_by,
                filters=dict(a.filters),
            )
        )
        out[i] = [
            WindowValue(
                s.group, s.points[0][1] if s.points else None, counts.get(_gkey(s.group), 0)
            )
            for s in series
        ]
    return out


def _gkey(group: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted(group.items()))


_ALL = 2**64 - 1
_MAX_SAMPLED_GROUPS = 64
"""A group set with more groups than this is not sampled (its quantiles stay exact)."""


def _sample_filter(
    group_by: tuple[str, ...], groups: list[tuple[tuple[Any, ...], int]]
) -> tuple[str, list[Any]] | None:
    """SQL keeping about APPROX_SAMPLE spans of each group larger than that, or None (all).

    A span is kept when a hash of its id falls below its group's threshold, APPROX_SAMPLE/n
    of the hash range: a uniform sample, the same spans on every query, whatever the order
    the spans were written in (DuckDB's reservoir_quantile keeps the first ~8k values it
    reads, which over time-ordered spans is the start of the window).
    """
    big = [(key, n) for key, n in groups if n > APPROX_SAMPLE]
    if not big or len(groups) > _MAX_SAMPLED_GROUPS:
        return None

    def thr(n: int) -> int:  # an int computed here: safe to inline
        return min(_ALL, (APPROX_SAMPLE * 2**64) // n)

    if not group_by:
        return f"hash(_key_span) <= CAST({thr(big[0][1])} AS UBIGINT)", []
    branches, params = [], []
    for key, n in big:
        cond = " AND ".join(f'"{d}" IS NOT DISTINCT FROM ?' for d in group_by)
        branches.append(f"WHEN {cond} THEN CAST({thr(n)} AS UBIGINT)")
        params += list(key)
    return f"hash(_key_span) <= CASE {' '.join(branches)} ELSE CAST({_ALL} AS UBIGINT) END", params


def _run_pass(
    cur: Any,
    project_id: str,
    end: datetime,
    kind: str | None,
    filters: dict[str, str],
    window_s: int,
    items: list[tuple[int, WindowAgg]],
) -> dict[int, list[WindowValue]]:
    from sightline.store._duckdb import _ts

    sets: list[tuple[str, ...]] = []
    for _, a in items:
        if a.group_by not in sets:
            sets.append(a.group_by)
    dims: list[str] = []
    for s in sets:
        for d in s:
            if d not in dims:
                dims.append(d)
    end_ts = _ts(end)
    where = ["project_id = ?", "start_time >= ?", "start_time < ?"]
    params: list[Any] = [project_id, end_ts - timedelta(seconds=window_s), end_ts]
    if kind is not None:
        where.append("kind = ?")
        params.append(kind)
    for d, v in filters.items():
        where.append(f'"{d}" = ?')
        params.append(v)
    # Quantiles of one column share one sort: quantile_cont(col, [q1, q2, ...]) costs ~30%
    # less CPU than one quantile_cont per q (measured with process_time on 1M spans here).
    quantiles: dict[str, list[float]] = {}
    for _, a in items:
        q = _quantile_of(a)
        if q is not None and not a.approx and q[1] not in quantiles.setdefault(q[0], []):
            quantiles[q[0]].append(q[1])
    exprs: dict[str, int] = {}
    q_expr = {c: f'quantile_cont("{c}", {[float(q) for q in qs]!r})' for c, qs in quantiles.items()}
    for e in q_expr.values():
        exprs.setdefault(e, len(exprs))
    for _, a in items:
        if _quantile_of(a) is None:
            exprs.setdefault(_expr(a), len(exprs))
    qdims = [f'"{d}"' for d in dims]
    head = [f"GROUPING({', '.join(qdims)})" if len(sets) > 1 else "0", *qdims, "count(*)"]
    select = ", ".join(head + list(exprs))
    sql = f"SELECT {select} FROM spans WHERE {' AND '.join(where)}"  # noqa: S608
    if len(sets) > 1:
        grouping = ", ".join("(" + ", ".join(f'"{d}"' for d in s) + ")" for s in sets)
        sql += f" GROUP BY GROUPING SETS ({grouping})"
    elif dims:
        sql += f" GROUP BY {', '.join(qdims)}"
    rows = cur.execute(sql, params).fetchall()
    # GROUPING(d1..dn) has bit (n-1-j) set when d_j is aggregated away in that row's set.
    mask_of = {
        s: sum(1 << (len(dims) - 1 - j) for j, d in enumerate(dims) if d not in s)
        if len(sets) > 1
        else 0
        for s in sets
    }
    base = 1 + len(dims)
    by_set: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    set_of = {m: s for s, m in mask_of.items()}
    for r in rows:
        if r[base]:  # not the empty grand total of a window without spans
            by_set.setdefault(set_of[int(r[0])], []).append(r)
    sampled = _sampled_quantiles(cur, where, params, items, by_set, dims)
    out: dict[int, list[WindowValue]] = {}
    for i, a in items:
        q = _quantile_of(a)
        col, at = 0, None
        if q is not None and not a.approx:
            col, at = base + 1 + exprs[q_expr[q[0]]], quantiles[q[0]].index(q[1])
        elif q is None:
            col = base + 1 + exprs[_expr(a)]
        cols = [(d, 1 + dims.index(d)) for d in a.group_by]
        values = []
        for r in by_set.get(a.group_by, []):
            group = {d: r[j] for d, j in cols}
            if q is not None and a.approx:
                key = (a.group_by, q[0], tuple(group.values()))
                got = sampled.get(key, {}).get(q[1])
            elif at is not None:
                got = None if r[col] is None else r[col][at]
            else:
                got = r[col]
            values.append(WindowValue(group, None if got is None else float(got), int(r[base])))
        out[i] = values
    return out


def _sampled_quantiles(
    cur: Any,
    where: list[str],
    params: list[Any],
    items: list[tuple[int, WindowAgg]],
    by_set: dict[tuple[str, ...], list[tuple[Any, ...]]],
    dims: list[str],
) -> dict[tuple[tuple[str, ...], str, tuple[Any, ...]], dict[float, Any]]:
    """The ``approx`` quantiles: one query per group set, over a sample of its large groups.

    The group sizes are the main pass's ``count(*)``. The sample is a ``WHERE``, not an
    aggregate ``FILTER``, and each group set is its own query, not a ``GROUPING SETS``:
    DuckDB computes every aggregate of a ``GROUPING SETS`` in every set, and evaluates a
    ``FILTER`` per aggregate (the overview's over 1M spans: ~200 ms of CPU that way, ~50 ms
    this way). Keyed by (group_by, column, group values), then q.
    """
    wanted: dict[tuple[str, ...], dict[str, list[float]]] = {}
    for _, a in items:
        q = _quantile_of(a)
        if q is not None and a.approx:
            qs = wanted.setdefault(a.group_by, {}).setdefault(q[0], [])
            if q[1] not in qs:
                qs.append(q[1])
    out: dict[tuple[tuple[str, ...], str, tuple[Any, ...]], dict[float, Any]] = {}
    for group_by, columns in wanted.items():
        at = [1 + dims.index(d) for d in group_by]
        groups = [
            (tuple(r[j] for j in at), int(r[1 + len(dims)])) for r in by_set.get(group_by, [])
        ]
        if not groups:
            continue
        flt = _sample_filter(group_by, groups)
        qdims = [f'"{d}"' for d in group_by]
        cols = [f'quantile_cont("{c}", {[float(q) for q in qs]!r})' for c, qs in columns.items()]
        conds = [*where, flt[0]] if flt else where
        sql = f"SELECT {', '.join([*qdims, *cols])} FROM spans WHERE {' AND '.join(conds)}"  # noqa: S608
        if qdims:
            sql += f" GROUP BY {', '.join(qdims)}"
        for r in cur.execute(sql, params + (flt[1] if flt else [])).fetchall():
            key = tuple(r[: len(group_by)])
            for j, (c, qs) in enumerate(columns.items()):
                got = r[len(group_by) + j]
                out[(group_by, c, key)] = {
                    q: (None if got is None else got[k]) for k, q in enumerate(qs)
                }
    return out
