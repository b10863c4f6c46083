"""A trace as a span tree."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.concurrency import run_in_threadpool

from sightline.errors import NotFound
from sightline.model import Span
from sightline.server._state import project_of, state_of
from sightline.store.base import LogQuery

router = APIRouter(prefix="/api/v1", tags=["traces"])


def build_tree(spans: list[Span]) -> dict[str, Any]:
    """Nest spans under their parents; spans whose parent is missing become roots."""
    start = min(s.start_time for s in spans)
    end = max(s.end_time for s in spans)
    nodes: dict[str, dict[str, Any]] = {}
    for s in spans:
        d = s.to_dict()
        d["offset_ms"] = (s.start_time - start).total_seconds() * 1000
        d["children"] = []
        nodes[s.span_id] = d
    roots = []
    for s in spans:
        node = nodes[s.span_id]
        parent = nodes.get(s.parent_span_id) if s.parent_span_id else None
        if parent is not None and parent is not node:
            parent["children"].append(node)
        else:
            roots.append(node)
    cost = sum(s.cost_usd or 0.0 for s in spans)
    return {
        "trace_id": spans[0].trace_id,
        "start_time": start.isoformat(),
        "end_time": end.isoformat(),
        "duration_ms": (end - start).total_seconds() * 1000,
        "num_spans": len(spans),
        "cost_usd": cost,
        "input_tokens": sum(s.input_tokens or 0 for s in spans if s.kind == "llm"),
        "output_tokens": sum(s.output_tokens or 0 for s in spans if s.kind == "llm"),
        "spans": roots,
    }


@router.get("/traces/{trace_id}", summary="A trace as a span tree with per-span timings")
async def get_trace(
    request: Request,
    trace_id: str = Path(pattern="^[0-9a-fA-F]{32}$"),
    project_id: str = Depends(project_of),
) -> dict[str, Any]:
    """Every span of the trace, nested; ``offset_ms`` is each span's start within the trace."""
    store = state_of(request).store
    spans = await run_in_threadpool(store.get_trace, project_id, trace_id.lower())
    if not spans:
        raise NotFound(f"trace {trace_id} not found")
    tree = build_tree(spans)
    scores = await run_in_threadpool(store.list_scores, project_id, trace_id.lower())
    tree["scores"] = [s.to_dict() for s in scores]
    by_span: dict[str, list[dict[str, Any]]] = {}
    for sc in tree["scores"]:
        if sc["span_id"] is not None:
            by_span.setdefault(sc["span_id"], []).append(sc)
    logs = await run_in_threadpool(
        store.list_logs, LogQuery(project_id=project_id, trace_id=trace_id.lower(), limit=1000)
    )
    tree["logs"] = [r.to_dict() for r in logs]
    logs_by_span: dict[str, list[dict[str, Any]]] = {}
    for rec in tree["logs"]:
        if rec["span_id"] is not None:
            logs_by_span.setdefault(rec["span_id"], []).append(rec)
    stack = list(tree["spans"])
    while stack:
        node = stack.pop()
        node["scores"] = by_span.get(node["span_id"], [])
        # GenAI content events sent as logs (gen_ai.user.message, gen_ai.choice...) and any
        # other record of the span, in time order
        node["logs"] = logs_by_span.get(node["span_id"], [])
        stack.extend(node["children"])
    return tree
