"""Business outcomes: storage and the outcome metrics (SQL for DuckDBStore).

A *unit* of work is a session, or a trace for LLM spans without a session. The LLM spans of a
window (and filters) give the units and their dimension values; a unit *has* outcome N when an
outcome named N with value > 0 was recorded for its session or for one of its traces.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from sightline.errors import ConfigError
from sightline.model import Outcome
from sightline.store.base import (
    DIMENSIONS,
    MetricQuery,
    MetricSeries,
    OutcomeGroup,
    OutcomeQuery,
)

if TYPE_CHECKING:
    from sightline.store._duckdb import DuckDBStore

__all__ = ["add_outcomes", "list_outcomes", "query_outcome_metric", "query_outcomes"]

_COLS = "project_id, outcome_id, trace_id, session_id, name, value, user_id, metadata, created_at"


def _ts(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def add_outcomes(store: DuckDBStore, outcomes: Sequence[Outcome]) -> None:
    if not outcomes:
        return
    rows = [
        [
            o.project_id,
            o.outcome_id,
            o.trace_id,
            o.session_id,
            o.name,
            o.value,
            o.user_id,
            orjson.dumps(o.metadata).decode(),
            _ts(o.created_at),
        ]
        for o in outcomes
    ]
    with store._admin_lock, store._cursor() as cur:
        cur.executemany(f"INSERT INTO outcomes ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)  # noqa: S608


def list_outcomes(
    store: DuckDBStore,
    project_id: str,
    *,
    trace_id: str | None = None,
    session_id: str | None = None,
    name: str | None = None,
    limit: int = 100,
) -> list[Outcome]:
    where, params = ["project_id = ?"], [project_id]
    for col, v in (("trace_id", trace_id), ("session_id", session_id), ("name", name)):
        if v is not None:
            where.append(f"{col} = ?")
            params.append(v)
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {_COLS} FROM outcomes WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY created_at DESC, outcome_id LIMIT ?",
            [*params, limit],
        ).fetchall()
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


def _in(names: Sequence[str]) -> str:
    return "(" + ", ".join("?" for _ in names) + ")" if names else "(NULL)"


def query_outcomes(store: DuckDBStore, q: OutcomeQuery) -> list[OutcomeGroup]:
    """Units, outcomes and cost per group (see the module docstring)."""
    for d in (*q.group_by, *q.filters):
        if d not in DIMENSIONS:
            raise ConfigError(f"cannot filter or group by {d!r}")
    dims = [f'"{d}"' for d in q.group_by]
    where = ["project_id = ?", "kind = 'llm'", "start_time >= ?", "start_time < ?"]
    params: list[Any] = [q.project_id, _ts(q.start), _ts(q.end)]
    for d, v in q.filters.items():
        where.append(f'"{d}" = ?')
        params.append(v)
    bucket = (
        f"time_bucket(INTERVAL '{int(q.step_s)} seconds', min(start_time), CAST(? AS TIMESTAMP))"
        if q.step_s
        else "CAST(? AS TIMESTAMP)"
    )
    dim_cols = "".join(f"{d}, " for d in dims)
    group_dims = ", ".join(dims)
    outcome_filter = "name IN " + _in(q.outcome_names) if q.outcome_names else "true"
    sql = f"""
        WITH s AS (
            SELECT trace_id, session_id, start_time, cost_usd, {dim_cols}
                coalesce(session_id, '~trace:' || trace_id) AS unit
            FROM spans WHERE {" AND ".join(where)}
        ),
        o AS (
            SELECT trace_id, session_id, name FROM outcomes WHERE project_id = ? AND value > 0
        ),
        hits AS (
            SELECT s.unit, o.name FROM s JOIN o ON o.trace_id = s.trace_id
            UNION
            SELECT s.unit, o.name FROM s JOIN o ON o.session_id = s.session_id
        ),
        flags AS (
            SELECT unit,
                bool_or(name IN {_in(q.completion_names)}) AS completed,
                bool_or(name IN {_in(q.conversion_names)}) AS converted,
                bool_or({outcome_filter}) AS outcome
            FROM hits GROUP BY unit
        ),
        units AS (
            SELECT {dim_cols} unit, {bucket} AS _t, sum(coalesce(cost_usd, 0)) AS cost
            FROM s GROUP BY {group_dims + ", " if dims else ""}unit
        )
        SELECT _t, {dim_cols} count(*), count(*) FILTER (WHERE f.completed),
            count(*) FILTER (WHERE f.converted), count(*) FILTER (WHERE f.outcome), sum(cost)
        FROM units LEFT JOIN flags f USING (unit)
        GROUP BY _t{", " + group_dims if dims else ""}
        ORDER BY {group_dims + ", " if dims else ""}_t
    """  # noqa: S608
    all_params = [
        *params,
        q.project_id,
        *q.completion_names,
        *q.conversion_names,
        *q.outcome_names,
        _ts(q.start),
    ]
    with store._cursor() as cur:
        rows = cur.execute(sql, all_params).fetchall()
    n = len(dims)
    out = []
    for r in rows:
        group = dict(zip(q.group_by, r[1 : 1 + n], strict=True))
        units, completed, converted, with_outcome, cost = r[1 + n :]
        out.append(
            OutcomeGroup(
                group=group,
                t=r[0].replace(tzinfo=UTC),
                num_units=int(units),
                num_completed=int(completed),
                num_converted=int(converted),
                num_outcomes=int(with_outcome),
                cost_usd=float(cost or 0.0),
            )
        )
    return out


def query_outcome_metric(store: DuckDBStore, query: MetricQuery) -> list[MetricSeries]:
    """``task_completion_rate``, ``conversion_rate`` or ``cost_per_outcome`` as a metric."""
    filters = {k: v for k, v in query.filters.items() if k != "kind"}
    groups = query_outcomes(
        store,
        OutcomeQuery(
            project_id=query.project_id,
            start=query.start,
            end=query.end,
            step_s=query.step_s,
            group_by=query.group_by,
            filters=filters,
        ),
    )
    series: dict[tuple[Any, ...], MetricSeries] = {}
    for g in groups:
        key = tuple(g.group.get(d) for d in query.group_by)
        s = series.get(key)
        if s is None:
            s = series[key] = MetricSeries(dict(g.group), [])
        s.points.append((g.t, getattr(g, query.metric.name)))
    return list(series.values())
