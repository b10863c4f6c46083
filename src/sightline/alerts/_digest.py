"""The weekly digest: the week's trends of a project, sent to channels on a schedule.

For the people who read dashboards weekly: requests, cost, p95 latency, error rate, quality
scores (each against the week before), the top alerts, drift detections and releases. Sent
through the alert channels (webhook JSON, Slack, email) as a delivery with event ``digest``;
the delivery's id (``digest:<date>``) makes each week's digest go out once, across restarts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sightline._clock import Clock
from sightline._daemon import DaemonTask
from sightline.alerts._notify import Dispatcher
from sightline.errors import ConfigError, SightlineError
from sightline.store.base import METRICS, AlertQuery, DriftQuery, MetricQuery, TraceStore

__all__ = ["DigestConfig", "DigestTask", "build_digest", "digest_text", "parse_digest"]

log = structlog.get_logger("sightline.digest")

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TRENDS: tuple[tuple[str, str], ...] = (
    ("requests", "count"),
    ("cost_usd", "sum"),
    ("latency_ms", "p95"),
    ("ttft_ms", "p95"),
    ("error_rate", "rate"),
)
_QUALITY = (
    "faithfulness",
    "relevance",
    "hallucination_rate",
    "toxicity",
    "refusal_rate",
    "feedback_positive_rate",
)


class DigestConfig(BaseModel):
    """The ``digest:`` section of the config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: list[str] = Field(min_length=1, description="Alert channel names to send to.")
    weekday: Literal[
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"
    ] = "monday"
    hour: int = Field(9, ge=0, le=23, description="UTC hour of the weekday it is sent.")
    projects: list[str] | None = Field(None, description="Default: every project.")


def parse_digest(raw: Mapping[str, Any] | None, channels: Sequence[str]) -> DigestConfig | None:
    """Validate the ``digest:`` section against the configured channels."""
    if raw is None:
        return None
    try:
        cfg = DigestConfig.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(
            f"digest: {'.'.join(str(x) for x in first['loc'])}: {first['msg']}"
        ) from None
    unknown = [c for c in cfg.channels if c not in channels]
    if unknown:
        raise ConfigError(f"digest: unknown channel(s) {', '.join(unknown)}")
    return cfg


def _value(store: TraceStore, project_id: str, name: str, agg: str, start: datetime,
           end: datetime) -> float | None:  # fmt: skip
    m = METRICS.get(name)
    if m is None:
        return None
    a = agg if m.formula is None else m.default_agg
    try:
        series = store.query_metric(
            MetricQuery(project_id=project_id, metric=m, agg=a, start=start, end=end)  # type: ignore[arg-type]
        )
    except SightlineError:
        return None
    return series[0].points[0][1] if series and series[0].points else None


def _trend(now: float | None, before: float | None) -> dict[str, Any]:
    change = (now - before) / before if now is not None and before else None
    return {"this_week": now, "last_week": before, "change": change}


def build_digest(store: TraceStore, project_id: str, end: datetime) -> dict[str, Any]:
    """The digest payload of the 7 days before ``end`` (compared with the 7 days before)."""
    start, prev = end - timedelta(days=7), end - timedelta(days=14)
    trends = {
        name: {"agg": agg, **_trend(_value(store, project_id, name, agg, start, end),
                                    _value(store, project_id, name, agg, prev, start))}
        for name, agg in _TRENDS
    }  # fmt: skip
    quality = {}
    for name in _QUALITY:
        m = METRICS.get(name)
        if m is None:
            continue
        t = _trend(
            _value(store, project_id, name, m.default_agg, start, end),
            _value(store, project_id, name, m.default_agg, prev, start),
        )
        if t["this_week"] is not None or t["last_week"] is not None:
            quality[name] = t
    alerts = store.list_alerts(AlertQuery(project_id=project_id, start=start, end=end, limit=1000))
    counts = Counter((a.rule, a.severity) for a in alerts)
    top_alerts = [
        {"rule": rule, "severity": sev, "count": n}
        for (rule, sev), n in sorted(counts.items(), key=lambda kv: (kv[0][1], -kv[1], kv[0][0]))
    ][:5]
    drift = store.list_drift_results(
        DriftQuery(project_id=project_id, fired=True, start=start, limit=1000)
    )
    drift_counts = Counter((d.detector, d.feature) for d in drift)
    releases = store.list_releases(project_id, start=start, end=end, limit=20)
    payload: dict[str, Any] = {
        "kind": "digest",
        "project_id": project_id,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "trends": trends,
        "quality": quality,
        "top_alerts": top_alerts,
        "num_alerts": len(alerts),
        "drift": [
            {"detector": det, "feature": feat, "count": n}
            for (det, feat), n in drift_counts.most_common(5)
        ],
        "releases": [
            {"kind": r.kind, "service": r.service, "version": r.version, "at": r.at.isoformat()}
            for r in releases
        ],
    }
    payload["title"] = f"Sightline weekly digest: {project_id}, week to {end.date().isoformat()}"
    payload["summary"] = digest_text(payload)
    return payload


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:,.4g}" if isinstance(v, float) else str(v)


