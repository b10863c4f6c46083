"""GET /api/v1/logs: OTLP log records, filtered by trace, span, service, event or text."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from sightline.server._params import check_window, known_query, parse_time
from sightline.server._state import project_of, state_of
from sightline.store.base import LogQuery

router = APIRouter(prefix="/api/v1", tags=["logs"])

_HEX32 = "^[0-9a-fA-F]{32}$"
_HEX16 = "^[0-9a-fA-F]{16}$"


@router.get("/logs", summary="Search log records", dependencies=[Depends(known_query)])
async def list_logs(
    request: Request,
    project_id: str = Depends(project_of),
    trace_id: str | None = Query(None, pattern=_HEX32, description="Records of one trace."),
    span_id: str | None = Query(None, pattern=_HEX16, description="Records of one span."),
    service_name: str | None = Query(None, max_length=500),
    event_name: str | None = Query(
        None, max_length=500, description="e.g. gen_ai.user.message, gen_ai.choice"
    ),
    min_severity: int | None = Query(None, ge=0, le=24, description="OTel severity number."),
    q: str | None = Query(None, max_length=1000, description="Text the body contains."),
    from_: str | None = Query(None, alias="from"),
    to: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, max_length=200, description="A `next_cursor` returned."),
) -> dict[str, Any]:
    """Newest first; the records of one trace come in time order.

    Follow ``next_cursor`` (None on the last page) for the next page of the same filters.
    """
    start, end = parse_time(from_, "from"), parse_time(to, "to")
    check_window(start, end)
    query = LogQuery(
        project_id=project_id,
        trace_id=trace_id.lower() if trace_id else None,
        span_id=span_id.lower() if span_id else None,
        service_name=service_name,
        event_name=event_name,
        min_severity=min_severity,
        start=start,
        end=end,
        text=q,
        limit=limit,
        cursor=cursor,
    )
    page = await run_in_threadpool(state_of(request).store.list_logs, query)
    return {"data": [r.to_dict() for r in page.records], "next_cursor": page.next_cursor}
