"""A trace as a span tree."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from sightline._cursor import decode_cursor, encode_cursor
from sightline.errors import NotFound
from sightline.model import Span
from sightline.server._params import known_query
from sightline.server._state import project_of, state_of
from sightline.store.base import LogQuery, TraceStore, TraceSummary

router = APIRouter(prefix="/api/v1", tags=["traces"])


TRACE_SPANS_DEFAULT = 2000
"""Spans of a trace in one answer of ``GET /api/v1/traces/{id}`` (and on the trace page)."""
TRACE_SPANS_MAX = 10_000
"""The largest ``limit`` that endpoint takes: agent loops and batch jobs make traces of 100k
spans, whose nested JSON (prompts and responses included) would be hundreds of MB at once."""


def build_tree(spans: list[Span], summary: TraceSummary | None = None) -> dict[str, Any]:
    """Nest spans under their parents; spans whose parent is missing become roots.

    With ``summary`` (the whole trace's totals) the figures and ``offset_ms`` are the trace's,
    when ``spans`` are only a page of it.
    """
    if summary is None and not spans:
        raise ValueError("a trace of no span needs its summary")
    start = summary.start_time if summary else min(s.start_time for s in spans)
    end = summary.end_time if summary else max(s.end_time for s in spans)
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
    if summary is not None:
        cost, num = summary.cost_usd, summary.num_spans
        tokens_in, tokens_out = summary.input_tokens, summary.output_tokens
    else:
        cost, num = sum(s.cost_usd or 0.0 for s in spans), len(spans)
        tokens_in = sum(s.input_tokens or 0 for s in spans if s.kind == "llm")
        tokens_out = sum(s.output_tokens or 0 for s in spans if s.kind == "llm")
    return {
        "trace_id": spans[0].trace_id if spans else "",
        "start_time": start.isoformat(),
        "end_time": end.isoformat(),
        "duration_ms": (end - start).total_seconds() * 1000,
        "num_spans": num,
        "cost_usd": cost,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "spans": roots,
    }


def load_trace_page(
    store: TraceStore,
    project_id: str,
    trace_id: str,
    *,
    limit: int,
    cursor: str | None = None,
) -> dict[str, Any] | None:
    """A page of a trace's spans (start order) as a tree, with the whole trace's totals.

    Adds to :func:`build_tree`'s fields ``num_spans_returned``, ``truncated`` (the answer does
    not hold every span of the trace) and ``next_cursor`` (None on the last page). None when
    the trace has no span (in this project). ConfigError on a cursor not made here.
    """
    after = None
    if cursor is not None:
        ts, (span_id,) = decode_cursor(cursor, 1)
        after = (ts, span_id)
    summary = store.summarize_trace(project_id, trace_id)
    if summary is None:
        return None
    spans = store.get_trace(project_id, trace_id, limit=limit + 1, after=after)
    more = len(spans) > limit
    spans = spans[:limit]
    tree = build_tree(spans, summary)  # no span left: a cursor past the last one
    tree["trace_id"] = trace_id
    tree["num_spans_returned"] = len(spans)
    tree["truncated"] = more or after is not None or len(spans) < summary.num_spans
    tree["next_cursor"] = encode_cursor(spans[-1].start_time, spans[-1].span_id) if more else None
    return tree


@router.get(
    "/traces/{trace_id}",
    summary="A trace as a span tree with per-span timings",
    dependencies=[Depends(known_query)],
)
async def get_trace(
    request: Request,
    trace_id: str = Path(pattern="^[0-9a-fA-F]{32}$"),
    project_id: str = Depends(project_of),
    limit: int = Query(TRACE_SPANS_DEFAULT, ge=1, le=TRACE_SPANS_MAX),
    cursor: str | None = Query(None, max_length=200),
) -> dict[str, Any]:
    """The trace's spans, nested; ``offset_ms`` is each span's start within the trace.

    At most ``limit`` spans (the first in start order); ``num_spans``, the duration, cost and
    tokens are the whole trace's. When the trace holds more, ``truncated`` is true and
    ``next_cursor`` (passed as ``cursor``) answers the next spans; a span whose parent is on an
    earlier page is a root of its page. When truncated, ``scores`` are those of the spans answered
    and of the trace itself.
    """
    store = state_of(request).store
    tree = await run_in_threadpool(
        functools.partial(
            load_trace_page, store, project_id, trace_id.lower(), limit=limit, cursor=cursor
        )
    )
    if tree is None:
        raise NotFound(f"trace {trace_id} not found")
    answered = _span_ids(tree["spans"])
    scores = await run_in_threadpool(store.list_scores, project_id, trace_id.lower())
    if tree["truncated"]:  # a score of a span not answered would be an orphan
        scores = [s for s in scores if s.span_id is None or s.span_id in answered]
    tree["scores"] = [s.to_dict() for s in scores]
    by_span: dict[str, list[dict[str, Any]]] = {}
    for sc in tree["scores"]:
        if sc["span_id"] is not None:
            by_span.setdefault(sc["span_id"], []).append(sc)
    logs = await run_in_threadpool(
        store.list_logs, LogQuery(project_id=project_id, trace_id=trace_id.lower(), limit=1000)
    )
    tree["logs"] = [r.to_dict() for r in logs.records]
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


def _span_ids(roots: list[dict[str, Any]]) -> set[str]:
    ids: set[str] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        ids.add(node["span_id"])
        stack.extend(node["children"])
    return ids
