"""A/B samples, cost breakdowns, cost per successful task and prompt length (SQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sightline.errors import ConfigError
from sightline.store._analysis_records import (
    COST_DIMENSIONS,
    CostQuery,
    CostRow,
    GroupSample,
    LengthSeries,
    TaskCost,
)
from sightline.store.base import DIMENSIONS, newest_score

if TYPE_CHECKING:
    from sightline.store._duckdb import DuckDBStore

__all__ = ["compare_sample", "cost_breakdown", "prompt_length", "task_costs"]

_PRICED_KINDS = ("llm", "embedding", "rerank")
"""Span kinds that cost money: the calls a cost breakdown reads."""
_MAX_SAMPLES = 200_000
"""Calls read per side of an A/B comparison (the most recent ones)."""


def _ts(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def _where(q: CostQuery, kinds: tuple[str, ...]) -> tuple[str, list[Any]]:
    where = ["project_id = ?", "start_time >= ?", "start_time < ?"]
    params: list[Any] = [q.project_id, _ts(q.start), _ts(q.end)]
    kind = q.filters.get("kind")
    if kind is not None:
        where.append("kind = ?")
        params.append(kind)
    else:
        where.append(f"kind IN ({', '.join('?' * len(kinds))})")
        params += list(kinds)
    for dim, v in q.filters.items():
        if dim == "kind":
            continue
        if dim not in DIMENSIONS:
            raise ConfigError(f"cannot filter by {dim!r}")
        where.append(f'"{dim}" = ?')
        params.append(v)
    return " AND ".join(where), params


def compare_sample(store: DuckDBStore, q: CostQuery, dimension: str, value: str) -> GroupSample:
    if dimension not in DIMENSIONS:
        raise ConfigError(f"cannot compare by {dimension!r}")
    where, params = _where(q, ("llm",))
    where += f' AND "{dimension}" = ?'
    params.append(value)
    sel = (
        "SELECT trace_id, span_id, duration_ms, cost_usd, output_tokens, status,"  # noqa: S608
        " _key_trace, _key_span"
        f" FROM spans WHERE {where} ORDER BY start_time DESC LIMIT {_MAX_SAMPLES}"
    )
    out = GroupSample()
    with store._cursor() as cur:
        rows = cur.execute(sel, params).fetchall()
        out.num_spans = len(rows)
        out.num_errors = sum(1 for r in rows if r[5] == "error")
        out.num_traces = len({r[0] for r in rows})
        out.latency_ms = [float(r[2]) for r in rows]
        out.cost_usd = [float(r[3]) for r in rows if r[3] is not None]
        out.output_tokens = [float(r[4]) for r in rows if r[4] is not None]
        # A re-run evaluator (or a relabel) appends rows: each span counts once per score, with
        # its newest verdict (docs/evals.md), or n and the tests' confidence inflate.
        scores = cur.execute(
            f"WITH sel AS ({sel})"  # noqa: S608
            " SELECT CASE WHEN source = 'human' THEN 'human.' || name ELSE name END,"
            " _r.value, _r.passed FROM ("
            f" SELECT sc.name, sc.source, {newest_score('value', 'passed', q='sc.')} AS _r,"
            " max(sc.created_at) AS _c FROM scores sc"
            " JOIN sel s ON sc.trace_id = s.trace_id AND sc.span_id = s.span_id"
            " WHERE sc.project_id = ? AND sc.source IN ('evaluator', 'human')"
            " AND coalesce(sc.label, '') <> 'failed'"
            # the span's integer primary key stands for (trace_id, span_id): cheaper to group
            " GROUP BY s._key_trace, s._key_span, sc.name, sc.source) ORDER BY name, _c",
            [*params, q.project_id],
        ).fetchall()
        for name, v, passed in scores:
            if v is not None:
                out.scores.setdefault(name, []).append(float(v))
            if passed is not None:
                out.passed.setdefault(name, []).append(bool(passed))
        fb = cur.execute(
            f"WITH sel AS ({sel})"  # noqa: S608
            f" SELECT _r.value FROM (SELECT {newest_score('value')} AS _r FROM scores"
            " WHERE project_id = ? AND source = 'user'"
            " AND name = 'feedback' AND value IS NOT NULL"
            " AND trace_id IN (SELECT DISTINCT trace_id FROM sel) GROUP BY trace_id, span_id)",
            [*params, q.project_id],
        ).fetchall()
        out.feedback = [float(r[0]) for r in fb]
    return out


def cost_breakdown(
    store: DuckDBStore, q: CostQuery, by: str, *, limit: int
) -> tuple[list[CostRow], dict[str, Any]]:
    col = COST_DIMENSIONS.get(by)
    if col is None:
        raise ConfigError(f"by: expected one of {', '.join(COST_DIMENSIONS)}")
    where, params = _where(q, _PRICED_KINDS)
    grouped = (
        f'SELECT "{col}" AS k, coalesce(sum(cost_usd), 0) AS c, count(*) AS n,'  # noqa: S608
        " coalesce(sum(input_tokens), 0) AS i, coalesce(sum(output_tokens), 0) AS o,"
        " count_if(cost_usd IS NULL) AS u, min(start_time) AS f, max(start_time) AS l"
        f' FROM spans WHERE {where} GROUP BY "{col}"'
    )
    with store._cursor() as cur:
        rows = cur.execute(
            f"{grouped} ORDER BY c DESC, n DESC, k NULLS LAST LIMIT ?",  # noqa: S608
            [*params, limit],
        ).fetchall()
        stats = cur.execute(
            f"WITH g AS ({grouped})"  # noqa: S608
            " SELECT count(*) FILTER (WHERE k IS NOT NULL),"
            " coalesce(sum(c) FILTER (WHERE k IS NOT NULL), 0),"
            " avg(c) FILTER (WHERE k IS NOT NULL),"
            " quantile_cont(c, 0.5) FILTER (WHERE k IS NOT NULL),"
            " quantile_cont(c, 0.95) FILTER (WHERE k IS NOT NULL),"
            " max(c) FILTER (WHERE k IS NOT NULL),"
            " coalesce(sum(c) FILTER (WHERE k IS NULL), 0),"
            " coalesce(sum(n) FILTER (WHERE k IS NULL), 0), coalesce(sum(n), 0) FROM g",
            params,
        ).fetchall()[0]
    data = [
        CostRow(
            None if r[0] is None else str(r[0]),
            float(r[1]),
            int(r[2]),
            int(r[3]),
            int(r[4]),
            int(r[5]),
            r[6].replace(tzinfo=UTC),
            r[7].replace(tzinfo=UTC),
        )
        for r in rows
    ]
    summary = {
        "groups": int(stats[0]),
        "cost_usd": float(stats[1]),
        "mean_cost_usd": _f(stats[2]),
        "median_cost_usd": _f(stats[3]),
        "p95_cost_usd": _f(stats[4]),
        "max_cost_usd": _f(stats[5]),
        "unattributed_cost_usd": float(stats[6]),
        "unattributed_calls": int(stats[7]),
        "calls": int(stats[8]),
    }
    return data, summary


def _f(v: Any) -> float | None:
    return None if v is None else float(v)


_TASK_DIMS = ("feature", "model", "user_id", "tenant_id", "prompt_name", "prompt_version",
              "variant", "environment", "service_name")  # fmt: skip


def task_costs(store: DuckDBStore, q: CostQuery, group_by: tuple[str, ...]) -> list[TaskCost]:
    for g in group_by:
        if g not in _TASK_DIMS:
            raise ConfigError(f"group_by: cannot group tasks by {g!r}; use {', '.join(_TASK_DIMS)}")
    where, params = _where(q, _PRICED_KINDS)
    # A task is a trace; its group is the first value its calls carry.
    dims = "".join(
        f', arg_min("{g}", start_time) FILTER (WHERE "{g}" IS NOT NULL) AS "{g}"' for g in group_by
    )
    cols = "".join(f', "{g}"' for g in group_by)
    sql = f"""
        WITH t AS (
            SELECT trace_id, coalesce(sum(cost_usd), 0) AS cost{dims}
            FROM spans WHERE {where} GROUP BY trace_id
        ),
        fb AS (
            SELECT trace_id, arg_max(value, created_at) AS v FROM scores
            WHERE project_id = ? AND source = 'user' AND name = 'feedback'
                AND value IS NOT NULL AND trace_id IN (SELECT trace_id FROM t)
            GROUP BY trace_id
        ),
        ev AS (
            SELECT trace_id, bool_and(_r.passed) AS ok FROM (
                SELECT trace_id, {newest_score("passed")} AS _r FROM scores
                WHERE project_id = ? AND source IN ('evaluator', 'human') AND passed IS NOT NULL
                    AND coalesce(label, '') <> 'failed' AND trace_id IN (SELECT trace_id FROM t)
                GROUP BY trace_id, span_id, name, source
            )
            GROUP BY trace_id
        ),
        o AS (
            SELECT t.*, CASE WHEN fb.v > 0 THEN 'success' WHEN fb.v < 0 THEN 'failed'
                WHEN ev.ok THEN 'success' WHEN NOT ev.ok THEN 'failed' ELSE 'unjudged'
                END AS outcome
            FROM t LEFT JOIN fb USING (trace_id) LEFT JOIN ev USING (trace_id)
        )
        SELECT count(*), count_if(outcome = 'success'), count_if(outcome = 'failed'),
            count_if(outcome = 'unjudged'), coalesce(sum(cost), 0),
            coalesce(sum(cost) FILTER (WHERE outcome = 'success'), 0){cols}
        FROM o {"GROUP BY " + cols.lstrip(", ") if group_by else ""}
        ORDER BY 5 DESC
    """  # noqa: S608
    with store._cursor() as cur:
        rows = cur.execute(sql, [*params, q.project_id, q.project_id]).fetchall()
    return [
        TaskCost(
            dict(zip(group_by, r[6:], strict=True)),
            int(r[0]),
            int(r[1]),
            int(r[2]),
            int(r[3]),
            float(r[4]),
            float(r[5]),
        )
        for r in rows
        if r[0]
    ]


def prompt_length(store: DuckDBStore, q: CostQuery, step_s: int) -> list[LengthSeries]:
    where, params = _where(q, ("llm",))
    sql = (
        f"SELECT time_bucket(INTERVAL '{int(step_s)} seconds', start_time, ?) AS t, feature,"  # noqa: S608
        " count(*), avg(input_tokens), avg(length(input))"
        f" FROM spans WHERE {where} GROUP BY t, feature ORDER BY feature NULLS LAST, t"
    )
    with store._cursor() as cur:
        rows = cur.execute(sql, [_ts(q.start), *params]).fetchall()
    out: dict[str | None, LengthSeries] = {}
    for t, feature, n, tokens, chars in rows:
        s = out.setdefault(feature, LengthSeries(feature, []))
        s.points.append((t.replace(tzinfo=UTC), int(n), _f(tokens), _f(chars)))
    return list(out.values())
