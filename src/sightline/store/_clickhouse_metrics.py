"""The named metrics' formulas in ClickHouse SQL.

``base.py`` defines each metric's formula in DuckDB SQL (``json_extract_string``, ``TRY_CAST``,
``FILTER``, correlated subqueries). ClickHouse gets its own expression for each, looked up by
the DuckDB formula (so a renamed copy of a metric definition still resolves); the contract
tests compute every named metric on both backends from the same spans and compare. (Score
metrics are the evaluation part's: ``_query_score_metric``.)

Guardrail effectiveness needs scores joined to the guardrail checks. ClickHouse does not run
the correlated subqueries DuckDB's formulas use inside aggregates, so those metrics read
:func:`guardrail_source`, the window's spans with the joined score facts as columns
(``_blocked``, ``_stage``, ``_human``, ``_in_flagged``, ``_out_flagged``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from sightline.errors import ConfigError
from sightline.store._clickhouse_base import ch_newest_score
from sightline.store.base import METRICS, MetricDef

__all__ = [
    "CH_AGG",
    "CHFormula",
    "GUARDRAIL_COLUMNS",
    "ch_float",
    "ch_formula",
    "ch_quantile",
    "guardrail_source",
    "json_str",
]


def json_str(col: str, key: str) -> str:
    """DuckDB's ``json_extract_string(col, '$."key"')`` in ClickHouse SQL.

    Strings come unquoted, other JSON values as their text, NULL when missing or JSON null.
    ``key`` must be a constant.
    """
    if "'" in key or "\\" in key:  # pragma: no cover - callers pass constants
        raise ConfigError(f"invalid attribute key {key!r}")
    t = f"JSONType({col}, '{key}')"
    return (
        f"if({t} = 'String', JSONExtractString({col}, '{key}'),"
        f" if({t} = 'Null', NULL, JSONExtractRaw({col}, '{key}')))"
    )


def try_bool(expr: str) -> str:
    """DuckDB's ``TRY_CAST(expr AS BOOLEAN)`` as 1.0 / 0.0 / NULL."""
    return (
        f"multiIf(lower({expr}) IN ('true', 't', '1', 'yes', 'y'), 1.0,"
        f" lower({expr}) IN ('false', 'f', '0', 'no', 'n'), 0.0, NULL)"
    )


_BLOCKED = f"coalesce({try_bool(json_str('attributes', 'sightline.guardrail.blocked'))}, 0.0) = 1.0"
_STAGE = f"coalesce({json_str('attributes', 'sightline.guardrail.stage')}, '')"
_VERSION = json_str("attributes", "sightline.guardrail.version")

GUARDRAIL_COLUMNS = {
    "blocked": "_blocked",
    "human": "_human",
    "bypass_in": "(NOT _blocked AND _stage <> 'output' AND _in_flagged)",
    "bypass_out": (
        "(NOT _blocked AND _stage <> 'input'"
        " AND (_out_flagged OR coalesce(_human, '') = 'harmful'))"
    ),
}
"""Expressions over :func:`guardrail_source`'s rows (base.py's GUARDRAIL_* fragments)."""


def guardrail_source(where: str, *, with_scores: bool = True) -> str:
    """A FROM item: the spans matching ``where`` with what the scores say about each check.

    ``where`` may use the ``{project_id:String}`` parameter, which the score lookups use too.
    Human labels are the latest on the span or on its trace (a trace-level label); flags are
    failed evaluator scores on the trace (prompt_injection: the input; toxicity, pii_leak:
    the output). The query must run with ``join_use_nulls = 1``. Without ``with_scores`` (a
    store without the evaluation part, which owns ``scores``) no check has a label or flag.
    """
    checks = f"SELECT *, {_BLOCKED} AS _blocked, {_STAGE} AS _stage, {_VERSION} AS _version"
    if not with_scores:
        return (
            f"({checks}, CAST(NULL AS Nullable(String)) AS _human, false AS _in_flagged,"
            f" false AS _out_flagged FROM spans WHERE {where})"
        )
    scores = (
        "FROM scores FINAL WHERE project_id = {project_id:String}"  # noqa: S608 - fixed fragments
        f" AND trace_id IN (SELECT trace_id FROM spans WHERE {where})"
    )
    return f"""(
        SELECT g.*, multiIf(hs.t IS NULL, ht.l, ht.t IS NULL, hs.l, hs.t >= ht.t, hs.l, ht.l)
                AS _human,
            coalesce(fl.fin, 0) = 1 AS _in_flagged, coalesce(fl.fout, 0) = 1 AS _out_flagged
        FROM ({checks} FROM spans WHERE {where}) g
        LEFT JOIN (
            SELECT trace_id, span_id, argMax(label, created_at) AS l, max(created_at) AS t
            {scores} AND source = 'human' AND label IS NOT NULL AND span_id IS NOT NULL
            GROUP BY trace_id, span_id
        ) hs ON hs.trace_id = g.trace_id AND hs.span_id = g.span_id
        LEFT JOIN (
            SELECT trace_id, argMax(label, created_at) AS l, max(created_at) AS t
            {scores} AND source = 'human' AND label IS NOT NULL AND span_id IS NULL
            GROUP BY trace_id
        ) ht ON ht.trace_id = g.trace_id
        LEFT JOIN (
            SELECT trace_id, max(name = 'prompt_injection') AS fin,
                max(name IN ('toxicity', 'pii_leak')) AS fout
            FROM (
                -- the newest verdict of each span and name: a re-run that passed clears it
                SELECT trace_id, `name`, {ch_newest_score("passed")} AS _r
                {scores} AND source = 'evaluator' AND coalesce(label, '') <> 'failed'
                    AND name IN ('prompt_injection', 'toxicity', 'pii_leak')
                GROUP BY trace_id, span_id, `name`
            ) WHERE coalesce(_r.1, true) = false
            GROUP BY trace_id
        ) fl ON fl.trace_id = g.trace_id
    )"""  # noqa: S608 - fixed fragments; values are parameters


