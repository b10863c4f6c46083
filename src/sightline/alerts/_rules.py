"""Alert rules as users write them (YAML or the API), validated.

Rules arrive from untrusted places (files, API bodies), so they are pydantic models; the
evaluation itself (``_evaluate``) is pure code over these models and window metrics.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sightline.errors import ConfigError
from sightline.model import Severity

__all__ = [
    "DESIGN_METRICS",
    "MIN_REPEAT_INTERVAL_S",
    "AnomalyRule",
    "BurnAlert",
    "CompositeRule",
    "Condition",
    "DriftRule",
    "NoTrafficRule",
    "Rule",
    "SloRule",
    "ThresholdRule",
    "format_duration",
    "parse_duration",
    "parse_rule",
    "rule_to_spec",
]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_MAX_DURATION_S = 366 * 86400
"""The longest duration of any rule field: windows, lookbacks, baselines and SLO periods reach
this far back (a longer one overflowed the tick's date arithmetic), ``for`` and
``repeat_interval`` are past any real use beyond it."""
_MAX_COUNT = 1_000_000_000
MIN_REPEAT_INTERVAL_S = 60
"""The shortest ``repeat_interval``: a firing alert is re-notified at most once a minute."""

DESIGN_METRICS = frozenset(
    {
        "hallucination_rate",
        "faithfulness",
        "relevance",
        "toxicity",
        "refusal_rate",
        "format_compliance",
        "injection_rate",
        "pii_rate",
        "feedback_positive_rate",
    }
)
"""Metrics DESIGN names that come from evaluation scores: rules may reference them before the
store knows them (the rule then reports ``metric_unavailable`` until it does)."""


def parse_duration(value: Any) -> int:
    """'30s', '5m', '1h', '7d', '2w' or a number of seconds, to whole seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 1h or 7d")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError("a duration must be a non-negative number of seconds")
        return int(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 30s, 5m, 1h or 7d")
    m = _DURATION_RE.match(value)
    if not m:
        raise ValueError(f"expected a duration such as 30s, 5m, 1h or 7d, got {value!r}")
    secs = float(m.group(1)) * _UNITS[m.group(2)]
    if not math.isfinite(secs):  # more digits than a float holds
        raise ValueError(f"duration too long: {value[:40]!r}")
    return int(secs)


def _bounded_duration(v: int) -> int:
    if v > _MAX_DURATION_S:
        raise ValueError(f"at most {_MAX_DURATION_S // 86400}d")
    return v


def format_duration(seconds: int) -> str:
    """Seconds as the largest exact unit: 300 -> '5m', 90 -> '90s'."""
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % n == 0:
            return f"{seconds // n}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    AfterValidator(_bounded_duration),
    PlainSerializer(format_duration),
]
Op = Literal[">", ">=", "<", "<=", "==", "!="]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"
_MAX_WINDOW_S = 90 * 86400


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class _RuleBase(_Spec):
    name: str = Field(pattern=_NAME, description="Unique in the project; used in URLs.")
    description: str | None = Field(None, max_length=2000)
    severity: Severity = "P2"
    owner: str | None = Field(None, max_length=200)
    runbook: str | None = Field(
        None, max_length=20_000, description="A URL, or markdown shown with the alert."
    )
    labels: dict[str, str] = Field(default_factory=dict)
    notify: list[str] = Field(default_factory=list, description="Channel names.")
    enabled: bool = True
    repeat_interval: Duration = Field(
        4 * 3600, description="Re-notify a firing, unacknowledged alert this often (>= 1m)."
    )

    @field_validator("repeat_interval")
    @classmethod
    def _repeat_interval(cls, v: int, info: ValidationInfo) -> int:
        # 0s (or a few seconds) paged on every tick of the monitor. A rule stored before the
        # minimum existed keeps working (and its alerts resolving) with the minimum instead.
        if v < MIN_REPEAT_INTERVAL_S and info.context and info.context.get("stored"):
            return MIN_REPEAT_INTERVAL_S
        if v < MIN_REPEAT_INTERVAL_S:
            raise ValueError(
                f"must be at least {format_duration(MIN_REPEAT_INTERVAL_S)} "
                "(a shorter one re-notifies on every tick of the monitor)"
            )
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > 50 or any(len(k) > 100 or len(x) > 500 for k, x in v.items()):
            raise ValueError("at most 50 labels, keys up to 100 and values up to 500 characters")
        return v


class _Windowed(_Spec):
    filter: dict[str, str] = Field(default_factory=dict)
    group_by: list[str] = Field(default_factory=list)
    window: Duration = 300
    for_: Duration = Field(0, alias="for", description="How long the breach must hold.")
    min_requests: int = Field(
        0, ge=0, le=_MAX_COUNT, description="Spans a window needs before it can breach."
    )

    @field_validator("window")
    @classmethod
    def _window(cls, v: int) -> int:
        if not 1 <= v <= _MAX_WINDOW_S:
            raise ValueError("window must be between 1s and 90d")
        return v

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("group_by repeats a dimension")
        if any(not d or len(d) > 255 for d in v):
            raise ValueError("group_by names must be 1 to 255 characters")
        return v

    @model_validator(mode="after")
    def _dimensions(self) -> Any:
        """Span metrics group and filter by span fields; data-point metrics by attributes."""
        from sightline.store.base import DIMENSIONS, METRICS

        names = [getattr(self, "metric", None)] + [
            c.metric for c in getattr(self, "conditions", None) or []
        ]
        defs = [METRICS.get(n) for n in names if n]
        if defs and all(d is not None and d.otel_name is not None for d in defs):
            if any(not k or len(k) > 255 or '"' in k for k in self.filter):
                raise ValueError("filter keys must be 1 to 255 characters, without quotes")
            return self
        for d in self.group_by:
            if d not in DIMENSIONS:
                raise ValueError(f"cannot group by {d!r}; use {', '.join(DIMENSIONS)}")
        _span_filter(self.filter)
        return self


def _span_filter(v: dict[str, str]) -> dict[str, str]:
    from sightline.store.base import DIMENSIONS

    for d in v:
        if d != "kind" and d not in DIMENSIONS:
            raise ValueError(f"cannot filter by {d!r}; use kind, {', '.join(DIMENSIONS)}")
    return v


def _check_metric(metric: str, agg: str | None) -> None:
    from sightline.store.base import AGGS, METRICS

    m = METRICS.get(metric)
    if m is None:
        if metric in DESIGN_METRICS:
            return  # validated when the evaluation stage registers it (lazily, per tick)
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(sorted(METRICS))}")
    if agg is None:
        return
    if agg not in AGGS:
        raise ValueError(f"agg: expected one of {', '.join(AGGS)}")
    if m.formula is not None and agg != m.default_agg:
        raise ValueError(f"metric {metric!r} is a ratio; it takes no agg (or agg={m.default_agg})")
    if m.formula is None and agg == "rate" and m.otel_name is None:
        raise ValueError(f"agg 'rate' applies to ratio metrics, not {metric!r}")


