"""POST /api/v1/feedback: end-user feedback on an answer, stored as a score (source "user")."""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from sightline.errors import ConfigError, NotFound
from sightline.model import Score
from sightline.server._state import project_of, state_of

router = APIRouter(prefix="/api/v1", tags=["feedback"])


class FeedbackIn(BaseModel):
    """Feedback on a trace (an answer) or one span of it."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str | None = Field(None, pattern="^[0-9a-fA-F]{32}$")
    span_id: str | None = Field(None, pattern="^[0-9a-fA-F]{16}$")
    score: float = Field(
        description="1 thumbs up, -1 thumbs down, 0 neutral; any value in "
        "[-1, 1] for graded feedback.",
        ge=-1,
        le=1,
    )
    comment: str | None = Field(None, max_length=10_000)
    user_id: str | None = Field(None, max_length=256)
    name: str = Field("feedback", max_length=100, pattern="^[a-z0-9_.-]+$")

    @field_validator("score")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("score must be a finite number")
        return v


@router.post("/feedback", status_code=201, summary="Record end-user feedback")
async def post_feedback(
    body: FeedbackIn, request: Request, project_id: str = Depends(project_of)
) -> dict[str, Any]:
    """Store feedback as a score with source ``user``; give ``trace_id``, or a stored ``span_id``.

    The trace need not be stored yet: feedback often arrives before the app's exporter has sent
    the spans.
    """
    st = state_of(request)
    trace_id = body.trace_id.lower() if body.trace_id else None
    span_id = body.span_id.lower() if body.span_id else None
    if trace_id is None:
        if span_id is None:
            raise ConfigError("give trace_id or span_id")
        trace_id = await run_in_threadpool(st.store.find_span_trace, project_id, span_id)
        if trace_id is None:
            raise NotFound(f"span {span_id} not found; give its trace_id")
    score = Score(
        project_id=project_id,
        score_id=secrets.token_hex(8),
        trace_id=trace_id,
        span_id=span_id,
        name=body.name,
        value=body.score,
        label="positive" if body.score > 0 else "negative" if body.score < 0 else "neutral",
        passed=body.score > 0,
        explanation=body.comment,
        source="user",
        user_id=body.user_id,
        created_at=datetime.now(UTC),
    )
    await run_in_threadpool(st.store.add_scores, [score])
    return score.to_dict()
