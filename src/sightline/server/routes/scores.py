"""Scores: list them (evaluators', people's, end users'), and record human labels."""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from sightline.errors import ConfigError, NotFound
from sightline.evals import HUMAN_LABELS, human_passed
from sightline.model import MAX_SCORE_NAME_CHARS, SCORE_NAME_PATTERN, SCORE_SOURCES, Score
from sightline.server._params import check_window, known_query, parse_time
from sightline.server._state import project_of, state_of
from sightline.store import ScoreQuery

router = APIRouter(prefix="/api/v1", tags=["scores"])

_MAX_LIMIT = 1000


@router.get("/scores", summary="List scores, newest first", dependencies=[Depends(known_query)])
async def list_scores(
    request: Request,
    project_id: str = Depends(project_of),
    trace_id: str | None = Query(None, pattern="^[0-9a-fA-F]{32}$"),
    span_id: str | None = Query(None, pattern="^[0-9a-fA-F]{16}$"),
    name: str | None = Query(
        None, max_length=MAX_SCORE_NAME_CHARS, description="Score name (relevance...)."
    ),
    source: str | None = Query(None, description="evaluator, human or user"),
    label: str | None = Query(None, max_length=100),
    evaluator: str | None = Query(None, max_length=100),
    from_: str | None = Query(None, alias="from", description="Created at or after."),
    to: str | None = Query(None, description="Created before."),
    limit: int = Query(100, ge=1, le=_MAX_LIMIT),
    cursor: str | None = Query(None, max_length=200),
) -> dict[str, Any]:
    """Scores matching every given filter; follow ``next_cursor`` for the next page."""
    if source is not None and source not in SCORE_SOURCES:
        raise ConfigError(f"source: expected one of {', '.join(SCORE_SOURCES)}")
    start, end = parse_time(from_, "from"), parse_time(to, "to")
    check_window(start, end)
    query = ScoreQuery(
        project_id=project_id,
        trace_id=trace_id.lower() if trace_id else None,
        span_id=span_id.lower() if span_id else None,
        name=name,
        source=source,
        label=label,
        evaluator=evaluator,
        start=start,
        end=end,
        limit=limit,
        cursor=cursor,
    )
    page = await run_in_threadpool(state_of(request).store.query_scores, query)
    return {"data": [s.to_dict() for s in page.scores], "next_cursor": page.next_cursor}


class HumanScoreIn(BaseModel):
    """A person's judgement of an answer (a span, or a whole trace)."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str | None = Field(None, pattern="^[0-9a-fA-F]{32}$")
    span_id: str | None = Field(None, pattern="^[0-9a-fA-F]{16}$")
    name: str = Field(
        "label",
        max_length=MAX_SCORE_NAME_CHARS,
        pattern=SCORE_NAME_PATTERN,
        description="What is judged: an evaluator's score name (faithfulness, relevance...) to "
        "validate that evaluator against people, or any name of your own.",
    )
    label: Literal["correct", "incorrect", "harmful", "off-topic", "legitimate"] | None = None
    value: float | None = Field(None, ge=0, le=1, description="A rubric score in [0, 1].")
    explanation: str | None = Field(None, max_length=10_000)
    user_id: str | None = Field(None, max_length=256, description="Who labelled.")

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("value must be a finite number")
        return v


@router.post("/scores", status_code=201, summary="Record a human label")
async def post_score(
    body: HumanScoreIn, request: Request, project_id: str = Depends(project_of)
) -> dict[str, Any]:
    """Store a human label as a score with source ``human``.

    ``label`` is one of correct, incorrect, harmful, off-topic, legitimate (a guardrail's
    block reviewed as wrong); ``value`` a rubric score in
    [0, 1] (passes at 0.5); give one or both. A ``span_id`` must be stored.
    """
    if body.label is None and body.value is None:
        raise ConfigError(
            "give a label (correct, incorrect, harmful, off-topic, legitimate) or a value"
        )
    st = state_of(request)
    trace_id = body.trace_id.lower() if body.trace_id else None
    span_id = body.span_id.lower() if body.span_id else None
    if span_id is not None:
        found = await run_in_threadpool(st.store.find_span_trace, project_id, span_id)
        if found is None:
            raise NotFound(f"span {span_id} not found")
        if trace_id is not None and trace_id != found:
            raise ConfigError(f"span {span_id} belongs to trace {found}, not {trace_id}")
        trace_id = found
    if trace_id is None:
        raise ConfigError("give trace_id or span_id")
    value = body.value
    if value is None and body.label is not None:
        value = 1.0 if HUMAN_LABELS[body.label] else 0.0
    score = Score(
        project_id=project_id,
        score_id=secrets.token_hex(8),
        trace_id=trace_id,
        span_id=span_id,
        name=body.name,
        value=value,
        label=body.label,
        passed=human_passed(body.label, value),
        explanation=body.explanation,
        source="human",
        user_id=body.user_id,
        created_at=datetime.now(UTC),
    )
    await run_in_threadpool(st.store.add_scores, [score])
    return score.to_dict()
