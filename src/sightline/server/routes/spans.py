"""Spans: native JSON ingest and filtered listing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from sightline.errors import ConfigError, SightlineError
from sightline.model import SPAN_KINDS
from sightline.server._body import read_body
from sightline.server._params import check_window, known_query, parse_time
from sightline.server._state import project_of, state_of
from sightline.store.base import SpanQuery

router = APIRouter(prefix="/api/v1", tags=["spans"])

_MAX_LIMIT = 1000


@router.post(
    "/spans",
    summary="Ingest spans (native JSON)",
    description="A JSON list of span objects using the record's field names (`trace_id`, "
    "`span_id`, `start_time`, `end_time`, `kind`, `model`, `input_tokens`, ...). Times are "
    "Unix epoch seconds or ISO-8601 strings; ids are hex. Answers once the spans are committed.",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}}
            }
        }
    },
)
async def ingest_spans(request: Request, project_id: str = Depends(project_of)) -> dict[str, Any]:
    """Store a batch of spans."""
    st = state_of(request)
    ct = (request.headers.get("content-type") or "application/json").split(";")[0].strip()
    if ct != "application/json":
        from sightline.errors import UnsupportedMediaType

        raise UnsupportedMediaType(f"unsupported Content-Type {ct!r}: send application/json")
    try:
        body = await read_body(request, st.settings.max_body_bytes)
        res = await st.ingest.ingest(
            "native", body, encoding=request.headers.get("content-encoding"), project_id=project_id
        )
    except SightlineError as e:
        st.metrics.observe_request(project_id, "native", e.status)
        raise
    st.metrics.observe_request(project_id, "native", 200, res.accepted, res.rejected, res.repaired)
    return {
        "accepted": res.accepted,
        "rejected": res.num_rejected,
        "rejected_reasons": res.rejected,
        "repaired_reasons": res.repaired,
    }


@router.get("/spans", summary="List spans, newest first", dependencies=[Depends(known_query)])
async def list_spans(
    request: Request,
    project_id: str = Depends(project_of),
    from_: str | None = Query(None, alias="from", description="Epoch seconds or ISO-8601."),
    to: str | None = Query(None, description="Epoch seconds or ISO-8601 (exclusive)."),
    kind: str | None = Query(None, description="Span kind: " + ", ".join(SPAN_KINDS)),
    model: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    trace_id: str | None = None,
    status: str | None = Query(None, description="ok, error or unset"),
    q: str | None = Query(None, max_length=1000, description="Text search in input/output."),
    limit: int = Query(100, ge=1, le=_MAX_LIMIT),
    cursor: str | None = Query(None, max_length=200),
) -> dict[str, Any]:
    """Spans matching every given filter; follow ``next_cursor`` for the next page."""
    if kind is not None and kind not in SPAN_KINDS:
        raise ConfigError(f"kind: expected one of {', '.join(SPAN_KINDS)}")
    if status is not None and status not in ("ok", "error", "unset"):
        raise ConfigError("status: expected ok, error or unset")
    start, end = parse_time(from_, "from"), parse_time(to, "to")
    check_window(start, end)
    query = SpanQuery(
        project_id=project_id,
        start=start,
        end=end,
        kind=kind,
        model=model,
        user_id=user_id,
        session_id=session_id,
        trace_id=trace_id.lower() if trace_id else None,
        status=status,
        text=q,
        limit=limit,
        cursor=cursor,
    )
    st = state_of(request)
    from starlette.concurrency import run_in_threadpool

    page = await run_in_threadpool(st.store.list_spans, query)
    data = [s.to_dict() for s in page.spans]
    # Each span carries its own scores: one query for the page's traces.
    scores = await run_in_threadpool(
        st.store.list_trace_scores, project_id, sorted({s.trace_id for s in page.spans})
    )
    by_span: dict[str, list[dict[str, Any]]] = {}
    for sc in scores:
        if sc.span_id is not None:
            by_span.setdefault(sc.span_id, []).append(sc.to_dict())
    for d in data:
        d["scores"] = by_span.get(d["span_id"], [])
    return {"data": data, "next_cursor": page.next_cursor}


__all__ = ["router"]
