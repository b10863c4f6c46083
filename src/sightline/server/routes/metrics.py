"""GET /api/v1/metrics: one named metric, aggregated, bucketed and grouped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from sightline.errors import ConfigError
from sightline.model import SPAN_KINDS
from sightline.server._params import known_query, parse_step, parse_time
from sightline.server._state import project_of, state_of
from sightline.store.base import (
    AGGS,
    DIMENSIONS,
    METRICS,
    OTEL_PREFIX,
    Agg,
    MetricDef,
    MetricQuery,
    MetricSeries,
    otel_metric,
)

router = APIRouter(prefix="/api/v1", tags=["metrics"])

_MAX_BUCKETS = 20_000
MAX_SERIES = 1000
"""Series (groups) in one answer: ``group_by=session_id`` over a busy window otherwise answers
one series per session, megabytes of JSON no chart can draw."""
_STATUSES = ("ok", "error", "unset")
_NO_ATTRS: list[str] = []
# Named in DESIGN but not a windowed aggregate of spans: drift scores are results of drift jobs
# (GET /api/v1/drift); asked for here, they answer with an explicit 400 saying where to look.
PENDING_METRICS = ("drift_score",)
LIVE_METRICS = ("eval_lag_s",)
"""Process gauges rather than span aggregates: one current value, no agg, groups or filters."""


@router.get("/metrics", summary="Evaluate a metric", dependencies=[Depends(known_query)])
async def get_metric(
    request: Request,
    project_id: str = Depends(project_of),
    name: str = Query(description="Metric name, e.g. latency_ms, cost_usd, error_rate."),
    agg: str | None = Query(None, description="count, sum, avg, min, max, p50, p90, p95, p99"),
    group_by: str | None = Query(None, description="Comma-separated: " + ", ".join(DIMENSIONS)),
    from_: str | None = Query(None, alias="from", description="Default: 24 h before `to`."),
    to: str | None = Query(None, description="Default: now."),
    step: str | None = Query(None, description="Bucket width (60s, 5m, 1h); none = one value."),
    kind: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    tenant_id: str | None = None,
    feature: str | None = None,
    prompt_name: str | None = None,
    prompt_version: str | None = None,
    variant: str | None = None,
    environment: str | None = None,
    service_name: str | None = None,
    status: str | None = None,
    attr: Annotated[
        list[str],
        Query(description="OTLP/scraped metrics only: attribute filter key=value (repeatable)."),
    ] = _NO_ATTRS,
) -> dict[str, Any]:
    """Metric values as series: one per group, each a list of ``{t, value}`` points.

    Besides the span-derived metrics, ``name`` may be any OTLP or scraped metric (its name,
    ``otel:<name>``, or a serving alias such as ``serving_ttft_seconds``): gauges and sums
    aggregate their values (``sum``/``rate`` of a cumulative counter are its increase and
    per-second rate), histograms aggregate their buckets (``p50``...``p99`` read from the
    merged buckets, ``avg`` = Σsum/Σcount); ``group_by`` then names attribute keys.
    """
    if name in LIVE_METRICS:
        return _eval_lag(request)
    m = METRICS.get(name)
    store = state_of(request).store
    if m is None and await run_in_threadpool(store.has_otel_metric, project_id, name):
        m = otel_metric(OTEL_PREFIX + name)
    span_filters = {
        k: v
        for k, v in {
            "kind": kind,
            "model": model,
            "provider": provider,
            "user_id": user_id,
            "session_id": session_id,
            "tenant_id": tenant_id,
            "feature": feature,
            "prompt_name": prompt_name,
            "prompt_version": prompt_version,
            "variant": variant,
            "environment": environment,
            "status": status,
        }.items()
        if v is not None
    }
    if m is not None and m.otel_name is not None:
        if span_filters:
            # these name span columns; an OTLP point has attributes instead, and ignoring the
            # filter would answer the unfiltered metric
            raise ConfigError(
                f"{', '.join(span_filters)}: filters of span metrics; filter OTLP and scraped "
                "metrics with attr=key=value (or service_name)"
            )
        return await _otel_metric(
            request, project_id, m, agg, group_by, from_, to, step, service_name, attr
        )
    if m is None:
        if name in PENDING_METRICS:
            raise ConfigError(
                f"metric {name!r} is a result of drift detection jobs, not a windowed metric: "
                "read it at GET /api/v1/drift"
            )
        raise ConfigError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}")
    if attr:
        raise ConfigError(
            f"attr: filters OTLP and scraped metrics only; {name!r} is computed from spans, "
            f"filter it by {', '.join(DIMENSIONS)}"
        )
    if kind is not None and kind not in SPAN_KINDS:
        raise ConfigError(f"kind: expected one of {', '.join(SPAN_KINDS)}")
    if status is not None and status not in _STATUSES:
        raise ConfigError(f"status: expected one of {', '.join(_STATUSES)}")
    a = agg or m.default_agg
    if a not in AGGS:
        raise ConfigError(f"agg: expected one of {', '.join(AGGS)}")
    if m.formula is not None and agg is not None and agg != m.default_agg:
        raise ConfigError(f"metric {name!r} is a ratio; it takes no agg (or agg={m.default_agg})")
    if m.formula is None and a == "rate":
        raise ConfigError(f"agg 'rate' applies to ratio metrics, not {name!r}")
    end = parse_time(to, "to") or datetime.now(UTC)
    start = parse_time(from_, "from") or end - timedelta(hours=24)
    if start >= end:
        raise ConfigError("from must be before to")
    step_s = parse_step(step)
    if step_s is not None and (end - start).total_seconds() / step_s > _MAX_BUCKETS:
        raise ConfigError(
            f"too many buckets: choose a step of at least "
            f"{int((end - start).total_seconds() // _MAX_BUCKETS) + 1}s"
        )
    groups = _groups(group_by)
    for g in groups:
        if g not in DIMENSIONS:
            raise ConfigError(f"group_by: cannot group by {g!r}; use {', '.join(DIMENSIONS)}")
    filters = dict(span_filters)
    if service_name is not None:
        filters["service_name"] = service_name
    query = MetricQuery(
        project_id=project_id,
        metric=m,
        agg=cast(Agg, a),
        start=start,
        end=end,
        step_s=step_s,
        group_by=groups,
        filters=filters,
    )
    series = _bounded(await run_in_threadpool(state_of(request).store.query_metric, query), groups)
    return {
        "releases": await _markers(request, project_id, start, end),
        "name": name,
        "agg": a,
        "unit": m.unit,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "step_s": step_s,
        "group_by": list(groups),
        "series": [
            {"group": s.group, "points": [{"t": t.isoformat(), "value": v} for t, v in s.points]}
            for s in series
        ],
    }


def _groups(group_by: str | None) -> tuple[str, ...]:
    """The names of ``group_by`` in order, each once (``model,model`` groups by model)."""
    if not group_by:
        return ()
    return tuple(dict.fromkeys(g.strip() for g in group_by.split(",") if g.strip()))


def _bounded(series: list[MetricSeries], groups: tuple[str, ...]) -> list[MetricSeries]:
    """``series``, or ConfigError (400) past MAX_SERIES series."""
    if len(series) > MAX_SERIES:
        raise ConfigError(
            f"group_by {','.join(groups)}: more than {MAX_SERIES} groups in this window; "
            "narrow it with a filter or a shorter window, or group by fewer names"
        )
    return series


async def _markers(
    request: Request, project_id: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Release markers inside the range, for charts to draw (newest first)."""
    rows = await run_in_threadpool(
        lambda: state_of(request).store.list_releases(project_id, start=start, end=end)
    )
    return [
        {
            "release_id": r.release_id,
            "at": r.at.isoformat(),
            "kind": r.kind,
            "service": r.service,
            "version": r.version,
        }  # fmt: skip
        for r in rows
    ]


