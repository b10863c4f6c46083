"""Datasets: evaluation rows saved from stored spans, downloadable for `sightline eval run`."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from sightline.errors import ConfigError, NotFound
from sightline.evals import case_from_span
from sightline.model import SPAN_KINDS
from sightline.server._params import parse_time
from sightline.server._state import project_of, state_of
from sightline.store import Dataset, SpanQuery
from sightline.store.base import TraceStore

router = APIRouter(prefix="/api/v1", tags=["datasets"])

_MAX_ROWS = 10_000
_PAGE = 500


class SpanFilter(BaseModel):
    """Which spans become rows (the filters of ``GET /api/v1/spans``)."""

    model_config = ConfigDict(extra="forbid")

    from_: str | None = Field(None, alias="from")
    to: str | None = None
    kind: str = "llm"
    model: str | None = Field(None, max_length=256)
    user_id: str | None = Field(None, max_length=256)
    session_id: str | None = Field(None, max_length=256)
    trace_id: str | None = Field(None, pattern="^[0-9a-fA-F]{32}$")
    status: str | None = None
    q: str | None = Field(None, max_length=1000)


class DatasetIn(BaseModel):
    """A dataset to save from stored spans."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    filter: SpanFilter = Field(default_factory=lambda: SpanFilter.model_validate({}))
    limit: int = Field(1000, ge=1, le=_MAX_ROWS, description="Most rows (newest spans first).")


def _build_rows(
    store: TraceStore, query: SpanQuery, limit: int
) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    skipped = 0
    cursor = None
    while len(rows) < limit:
        page = store.list_spans(
            SpanQuery(**{**_query_fields(query), "cursor": cursor, "limit": _PAGE})
        )
        traces = store.get_traces(query.project_id, sorted({s.trace_id for s in page.spans}))
        for s in page.spans:
            case = case_from_span(s, [x.span for x in traces.get(s.trace_id, ())])
            if not case.question or case.answer is None:
                skipped += 1
                continue
            meta = {k: v for k, v in case.metadata.items() if v is not None}
            rows.append(
                {
                    "id": case.case_id,
                    "question": case.question,
                    "contexts": list(case.contexts),
                    "answer": case.answer,
                    "metadata": meta,
                }
            )
            if len(rows) >= limit:
                break
        cursor = page.next_cursor
        if cursor is None:
            break
    return rows, skipped


def _query_fields(q: SpanQuery) -> dict[str, Any]:
    return {
        f: getattr(q, f)
        for f in (
            "project_id",
            "start",
            "end",
            "kind",
            "model",
            "user_id",
            "session_id",
            "trace_id",
            "status",
            "text",
        )
    }


@router.post("/datasets", status_code=201, summary="Save a dataset from a span filter")
async def create_dataset(
    body: DatasetIn, request: Request, project_id: str = Depends(project_of)
) -> dict[str, Any]:
    """One row per matching span, newest first.

    A row holds question, contexts (from the trace's retrieval spans), answer, id
    (``trace_id:span_id``) and metadata. Spans without a question or an answer are skipped
    (``num_skipped``).
    """
    f = body.filter
    if f.kind not in SPAN_KINDS:
        raise ConfigError(f"filter.kind: expected one of {', '.join(SPAN_KINDS)}")
    if f.status is not None and f.status not in ("ok", "error", "unset"):
        raise ConfigError("filter.status: expected ok, error or unset")
    start, end = parse_time(f.from_, "filter.from"), parse_time(f.to, "filter.to")
    if start is not None and end is not None and start >= end:
        # saved, a reversed range is an empty dataset that looks like a real one
        raise ConfigError("filter.from must be before filter.to")
    query = SpanQuery(
        project_id=project_id,
        start=start,
        end=end,
        kind=f.kind,
        model=f.model,
        user_id=f.user_id,
        session_id=f.session_id,
        trace_id=f.trace_id.lower() if f.trace_id else None,
        status=f.status,
        text=f.q,
    )
    store = state_of(request).store
    rows, skipped = await run_in_threadpool(_build_rows, store, query, body.limit)
    ds = Dataset(
        project_id=project_id,
        dataset_id=secrets.token_hex(8),
        name=body.name,
        filter=f.model_dump(by_alias=True, exclude_none=True),
        num_rows=len(rows),
        created_at=datetime.now(UTC),
    )
    await run_in_threadpool(store.create_dataset, ds, rows)
    return {**ds.to_dict(), "num_skipped": skipped}


@router.get("/datasets", summary="List datasets, newest first")
async def list_datasets(request: Request, project_id: str = Depends(project_of)) -> dict[str, Any]:
    """Every dataset of the project (without rows)."""
    found = await run_in_threadpool(state_of(request).store.list_datasets, project_id)
    return {"data": [d.to_dict() for d in found]}


@router.get("/datasets/{dataset_id}", summary="A dataset's description")
async def get_dataset(
    request: Request,
    dataset_id: str = Path(pattern="^[0-9a-f]{16}$"),
    project_id: str = Depends(project_of),
) -> dict[str, Any]:
    """Name, filter, row count."""
    ds = await run_in_threadpool(state_of(request).store.get_dataset, project_id, dataset_id)
    if ds is None:
        raise NotFound(f"dataset {dataset_id} not found")
    return ds.to_dict()


@router.get(
    "/datasets/{dataset_id}/rows",
    summary="Download a dataset as JSONL",
    response_class=Response,
)
async def get_dataset_rows(
    request: Request,
    dataset_id: str = Path(pattern="^[0-9a-f]{16}$"),
    project_id: str = Depends(project_of),
) -> Response:
    """The rows, one JSON object a line: the input of ``sightline eval run``."""
    store = state_of(request).store
    ds = await run_in_threadpool(store.get_dataset, project_id, dataset_id)
    if ds is None:
        raise NotFound(f"dataset {dataset_id} not found")
    rows = await run_in_threadpool(store.get_dataset_rows, project_id, dataset_id)
    body = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    return Response(
        body,
        media_type="application/x-ndjson",
        headers={"content-disposition": f'attachment; filename="{dataset_id}.jsonl"'},
    )
