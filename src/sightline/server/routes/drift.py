"""GET /api/v1/drift: drift detection results; POST /api/v1/drift/run runs the jobs now."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from sightline.drift import DriftMonitor
from sightline.errors import NotFound
from sightline.server._params import parse_time
from sightline.server._state import project_of, state_of
from sightline.store.base import DriftQuery

router = APIRouter(prefix="/api/v1/drift", tags=["drift"])

_MAX_LATEST = 1000
"""At most this many (job, detector, feature) in ``latest`` (a job yields about a dozen)."""


def _drift(request: Request) -> DriftMonitor:
    d = state_of(request).drift
    if d is None:
        raise NotFound("drift detection is not running")
    return d


@router.get("", summary="Drift results")
async def list_drift(
    request: Request,
    project_id: str = Depends(project_of),
    job: str | None = Query(None, max_length=100),
    detector: str | None = Query(None, max_length=100),
    fired: bool | None = None,
    from_: str | None = Query(None, alias="from"),
    to: str | None = Query(None, description="Results created before this time."),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """Results newest first: score, threshold, p-value, fired, and examples that explain them.

    ``latest`` holds the newest result of each (job, detector, feature) of the job, detector
    and time range asked for, fired or not and however many results ``limit`` lets through:
    the current drift score of each.
    """
    q = DriftQuery(
        project_id=project_id,
        job=job,
        detector=detector,
        fired=fired,
        start=parse_time(from_, "from"),
        end=parse_time(to, "to"),
        limit=limit,
    )
    store = state_of(request).store
    results = await run_in_threadpool(store.list_drift_results, q)
    # Not read off ``results``: those are filtered by fired and cut at limit, so the newest
    # fired result of days ago passed for the current score, and a feature whose results
    # were past the limit had none.
    newest = dataclasses.replace(q, fired=None, limit=_MAX_LATEST, latest=True)
    latest = await run_in_threadpool(store.list_drift_results, newest)
    return {
        "data": [r.to_dict() for r in results],
        "latest": [
            {
                "job": r.job,
                "detector": r.detector,
                "feature": r.feature,
                "drift_score": r.score,
                "fired": r.fired,
                "status": r.status,
                "created_at": r.created_at.isoformat(),
            }
            for r in latest
        ],
    }


@router.get("/jobs", summary="Drift jobs")
async def list_jobs(request: Request, project_id: str = Depends(project_of)) -> dict[str, Any]:
    """The configured drift jobs."""
    return {"data": [j.model_dump(mode="json") for j in _drift(request).jobs.values()]}


class RunIn(BaseModel):
    """Which job to run (all when omitted)."""

    model_config = ConfigDict(extra="forbid")

    job: str | None = Field(None, max_length=100)


@router.post("/run", summary="Run drift detection now")
async def run_drift(
    request: Request, body: RunIn | None = None, project_id: str = Depends(project_of)
) -> dict[str, Any]:
    """Run the job(s) for the key's project now, store and return the results."""
    d = _drift(request)
    job = body.job if body else None
    results = await run_in_threadpool(d.run, project_id, job)
    return {"data": [r.to_dict() for r in results]}
