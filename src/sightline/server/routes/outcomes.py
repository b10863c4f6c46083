"""Business outcomes: ``POST /api/v1/outcomes`` and the outcome metrics with their A/B split."""

from __future__ import annotations

import math
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.concurrency import run_in_threadpool

from sightline.compare import two_proportion_z
from sightline.errors import ConfigError
from sightline.model import Outcome
from sightline.server._params import check_json, parse_step, parse_time
from sightline.server._state import project_of, state_of
from sightline.store.base import (
    COMPLETION_OUTCOMES,
    CONVERSION_OUTCOMES,
    DIMENSIONS,
    OutcomeGroup,
    OutcomeQuery,
)

router = APIRouter(prefix="/api/v1", tags=["outcomes"])

_MAX_BATCH = 1000
_MAX_BUCKETS = 10_000
_NAME = "^[a-z0-9_.:-]{1,100}$"
_RATES = ("task_completion_rate", "conversion_rate")


class OutcomeIn(BaseModel):
    """What a trace or a session led to."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str | None = Field(None, pattern="^[0-9a-fA-F]{32}$")
    session_id: str | None = Field(None, min_length=1, max_length=256)
    name: str = Field(
        pattern=_NAME, description="converted, task_completed, ticket_resolved... (lowercase)"
    )
    value: float = Field(1.0, description="> 0 a success (or an amount), <= 0 a failure.")
    user_id: str | None = Field(None, max_length=256)
    metadata: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, max_length=50
    )

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("value must be a finite number")
        return v

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, Any]) -> dict[str, Any]:
        check_json(v, "metadata")
        return v

    @model_validator(mode="after")
    def _target(self) -> OutcomeIn:
        if self.trace_id is None and self.session_id is None:
            raise ValueError("give trace_id or session_id")
        return self


@router.post("/outcomes", status_code=201, summary="Record business outcomes")
async def post_outcomes(
    body: OutcomeIn | list[OutcomeIn], request: Request, project_id: str = Depends(project_of)
) -> dict[str, Any]:
    """Store one outcome, or a list of up to 1000, for the key's project.

    The trace or session need not be stored yet: outcomes often arrive long after the spans.
    """
    items = body if isinstance(body, list) else [body]
    if not items:
        raise ConfigError("no outcomes given")
    if len(items) > _MAX_BATCH:
        raise ConfigError(f"at most {_MAX_BATCH} outcomes per request")
    now = datetime.now(UTC)
    outcomes = [
        Outcome(
            project_id=project_id,
            outcome_id=secrets.token_hex(8),
            trace_id=o.trace_id.lower() if o.trace_id else None,
            session_id=o.session_id,
            name=o.name,
            value=o.value,
            user_id=o.user_id,
            metadata=dict(o.metadata),
            created_at=now,
        )
        for o in items
    ]
    await run_in_threadpool(state_of(request).store.add_outcomes, outcomes)
    return {"accepted": len(outcomes), "data": [o.to_dict() for o in outcomes]}


@router.get("/outcomes", summary="List recorded outcomes")
async def list_outcomes(
    request: Request,
    project_id: str = Depends(project_of),
    trace_id: str | None = Query(None, pattern="^[0-9a-fA-F]{32}$"),
    session_id: str | None = Query(None, max_length=256),
    name: str | None = Query(None, pattern=_NAME),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """A project's outcomes, newest first."""
    rows = await run_in_threadpool(
        state_of(request).store.list_outcomes,
        project_id,
        trace_id=trace_id.lower() if trace_id else None,
        session_id=session_id,
        name=name,
        limit=limit,
    )
    return {"data": [o.to_dict() for o in rows]}


def _names(value: str | None, default: tuple[str, ...], what: str) -> tuple[str, ...]:
    if value is None:
        return default

    names = tuple(n.strip() for n in value.split(",") if n.strip())
    bad = [n for n in names if not re.match(_NAME, n)]
    if bad or len(names) > 20:
        raise ConfigError(f"{what}: up to 20 comma-separated lowercase outcome names")
    return names


def _query(
    project_id: str,
    *,
    from_: str | None,
    to: str | None,
    step: str | None,
    group_by: tuple[str, ...],
    filters: dict[str, str | None],
    completion: str | None,
    conversion: str | None,
    outcome: str | None,
) -> OutcomeQuery:
    end = parse_time(to, "to") or datetime.now(UTC)
    start = parse_time(from_, "from") or end - timedelta(days=7)
    if start >= end:
        raise ConfigError("from must be before to")
    step_s = parse_step(step)
    if step_s is not None and (end - start).total_seconds() / step_s > _MAX_BUCKETS:
        raise ConfigError("too many buckets: choose a longer step")
    for g in group_by:
        if g not in DIMENSIONS:
            raise ConfigError(f"group_by: cannot group by {g!r}; use {', '.join(DIMENSIONS)}")
    return OutcomeQuery(
        project_id=project_id,
        start=start,
        end=end,
        step_s=step_s,
        group_by=group_by,
        filters={k: v for k, v in filters.items() if v is not None},
        completion_names=_names(completion, COMPLETION_OUTCOMES, "completion"),
        conversion_names=_names(conversion, CONVERSION_OUTCOMES, "conversion"),
        outcome_names=_names(outcome, (), "outcome"),
    )