def _eval_lag(request: Request) -> dict[str, Any]:
    runner = state_of(request).evals
    now = datetime.now(UTC)
    value = runner.lag_s() if runner is not None else None
    return {
        "name": "eval_lag_s",
        "agg": None,
        "unit": "s",
        "from": now.isoformat(),
        "to": now.isoformat(),
        "step_s": None,
        "group_by": [],
        "series": [{"group": {}, "points": [{"t": now.isoformat(), "value": value}]}],
    }


def _window(
    from_: str | None, to: str | None, step: str | None
) -> tuple[datetime, datetime, int | None]:
    end = parse_time(to, "to") or datetime.now(UTC)
    start = parse_time(from_, "from") or end - timedelta(hours=24)
    if start >= end:
        raise ConfigError("from must be before to")
    step_s = parse_step(step)
    if step_s is not None and (end - start).total_seconds() / step_s > _MAX_BUCKETS:
        raise ConfigError(
            f"too many buckets: choose a step of at least "
            f"{int((end - start).total_seconds() // _MAX_BUCKETS) + 1}s"
        )
    return start, end, step_s


async def _otel_metric(
    request: Request,
    project_id: str,
    m: MetricDef,
    agg: str | None,
    group_by: str | None,
    from_: str | None,
    to: str | None,
    step: str | None,
    service_name: str | None,
    attr: list[str],
) -> dict[str, Any]:
    a = agg or m.default_agg
    if a not in AGGS:
        raise ConfigError(f"agg: expected one of {', '.join(AGGS)}")
    start, end, step_s = _window(from_, to, step)
    groups = _groups(group_by)
    filters: dict[str, str] = {}
    for f in attr:
        k, sep, v = f.partition("=")
        if not sep or not k:
            raise ConfigError(f"attr: expected key=value, got {f!r}")
        filters[k] = v
    if service_name is not None:
        filters["service_name"] = service_name
    query = MetricQuery(
        project_id=project_id,
        metric=m,
        agg=cast(Agg, a),
        start=start,
        end=end,
        step_s=step_s,
        group_by=groups,
        filters=filters,
    )
    series = _bounded(await run_in_threadpool(state_of(request).store.query_metric, query), groups)
    return {
        "releases": await _markers(request, project_id, start, end),
        "name": m.name,
        "agg": a,
        "unit": m.unit,
        "source": "otel",
        "from": start.isoformat(),
        "to": end.isoformat(),
        "step_s": step_s,
        "group_by": list(groups),
        "series": [
            {"group": s.group, "points": [{"t": t.isoformat(), "value": v} for t, v in s.points]}
            for s in series
        ],
    }


@router.get(
    "/otel-metrics",
    summary="OTLP and scraped metrics of the project",
    dependencies=[Depends(known_query)],
)
async def list_otel_metrics(
    request: Request, project_id: str = Depends(project_of)
) -> dict[str, Any]:
    """Every metric name with data points: its type, unit, alias, point count and last time."""
    rows = await run_in_threadpool(state_of(request).store.list_otel_metrics, project_id)
    return {"data": rows}
