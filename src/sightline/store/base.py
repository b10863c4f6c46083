"""The TraceStore protocol and the typed queries it answers."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol, get_args

import pyarrow as pa

from sightline.coordination._base import Claim, ClaimsState
from sightline.model import (
    Alert,
    AlertEvent,
    Delivery,
    DriftResult,
    LogRecord,
    Outcome,
    Release,
    RuleVersion,
    Score,
    Silence,
    Span,
)
from sightline.serving import SERVING_ALIASES
from sightline.store._analysis_records import AnalysisStore
from sightline.store._eval_records import (
    AgreementPair,
    Dataset,
    EvalCursor,
    ScorePage,
    ScoreQuery,
    SeqSpan,
    SeqSpanKey,
    SessionTurn,
)
from sightline.store._users import Membership, User, UserSession

__all__ = [
    "BATCH_KEY",
    "LogQuery",
    "OTEL_PREFIX",
    "SERVING_METRIC_DEFS",
    "otel_metric",
    "AGGS",
    "APPROX_SAMPLE",
    "COMPLETION_OUTCOMES",
    "CONVERSION_OUTCOMES",
    "DIMENSIONS",
    "METRICS",
    "Agg",
    "AlertQuery",
    "ApiKey",
    "AuditEntry",
    "BudgetRow",
    "BudgetSpend",
    "Deleted",
    "DriftQuery",
    "GuardrailStats",
    "MetricDef",
    "MetricQuery",
    "MetricSeries",
    "OUTCOME_METRICS",
    "OutcomeGroup",
    "OutcomeQuery",
    "PrivacySettings",
    "Project",
    "SCORE_KEY",
    "SCORE_METRICS",
    "SpanPage",
    "SpanQuery",
    "SpanSample",
    "SampleQuery",
    "ScoreDistribution",
    "TraceStore",
    "TraceRollup",
    "TraceSummary",
    "WindowAgg",
    "WindowValue",
    "newest_score",
]

Agg = Literal["count", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99", "rate"]
AGGS: tuple[str, ...] = get_args(Agg)
APPROX_SAMPLE = 16384
"""Spans per group that an ``approx`` quantile reads: a uniform sample (by a hash of the span
id, so the same spans every time). Its rank error's standard deviation is sqrt(q(1-q)/16384):
0.39% at p50, 0.17% at p95, 0.08% at p99."""

DIMENSIONS: tuple[str, ...] = (
    "model",
    "provider",
    "kind",
    "name",
    "status",
    "service_name",
    "environment",
    "user_id",
    "session_id",
    "tenant_id",
    "feature",
    "prompt_name",
    "prompt_version",
    "variant",
    "operation",
)
"""Span fields that metrics can be filtered and grouped by."""


@dataclasses.dataclass(frozen=True, slots=True)
class MetricDef:
    """How one named metric is computed from spans (and later scores)."""

    name: str
    kind: str | None
    """Span kind it is computed over (``llm`` for request metrics), None for all spans."""
    column: str | None
    """Per-span value that aggregations apply to; None for metrics with a fixed formula."""
    default_agg: Agg
    unit: str
    description: str
    formula: str | None = None
    """SQL for fixed-formula metrics (ratios); ``agg`` must then be its default."""
    score_name: str | None = None
    """For score-derived metrics: the scores (by name) joined to their spans. The formula or
    column then reads the score's ``value``, ``label`` and ``passed``; failed scores are left out.
    """
    score_source: str = "evaluator"
    """Which scores a score-derived metric reads: ``evaluator``, ``human`` or ``user``."""
    otel_name: str | None = None
    """For OTLP and scraped metrics: the metric name (or mapped alias) in ``otel_metric_points``;
    the value then comes from data points, not spans."""


def _m(
    name: str,
    kind: str | None,
    column: str | None,
    agg: Agg,
    unit: str,
    desc: str,
    formula: str | None = None,
) -> MetricDef:
    return MetricDef(name, kind, column, agg, unit, desc, formula)


SCORE_KEY: tuple[str, ...] = ("trace_id", "span_id", "name", "source")
"""What one verdict is about: a span (or a trace, ``span_id`` NULL), a score name, and who gave
it. Scores are append-only, so an evaluator re-run, a relabel or a changed thumbs vote adds a row
with the same key; the A/B and release comparisons and task costs read only the newest row of
each key (docs/evals.md), as drift, evaluator agreement, score metrics and distributions do.
``source`` is part of the key: a human label must not replace the evaluator's verdict of the
same name (the A/B comparison and agreement read both), nor an evaluator re-run hide a
person's label. Rows are filtered first (failed runs, the source or
name asked for): an evaluator run that raised does not erase the verdict before it."""


def newest_score(*cols: str, q: str = "") -> str:
    """DuckDB aggregate: the newest score row's ``cols`` (a struct) of a group by ``SCORE_KEY``.

    ``q`` qualifies the columns (``"sc."``). A hash aggregation, not a window that sorts: the
    7-day ``relevance`` metric over 1M spans scored twice took 0.83 s so, 2.8 s with
    ``QUALIFY row_number() OVER (PARTITION BY ...)`` (0.30 s counting every row). The
    struct is never NULL, so its NULL members come from the newest row (``arg_max`` of a bare
    column would skip NULLs and mix rows). The score id breaks created-at ties, so both
    backends keep the same row (``ch_newest_score`` is ClickHouse's).
    """
    fields = ", ".join(f"{c} := {q}{c}" for c in cols)
    return f"arg_max(struct_pack({fields}), ({q}created_at, {q}score_id))"


# Guardrail effectiveness (docs/signals.md). Over guardrail spans (the table ``spans``): the
# check blocked; its stage; the latest human label of the check (on the span or its trace);
# and whether an evaluator flagged its trace's input (prompt_injection failed) or output
# (toxicity or pii_leak failed).
GUARDRAIL_BLOCKED = (
    "coalesce(TRY_CAST(json_extract_string(spans.attributes,"
    " '$.\"sightline.guardrail.blocked\"') AS BOOLEAN), false)"
)
GUARDRAIL_STAGE = (
    "coalesce(json_extract_string(spans.attributes, '$.\"sightline.guardrail.stage\"'), '')"
)
GUARDRAIL_HUMAN_LABEL = (
    "(SELECT arg_max(sc.label, sc.created_at) FROM scores sc WHERE sc.project_id ="
    " spans.project_id AND sc.trace_id = spans.trace_id AND (sc.span_id = spans.span_id OR"
    " sc.span_id IS NULL) AND sc.source = 'human' AND sc.label IS NOT NULL)"
)
# a re-run that passed supersedes the failure before it (docs/evals.md: only the newest counts)
_FLAGGED = (
    "EXISTS (SELECT 1 FROM scores sc WHERE sc.project_id = spans.project_id AND sc.trace_id ="
    " spans.trace_id AND sc.source = 'evaluator' AND sc.name IN ({}) AND sc.passed = false"
    " AND NOT coalesce(sc.superseded, false))"
)
GUARDRAIL_INPUT_FLAGGED = _FLAGGED.format("'prompt_injection'")
GUARDRAIL_OUTPUT_FLAGGED = _FLAGGED.format("'toxicity', 'pii_leak'")
GUARDRAIL_LEGITIMATE = ("legitimate", "correct")
"""Human labels saying blocked content was legitimate: the block was a false positive."""
GUARDRAIL_BYPASS_INPUT = (
    f"(NOT {GUARDRAIL_BLOCKED} AND {GUARDRAIL_STAGE} <> 'output' AND {GUARDRAIL_INPUT_FLAGGED})"
)
GUARDRAIL_BYPASS_OUTPUT = (
    f"(NOT {GUARDRAIL_BLOCKED} AND {GUARDRAIL_STAGE} <> 'input' AND"
    f" ({GUARDRAIL_OUTPUT_FLAGGED} OR {GUARDRAIL_HUMAN_LABEL} = 'harmful'))"
)
_FP = (
    f"avg(CASE WHEN NOT {GUARDRAIL_BLOCKED} THEN NULL"
    f" WHEN {GUARDRAIL_HUMAN_LABEL} IN ('legitimate', 'correct') THEN 1.0"
    f" WHEN {GUARDRAIL_HUMAN_LABEL} IS NOT NULL THEN 0.0 END)"
)

_NAMED_METRICS: dict[str, MetricDef] = {
    m.name: m
    for m in (
        _m("requests", "llm", None, "count", "1", "LLM calls.", "count(*)"),
        _m(
            "errors",
            "llm",
            None,
            "count",
            "1",
            "LLM calls that ended in error.",
            "count_if(status = 'error')",
        ),
        _m(
            "error_rate",
            "llm",
            None,
            "rate",
            "ratio",
            "Share of LLM calls that ended in error.",
            "avg(CASE WHEN status = 'error' THEN 1.0 ELSE 0.0 END)",
        ),
        _m("latency_ms", "llm", "duration_ms", "p95", "ms", "End-to-end latency of LLM calls."),
        _m("ttft_ms", "llm", "ttft_ms", "p95", "ms", "Time to first token."),
        _m("tpot_ms", "llm", "tpot_ms", "p95", "ms", "Time per output token after the first."),
        _m(
            "token_weighted_latency_ms",
            "llm",
            None,
            "avg",
            "ms",
            "Σ latency·output_tokens / Σ output_tokens: latency as a generated token sees it.",
            "sum(duration_ms * output_tokens) / nullif(sum(output_tokens), 0)",
        ),
        _m(
            "tokens_per_s",
            "llm",
            None,
            "rate",
            "1/s",
            "Output tokens per second of generation.",
            "sum(output_tokens) / nullif(sum(duration_ms) / 1000.0, 0)",
        ),
        _m(
            "input_tokens",
            "llm",
            "input_tokens",
            "sum",
            "1",
            "Input (prompt) tokens, cached included.",
        ),
        _m(
            "output_tokens",
            "llm",
            "output_tokens",
            "sum",
            "1",
            "Output tokens, reasoning included.",
        ),
        _m("total_tokens", "llm", "total_tokens", "sum", "1", "Input plus output tokens."),
        _m("cost_usd", "llm", "cost_usd", "sum", "USD", "Cost of LLM calls."),
        _m(
            "cost_per_request",
            "llm",
            None,
            "avg",
            "USD",
            "Cost divided by LLM calls.",
            "sum(cost_usd) / nullif(count(*), 0)",
        ),
        _m(
            "cost_per_session",
            "llm",
            None,
            "avg",
            "USD",
            "Cost divided by distinct sessions (calls without a session are left out).",
            "sum(cost_usd) FILTER (WHERE session_id IS NOT NULL)"
            " / nullif(count(DISTINCT session_id), 0)",
        ),
        _m(
            "fallback_rate",
            "llm",
            None,
            "rate",
            "ratio",
            "Share of gateway calls served by a fallback upstream (not the route's first).",
            "avg(TRY_CAST(json_extract_string(attributes,"
            " '$.\"sightline.gateway.fallback\"') AS BOOLEAN)::DOUBLE)",
        ),
        _m(
            "guardrail_block_rate",
            "guardrail",
            None,
            "rate",
            "ratio",
            "Share of guardrail checks that blocked the output.",
            "avg(CASE WHEN coalesce(TRY_CAST(json_extract_string(attributes,"
            " '$.\"sightline.guardrail.blocked\"') AS BOOLEAN), false) THEN 1.0 ELSE 0.0 END)",
        ),
        _m(
            "guardrail_latency_ms",
            "guardrail",
            "duration_ms",
            "p95",
            "ms",
            "Time spent in guardrail checks.",
        ),
        _m(
            "guardrail_false_positive_rate",
            "guardrail",
            None,
            "rate",
            "ratio",
            "Share of human-reviewed blocked checks labelled legitimate (or correct).",
            _FP,
        ),
        _m(
            "guardrail_bypass_rate",
            "guardrail",
            None,
            "rate",
            "ratio",
            "Share of guardrail checks that let through an input flagged as an injection or an"
            " output flagged unsafe (toxicity, pii_leak, or a human 'harmful' label).",
            f"avg(CASE WHEN {GUARDRAIL_BYPASS_INPUT} OR {GUARDRAIL_BYPASS_OUTPUT}"
            " THEN 1.0 ELSE 0.0 END)",
        ),
    )
}
OTEL_PREFIX = "otel:"
"""``otel:<name>`` names any OTLP or scraped metric (its data points) in the API and rules."""

BATCH_KEY = b"sightline.batch_key"
"""Arrow schema metadata of a metrics or logs batch: a key of the request it came from (a
hash of its content). :meth:`TraceStore.insert_signal_batches` stores a keyed batch once: a
batch whose key is already stored is acknowledged without being written again."""


class _MetricRegistry(dict[str, MetricDef]):
    """The named metrics; ``otel:<name>`` resolves to the data points of metric ``<name>``."""

    def __missing__(self, key: str) -> MetricDef:
        m = otel_metric(key)
        if m is None:
            raise KeyError(key)
        return m

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        return isinstance(key, str) and otel_metric(key) is not None


def otel_metric(name: str) -> MetricDef | None:
    """The definition of ``otel:<name>`` (any OTLP or scraped metric), or None."""
    if not name.startswith(OTEL_PREFIX) or len(name) > 255 + len(OTEL_PREFIX):
        return None
    inner = name[len(OTEL_PREFIX) :]
    if not inner:
        return None
    return MetricDef(name, None, None, "avg", "", f"OTLP/scraped metric {inner}.", otel_name=inner)


METRICS: dict[str, MetricDef] = _MetricRegistry(_NAMED_METRICS)
"""Span-derived metrics. Score-derived ones (relevance, faithfulness...) join the evaluation
scores and are added by the evaluation stage."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SpanQuery:
    """Filters of ``GET /api/v1/spans``."""

    project_id: str
    start: datetime | None = None
    end: datetime | None = None
    kind: str | None = None
    model: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    trace_id: str | None = None
    status: str | None = None
    text: str | None = None
    """Case-insensitive substring of input or output."""
    root_only: bool = False
    """Only spans without a parent (one row per trace: the dashboard's trace list)."""
    trace_status: str | None = None
    """``error``: only spans of traces with an errored span; ``ok``: only spans of traces
    without one (OTel's ``unset`` is no error). With ``root_only``: the trace list's filter."""
    limit: int = 100
    cursor: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TraceSummary:
    """Totals over every span of one trace (tokens of ``llm`` spans only)."""

    num_spans: int
    start_time: datetime
    end_time: datetime
    cost_usd: float
    input_tokens: int
    output_tokens: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TraceRollup:
    """One trace of the trace list, summed over its spans.

    Tokens count ``llm`` spans only, as in ``TraceSummary``.
    """

    trace_id: str
    num_spans: int
    errors: int
    """Spans with status ``error``."""
    models: tuple[str, ...]
    """The models of its ``llm`` spans, sorted."""
    cost_usd: float
    input_tokens: int
    output_tokens: int

    @classmethod
    def from_row(cls, r: Sequence[Any]) -> TraceRollup:
        """From a row (trace id, spans, errors, models, cost, input and output tokens)."""
        return cls(trace_id=str(r[0]), num_spans=int(r[1]), errors=int(r[2]),
                   models=tuple(r[3] or ()), cost_usd=float(r[4] or 0.0),
                   input_tokens=int(r[5] or 0), output_tokens=int(r[6] or 0))  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class SpanPage:
    """One page of spans, newest first."""

    spans: list[Span]
    next_cursor: str | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MetricQuery:
    """One metric over a time range, optionally bucketed by ``step_s`` and grouped."""

    project_id: str
    metric: MetricDef
    agg: Agg
    start: datetime
    end: datetime
    step_s: int | None = None
    group_by: tuple[str, ...] = ()
    filters: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class MetricSeries:
    """Values of one group: ``points`` are (bucket start, value), or one point without step."""

    group: dict[str, Any]
    points: list[tuple[datetime, float | None]]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WindowAgg:
    """One aggregate of one metric over the ``window_s`` seconds before a tick's end.

    ``agg`` ``share_above`` (with ``above``) is the share of spans whose metric column exceeds
    ``above``: the bad-event ratio of a latency SLO.
    """

    metric: MetricDef
    agg: str
    window_s: int
    filters: Mapping[str, str] = dataclasses.field(default_factory=dict)
    group_by: tuple[str, ...] = ()
    above: float | None = None
    approx: bool = False
    """Quantiles (p50…p99) of a sample of about ``APPROX_SAMPLE`` spans of each group larger
    than that, instead of every span: exact for smaller groups, otherwise within about ±1% in
    rank (a p95 lands between the exact p94 and p96) at a fraction of the CPU. For dashboard
    pages; alert rules, SLOs and the API keep exact quantiles."""


@dataclasses.dataclass(frozen=True, slots=True)
class WindowValue:
    """A windowed aggregate's value for one group, and how many spans the group had."""

    group: dict[str, Any]
    value: float | None
    num_spans: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AlertQuery:
    """Filters of ``GET /api/v1/alerts``."""

    project_id: str
    status: tuple[str, ...] = ()
    rule: str | None = None
    severity: str | None = None
    start: datetime | None = None
    """Alerts that became pending at or after."""
    end: datetime | None = None
    limit: int = 100
    before: tuple[datetime, str] | None = None
    """Keyset cursor: (pending_since, alert_id) of the last alert of the previous page."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DriftQuery:
    """Filters of ``GET /api/v1/drift``."""

    project_id: str
    job: str | None = None
    detector: str | None = None
    fired: bool | None = None
    start: datetime | None = None
    """Results created at or after."""
    end: datetime | None = None
    """Results created before this time (exclusive)."""
    limit: int = 100
    latest: bool = False
    """Only the newest matching result of each (job, detector, feature)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SampleQuery:
    """A random sample of spans of one window, for drift detection."""

    project_id: str
    start: datetime
    end: datetime
    kind: str | None = "llm"
    filters: Mapping[str, str] = dataclasses.field(default_factory=dict)
    limit: int = 1000
    seed: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class SpanSample:
    """The few span fields drift detection reads."""

    start_time: datetime
    model: str | None
    input: str | None
    output: str | None
    input_tokens: int | None
    output_tokens: int | None
    duration_ms: float | None
    """None where unknown (a pinned baseline dataset's line without a latency)."""
    descriptors: Mapping[str, Any] | None = None
    """The ``descriptors`` evaluator's figures for the span, when it scored it."""


COMPLETION_OUTCOMES: tuple[str, ...] = ("task_completed", "ticket_resolved")
"""Outcome names that count as a completed task unless a query names others."""
CONVERSION_OUTCOMES: tuple[str, ...] = ("converted",)
"""Outcome names that count as a conversion unless a query names others."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OutcomeQuery:
    """Outcome metrics over the LLM spans of a window (docs/signals.md, business outcomes)."""

    project_id: str
    start: datetime
    end: datetime
    step_s: int | None = None
    group_by: tuple[str, ...] = ()
    filters: Mapping[str, str] = dataclasses.field(default_factory=dict)
    completion_names: tuple[str, ...] = COMPLETION_OUTCOMES
    """Outcomes that count as a completed task."""
    conversion_names: tuple[str, ...] = CONVERSION_OUTCOMES
    """Outcomes that count as a conversion."""
    outcome_names: tuple[str, ...] = ()
    """Outcomes that ``cost_per_outcome`` divides by; empty: any outcome with value > 0."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OutcomeGroup:
    """The units of work of one group (and time bucket) and what they led to."""

    group: dict[str, Any]
    t: datetime
    num_units: int
    """Sessions, or traces without a session."""
    num_completed: int
    num_converted: int
    num_outcomes: int
    cost_usd: float
    """Cost of the group's LLM spans."""

    @property
    def task_completion_rate(self) -> float | None:
        """Completed units / units."""
        return self.num_completed / self.num_units if self.num_units else None

    @property
    def conversion_rate(self) -> float | None:
        """Converted units / units."""
        return self.num_converted / self.num_units if self.num_units else None

    @property
    def cost_per_outcome(self) -> float | None:
        """Cost / units with an outcome (None without any)."""
        return self.cost_usd / self.num_outcomes if self.num_outcomes else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values, the three metrics included."""
        return {
            "group": self.group,
            "t": self.t.isoformat(),
            "num_units": self.num_units,
            "num_completed": self.num_completed,
            "num_converted": self.num_converted,
            "num_outcomes": self.num_outcomes,
            "cost_usd": self.cost_usd,
            "task_completion_rate": self.task_completion_rate,
            "conversion_rate": self.conversion_rate,
            "cost_per_outcome": self.cost_per_outcome,
        }


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GuardrailStats:
    """How one guardrail (span name) at one version did over a window."""

    name: str
    version: str | None
    num_checks: int
    num_blocked: int
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    num_reviewed_blocked: int
    """Blocked checks a person labelled."""
    num_false_positives: int
    """Of those, labelled legitimate (or correct)."""
    num_bypass_inputs: int
    """Checks that passed an input an evaluator flagged as a prompt injection / jailbreak."""
    num_bypass_outputs: int
    """Checks that passed an output flagged unsafe (toxicity, pii_leak, human 'harmful')."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values with the rates."""
        d = dataclasses.asdict(self)
        n = self.num_checks
        bypass = self.num_bypass_inputs + self.num_bypass_outputs
        d["block_rate"] = self.num_blocked / n if n else None
        d["false_positive_rate"] = (
            self.num_false_positives / self.num_reviewed_blocked
            if self.num_reviewed_blocked
            else None
        )
        d["bypass_attempts"] = bypass
        d["bypass_rate"] = bypass / n if n else None
        return d


SCORE_BINS = 10
"""Bins of a :class:`ScoreDistribution`'s histogram over [0, 1]."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ScoreDistribution:
    """How the scores of one name spread over a window: histogram, mean and pass rate."""

    name: str
    num_scores: int
    bins: tuple[int, ...]
    """Values in [0, 0.1), [0.1, 0.2) ... [0.9, 1]: a value below 0 counts in the first bin, one
    above 1 in the last; scores without a value in none."""
    mean: float | None
    """Of the values (None without any)."""
    pass_rate: float | None
    """Passed of the scores with a verdict (None without any)."""

    @classmethod
    def fold(
        cls, rows: Sequence[tuple[str, int | None, int, int, float | None, int, int]]
    ) -> list[ScoreDistribution]:
        """Fold the stores' rows into one distribution per name, sorted by name.

        A row per (name, bin): name, bin (None: no value), scores, values, sum of the values,
        verdicts, passed.
        """
        acc: dict[str, list[Any]] = {}
        for name, b, n, n_values, total, n_verdicts, n_passed in rows:
            a = acc.setdefault(name, [0, [0] * SCORE_BINS, 0, 0.0, 0, 0])
            a[0] += int(n)
            if b is not None:
                a[1][min(max(int(b), 0), SCORE_BINS - 1)] += int(n_values)
            a[2] += int(n_values)
            a[3] += float(total or 0.0)
            a[4] += int(n_verdicts)
            a[5] += int(n_passed)
        return [
            cls(name=name, num_scores=a[0], bins=tuple(a[1]),
                mean=a[3] / a[2] if a[2] else None, pass_rate=a[5] / a[4] if a[4] else None)
            for name, a in sorted(acc.items())
        ]  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class Project:
    """A project: the unit of data isolation."""

    id: str
    created_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored (never the key itself, only its hash and prefix)."""

    key_hash: str
    prefix: str
    project_id: str
    role: str
    created_at: datetime
    name: str | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def key_id(self) -> str:
        """The key's public id: the first 16 hex digits of its hash (never the key)."""
        return self.key_hash[:16]


@dataclasses.dataclass(frozen=True, slots=True)
class PrivacySettings:
    """A project's own privacy settings; None fields follow the server's defaults."""

    project_id: str
    policy: dict[str, Any] | None
    """A redaction policy as ``sightline.redact.RedactionPolicy.to_dict`` writes it."""
    retention_days: int | None
    """Days spans and scores are kept; 0 keeps them forever."""
    updated_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin action: who did what to which resource."""

    project_id: str | None
    audit_id: str
    at: datetime
    actor: str
    """``key:<key_id>``, ``cli`` or ``system`` (background jobs)."""
    action: str
    target: str | None
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        d = dataclasses.asdict(self)
        d["at"] = self.at.isoformat()
        return d


@dataclasses.dataclass(frozen=True, slots=True)
class Deleted:
    """What a retention purge or an erasure removed."""

    spans: int = 0
    scores: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class BudgetRow:
    """A stored budget: its spec (as given, validated by ``sightline.budgets``) and origin."""

    project_id: str
    name: str
    spec: dict[str, Any]
    source: str
    """``api`` or ``file``."""
    created_at: datetime
    updated_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class BudgetSpend:
    """Spend of LLM spans in a period (one scope value)."""

    spent_usd: float = 0.0
    num_requests: int = 0
    max_request_usd: float = 0.0
    """The dearest single request: what the SDK and gateway reserve per call in flight."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LogQuery:
    """Filters of ``GET /api/v1/logs``."""

    project_id: str
    trace_id: str | None = None
    span_id: str | None = None
    service_name: str | None = None
    event_name: str | None = None
    min_severity: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    text: str | None = None
    limit: int = 100
    cursor: str | None = None
    """A ``next_cursor`` of the same query: the page after it."""


@dataclasses.dataclass(frozen=True, slots=True)
class LogPage:
    """One page of log records, in the query's order (``sightline.store._log_pages``)."""

    records: list[LogRecord]
    next_cursor: str | None


class TraceStore(AnalysisStore, Protocol):
    """Where spans live. One writer thread calls ``insert_batches``; reads come from any thread."""

    def migrate(self) -> int:
        """Apply pending schema migrations; return the schema version."""
        ...

    def ping(self) -> None:
        """Raise StoreError when the store cannot answer a query."""
        ...

    def check_writable(self) -> None:
        """Raise StoreError unless a small write commits now (the writer's outage probe).

        A backend that must reconnect after a fatal error (DuckDB invalidates its database
        when a checkpoint hits a full disk) does so here.
        """
        ...

    def checkpoint_when_idle(self) -> bool:
        """Do the upkeep that would otherwise stall a commit; the writer calls it when idle.

        True when there was some. DuckDB folds its write-ahead log into the file here (see
        ``DuckDBStore``), so a burst of commits rarely waits for a checkpoint; a backend with
        nothing of the kind answers False.
        """
        ...

    def close(self) -> None:
        """Flush and release the store."""
        ...

    def insert_batches(self, batches: Sequence[pa.Table]) -> int:
        """Durably write Arrow span batches in one transaction; duplicate ids are ignored."""
        ...

    def list_spans(self, query: SpanQuery) -> SpanPage:
        """Spans matching ``query``, newest first."""
        ...

    def get_trace(
        self,
        project_id: str,
        trace_id: str,
        *,
        limit: int | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[Span]:
        """The spans of a trace in start order (start time, then span id).

        ``limit`` keeps the first that many (None: every span); ``after`` (a span's start time
        and span id) starts after that span, to read a large trace page by page.
        """
        ...

    def summarize_trace(self, project_id: str, trace_id: str) -> TraceSummary | None:
        """Totals over every span of a trace without reading the spans; None if it has none."""
        ...

    def summarize_traces(
        self, project_id: str, trace_ids: Sequence[str], *, since: datetime | None = None
    ) -> list[TraceRollup]:
        """A rollup of each listed trace that has spans, in no particular order.

        The trace list's rows: one query for the page. ``since`` leaves out the spans starting
        before it: a bound on the scan (the trace list passes its oldest root's start less an
        hour of clock skew between services).
        """
        ...

    def query_metric(self, query: MetricQuery) -> list[MetricSeries]:
        """Evaluate one metric."""
        ...

    def query_metrics(self, queries: Sequence[MetricQuery]) -> list[list[MetricSeries]]:
        """Evaluate many metrics, one list of series per query, as ``query_metric`` would.

        Span metrics sharing a project, range, step, span kind and filters are computed in one
        SQL pass (a dashboard page's charts), whatever their aggregate and group_by.
        """
        ...

    def add_scores(self, scores: Sequence[Score]) -> None:
        """Append scores (durably, before returning)."""
        ...

    def list_scores(self, project_id: str, trace_id: str) -> list[Score]:
        """Every score of a trace, oldest first."""
        ...

    def find_span_trace(self, project_id: str, span_id: str) -> str | None:
        """The trace id of a span, if the span is stored."""
        ...

    def count_spans(self, project_id: str) -> int:
        """Number of spans stored for a project."""
        ...

    def first_span_time(self, project_id: str) -> datetime | None:
        """Start of the project's earliest stored span (None: no span)."""
        ...

    # -- evaluation (scores, cursors, datasets) ---------------------------------------------------

    def last_ingest_seq(self) -> int:
        """The ``ingest_seq`` of the last committed span batch (0 when empty)."""
        ...

    def list_spans_after(
        self, cursor: EvalCursor, *, upto_seq: int, kinds: Sequence[str] | None, limit: int
    ) -> list[SeqSpan]:
        """Spans of every project committed after ``cursor`` up to commit ``upto_seq``.

        In commit order; ``kinds`` narrows to those span kinds (None: all).
        """
        ...

    def list_span_keys_after(
        self, cursor: EvalCursor, *, upto_seq: int, kinds: Sequence[str] | None, limit: int
    ) -> list[SeqSpanKey]:
        """The keys (ids, status, start) of what ``list_spans_after`` would return.

        The same spans in the same order, without their text columns: the runner reads these
        to skip spans under load, and to find where a range of commits ends.
        """
        ...

    def get_traces(
        self,
        project_id: str,
        trace_ids: Sequence[str],
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        kinds: Sequence[str] | None = None,
    ) -> dict[str, list[SeqSpan]]:
        """Spans of several traces (with their commit), each list in start order.

        ``start``/``end`` bound the spans' start times when the caller knows them, so the
        store reads only that part of the table; ``kinds`` narrows to those span kinds.
        """
        ...

    def list_session_turns(
        self,
        project_id: str,
        session_ids: Sequence[str],
        *,
        kinds: Sequence[str],
        start: datetime,
        end: datetime,
    ) -> list[SessionTurn]:
        """Turns (keys, no text) of spans of ``kinds`` in the sessions, started in [start, end].

        In start order: the runner finds each answer's previous turn in them.
        """
        ...

    def get_eval_cursor(self, name: str) -> EvalCursor | None:
        """A durable cursor of the evaluation runner."""
        ...

    def append_eval_scores(
        self, scores: Sequence[Score], *, cursor_name: str, cursor: EvalCursor
    ) -> None:
        """Append scores and move a cursor in one transaction (a restart never scores twice)."""
        ...

    def query_scores(self, query: ScoreQuery) -> ScorePage:
        """Scores matching ``query``, newest first."""
        ...

    def score_names(self, project_id: str) -> set[tuple[str, str]]:
        """The (name, source) pairs of the project's stored scores."""
        ...

    def score_distributions(
        self, project_id: str, start: datetime, end: datetime, *, source: str
    ) -> list[ScoreDistribution]:
        """Each score name's histogram, count, mean and pass rate, sorted by name.

        Over the scores of ``source`` created in [start, end): the newest of each key
        (``SCORE_KEY``), and every failed run (label ``failed``) apart; one aggregate.
        """
        ...

    # -- scale-out coordination (docs/scale-out.md); a backend without compare-and-set (e.g.
    # ClickHouse) leaves these to Redis and raises StoreError --------------------------------

    @property
    def shared(self) -> bool:
        """True when several processes may use this store at once (split ``--role`` servers)."""
        ...

    def append_scores_once(self, scores: Sequence[Score], *, since: datetime | None = None) -> int:
        """Append the scores whose ``score_id`` is not stored yet; return how many were new.

        Online scores have deterministic ids (evaluator + span), so a range evaluated again
        after a worker died adds nothing twice. ``since``: no stored duplicate can be older
        (the range's first claim), so the check may read only newer scores.
        """
        ...

    def claims_state(self, name: str) -> ClaimsState:
        """The frontier and open claims of evaluator set ``name`` (see Coordinator)."""
        ...

    def claim_range(
        self, name: str, *, lo: int, hi: int, owner: str, lease_s: float, start_seq: int = 0
    ) -> Claim | None:
        """Claim commits ``(lo, hi]`` if the frontier is still ``lo``, in one transaction."""
        ...

    def take_over_claim(self, name: str, *, owner: str, lease_s: float) -> Claim | None:
        """Take the oldest claim of ``name`` whose lease has run out."""
        ...

    def renew_claim(self, claim: Claim, *, lease_s: float) -> Claim | None:
        """Extend a claim's lease if its token is still current (0 releases it)."""
        ...

    def complete_claim(self, claim: Claim) -> bool:
        """Delete a claim if its token is still current."""
        ...

    def acquire_leader(self, name: str, *, owner: str, lease_s: float) -> bool:
        """Take or renew leader lease ``name``; True if ``owner`` holds it now."""
        ...

    def release_leader(self, name: str, *, owner: str) -> None:
        """Expire leader lease ``name`` now if ``owner`` holds it."""
        ...

    def list_trace_scores(self, project_id: str, trace_ids: Sequence[str]) -> list[Score]:
        """Every score of the given traces, oldest first."""
        ...

    def list_scores_created_after(
        self, after: datetime, *, source: str, name: str, limit: int
    ) -> list[Score]:
        """Scores of every project created after ``after``, oldest first (user feedback)."""
        ...

    def list_agreement_pairs(self, project_id: str) -> list[AgreementPair]:
        """The latest evaluator and human verdicts of each (span, score name) that has both."""
        ...

    def create_dataset(self, dataset: Dataset, rows: Sequence[dict[str, Any]]) -> None:
        """Save a dataset and its rows."""
        ...

    def list_datasets(self, project_id: str) -> list[Dataset]:
        """A project's datasets, newest first."""
        ...

    def get_dataset(self, project_id: str, dataset_id: str) -> Dataset | None:
        """A dataset by id."""
        ...

    def get_dataset_rows(self, project_id: str, dataset_id: str) -> list[dict[str, Any]]:
        """A dataset's rows, in order."""
        ...

    def create_project(self, project_id: str) -> Project:
        """Create a project; ConfigError if it exists."""
        ...

    def get_project(self, project_id: str) -> Project | None:
        """A project by id."""
        ...

    def add_api_key(self, key: ApiKey) -> None:
        """Store a key's hash for a project."""
        ...

    def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The live key with this hash."""
        ...

    # -- privacy and security -------------------------------------------------------------------

    def list_api_keys(self, project_id: str) -> list[ApiKey]:
        """Every key of a project, revoked ones too, oldest first."""
        ...

    def revoke_api_key(self, project_id: str, key_id: str) -> ApiKey | None:
        """Revoke a live key of the project by id; return it, or None if there is none."""
        ...

    def touch_api_keys(self, last_used: dict[str, datetime]) -> None:
        """Record when keys (by hash) were last used, in one write."""
        ...

    def get_privacy(self, project_id: str) -> PrivacySettings | None:
        """A project's own privacy settings, if it has any."""
        ...

    def set_privacy(self, settings: PrivacySettings) -> None:
        """Create or replace a project's privacy settings."""
        ...

    def add_audit(self, entry: AuditEntry) -> None:
        """Append an audit entry."""
        ...

    def list_audit(
        self, project_id: str, *, limit: int = 100, before: datetime | None = None
    ) -> list[AuditEntry]:
        """A project's audit entries, newest first."""
        ...

    def purge_before(self, project_id: str, cutoff: datetime) -> Deleted:
        """Delete a project's spans that started before ``cutoff`` and their scores."""
        ...

    def erase_user(self, project_id: str, user_id: str) -> Deleted:
        """Delete a user's spans, the scores of their traces and their feedback."""
        ...

    # -- monitoring (alerts and drift) ----------------------------------------------------------

    def list_projects(self) -> list[Project]:
        """Every project, by id."""
        ...

    def query_windows(
        self, project_id: str, end: datetime, aggs: Sequence[WindowAgg]
    ) -> list[list[WindowValue]]:
        """Evaluate many windowed aggregates ending at ``end``; one list of groups per agg.

        Aggregates sharing a span kind, filters and window are computed in one SQL pass (the
        monitor's tick over many rules), whatever their group_by.
        """
        ...

    def add_rule_version(self, rule: RuleVersion) -> RuleVersion:
        """Append a version of a rule (its ``version`` is assigned: the last one + 1)."""
        ...

    def list_rules(self, project_id: str, *, include_deleted: bool = False) -> list[RuleVersion]:
        """The current version of every rule (deleted ones only with ``include_deleted``)."""
        ...

    def list_rule_versions(self, project_id: str, name: str) -> list[RuleVersion]:
        """Every version of one rule, oldest first."""
        ...

    def save_alerts(
        self,
        alerts: Sequence[Alert],
        events: Sequence[AlertEvent],
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        """Save alerts, their events and the deliveries announcing them, in one transaction.

        A notification is then never lost between the state that calls for it and its
        delivery record.
        """
        ...

    def list_alerts(self, query: AlertQuery) -> list[Alert]:
        """Alerts matching ``query``, newest first."""
        ...

    def get_alert(self, project_id: str, alert_id: str) -> Alert | None:
        """One alert."""
        ...

    def list_active_alerts(self) -> list[Alert]:
        """Pending and firing alerts of every project (the monitor's state after a restart)."""
        ...

    def list_alert_events(self, project_id: str, alert_id: str) -> list[AlertEvent]:
        """An alert's history, oldest first."""
        ...

    def save_silence(self, silence: Silence) -> None:
        """Insert or replace a silence."""
        ...

    def list_silences(self, project_id: str) -> list[Silence]:
        """A project's silences, newest first (expired ones included)."""
        ...

    def save_delivery(self, delivery: Delivery) -> None:
        """Insert or replace a notification delivery."""
        ...

    def list_deliveries(
        self,
        project_id: str | None,
        *,
        alert_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """Deliveries, newest first; ``project_id`` None means every project."""
        ...

    def add_drift_results(self, results: Sequence[DriftResult]) -> None:
        """Append drift detection results."""
        ...

    def list_drift_results(self, query: DriftQuery) -> list[DriftResult]:
        """Drift results matching ``query``, newest first."""
        ...

    def insert_signal_batches(self, signal: str, batches: Sequence[pa.Table]) -> int:
        """Durably write Arrow batches of OTLP ``metrics`` points or ``logs`` records.

        A batch carrying a :data:`BATCH_KEY` already stored (a retried request) is skipped;
        returns the rows written.
        """
        ...

    def list_logs(self, query: LogQuery) -> LogPage:
        """Log records matching ``query``: newest first, or in time order for one trace.

        ConfigError on a cursor not made by this backend for a query of the same order.
        """
        ...

    def list_otel_metrics(self, project_id: str) -> list[dict[str, Any]]:
        """Names of the data-point metrics a project has."""
        ...

    def has_otel_metric(self, project_id: str, name: str) -> bool:
        """Whether the project has data points named (or aliased) ``name``."""
        ...

    def add_release(self, release: Release) -> None:
        """Record a release marker."""
        ...

    def list_releases(
        self,
        project_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 200,
    ) -> list[Release]:
        """Release markers, newest first."""
        ...

    def get_release(self, project_id: str, release_id: str) -> Release | None:
        """One release marker."""
        ...

    def detect_releases(
        self, project_id: str, now: datetime, *, after_seq: int = 0
    ) -> list[Release]:
        """Record markers for versions first seen in spans committed after ``after_seq``."""
        ...

    def compare_values(
        self, project_id: str, start: datetime, end: datetime, service: str | None
    ) -> dict[str, list[float]]:
        """Per-request latency, cost, error and score values of an interval."""
        ...

    def sample_spans(self, query: SampleQuery) -> list[SpanSample]:
        """A uniform random sample of a window's spans (text, tokens, latency)."""
        ...

    # -- business outcomes ----------------------------------------------------------------------

    def add_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Append outcomes."""
        ...

    def list_outcomes(
        self,
        project_id: str,
        *,
        trace_id: str | None = None,
        session_id: str | None = None,
        name: str | None = None,
        limit: int = 100,
    ) -> list[Outcome]:
        """A project's outcomes, newest first."""
        ...

    def query_outcomes(self, query: OutcomeQuery) -> list[OutcomeGroup]:
        """Units of work, their outcomes and cost, per group (and time bucket)."""
        ...

    def guardrail_stats(
        self, project_id: str, start: datetime, end: datetime
    ) -> list[GuardrailStats]:
        """Effectiveness of each guardrail (name, version) whose checks started in the window."""
        ...

    def list_budgets(self, project_id: str) -> list[BudgetRow]:
        """Every budget of the project, by name."""
        ...

    def put_budget(self, row: BudgetRow) -> None:
        """Create or replace a budget."""
        ...

    def delete_budget(self, project_id: str, name: str) -> bool:
        """Delete a budget; False when there was none."""
        ...

    def budget_spend(
        self,
        project_id: str,
        since: datetime,
        *,
        column: str | None = None,
        value: str | None = None,
        until: datetime | None = None,
    ) -> BudgetSpend:
        """Cost of the project's spans from ``since`` to ``until``, where ``column = value``.

        ``until`` is excluded (None: no end); without ``column`` every span counts.
        """
        ...

    def budget_spend_by(
        self, project_id: str, since: datetime, column: str, *, until: datetime | None = None
    ) -> dict[str, float]:
        """Cost from ``since`` to ``until`` per distinct value of ``column`` (NULLs left out)."""
        ...

    def budget_spend_each(
        self, project_id: str, since: datetime, column: str, *, until: datetime | None = None
    ) -> dict[str, BudgetSpend]:
        """:meth:`budget_spend` per distinct value of ``column`` (NULLs left out)."""
        ...

    def mark_budget_alert(
        self,
        project_id: str,
        budget: str,
        scope_value: str,
        period_start: datetime,
        threshold: float,
        spent_usd: float,
        at: datetime,
        deliveries: Sequence[Delivery] = (),
    ) -> bool:
        """Record that a threshold alerted; False when it already had (so it alerts once).

        ``deliveries`` (the notifications announcing it) are stored with the mark, in one
        transaction where the store has them, and only when this call made the mark.
        """
        ...

    # -- dashboard users ---------------------------------------------------------------------

    def create_user(self, user: User) -> None:
        """Add a user; ConfigError if the email is taken."""
        ...

    def count_users(self) -> int:
        """How many users exist (0: first run, bootstrap an admin)."""
        ...

    def create_first_user(self, user: User) -> bool:
        """Add ``user`` only if no user exists; False, with nothing written, when one does.

        Atomic, also against other processes sharing the store (the setup link's claim).
        """
        ...

    def get_user(self, user_id: str) -> User | None:
        """A user by id."""
        ...

    def get_user_by_email(self, email: str) -> User | None:
        """A user by (lower-case) email."""
        ...

    def create_session(self, session: UserSession) -> None:
        """Store a login session."""
        ...

    def get_session(self, session_hash: str, now: datetime) -> UserSession | None:
        """The unexpired session with this hash."""
        ...

    def delete_session(self, session_hash: str) -> None:
        """End a session (logout)."""
        ...

    def add_membership(self, membership: Membership) -> None:
        """Give a user access to a project (or change their role there)."""
        ...

    def remove_membership(self, user_id: str, project_id: str) -> bool:
        """Take a user's access to a project away; False if they had none."""
        ...

    def list_memberships(self, user_id: str) -> list[Membership]:
        """The projects a user belongs to, by project id."""
        ...

    def list_members(self, project_id: str) -> list[tuple[User, Membership]]:
        """A project's users, by email."""
        ...


def _s(
    name: str,
    score: str,
    agg: Agg,
    unit: str,
    desc: str,
    *,
    formula: str | None = None,
    column: str | None = None,
    source: str = "evaluator",
) -> MetricDef:
    return MetricDef(name, None, column, agg, unit, desc, formula, score, source)


_SHARE_FAILED = "avg(CASE WHEN NOT passed THEN 1.0 WHEN passed THEN 0.0 END)"

SCORE_METRICS: dict[str, MetricDef] = {
    m.name: m
    for m in (
        _s(
            "hallucination_rate",
            "faithfulness",
            "rate",
            "ratio",
            "Share of faithfulness scores labelled hallucination.",
            formula="avg(CASE WHEN label = 'hallucination' THEN 1.0 ELSE 0.0 END)",
        ),
        _s(
            "faithfulness",
            "faithfulness",
            "avg",
            "score",
            "Faithfulness score (1 = every claim supported by the context).",
            column="value",
        ),
        _s(
            "relevance",
            "relevance",
            "avg",
            "score",
            "Relevance of the answer to the question (1 = relevant).",
            column="value",
        ),
        _s(
            "toxicity",
            "toxicity",
            "avg",
            "score",
            "Mean of 1 − toxicity score: 0 = clean, 1 = toxic.",
            formula="avg(1.0 - value)",
        ),
        _s(
            "refusal_rate",
            "refusal",
            "rate",
            "ratio",
            "Share of refusal scores labelled refusal or over_refusal (the answer refused).",
            formula="avg(CASE WHEN label IN ('refusal', 'over_refusal') THEN 1.0 ELSE 0.0 END)",
        ),
        _s(
            "format_compliance",
            "format",
            "rate",
            "ratio",
            "Share of format scores that passed.",
            formula="avg(CASE WHEN passed THEN 1.0 WHEN NOT passed THEN 0.0 END)",
        ),
        _s(
            "injection_rate",
            "prompt_injection",
            "rate",
            "ratio",
            "Share of prompt_injection scores that failed (an injection found).",
            formula=_SHARE_FAILED,
        ),
        _s(
            "pii_rate",
            "pii_leak",
            "rate",
            "ratio",
            "Share of pii_leak scores that failed (personal data found).",
            formula=_SHARE_FAILED,
        ),
        _s(
            "uncertainty",
            "uncertainty",
            "avg",
            "score",
            "Mean of 1 − confidence (exp of the mean token log-probability): 0 = sure.",
            formula="avg(1.0 - value)",
        ),
        _s(
            "self_consistency",
            "self_consistency",
            "avg",
            "score",
            "Agreement of answers sampled for the same prompt (1 = they all agree).",
            column="value",
        ),
        _s(
            "sentiment",
            "descriptors",
            "avg",
            "score",
            "Mean VADER compound sentiment of the answers, -1 (negative) to 1 (positive).",
            formula="avg(2.0 * value - 1.0)",
        ),
        _s(
            "reading_level",
            "descriptors",
            "avg",
            "grade",
            "Mean Flesch-Kincaid grade of the answers.",
            formula="avg(TRY_CAST(json_extract(details, '$.reading_level') AS DOUBLE))",
        ),
        _s(
            "json_share",
            "descriptors",
            "rate",
            "ratio",
            "Share of answers that are a JSON object or array.",
            formula="avg(CASE WHEN json_extract(details, '$.json') = 'true' THEN 1.0 ELSE 0.0 END)",
        ),
        _s(
            "feedback_positive_rate",
            "feedback",
            "rate",
            "ratio",
            "Share of end-user feedback with a positive score.",
            formula="avg(CASE WHEN value > 0 THEN 1.0 ELSE 0.0 END)",
            source="user",
        ),
    )
}
"""Metrics computed from scores joined to their spans (filters and groups are span fields)."""

METRICS.update(SCORE_METRICS)

OUTCOME_FORMULA = "-- computed from outcomes (store.query_outcomes) --"
"""The formula marker of the outcome metrics: the store computes them with ``query_outcomes``."""

OUTCOME_METRICS: dict[str, MetricDef] = {
    m.name: m
    for m in (
        _m(
            "task_completion_rate",
            "llm",
            None,
            "rate",
            "ratio",
            "Units of work (sessions, else traces) with a task_completed or ticket_resolved"
            " outcome / units.",
            OUTCOME_FORMULA,
        ),
        _m(
            "conversion_rate",
            "llm",
            None,
            "rate",
            "ratio",
            "Units of work with a converted outcome / units.",
            OUTCOME_FORMULA,
        ),
        _m(
            "cost_per_outcome",
            "llm",
            None,
            "avg",
            "USD",
            "Cost of the LLM calls / units of work with any outcome (value > 0).",
            OUTCOME_FORMULA,
        ),
    )
}
"""Business-outcome metrics (docs/signals.md); ``/api/v1/outcomes/metrics`` has their parts."""

METRICS.update(OUTCOME_METRICS)
SERVING_METRIC_DEFS: dict[str, MetricDef] = {
    alias: MetricDef(
        alias,
        None,
        None,
        "avg",
        unit,
        f"Serving-engine or GPU metric {alias} (scraped or OTLP; see docs/serving.md).",
        otel_name=alias,
    )
    for alias, unit in SERVING_ALIASES.items()
}
"""The shared names of serving-engine and GPU metrics (:mod:`sightline.serving`)."""

METRICS.update(SERVING_METRIC_DEFS)
