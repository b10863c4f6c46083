"""GET /api/v1/guardrails: how well each guardrail (and version) blocks the right things."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from sightline.errors import ConfigError
from sightline.server._params import parse_time
from sightline.server._state import project_of, state_of

router = APIRouter(prefix="/api/v1", tags=["guardrails"])


@router.get("/guardrails", summary="Guardrail effectiveness")
async def list_guardrails(
    request: Request,
    project_id: str = Depends(project_of),
    from_: str | None = Query(None, alias="from", description="Default: 24 h before `to`."),
    to: str | None = Query(None, description="Default: now."),
) -> dict[str, Any]:
    """Per guardrail (span name) and version: checks, block rate, latency, false positives.

    ``false_positive_rate`` = blocked checks a person labelled ``legitimate`` (or ``correct``) /
    blocked checks a person labelled. ``bypass_attempts`` = checks that passed an input an
    evaluator flagged as an injection (``prompt_injection`` failed) + checks that passed an
    output flagged unsafe (``toxicity`` or ``pii_leak`` failed, or a human ``harmful``).
    See docs/signals.md.
    """
    end = parse_time(to, "to") or datetime.now(UTC)
    start = parse_time(from_, "from") or end - timedelta(hours=24)
    if start >= end:
        raise ConfigError("from must be before to")
    stats = await run_in_threadpool(state_of(request).store.guardrail_stats, project_id, start, end)
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "data": [s.to_dict() for s in stats],
    }