def _pct(change: float | None) -> str:
    return "" if change is None else f" ({change:+.0%} vs last week)"


def digest_text(p: Mapping[str, Any]) -> str:
    """The digest as plain text (email body, Slack message)."""
    lines = [f"Week {p['from'][:10]} to {p['to'][:10]}, project {p['project_id']}", ""]
    for name, t in p["trends"].items():
        lines.append(f"{name} ({t['agg']}): {_fmt(t['this_week'])}{_pct(t['change'])}")
    if p["quality"]:
        lines += ["", "Quality:"]
        for name, t in p["quality"].items():
            lines.append(f"  {name}: {_fmt(t['this_week'])}{_pct(t['change'])}")
    lines += ["", f"Alerts: {p['num_alerts']}"]
    for a in p["top_alerts"]:
        lines.append(f"  [{a['severity']}] {a['rule']}: {a['count']}")
    if p["drift"]:
        lines += ["", "Drift detected:"]
        lines += [f"  {d['detector']} on {d['feature']}: {d['count']}" for d in p["drift"]]
    if p["releases"]:
        lines += ["", "Releases:"]
        lines += [f"  {r['at'][:16]} {r['service'] or ''} {r['version']}" for r in p["releases"]]
    return "\n".join(lines)


def due_time(now: datetime, cfg: DigestConfig) -> datetime:
    """The latest scheduled send time at or before ``now`` (UTC)."""
    wd = _WEEKDAYS.index(cfg.weekday)
    day = now.replace(hour=cfg.hour, minute=0, second=0, microsecond=0)
    day -= timedelta(days=(day.weekday() - wd) % 7)
    if day > now:
        day -= timedelta(days=7)
    return day


class DigestTask(DaemonTask):
    """Sends each project's digest once its weekly time has come (checked every interval)."""

    name = "digest"

    def __init__(
        self,
        store: TraceStore,
        dispatcher: Dispatcher,
        cfg: DigestConfig,
        *,
        clock: Clock,
        interval_s: float = 60.0,
    ) -> None:
        super().__init__(interval_s=interval_s)
        self._store = store
        self._dispatcher = dispatcher
        self._cfg = cfg
        self._clock = clock

    def run_once(self) -> None:
        """Send what is due and not sent yet."""
        now = self._clock()
        due = due_time(now, self._cfg)
        key = f"digest:{due.date().isoformat()}"
        projects = self._cfg.projects or [p.id for p in self._store.list_projects()]
        for pid in projects:
            if self._store.list_deliveries(pid, alert_id=key, limit=1):
                continue
            self.send(pid, due, key)

    def send(self, project_id: str, end: datetime, key: str) -> dict[str, Any]:
        """Build and queue one project's digest; return its payload."""
        payload = build_digest(self._store, project_id, end)
        self._dispatcher.submit(project_id, key, "digest", payload, self._cfg.channels)
        log.info("digest_sent", project=project_id, key=key, channels=self._cfg.channels)
        return payload
