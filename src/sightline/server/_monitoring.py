"""Wiring of the monitoring stages into the server: monitor loop, notifiers, drift, /metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sightline._clock import Clock
from sightline._daemon import DaemonTask
from sightline.alerts import AlertsFile, Dispatcher, Monitor, default_rules
from sightline.alerts._digest import DigestTask, parse_digest
from sightline.config import Settings
from sightline.drift import DriftMonitor, parse_drift_jobs
from sightline.store.base import TraceStore

__all__ = ["Monitoring", "build_monitoring", "render_monitoring"]

log = structlog.get_logger("sightline.server")


@dataclass
class Monitoring:
    """The monitor loop, the notification workers and the drift loop of one app."""

    monitor: Monitor
    dispatcher: Dispatcher
    drift: DriftMonitor
    settings: Settings
    digest: DigestTask | None = None

    def start(self) -> None:
        """Start what the settings turn on (an interval of 0 leaves a loop to the caller)."""
        self.dispatcher.start()
        if self.digest is not None and self.settings.monitor_interval_s > 0:
            self.digest.start()
        if self.settings.monitor_interval_s > 0:
            self.monitor.start()
        if self.settings.drift_interval_s > 0:
            self.drift.start()

    def set_gate(self, gate: Callable[[], bool]) -> None:
        """Skip every loop's run (notifiers included) while ``gate()`` is False.

        A leader's loops ask its :attr:`Leadership.is_leader` before each run, so a leader
        whose renewals stalled (an unreachable Redis, a frozen process) stops acting when its
        lease runs out by its own clock, before its leadership thread notices.
        """
        tasks: list[DaemonTask] = [self.monitor, self.drift, *self.dispatcher.workers]
        if self.digest is not None:
            tasks.append(self.digest)
        for t in tasks:
            t.gate = gate

    def stop(self) -> None:
        """Stop the loops, then the notifiers (pending deliveries resume at the next start)."""
        if self.digest is not None:
            self.digest.stop()
        self.drift.stop()
        self.monitor.stop()
        self.dispatcher.stop()


def build_monitoring(
    settings: Settings, store: TraceStore, clock: Clock, alerts: AlertsFile | None
) -> Monitoring:
    """Build (not start) the monitoring stages from the settings and the alerts file."""
    channels = alerts.channels if alerts else {}
    dispatcher = Dispatcher(
        store, channels, clock=clock, allow_private=settings.notify_allow_private
    )
    public_url = settings.public_url or f"http://{settings.host}:{settings.port}"
    monitor = Monitor(
        store,
        clock=clock,
        interval_s=settings.monitor_interval_s,
        file_rules=alerts.rules if alerts else (),
        default_rules=default_rules() if settings.default_alert_rules else (),
        dispatcher=dispatcher,
        public_url=public_url,
        owns_rules=settings.role in ("all", "monitor"),
    )
    jobs = parse_drift_jobs(alerts.drift if alerts else None)
    drift = DriftMonitor(store, jobs, clock=clock, interval_s=settings.drift_interval_s)
    cfg = parse_digest(alerts.digest if alerts else None, list(channels))
    digest = (
        DigestTask(
            store,
            dispatcher,
            cfg,
            clock=clock,
            # checked at most every minute; a fast monitor (tests) checks as often
            interval_s=min(60.0, settings.monitor_interval_s or 60.0),
        )
        if cfg is not None
        else None
    )
    return Monitoring(monitor, dispatcher, drift, settings, digest)


class _AlertCollector(Collector):
    def __init__(self, monitor: Monitor, project_id: str) -> None:
        self._monitor = monitor
        self._project = project_id

    def collect(self) -> list[GaugeMetricFamily]:
        firing = GaugeMetricFamily(
            "sightline_alerts_firing", "Firing alerts.", labels=["rule", "severity"]
        )
        for (rule, sev), n in sorted(self._monitor.firing_counts(self._project).items()):
            firing.add_metric([rule, sev], n)
        budget = GaugeMetricFamily(
            "sightline_slo_error_budget_remaining",
            "Share of the SLO period's error budget left (negative: overspent).",
            labels=["slo"],
        )
        burn = GaugeMetricFamily(
            "sightline_slo_burn_rate", "SLO error-budget burn rate.", labels=["slo", "window"]
        )
        for s in self._monitor.slos(self._project):
            if s.budget_remaining is not None:
                budget.add_metric([s.name], s.budget_remaining)
            for w, b in s.burn_rates.items():
                if b is not None:
                    burn.add_metric([s.name, w], b)
        return [firing, budget, burn]


def render_monitoring(monitor: Monitor | None, project_id: str) -> bytes:
    """Prometheus text of the project's firing alerts and SLO budgets."""
    if monitor is None:
        return b""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_AlertCollector(monitor, project_id))
    return generate_latest(reg)
