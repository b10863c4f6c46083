"""GET /api/v1/compare: A/B comparison of two prompt versions, variants or models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from sightline.compare import compare_groups
from sightline.errors import ConfigError
from sightline.server._params import parse_time
from sightline.server._state import project_of, state_of
from sightline.store._analysis_records import CostQuery
from sightline.store.base import DIMENSIONS

router = APIRouter(prefix="/api/v1", tags=["prompts"])

COMPARE_DIMENSIONS = ("prompt_version", "variant", "model", "prompt_name", "provider",
                      "environment")  # fmt: skip
"""Span fields two groups of calls can be told apart by."""


def time_range(
    from_: str | None, to: str | None, *, default: timedelta
) -> tuple[datetime, datetime]:
    """``from``/``to`` query parameters to a range (default: ``default`` before now)."""
    end = parse_time(to, "to") or datetime.now(UTC)
    start = parse_time(from_, "from") or end - default
    if start >= end:
        raise ConfigError("from must be before to")
    return start, end


@router.get("/compare", summary="Compare two prompt versions or variants (A/B)")
async def compare(
    request: Request,
    project_id: str = Depends(project_of),
    dimension: str = Query(description="What tells A from B: " + ", ".join(COMPARE_DIMENSIONS)),
    a: str = Query(max_length=256, description="The dimension's value for group A."),
    b: str = Query(max_length=256, description="The dimension's value for group B."),
    from_: str | None = Query(None, alias="from", description="Default: 7 days before `to`."),
    to: str | None = Query(None, description="Default: now."),
    alpha: float = Query(0.05, gt=0, lt=1, description="Significance level."),
    prompt_name: str | None = Query(None, description="Needed to compare prompt versions."),
    feature: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    environment: str | None = None,
    service_name: str | None = None,
    tenant_id: str | None = None,
    user_id: str | None = None,
    variant: str | None = None,
    prompt_version: str | None = None,
) -> dict[str, Any]:
    """Quality scores, latency, cost, errors and feedback of A's LLM calls against B's.

    Each metric has both groups' figures and sample sizes, and a two-sided test: Mann–Whitney
    U for continuous values, the two-proportion z-test for rates.
    """
    if dimension not in COMPARE_DIMENSIONS:
        raise ConfigError(f"dimension: expected one of {', '.join(COMPARE_DIMENSIONS)}")
    if a == b:
        raise ConfigError("a and b are the same group")
    if dimension == "prompt_version" and prompt_name is None:
        raise ConfigError("comparing prompt versions needs prompt_name (versions are per prompt)")
    start, end = time_range(from_, to, default=timedelta(days=7))
    given = {"prompt_name": prompt_name, "feature": feature, "model": model,
             "provider": provider, "environment": environment, "service_name": service_name,
             "tenant_id": tenant_id, "user_id": user_id, "variant": variant,
             "prompt_version": prompt_version}  # fmt: skip
    filters = {k: v for k, v in given.items() if v is not None and k in DIMENSIONS}
    if dimension in filters:
        raise ConfigError(f"{dimension} is what is compared; it cannot also be a filter")
    q = CostQuery(project_id=project_id, start=start, end=end, filters=filters)
    store = state_of(request).store
    sa = await run_in_threadpool(store.compare_sample, q, dimension, a)
    sb = await run_in_threadpool(store.compare_sample, q, dimension, b)
    return {
        "dimension": dimension,
        "a": a,
        "b": b,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "filters": filters,
        "alpha": alpha,
        "samples": {
            side: {
                "calls": s.num_spans,
                "traces": s.num_traces,
                "errors": s.num_errors,
                "scores": sum(len(v) for v in s.scores.values()),
                "feedback": len(s.feedback),
            }  # fmt: skip
            for side, s in (("a", sa), ("b", sb))
        },
        "metrics": compare_groups(sa, sb, alpha=alpha),
    }