class ThresholdRule(_RuleBase, _Windowed):
    """The metric's aggregate over the window, per group, compared with a fixed threshold."""

    type: Literal["threshold"] = "threshold"
    metric: str
    agg: str | None = Field(None, description="Default: the metric's own (p95 for latency).")
    op: Op = ">"
    threshold: float

    @model_validator(mode="after")
    def _metric(self) -> ThresholdRule:
        _check_metric(self.metric, self.agg)
        if not math.isfinite(self.threshold):
            raise ValueError("threshold must be finite")
        return self


class AnomalyRule(_RuleBase, _Windowed):
    """The window's value against the same metric's recent history (EWMA or robust z-score)."""

    type: Literal["anomaly"] = "anomaly"
    metric: str
    agg: str | None = None
    window: Duration = 3600
    baseline: Duration = Field(7 * 86400, description="History the window is compared with.")
    method: Literal["robust_z", "ewma"] = "robust_z"
    threshold: float = Field(3.0, gt=0, description="Deviations (σ) from the baseline.")
    direction: Literal["up", "down", "both"] = "up"
    alpha: float = Field(0.3, gt=0, le=1, description="EWMA smoothing factor.")
    min_baseline_points: int = Field(12, ge=3, le=5000)

    @model_validator(mode="after")
    def _metric(self) -> AnomalyRule:
        _check_metric(self.metric, self.agg)
        if self.baseline < self.window * self.min_baseline_points:
            raise ValueError(
                f"baseline must hold at least min_baseline_points ({self.min_baseline_points})"
                " windows"
            )
        if self.baseline // self.window > 5000:
            raise ValueError("baseline holds more than 5000 windows; use a larger window")
        return self


class Condition(_Spec):
    """One member of a composite rule."""

    name: str | None = Field(None, max_length=100)
    metric: str
    agg: str | None = None
    op: Op = ">"
    threshold: float

    @model_validator(mode="after")
    def _metric(self) -> Condition:
        _check_metric(self.metric, self.agg)
        if not math.isfinite(self.threshold):
            raise ValueError("threshold must be finite")
        return self

    @property
    def label(self) -> str:
        """The condition's name, or ``metric op threshold``."""
        return self.name or f"{self.metric} {self.op} {self.threshold:g}"


class CompositeRule(_RuleBase, _Windowed):
    """Fires when at least ``k`` of its conditions breach in the same window and group."""

    type: Literal["composite"] = "composite"
    conditions: list[Condition] = Field(min_length=2, max_length=20)
    k: int = Field(ge=1, le=20)

    @model_validator(mode="after")
    def _k(self) -> CompositeRule:
        if self.k > len(self.conditions):
            raise ValueError(f"k ({self.k}) exceeds the number of conditions")
        return self