@dataclasses.dataclass(frozen=True, slots=True)
class CHFormula:
    """A metric's ClickHouse aggregate expression and what it reads."""

    expr: str
    guardrail: bool = False
    """True: it reads :func:`guardrail_source` columns, not plain spans."""


_G = GUARDRAIL_COLUMNS
_BY_NAME: dict[str, CHFormula] = {
    "requests": CHFormula("count()"),
    "errors": CHFormula("countIf(status = 'error')"),
    "error_rate": CHFormula("avg(if(status = 'error', 1.0, 0.0))"),
    "token_weighted_latency_ms": CHFormula(
        "sum(duration_ms * output_tokens) / nullIf(sum(output_tokens), 0)"
    ),
    "tokens_per_s": CHFormula("sum(output_tokens) / nullIf(sum(duration_ms) / 1000.0, 0)"),
    "cost_per_request": CHFormula("sum(cost_usd) / nullIf(count(), 0)"),
    "cost_per_session": CHFormula(
        "sumIf(cost_usd, session_id IS NOT NULL) / nullIf(uniqExact(session_id), 0)"
    ),
    "fallback_rate": CHFormula(
        f"avg({try_bool(json_str('attributes', 'sightline.gateway.fallback'))})"
    ),
    "guardrail_block_rate": CHFormula(f"avg(if({_BLOCKED}, 1.0, 0.0))"),
    "guardrail_false_positive_rate": CHFormula(
        "avg(multiIf(NOT _blocked, NULL, _human IN ('legitimate', 'correct'), 1.0,"
        " _human IS NOT NULL, 0.0, NULL))",
        guardrail=True,
    ),
    "guardrail_bypass_rate": CHFormula(
        f"avg(if({_G['bypass_in']} OR {_G['bypass_out']}, 1.0, 0.0))", guardrail=True
    ),
}

_BY_FORMULA: dict[str, CHFormula] = {
    m.formula: _BY_NAME[name]
    for name, m in METRICS.items()
    if m.formula is not None and name in _BY_NAME
}


def ch_formula(m: MetricDef) -> CHFormula:
    """The ClickHouse expression of a fixed-formula metric; ConfigError if it has none."""
    if m.formula is None:
        raise ConfigError(f"metric {m.name!r} has no formula")
    f = _BY_FORMULA.get(m.formula)
    if f is None:
        raise ConfigError(f"metric {m.name!r} has no ClickHouse formula")
    return f


_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
CH_AGG = {
    "count": "count({})",
    "sum": "sum({})",
    "avg": "avg({})",
    "min": "min({})",
    "max": "max({})",
    # quantileExactInclusive interpolates linearly between order statistics, as DuckDB's
    # quantile_cont does (the same value on the same data).
    **{k: f"quantileExactInclusive({q})({{}})" for k, q in _QUANTILES.items()},
}
"""Column aggregations (MetricQuery.agg) in ClickHouse SQL."""


def ch_quantile(column: str, qs: list[float]) -> str:
    """Several interpolated quantiles of one column in one pass (an array)."""
    return f"quantilesExactInclusive({', '.join(repr(float(q)) for q in qs)})(`{column}`)"


def ch_float(v: Any) -> float | None:
    """A ClickHouse aggregate as DuckDB gives it: NaN (an aggregate of no rows) is NULL."""
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) else f
