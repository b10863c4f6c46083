"""Guardrail effectiveness per guardrail and version (SQL for DuckDBStore)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sightline.store.base import (
    GUARDRAIL_BLOCKED,
    GUARDRAIL_BYPASS_INPUT,
    GUARDRAIL_BYPASS_OUTPUT,
    GUARDRAIL_HUMAN_LABEL,
    GuardrailStats,
)

if TYPE_CHECKING:
    from sightline.store._duckdb import DuckDBStore

__all__ = ["guardrail_stats"]


def _ts(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def guardrail_stats(
    store: DuckDBStore, project_id: str, start: datetime, end: datetime
) -> list[GuardrailStats]:
    sql = f"""
        WITH g AS (
            SELECT name,
                json_extract_string(attributes, '$."sightline.guardrail.version"') AS version,
                duration_ms,
                {GUARDRAIL_BLOCKED} AS blocked,
                {GUARDRAIL_HUMAN_LABEL} AS human,
                {GUARDRAIL_BYPASS_INPUT} AS bypass_in,
                {GUARDRAIL_BYPASS_OUTPUT} AS bypass_out
            FROM spans
            WHERE project_id = ? AND kind = 'guardrail' AND start_time >= ? AND start_time < ?
        )
        SELECT name, version, count(*), count(*) FILTER (WHERE blocked),
            quantile_cont(duration_ms, 0.5), quantile_cont(duration_ms, 0.95),
            count(*) FILTER (WHERE blocked AND human IS NOT NULL),
            count(*) FILTER (WHERE blocked AND human IN ('legitimate', 'correct')),
            count(*) FILTER (WHERE bypass_in),
            count(*) FILTER (WHERE bypass_out)
        FROM g GROUP BY name, version ORDER BY name, version NULLS FIRST
    """  # noqa: S608 - fixed fragments, values are parameters
    with store._cursor() as cur:
        rows = cur.execute(sql, [project_id, _ts(start), _ts(end)]).fetchall()
    return [
        GuardrailStats(
            name=r[0],
            version=r[1],
            num_checks=int(r[2]),
            num_blocked=int(r[3]),
            latency_ms_p50=None if r[4] is None else float(r[4]),
            latency_ms_p95=None if r[5] is None else float(r[5]),
            num_reviewed_blocked=int(r[6]),
            num_false_positives=int(r[7]),
            num_bypass_inputs=int(r[8]),
            num_bypass_outputs=int(r[9]),
        )
        for r in rows
    ]
