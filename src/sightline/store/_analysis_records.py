"""Records of the prompt registry, A/B comparison and cost breakdown queries."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Protocol

from sightline.model import PromptVersion

__all__ = [
    "COST_DIMENSIONS",
    "AnalysisStore",
    "CostQuery",
    "CostRow",
    "GroupSample",
    "LengthSeries",
    "PromptSummary",
    "TaskCost",
]

COST_DIMENSIONS: dict[str, str] = {
    "request": "trace_id",
    "session": "session_id",
    "user": "user_id",
    "tenant": "tenant_id",
    "feature": "feature",
    "model": "model",
    "prompt_version": "prompt_version",
    "prompt_name": "prompt_name",
    "variant": "variant",
}
"""``by`` of a cost breakdown -> the span column it groups by (a request is a trace)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PromptSummary:
    """One registered prompt: its latest version and where its labels point."""

    name: str
    kind: str
    latest_version: int
    num_versions: int
    labels: dict[str, int]
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        d = dataclasses.asdict(self)
        d["updated_at"] = self.updated_at.isoformat()
        return d


@dataclasses.dataclass(slots=True)
class GroupSample:
    """The per-call observations of one side of an A/B comparison (LLM spans only)."""

    num_spans: int = 0
    num_errors: int = 0
    num_traces: int = 0
    latency_ms: list[float] = dataclasses.field(default_factory=list)
    cost_usd: list[float] = dataclasses.field(default_factory=list)
    """Calls with a known cost only."""
    output_tokens: list[float] = dataclasses.field(default_factory=list)
    scores: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    """Evaluator and human score values by score name (failed evaluations left out)."""
    passed: dict[str, list[bool]] = dataclasses.field(default_factory=dict)
    """Pass/fail verdicts by score name, where the score has one."""
    feedback: list[float] = dataclasses.field(default_factory=list)
    """End-user feedback values (-1..1) on the traces of these calls."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CostQuery:
    """Which LLM spans a cost query reads: a time range and span-field equalities."""

    project_id: str
    start: datetime
    end: datetime
    filters: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class CostRow:
    """Spend of one group (one request, session, user...)."""

    key: str | None
    cost_usd: float
    requests: int
    """LLM calls."""
    input_tokens: int
    output_tokens: int
    unpriced: int
    """Calls without a cost (unknown model)."""
    first_at: datetime
    last_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values, with the cost per call."""
        d = dataclasses.asdict(self)
        d["first_at"] = self.first_at.isoformat()
        d["last_at"] = self.last_at.isoformat()
        d["cost_per_call"] = self.cost_usd / self.requests if self.requests else None
        return d


@dataclasses.dataclass(frozen=True, slots=True)
class TaskCost:
    """Tasks (traces) of one group by outcome, and what they cost."""

    group: dict[str, Any]
    tasks: int
    successful: int
    failed: int
    unjudged: int
    cost_usd: float
    cost_successful_usd: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values with the cost per successful task (all spend / successes)."""
        d = dataclasses.asdict(self)
        judged = self.successful + self.failed
        d["success_rate"] = self.successful / judged if judged else None
        d["cost_per_task"] = self.cost_usd / self.tasks if self.tasks else None
        d["cost_per_successful_task"] = self.cost_usd / self.successful if self.successful else None
        return d


@dataclasses.dataclass(frozen=True, slots=True)
class LengthSeries:
    """Prompt length of one feature per time bucket.

    ``points`` are (bucket start, calls, mean input tokens, mean input characters).
    """

    feature: str | None
    points: list[tuple[datetime, int, float | None, float | None]]


class AnalysisStore(Protocol):
    """The prompt registry and the A/B and cost queries; part of every TraceStore."""

    def add_prompt_version(
        self, pv: PromptVersion, *, labels: list[str], updated_by: str | None
    ) -> PromptVersion:
        """Append a version (its number is assigned: the last + 1) and point ``labels`` at it.

        Conflict if the name exists as another kind.
        """
        ...

    def list_prompts(self, project_id: str, kind: str | None = None) -> list[PromptSummary]:
        """Every prompt of the project (of one kind), by name."""
        ...

    def list_prompt_versions(self, project_id: str, name: str) -> list[PromptVersion]:
        """Every version of one prompt, oldest first."""
        ...

    def get_prompt_version(
        self, project_id: str, name: str, *, version: int | None = None, label: str | None = None
    ) -> PromptVersion | None:
        """A version by number, or the one a label points at, or (neither) the latest."""
        ...

    def set_prompt_label(
        self,
        project_id: str,
        name: str,
        label: str,
        version: int,
        *,
        at: datetime,
        updated_by: str | None,
    ) -> int | None:
        """Point ``label`` at ``version`` (NotFound if there is none); the version it left."""
        ...

    def delete_prompt_label(self, project_id: str, name: str, label: str) -> int | None:
        """Remove a label; the version it pointed at, None if there was no such label."""
        ...

    def compare_sample(self, query: CostQuery, dimension: str, value: str) -> GroupSample:
        """The LLM calls whose ``dimension`` is ``value``: latency, cost, scores, feedback."""
        ...

    def cost_breakdown(
        self, query: CostQuery, by: str, *, limit: int
    ) -> tuple[list[CostRow], dict[str, Any]]:
        """Spend per group of ``by`` (most expensive first) and a summary over all groups."""
        ...

    def task_costs(self, query: CostQuery, group_by: tuple[str, ...]) -> list[TaskCost]:
        """Tasks (traces) by outcome and their cost, per group."""
        ...

    def prompt_length(self, query: CostQuery, step_s: int) -> list[LengthSeries]:
        """Mean input tokens and characters of LLM calls per feature and time bucket."""
        ...
