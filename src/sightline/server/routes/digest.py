"""The weekly digest: preview it (GET /api/v1/digest) or send it now (POST /api/v1/digest/send)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from sightline.alerts._digest import build_digest
from sightline.errors import Conflict
from sightline.server._params import parse_time
from sightline.server._state import AdminKey, project_of, state_of

router = APIRouter(prefix="/api/v1", tags=["digest"])


@router.get("/digest", summary="Preview the weekly digest")
async def get_digest(
    request: Request, project_id: str = Depends(project_of), to: str | None = None
) -> dict[str, Any]:
    """The digest of the 7 days before ``to`` (default now), as it would be sent."""
    end = parse_time(to, "to") or datetime.now(UTC)
    return await run_in_threadpool(build_digest, state_of(request).store, project_id, end)


@router.post("/digest/send", summary="Send the weekly digest now")
async def send_digest(request: Request, key: AdminKey) -> dict[str, Any]:
    """Send the project's digest of the last 7 days to the digest's channels (admin)."""
    task = state_of(request).digest
    if task is None:
        raise Conflict("no digest is configured: add a digest: section to the config file")
    now = datetime.now(UTC)
    return await run_in_threadpool(
        task.send, key.project_id, now, f"digest:manual:{now.isoformat()}"
    )
