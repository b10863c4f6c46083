"""Liveness, readiness and Prometheus exposition."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from sightline.errors import StoreError
from sightline.server._monitoring import render_monitoring
from sightline.server._state import project_of, state_of

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the store answers and accepts writes")
async def readyz(request: Request) -> JSONResponse:
    """200 when the store answers and accepts writes, else 503.

    Accepts writes: the last commit (or probe) succeeded and none failed in the last 2 seconds.
    """
    st = state_of(request)
    try:
        # off the event loop: a ClickHouse that does not answer (or an embedded store busy
        # with a long query) would otherwise stall every request, /healthz included
        await run_in_threadpool(st.store.ping)
    except StoreError as e:
        return JSONResponse({"status": "unavailable", "error": str(e)}, status_code=503)
    if not st.writer.ready:
        # The writer probes the store every second while idle, so this turns back by itself.
        return JSONResponse(
            {"status": "unavailable", "error": "the store is not accepting writes"},
            status_code=503,
            headers={"Retry-After": "2"},
        )
    return JSONResponse({"status": "ok"})


@router.get("/metrics", summary="Prometheus metrics of the key's project", response_class=Response)
async def metrics(request: Request, project_id: str = Depends(project_of)) -> Response:
    """Ingest counters, per-model LLM series, firing alerts and SLO error budgets."""
    st = state_of(request)

    def render() -> bytes:
        # an api node reads the firing alerts from the store
        return st.metrics.render(project_id, st.writer.queued_spans) + render_monitoring(
            st.monitor, project_id
        )

    return Response(await run_in_threadpool(render), media_type=CONTENT_TYPE_LATEST)
