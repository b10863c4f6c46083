"""The alert lifecycle, as a pure function: prior state + one observation -> new state, events.

States: (none) -> pending -> firing -> resolved; a pending alert whose breach clears before
``for`` has elapsed is cancelled. One alert per (rule, group) is active at a time (dedup).
Notifications: on firing, then every ``repeat_interval`` while firing unless acknowledged, and
on resolving (if the firing was notified); a matching silence mutes them all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from sightline.model import Alert, Severity, Silence

__all__ = ["Observation", "RuleInfo", "Step", "advance", "alert_labels", "matching_silence"]


@dataclasses.dataclass(frozen=True, slots=True)
class Observation:
    """What one tick saw for one group of one rule."""

    group: dict[str, Any]
    value: float | None
    threshold: float | None
    breach: bool
    num_spans: int | None = None
    severity: Severity | None = None
    """Overrides the rule's severity (an SLO's fast and slow burn alerts differ)."""
    summary: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class RuleInfo:
    """The parts of a rule the lifecycle needs."""

    name: str
    version: int
    type: str
    severity: Severity
    for_s: int
    repeat_s: int
    window: str | None
    labels: Mapping[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one observation: the alert after it, what happened, what to send."""

    alert: Alert | None
    events: tuple[tuple[str, str], ...] = ()
    """(kind, message) pairs: pending, firing, repeat, resolved, cancelled, silenced."""
    notify: Literal["firing", "resolved"] | None = None
    changed: bool = False


def alert_labels(rule: RuleInfo, severity: str, group: Mapping[str, Any]) -> dict[str, str]:
    """What silences match on: rule labels, the group's values, ``rule`` and ``severity``."""
    out = dict(rule.labels)
    out.update({k: "" if v is None else str(v) for k, v in group.items()})
    out["rule"] = rule.name
    out["severity"] = severity
    return out


def matching_silence(
    silences: Sequence[Silence], labels: Mapping[str, str], now: datetime
) -> Silence | None:
    """The first silence active at ``now`` whose matchers all equal ``labels``."""
    for s in silences:
        if s.starts_at <= now < s.ends_at and all(
            labels.get(k) == v for k, v in s.matchers.items()
        ):
            return s
    return None


def _acked(alert: Alert, now: datetime) -> bool:
    return alert.acknowledged_at is not None and (
        alert.ack_expires_at is None or alert.ack_expires_at > now
    )


def advance(
    rule: RuleInfo,
    prior: Alert | None,
    obs: Observation | None,
    now: datetime,
    *,
    project_id: str,
    group_key: str,
    silenced: bool,
    new_id: Callable[[], str],
) -> Step:
    """One tick of one (rule, group): see the module docstring. ``obs`` None means no data."""
    breach = obs is not None and obs.breach
    active = prior is not None and prior.active
    if not active:
        if not breach or obs is None:
            return Step(None)
        sev = obs.severity or rule.severity
        alert = Alert(
            project_id=project_id,
            alert_id=new_id(),
            rule=rule.name,
            rule_version=rule.version,
            rule_type=rule.type,
            severity=sev,
            group=obs.group,
            group_key=group_key,
            status="pending",
            value=obs.value,
            threshold=obs.threshold,
            window=rule.window,
            pending_since=now,
            last_evaluated_at=now,
            summary=obs.summary,
            details=obs.details,
        )
        if rule.for_s > 0:
            return Step(alert, (("pending", obs.summary),), None, True)
        return _fire(alert, now, silenced, (("pending", obs.summary),))
    alert = prior  # type: ignore[assignment]  # active implies prior is not None
    if obs is not None:
        alert = dataclasses.replace(
            alert,
            rule_version=rule.version,
            severity=obs.severity or rule.severity,
            value=obs.value if obs.value is not None else alert.value,
            threshold=obs.threshold,
            last_evaluated_at=now,
            summary=obs.summary or alert.summary,
            details=obs.details or alert.details,
        )
    else:
        alert = dataclasses.replace(alert, last_evaluated_at=now)
    if breach:
        if alert.status == "pending":
            if (now - alert.pending_since).total_seconds() >= rule.for_s:
                return _fire(alert, now, silenced, ())
            return Step(alert, (), None, True)
        # firing
        if silenced or _acked(alert, now):
            return Step(alert, (), None, True)
        if alert.last_notified_at is None:
            # fired while silenced, and the silence has ended: tell now
            alert = dataclasses.replace(alert, last_notified_at=now)
            return Step(alert, (("firing", "notified after a silence ended"),), "firing", True)
        if (now - alert.last_notified_at).total_seconds() >= rule.repeat_s:
            alert = dataclasses.replace(alert, last_notified_at=now)
            return Step(alert, (("repeat", alert.summary),), "firing", True)
        return Step(alert, (), None, True)
    # the breach cleared (or the group sent no data)
    reason = "no data in the window" if obs is None else (obs.summary or "back within threshold")
    if alert.status == "pending":
        alert = dataclasses.replace(alert, status="cancelled", ended_at=now)
        return Step(alert, (("cancelled", reason),), None, True)
    alert = dataclasses.replace(alert, status="resolved", ended_at=now)
    notify: Literal["resolved"] | None = (
        "resolved" if alert.last_notified_at is not None and not silenced else None
    )
    return Step(alert, (("resolved", reason),), notify, True)


def _fire(alert: Alert, now: datetime, silenced: bool, events: tuple[tuple[str, str], ...]) -> Step:
    alert = dataclasses.replace(alert, status="firing", started_at=now)
    if silenced:
        return Step(alert, (*events, ("firing", alert.summary), ("silenced", "")), None, True)
    alert = dataclasses.replace(alert, last_notified_at=now)
    return Step(alert, (*events, ("firing", alert.summary)), "firing", True)
