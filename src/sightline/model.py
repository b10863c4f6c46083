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
    "LogRecord",
    "Release",
    "ALERT_STATUSES",
    "MAX_SCORE_NAME_CHARS",
    "SCORE_NAME_PATTERN",
    "SCORE_SOURCES",
    "SPAN_FIELDS",
    "SPAN_KINDS",
    "SEVERITIES",
    "Alert",
    "AlertEvent",
    "AlertStatus",
    "Delivery",
    "DriftResult",
    "PromptVersion",
    "Outcome",
    "RuleVersion",
    "Score",
    "ScoreSource",
    "Severity",
    "Span",
    "SpanKind",
    "SpanStatus",
    "Silence",
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
MAX_SCORE_NAME_CHARS = 128
SCORE_NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"
"""A score name a person may give: any text without control characters, so a human label can
take the name of any evaluator, those reported over OpenTelemetry (``Relevance``, ``answer
relevancy``...) included."""


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
    span_start_time: datetime | None = dataclasses.field(default=None, compare=False, repr=False)
    """The scored span's start time, given by a writer that has the span at hand (an
    evaluator): a store keeps it so that score metrics, which count a score in its span's
    time, need not join the spans; it looks the span up itself when this is None. A hint for
    the store, not part of :meth:`to_dict` or of the scores it returns."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.compare}
        d["created_at"] = self.created_at.isoformat()
        return d


# -- monitoring: alert rules, alerts and their history, deliveries, drift results --------------

AlertStatus = Literal["pending", "firing", "resolved", "cancelled"]
ALERT_STATUSES: tuple[str, ...] = get_args(AlertStatus)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RuleVersion:
    """One version of an alert rule; every change appends one (a deletion too)."""

    project_id: str
    name: str
    version: int
    spec: dict[str, Any]
    """The rule as written (YAML or API body), validated."""
    source: str
    """``api``, ``file`` (the ``--alerts`` file) or ``default`` (the shipped pack)."""
    deleted: bool = False
    created_at: datetime
    author: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One alert: a (rule, group) that went pending, maybe fired, and ended.

    Deduplicated per (rule, group): while one is active (pending or firing) the rule's breaches
    in that group update it instead of opening another.
    """

    project_id: str
    alert_id: str
    rule: str
    rule_version: int
    rule_type: str
    severity: Severity
    group: dict[str, Any]
    """The group's dimension values (``{"model": "gpt-4o"}``); empty without ``group_by``."""
    group_key: str
    status: AlertStatus
    value: float | None = None
    threshold: float | None = None
    window: str | None = None
    pending_since: datetime
    started_at: datetime | None = None
    """When it fired."""
    ended_at: datetime | None = None
    """When it resolved (or was cancelled while pending)."""
    last_evaluated_at: datetime
    last_notified_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    ack_expires_at: datetime | None = None
    summary: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Pending or firing."""
        return self.status in ("pending", "firing")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return _jsonable(self)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AlertEvent:
    """One transition or action in an alert's history."""

    project_id: str
    event_id: str
    alert_id: str
    rule: str
    kind: str
    """pending, firing, repeat, resolved, cancelled, acknowledged, silenced."""
    at: datetime
    value: float | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return _jsonable(self)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Silence:
    """Mutes notifications of alerts whose labels match, from ``starts_at`` until ``ends_at``."""

    project_id: str
    silence_id: str
    matchers: dict[str, str]
    """Label equalities: ``rule``, ``severity``, a rule label or a group dimension."""
    starts_at: datetime
    ends_at: datetime
    created_by: str | None = None
    comment: str | None = None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return _jsonable(self)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One notification of one alert event to one channel, with its attempts."""

    project_id: str
    delivery_id: str
    alert_id: str
    channel: str
    event: str
    """firing, resolved (a repeat is a firing)."""
    status: str
    """pending, delivered or failed."""
    attempts: int = 0
    last_error: str | None = None
    payload: dict[str, Any] = dataclasses.field(default_factory=dict)
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return _jsonable(self)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DriftResult:
    """What one drift detector found comparing a current window with a baseline."""

    project_id: str
    result_id: str
    job: str
    detector: str
    feature: str
    """What was compared: ``prompt``, ``response``, ``latency_ms``..."""
    created_at: datetime
    baseline_start: datetime | None = None
    baseline_end: datetime | None = None
    current_start: datetime
    current_end: datetime
    num_baseline: int
    num_current: int
    score: float | None
    threshold: float | None = None
    p_value: float | None = None
    fired: bool
    status: str = "ok"
    """``ok``, or ``insufficient_data`` when a window had too few samples."""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Examples that explain the score (emerging topics, drifted prompts...)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return _jsonable(self)


# -- prompt registry ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PromptVersion:
    """One version of a registered prompt (or evaluation rubric); versions are never edited."""

    project_id: str
    name: str
    version: int
    """1, 2, 3... per (project, name), assigned by the store."""
    kind: str = "prompt"
    """``prompt``, or ``rubric`` for an LLM judge's grading instruction."""
    type: str = "text"
    """``text`` (template is a string) or ``chat`` (template is a list of messages)."""
    template: str | list[dict[str, Any]]
    """``{{variable}}`` placeholders, in the text or in each message's content."""
    model: str | None = None
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Model parameters to call with (temperature, max_tokens...)."""
    labels: list[str] = dataclasses.field(default_factory=list)
    """The labels pointing at this version when it was read (``production``, ``staging``...)."""
    author: str | None = None
    message: str | None = None
    """What changed, like a commit message."""
    created_at: datetime

    @property
    def variables(self) -> list[str]:
        """The template's variable names."""
        from sightline.prompts import variables_of

        return variables_of(self.template)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values, with the template's variables."""
        d = _jsonable(self)
        d["variables"] = self.variables
        return d


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What a trace or a session led to, as the application reports it later.

    ``value`` > 0 is a success (converted, resolved; or an amount), ``value`` <= 0 a recorded
    failure. At least one of ``trace_id`` and ``session_id`` is set.
    """

    project_id: str
    outcome_id: str
    trace_id: str | None = None
    session_id: str | None = None
    name: str
    """``converted``, ``task_completed``, ``ticket_resolved``... (lowercase)."""
    value: float = 1.0
    user_id: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return _jsonable(self)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LogRecord:
    """One OTLP log record; ``trace_id``/``span_id`` link it to its span when set."""

    project_id: str
    time: datetime
    observed_time: datetime | None = None
    severity_number: int | None = None
    severity_text: str | None = None
    body: str | None = None
    event_name: str | None = None
    """``gen_ai.user.message``, ``gen_ai.choice``... for GenAI content events."""
    attributes: dict[str, Any] = dataclasses.field(default_factory=dict)
    resource_attributes: dict[str, Any] = dataclasses.field(default_factory=dict)
    service_name: str | None = None
    scope: str | None = None
    trace_id: str | None = None
    span_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return _jsonable(self)


ReleaseKind = Literal["manual", "service_version", "model", "prompt_version"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """A release marker: posted, or recorded when a new version first appears in spans."""

    project_id: str
    release_id: str
    kind: ReleaseKind
    service: str | None = None
    """The service (or, for model and prompt markers, the model or prompt name)."""
    version: str
    git_sha: str | None = None
    at: datetime
    notes: str | None = None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return _jsonable(self)


def _jsonable(record: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        v = getattr(record, f.name)
        out[f.name] = v.isoformat() if isinstance(v, datetime) else v
    return out
