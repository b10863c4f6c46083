"""Release markers: POST/GET /api/v1/releases and the before/after "what changed" comparison."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from sightline.errors import ConfigError, NotFound
from sightline.model import Release
from sightline.releases import compare_windows
from sightline.server._params import ApiTime, parse_time
from sightline.server._state import project_of, state_of
from sightline.store.base import TraceStore

router = APIRouter(prefix="/api/v1", tags=["releases"])


class ReleaseIn(BaseModel):
    """A deploy, as CI posts it."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=200)
    git_sha: str | None = Field(None, pattern="^[0-9a-fA-F]{4,64}$")
    time: ApiTime | None = Field(None, description="When it went live; default: now.")
    notes: str | None = Field(None, max_length=10_000)


# the comparison looks up to 720 hours back, and not before 1971
_EARLIEST = datetime(1971, 1, 1, tzinfo=UTC) + timedelta(hours=720)


@router.post("/releases", status_code=201, summary="Record a release marker")
async def post_release(
    request: Request, body: ReleaseIn, project_id: str = Depends(project_of)
) -> dict[str, Any]:
    """A manual marker (deploys, config changes); new versions in spans are marked on their own."""
    now = datetime.now(UTC)
    at = body.time or now
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    if at < _EARLIEST:  # stored, it could never be compared (its window starts before 1971)
        raise ConfigError(f"time: before {_EARLIEST.date()}; a release marker is a recent event")
    rel = Release(
        project_id=project_id,
        release_id=uuid.uuid4().hex,
        kind="manual",
        service=body.service,
        version=body.version,
        git_sha=body.git_sha.lower() if body.git_sha else None,
        at=at,
        notes=body.notes,
        created_at=now,
    )
    await run_in_threadpool(state_of(request).store.add_release, rel)
    return rel.to_dict()


@router.get("/releases", summary="List release markers")
async def list_releases(
    request: Request,
    project_id: str = Depends(project_of),
    from_: str | None = Query(None, alias="from"),
    to: str | None = None,
    limit: int = Query(200, ge=1, le=1000),
) -> dict[str, Any]:
    """Posted and automatic markers (``kind``: manual, service_version, model, prompt_version)."""
    rows = await run_in_threadpool(
        lambda: state_of(request).store.list_releases(
            project_id, start=parse_time(from_, "from"), end=parse_time(to, "to"), limit=limit
        )
    )
    return {"data": [r.to_dict() for r in rows]}


@router.get("/releases/{release_id}/compare", summary="What changed at a release")
async def compare_release(
    request: Request,
    release_id: str = Path(pattern="^[0-9a-f]{32}$"),
    project_id: str = Depends(project_of),
    hours: float = Query(24, gt=0, le=720, description="Hours before and after the marker."),
    alpha: float = Query(0.05, gt=0, lt=1, description="Significance level."),
) -> dict[str, Any]:
    """Latency, cost, error rate and quality scores ``hours`` before against ``hours`` after.

    Per-request values are compared with the Mann–Whitney U test, the error rate with the
    two-proportion z-test. A marker of a service compares that service's LLM calls; model and
    prompt markers compare the whole project.
    """
    store = state_of(request).store
    rel = await run_in_threadpool(store.get_release, project_id, release_id)
    if rel is None:
        raise NotFound(f"release {release_id} not found")
    return await run_in_threadpool(release_comparison, store, project_id, rel, hours, alpha)


def release_comparison(
    store: TraceStore, project_id: str, rel: Release, hours: float = 24, alpha: float = 0.05
) -> dict[str, Any]:
    """The before/after comparison of ``rel`` (the API's answer; the dashboard renders it)."""
    span = timedelta(hours=hours)
    service = rel.service if rel.kind in ("manual", "service_version") else None
    if rel.at - span < datetime(1971, 1, 1, tzinfo=UTC):
        raise ConfigError("hours reaches before 1971")
    before = store.compare_values(project_id, rel.at - span, rel.at, service)
    after = store.compare_values(project_id, rel.at, rel.at + span, service)
    if service is not None and not before["error"] and not after["error"]:
        # the service name of a posted marker may not match the spans': compare the project
        service = None
        before = store.compare_values(project_id, rel.at - span, rel.at, None)
        after = store.compare_values(project_id, rel.at, rel.at + span, None)
    cmp = compare_windows(before, after, alpha=alpha)
    return {
        "release": rel.to_dict(),
        "hours": hours,
        "service": service,
        "before": {"from": (rel.at - span).isoformat(), "to": rel.at.isoformat()},
        "after": {"from": rel.at.isoformat(), "to": (rel.at + span).isoformat()},
        "alpha": alpha,
        "metrics": [m.to_dict() for m in cmp.metrics],
        "regressions": [m.metric for m in cmp.regressions],
    }