class BurnAlert(_Spec):
    """A multi-window burn-rate alert: both windows burn faster than ``factor``."""

    long: Duration
    short: Duration
    factor: float = Field(gt=0)
    severity: Severity

    @model_validator(mode="after")
    def _windows(self) -> BurnAlert:
        if not 1 <= self.short <= self.long:
            raise ValueError("burn windows: short must be at least 1s and at most long")
        return self


_DEFAULT_BURN = [
    BurnAlert(long=3600, short=300, factor=14.4, severity="P1"),
    BurnAlert(long=6 * 3600, short=1800, factor=6.0, severity="P2"),
]


class SloRule(_RuleBase):
    """A service-level objective over ``period``, alerting on its error-budget burn rate.

    ``sli``: ``availability`` (bad = LLM calls in error), ``latency`` (bad = calls slower than
    ``threshold_ms`` on ``metric``, latency_ms by default) or ``quality`` (bad share given by a
    ratio ``metric``, e.g. hallucination_rate; with ``measures: good`` the metric is the good
    share, e.g. format_compliance).
    """

    type: Literal["slo"] = "slo"
    sli: Literal["availability", "latency", "quality"]
    objective: float = Field(gt=0, lt=1, description="Target good share, e.g. 0.995.")
    period: Duration = 28 * 86400
    filter: dict[str, str] = Field(default_factory=dict)
    metric: str | None = None
    threshold_ms: float | None = Field(None, gt=0)
    measures: Literal["bad", "good"] = "bad"
    burn_alerts: list[BurnAlert] = Field(default_factory=lambda: list(_DEFAULT_BURN), max_length=10)

    @field_validator("filter")
    @classmethod
    def _filter(cls, v: dict[str, str]) -> dict[str, str]:
        return _span_filter(v)

    @model_validator(mode="after")
    def _sli(self) -> SloRule:
        if self.period < 1:
            raise ValueError("period must be at least 1s")
        if self.sli == "latency":
            if self.threshold_ms is None:
                raise ValueError("a latency SLO needs threshold_ms")
            if (self.metric or "latency_ms") not in ("latency_ms", "ttft_ms", "tpot_ms"):
                raise ValueError("a latency SLO's metric is latency_ms, ttft_ms or tpot_ms")
        elif self.sli == "quality":
            if self.metric is None:
                raise ValueError("a quality SLO needs a ratio metric, e.g. hallucination_rate")
            _check_metric(self.metric, None)
        elif self.metric is not None:
            raise ValueError("an availability SLO takes no metric (bad = calls in error)")
        return self


class NoTrafficRule(_RuleBase, _Windowed):
    """A model or service that stopped sending spans (downtime).

    Fires for each group (model, service, provider...) with at least ``min_requests`` spans
    within ``lookback`` and none within the last ``window``.
    """

    type: Literal["no_traffic"] = "no_traffic"
    window: Duration = 600
    lookback: Duration = 86400
    min_requests: int = Field(
        10,
        ge=1,
        le=_MAX_COUNT,
        description="Spans within the lookback for a group to count as live.",
    )

    @model_validator(mode="after")
    def _windows(self) -> NoTrafficRule:
        if self.lookback <= self.window:
            raise ValueError("lookback must be longer than window")
        return self


class DriftRule(_RuleBase):
    """Fires while the latest drift result of a job/detector (within ``window``) fired."""

    type: Literal["drift"] = "drift"
    job: str | None = None
    detector: str | None = None
    window: Duration = 3 * 3600
    for_: Duration = Field(0, alias="for")


Rule = Annotated[
    ThresholdRule | AnomalyRule | CompositeRule | SloRule | NoTrafficRule | DriftRule,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Rule] = TypeAdapter(Rule)
_TYPES = frozenset({"threshold", "anomaly", "composite", "slo", "no_traffic", "drift"})


def parse_rule(spec: Any, *, stored: bool = False) -> Rule:
    """Validate one rule (``type`` defaults to threshold); ConfigError with every problem.

    ``stored``: a version read back from the store, written under older limits: a limit added
    since is applied instead of refusing the rule (a ``repeat_interval`` under 1m becomes 1m).
    """
    if isinstance(spec, dict) and "type" not in spec:
        spec = {**spec, "type": "threshold"}
    try:
        return _ADAPTER.validate_python(spec, context={"stored": stored})
    except ValidationError as e:
        name = spec.get("name") if isinstance(spec, dict) else None
        raise ConfigError(f"rule {name or '?'}: {_errors(e)}") from None


def rule_to_spec(rule: Rule) -> dict[str, Any]:
    """The rule as JSON-ready values, with durations written as ``5m``."""
    return rule.model_dump(mode="json", by_alias=True)


def _errors(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc_parts = [str(x) for x in err.get("loc", ())]
        if loc_parts and loc_parts[0] in _TYPES:  # the discriminator's branch, not a field
            loc_parts = loc_parts[1:]
        loc = ".".join(loc_parts)
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
