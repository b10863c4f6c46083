"""The records every stage shares.

A :class:`Span` is one normalised operation of an LLM application (an LLM call, a retrieval, a
tool call...), whatever convention it arrived in: OpenTelemetry GenAI, OpenInference, OpenLLMetry
or Sightline's native JSON. Field names here are the names of the REST API and the store columns.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal, get_args

__all__ = [
    "SCORE_SOURCES",
    "SPAN_FIELDS",
    "SPAN_KINDS",
    "SEVERITIES",
    "Score",
    "ScoreSource",
    "Severity",
    "Span",
    "SpanKind",
    "SpanStatus",
]

SpanKind = Literal[
    "llm", "retrieval", "embedding", "rerank", "tool", "chain", "agent", "guardrail", "other"
]
SPAN_KINDS: tuple[str, ...] = get_args(SpanKind)

SpanStatus = Literal["ok", "error", "unset"]

Severity = Literal["P0", "P1", "P2", "P3"]
SEVERITIES: tuple[str, ...] = get_args(Severity)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """One normalised span. Times are UTC; token counts follow the pricing convention.

    ``input_tokens`` includes cached input tokens (``cached_input_tokens`` and
    ``cache_write_tokens`` are parts of it) and ``output_tokens`` includes ``reasoning_tokens``,
    whatever the sending convention did, so costs and sums never count a token twice.
    """

    project_id: str
    trace_id: str
    """32 lowercase hex characters."""
    span_id: str
    """16 lowercase hex characters."""
    parent_span_id: str | None = None
    name: str = ""
    kind: SpanKind = "other"
    start_time: datetime
    end_time: datetime
    duration_ms: float = 0.0
    status: SpanStatus = "unset"
    status_message: str | None = None
    service_name: str | None = None
    service_version: str | None = None
    environment: str | None = None
    operation: str | None = None
    """``gen_ai.operation.name`` (chat, embeddings, execute_tool...)."""
    provider: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    model: str | None = None
    """The response model when known, else the request model: what metrics group by."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    ttft_ms: float | None = None
    """Time to first token."""
    tpot_ms: float | None = None
    """Time per output token after the first."""
    finish_reason: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    is_streaming: bool | None = None
    user_id: str | None = None
    session_id: str | None = None
    tenant_id: str | None = None
    feature: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    variant: str | None = None
    input: str | None = None
    """Prompt text: the last user message, or the raw input value."""
    output: str | None = None
    input_messages: list[dict[str, Any]] | None = None
    output_messages: list[dict[str, Any]] | None = None
    documents: list[dict[str, Any]] | None = None
    """Retrieved documents: ``{"id", "content", "score", "metadata"}``."""
    cost_usd: float | None = None
    attributes: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Every attribute not mapped to a field above, and span events under ``events``."""
    resource_attributes: dict[str, Any] = dataclasses.field(default_factory=dict)
    ingest_notes: list[str] = dataclasses.field(default_factory=list)
    """What ingestion repaired or could not do (``unknown_model``, ``negative_duration``...)."""

    def to_dict(self) -> dict[str, Any]:
        """Return the span as JSON-ready values (times as ISO-8601 strings)."""
        out = {f: getattr(self, f) for f in SPAN_FIELDS}
        out["start_time"] = self.start_time.isoformat()
        out["end_time"] = self.end_time.isoformat()
        return out


SPAN_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Span))


ScoreSource = Literal["user", "human", "evaluator"]
SCORE_SOURCES: tuple[str, ...] = get_args(ScoreSource)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Score:
    """A judgement of a trace or span: user feedback, a human label or an evaluator's score."""

    project_id: str
    score_id: str
    trace_id: str
    span_id: str | None = None
    name: str
    """``feedback`` for end-user feedback; the evaluator's metric name otherwise."""
    value: float | None = None
    label: str | None = None
    passed: bool | None = None
    explanation: str | None = None
    """The evaluator's reasoning, or the user's comment."""
    source: ScoreSource
    evaluator: str | None = None
    evaluator_version: str | None = None
    user_id: str | None = None
    created_at: datetime
    details: dict[str, Any] | None = None
    """Extra figures kept with the score (an LLM judge's tokens and cost, ROUGE-L...)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["created_at"] = self.created_at.isoformat()
        return d