_FILTER_DOC = "Filter: only LLM spans with this value."


@router.get("/outcomes/metrics", summary="Outcome metrics per group")
async def outcome_metrics(
    request: Request,
    project_id: str = Depends(project_of),
    from_: str | None = Query(None, alias="from", description="Default: 7 days before `to`."),
    to: str | None = Query(None, description="Default: now."),
    step: str | None = Query(None, description="Bucket width (1h, 1d); none = one value."),
    group_by: str | None = Query(None, description="Comma-separated span dimensions."),
    completion: str | None = Query(
        None, description="Outcomes that complete a task; default task_completed,ticket_resolved."
    ),
    conversion: str | None = Query(None, description="Conversion outcomes; default converted."),
    outcome: str | None = Query(
        None, description="Outcomes cost_per_outcome divides by; default: any."
    ),
    feature: str | None = Query(None, description=_FILTER_DOC),
    model: str | None = Query(None, description=_FILTER_DOC),
    prompt_name: str | None = Query(None, description=_FILTER_DOC),
    prompt_version: str | None = Query(None, description=_FILTER_DOC),
    variant: str | None = Query(None, description=_FILTER_DOC),
    tenant_id: str | None = Query(None, description=_FILTER_DOC),
    environment: str | None = Query(None, description=_FILTER_DOC),
) -> dict[str, Any]:
    """``task_completion_rate``, ``conversion_rate`` and ``cost_per_outcome`` per group.

    A unit of work is a session (a trace for spans without one); see docs/signals.md.
    """
    groups = tuple(g.strip() for g in group_by.split(",") if g.strip()) if group_by else ()
    q = _query(
        project_id,
        from_=from_,
        to=to,
        step=step,
        group_by=groups,
        filters={
            "feature": feature,
            "model": model,
            "prompt_name": prompt_name,
            "prompt_version": prompt_version,
            "variant": variant,
            "tenant_id": tenant_id,
            "environment": environment,
        },  # fmt: skip
        completion=completion,
        conversion=conversion,
        outcome=outcome,
    )
    rows = await run_in_threadpool(state_of(request).store.query_outcomes, q)
    return {
        "from": q.start.isoformat(),
        "to": q.end.isoformat(),
        "group_by": list(q.group_by),
        "data": [r.to_dict() for r in rows],
    }


@router.get("/outcomes/ab", summary="A/B comparison of outcome metrics")
async def outcome_ab(
    request: Request,
    project_id: str = Depends(project_of),
    a: str = Query(description="The control arm's value of `dimension`."),
    b: str = Query(description="The treatment arm's value of `dimension`."),
    dimension: str = Query("variant", description="What the arms differ by."),
    metric: str = Query("conversion_rate", description="task_completion_rate or conversion_rate"),
    from_: str | None = Query(None, alias="from", description="Default: 7 days before `to`."),
    to: str | None = Query(None, description="Default: now."),
    completion: str | None = Query(None, description="As in /outcomes/metrics."),
    conversion: str | None = Query(None, description="As in /outcomes/metrics."),
    outcome: str | None = Query(None, description="As in /outcomes/metrics."),
    feature: str | None = Query(None, description=_FILTER_DOC),
    model: str | None = Query(None, description=_FILTER_DOC),
    prompt_version: str | None = Query(None, description=_FILTER_DOC),
) -> dict[str, Any]:
    """Both arms' outcome metrics, B − A, B's lift over A and a two-proportion z-test."""
    if metric not in _RATES:
        raise ConfigError(f"metric: expected one of {', '.join(_RATES)}")
    if dimension not in DIMENSIONS:
        raise ConfigError(f"dimension: expected one of {', '.join(DIMENSIONS)}")
    if a == b:
        raise ConfigError("a and b must differ")
    q = _query(
        project_id,
        from_=from_,
        to=to,
        step=None,
        group_by=(dimension,),
        filters={"feature": feature, "model": model, "prompt_version": prompt_version},
        completion=completion,
        conversion=conversion,
        outcome=outcome,
    )
    rows = await run_in_threadpool(state_of(request).store.query_outcomes, q)
    arms: dict[str, OutcomeGroup | None] = {
        k: next((g for g in rows if str(g.group.get(dimension)) == v), None)
        for k, v in (("a", a), ("b", b))
    }
    out: dict[str, Any] = {"dimension": dimension, "metric": metric}
    for k, v in (("a", a), ("b", b)):
        g = arms[k]
        out[k] = {"value": v, **(g.to_dict() if g else {"num_units": 0})}
        out[k].pop("group", None)
        out[k].pop("t", None)
    ga, gb = arms["a"], arms["b"]
    ra = getattr(ga, metric) if ga else None
    rb = getattr(gb, metric) if gb else None
    out["difference"] = rb - ra if ra is not None and rb is not None else None
    out["lift"] = (rb - ra) / ra if ra and rb is not None else None
    test = None
    if ga and gb:
        count = "num_completed" if metric == "task_completion_rate" else "num_converted"
        test = two_proportion_z(getattr(ga, count), ga.num_units, getattr(gb, count), gb.num_units)
    out["z"], out["p_value"] = test if test else (None, None)
    return out
