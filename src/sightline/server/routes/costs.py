"""Cost breakdowns (request, session, user, tenant, feature, model), per task, prompt length."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from sightline.compare import trend
from sightline.errors import ConfigError
from sightline.server._params import parse_step
from sightline.server._state import project_of, state_of
from sightline.server.routes.compare import time_range
from sightline.store._analysis_records import COST_DIMENSIONS, CostQuery

router = APIRouter(prefix="/api/v1/costs", tags=["costs"])

_MAX_BUCKETS = 2_000


def _query(
    project_id: str,
    from_: str | None,
    to: str | None,
    filters: dict[str, str | None],
    *,
    default: timedelta = timedelta(days=30),
) -> CostQuery:
    start, end = time_range(from_, to, default=default)
    return CostQuery(
        project_id=project_id,
        start=start,
        end=end,
        filters={k: v for k, v in filters.items() if v is not None},
    )


@router.get("", summary="Cost per request, session, user, tenant, feature or model")
async def cost_breakdown(
    request: Request,
    project_id: str = Depends(project_of),
    by: str = Query(description="request (a trace), " + ", ".join(list(COST_DIMENSIONS)[1:])),
    from_: str | None = Query(None, alias="from", description="Default: 30 days before `to`."),
    to: str | None = Query(None, description="Default: now."),
    limit: int = Query(100, ge=1, le=10_000, description="Most expensive groups returned."),
    kind: str | None = Query(None, description="llm, embedding or rerank; default all three"),
    model: str | None = None,
    feature: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    tenant_id: str | None = None,
    prompt_name: str | None = None,
    prompt_version: str | None = None,
    variant: str | None = None,
    environment: str | None = None,
) -> dict[str, Any]:
    """Spend of each group (most expensive first) and a summary over every group.

    ``summary`` has the mean, median, p95 and max cost per group (the cost per session when
    ``by=session``...); calls without the dimension (no session...) are left out of it and
    counted as ``unattributed``.
    """
    if by not in COST_DIMENSIONS:
        raise ConfigError(f"by: expected one of {', '.join(COST_DIMENSIONS)}")
    if kind is not None and kind not in ("llm", "embedding", "rerank"):
        raise ConfigError("kind: expected llm, embedding or rerank")
    q = _query(project_id, from_, to, {"kind": kind, "model": model, "feature": feature,
               "user_id": user_id, "session_id": session_id, "tenant_id": tenant_id,
               "prompt_name": prompt_name, "prompt_version": prompt_version,
               "variant": variant, "environment": environment})  # fmt: skip
    rows, summary = await run_in_threadpool(
        lambda: state_of(request).store.cost_breakdown(q, by, limit=limit)
    )
    return {
        "by": by,
        "from": q.start.isoformat(),
        "to": q.end.isoformat(),
        "filters": q.filters,
        "summary": summary,
        "data": [r.to_dict() for r in rows],
    }


@router.get("/tasks", summary="Cost per successful task")
async def task_costs(
    request: Request,
    project_id: str = Depends(project_of),
    group_by: str | None = Query(None, description="Comma-separated: feature, model, ..."),
    from_: str | None = Query(None, alias="from", description="Default: 30 days before `to`."),
    to: str | None = Query(None, description="Default: now."),
    model: str | None = None,
    feature: str | None = None,
    tenant_id: str | None = None,
    prompt_name: str | None = None,
    prompt_version: str | None = None,
    variant: str | None = None,
    environment: str | None = None,
) -> dict[str, Any]:
    """Tasks (traces) by outcome and what they cost, and the cost per successful task.

    ``cost_per_successful_task`` is all spend divided by the successful tasks. A task
    succeeded when its latest end-user feedback is positive, failed when it is negative;
    without feedback (or with neutral feedback) it succeeded when every pass/fail evaluation
    and human label of its spans passed, and failed when one did not. Other tasks are
    ``unjudged``.
    """
    groups = tuple(g.strip() for g in group_by.split(",") if g.strip()) if group_by else ()
    q = _query(project_id, from_, to, {"model": model, "feature": feature,
               "tenant_id": tenant_id, "prompt_name": prompt_name,
               "prompt_version": prompt_version, "variant": variant,
               "environment": environment})  # fmt: skip
    rows = await run_in_threadpool(state_of(request).store.task_costs, q, groups)
    return {
        "group_by": list(groups),
        "from": q.start.isoformat(),
        "to": q.end.isoformat(),
        "filters": q.filters,
        "data": [r.to_dict() for r in rows],
    }


@router.get("/prompt-length", summary="Prompt length trend per feature (prompt bloat)")
async def prompt_length(
    request: Request,
    project_id: str = Depends(project_of),
    step: str = Query("1d", description="Bucket width (1h, 1d...)."),
    from_: str | None = Query(None, alias="from", description="Default: 30 days before `to`."),
    to: str | None = Query(None, description="Default: now."),
    feature: str | None = None,
    model: str | None = None,
    prompt_name: str | None = None,
    environment: str | None = None,
) -> dict[str, Any]:
    """Mean input tokens (and characters of the input) of LLM calls, per feature and bucket.

    Each feature has a least-squares ``slope_tokens_per_day`` over its buckets and the
    ``change_pct`` from its first bucket to its last: a prompt that keeps growing shows here
    before it shows on the bill.
    """
    step_s = parse_step(step) or 86_400  # an empty step means the default, like empty from/to
    q = _query(project_id, from_, to, {"feature": feature, "model": model,
               "prompt_name": prompt_name, "environment": environment})  # fmt: skip
    if (q.end - q.start).total_seconds() / step_s > _MAX_BUCKETS:
        raise ConfigError(f"too many buckets: choose a step larger than {step}")
    series = await run_in_threadpool(state_of(request).store.prompt_length, q, step_s)
    data = []
    for s in series:
        pts = [(t, tok) for t, _, tok, _ in s.points if tok is not None]
        slope, change = trend(pts)
        data.append(
            {
                "feature": s.feature,
                "slope_tokens_per_day": slope,
                "change_pct": change,
                "points": [
                    {"t": t.isoformat(), "calls": n, "input_tokens": tok, "input_chars": ch}
                    for t, n, tok, ch in s.points
                ],
            }
        )
    return {"step_s": step_s, "from": q.start.isoformat(), "to": q.end.isoformat(), "data": data}
