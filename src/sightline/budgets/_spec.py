"""A budget's spec (API body or YAML entry) and the pure arithmetic of periods and thresholds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sightline.errors import ConfigError

__all__ = [
    "SCOPE_COLUMNS",
    "BudgetSpec",
    "crossed",
    "load_budgets_file",
    "parse_budget",
    "period_bounds",
]

Scope = Literal["project", "user", "tenant", "feature", "model"]
SCOPE_COLUMNS: dict[str, str | None] = {
    "project": None,
    "user": "user_id",
    "tenant": "tenant_id",
    "feature": "feature",
    "model": "model",
}
"""The span column each scope counts spend by (a project budget counts every span)."""


class BudgetSpec(BaseModel):
    """A budget: spend of a scope over a period, with soft thresholds and an optional hard limit.

    ``scope: user`` with ``match: "*"`` (the default) is one budget per user: each user's spend
    is counted and limited separately; ``match: u-42`` limits that user only.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    scope: Scope = "project"
    match: str = Field("*", min_length=1, max_length=200)
    """The scope value this budget covers, or ``*`` for each value separately."""
    period: Literal["day", "month"] = "month"
    """Calendar day or month, in UTC."""
    limit_usd: float = Field(gt=0, le=1e9)
    thresholds: list[float] = Field(default_factory=lambda: [0.5, 0.8, 1.0], max_length=10)
    """Fractions of the limit that alert (once each per period)."""
    hard: bool = False
    """Refuse calls once the limit is spent (SDK: BudgetExceeded; gateway: 429)."""
    notify: list[str] = Field(default_factory=list, max_length=20)
    """Channels of the alerts file that receive the threshold alerts."""
    severity: Literal["P0", "P1", "P2", "P3"] = "P2"

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: list[float]) -> list[float]:
        if any(not 0 < t <= 10 for t in v):
            raise ValueError("each threshold is a fraction of the limit in (0, 10]")
        return sorted(set(v))

    def applies(self, value: str | None) -> bool:
        """Whether a call with this scope value counts against the budget."""
        if self.scope == "project":
            return True
        return value is not None and self.match in ("*", value)


def parse_budget(raw: Any) -> BudgetSpec:
    """Validate a budget from untrusted input.

    Raises:
        ConfigError: not a valid budget (the message names each bad field).
    """
    try:
        return BudgetSpec.model_validate(raw)
    except ValidationError as e:
        msg = "; ".join(
            f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" if err["loc"] else err["msg"]
            for err in e.errors()
        )
        raise ConfigError(f"invalid budget: {msg}") from None


def load_budgets_file(path: Path) -> list[BudgetSpec]:
    """Read a YAML file ``budgets: [{name, scope, match, period, limit_usd, ...}]``.

    Raises:
        ConfigError: the file is missing, unparsable, or a budget is invalid or repeated.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read budgets file {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"invalid budgets file {path}: not UTF-8 text ({e.reason})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid budgets file {path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("budgets"), list):
        raise ConfigError(f"budgets file {path}: expected a mapping with a 'budgets' list")
    out = [parse_budget(b) for b in data["budgets"]]
    names = [b.name for b in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"budgets file {path}: budget names must be unique")
    return out


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar day or month containing ``now``: [start, end)."""
    now = now.astimezone(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start.fromordinal(start.toordinal() + 1).replace(tzinfo=UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def crossed(spec: BudgetSpec, spent_usd: float) -> list[float]:
    """The thresholds that ``spent_usd`` has reached."""
    return [t for t in spec.thresholds if spent_usd >= t * spec.limit_usd]
