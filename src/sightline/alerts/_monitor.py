"""The monitor: each tick evaluates every project's rules and moves its alerts along.

The only IO of the alerting stage besides the notifiers: it reads window metrics, drift
results, silences and rules from the store, runs the pure evaluation (``_evaluate``) and
lifecycle (``_lifecycle``), stores the alerts and their events, and hands notifications to the
dispatcher. Active alerts are kept in memory and in the store, and reloaded at start, so a
restart neither forgets a firing alert nor fires it twice.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from sightline._clock import Clock, system_clock
from sightline._daemon import DaemonTask
from sightline.alerts._evaluate import (
    SloStatus,
    aggs_for,
    group_key,
    metrics_of,
    missing_metrics,
    observe,
)
from sightline.alerts._lifecycle import RuleInfo, advance, alert_labels, matching_silence
from sightline.alerts._notify import Dispatcher, alert_payload
from sightline.alerts._rules import (
    AnomalyRule,
    CompositeRule,
    DriftRule,
    Rule,
    SloRule,
    ThresholdRule,
    _check_metric,
    format_duration,
    parse_rule,
    rule_to_spec,
)
from sightline.errors import ConfigError, Conflict, NotFound, SightlineError
from sightline.model import Alert, AlertEvent, AlertStatus, RuleVersion, Silence
from sightline.store.base import METRICS, DriftQuery, MetricQuery, TraceStore, WindowAgg

__all__ = ["Monitor", "RuleView"]

log = structlog.get_logger("sightline.alerts")

MAX_RULES = 1000
"""Rules per project: every tick evaluates them all."""


@dataclasses.dataclass(frozen=True, slots=True)
class RuleView:
    """A rule as the API shows it: its current version and how its last evaluation went."""

    version: RuleVersion
    state: str
    """ok, pending, firing, disabled, metric_unavailable, error or not_evaluated."""
    last_evaluated_at: datetime | None
    error: str | None
    active_alerts: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        v = self.version
        return {
            "name": v.name,
            "version": v.version,
            "source": v.source,
            "editable": v.source != "file",
            "updated_at": v.created_at.isoformat(),
            "author": v.author,
            "spec": v.spec,
            "state": self.state,
            "last_evaluated_at": self.last_evaluated_at.isoformat()
            if self.last_evaluated_at
            else None,
            "error": self.error,
            "active_alerts": self.active_alerts,
        }


def _info(rule: Rule, version: int) -> RuleInfo:
    for_s = getattr(rule, "for_", 0)
    window = getattr(rule, "window", None)
    if isinstance(rule, SloRule):
        window = format_duration(rule.period)
    return RuleInfo(
        name=rule.name,
        version=version,
        type=rule.type,
        severity=rule.severity,
        for_s=int(for_s),
        repeat_s=rule.repeat_interval,
        window=format_duration(window) if isinstance(window, int) else window,
        labels=rule.labels,
    )


class Monitor(DaemonTask):
    """Evaluates alert rules every ``interval_s`` (see the module docstring).

    ``file_rules`` come from the ``--alerts`` file and ``default_rules`` from the shipped pack;
    both are written into every project's versioned rules (file rules are read-only through the
    API; a default rule may be edited or deleted there, and the edit is kept).
    """

    name = "monitor"

    def __init__(
        self,
        store: TraceStore,
        *,
        clock: Clock = system_clock,
        interval_s: float = 30.0,
        file_rules: Sequence[Rule] = (),
        default_rules: Sequence[Rule] = (),
        dispatcher: Dispatcher | None = None,
        public_url: str = "http://127.0.0.1:7600",
        owns_rules: bool = True,
    ) -> None:
        super().__init__(interval_s=interval_s)
        # Only a node that runs the monitor (role all or monitor) writes the alerts file's and
        # the default pack's rules into the store: an api node without the file, listing the
        # rules, wrote a deletion of every file rule (its view of the file is empty).
        self._owns_rules = owns_rules
        self._store = store
        self._clock = clock
        self._dispatcher = dispatcher
        self._public_url = public_url.rstrip("/")
        file_names = {r.name for r in file_rules}
        self._managed: dict[str, tuple[Rule, str]] = {
            r.name: (r, "default") for r in default_rules if r.name not in file_names
        }
        self._managed.update({r.name: (r, "file") for r in file_rules})
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self._active: dict[str, dict[tuple[str, str], Alert]] = {}
        self._synced: set[str] = set()
        self._load_active()
        self._parsed: dict[tuple[str, str, int], Rule | ConfigError] = {}
        self._status: dict[str, dict[str, tuple[str, datetime | None, str | None]]] = {}
        self._slos: dict[str, dict[str, SloStatus]] = {}
        self._baselines: dict[tuple[str, str, int], tuple[datetime, dict[str, list[float]]]] = {}
        self._warned: set[tuple[str, str]] = set()
        # (project, score name, source) with a score stored: available for good (until then
        # the store is asked each tick, a LIMIT 1 read)
        self._scored: set[tuple[str, str, str]] = set()
        self.num_ticks = 0

    # -- the loop ----------------------------------------------------------------------------

    def run_once(self) -> None:
        self.tick()

    def _load_active(self) -> None:
        active: dict[str, dict[tuple[str, str], Alert]] = {}
        for a in self._store.list_active_alerts():
            active.setdefault(a.project_id, {})[(a.rule, a.group_key)] = a
        with self._lock:
            self._active = active

    def start(self) -> None:
        """Start ticking from the alerts the store holds now.

        A standby monitor (docs/scale-out.md) is built long before it is elected; the leader it
        replaces has fired and resolved alerts since, which it must not notify again.
        """
        if self._thread is None:
            self._load_active()
        super().start()

    def tick(self) -> None:
        """Evaluate every project's rules once, at the clock's current time."""
        now = self._clock()
        self._merge_acks()
        for p in self._store.list_projects():
            try:
                self.evaluate_project(p.id, now)
            except (SightlineError, ValueError) as e:
                log.error("monitor_project_failed", project=p.id, error=str(e))
            except Exception:  # one project's failure must not stop the others' alerting
                log.exception("monitor_project_failed", project=p.id)
        self.num_ticks += 1

    def _merge_acks(self) -> None:
        """Take the acknowledgements another process stored (an ``api`` node's monitor).

        Without them this one would repeat the alert, and store it back unacknowledged.
        """
        stored = {a.alert_id: a for a in self._store.list_active_alerts() if a.acknowledged_at}
        if not stored:
            return
        with self._lock:
            for active in self._active.values():
                for k, a in active.items():
                    s = stored.get(a.alert_id)
                    if s is None or s.acknowledged_at is None:
                        continue
                    if a.acknowledged_at is None or s.acknowledged_at > a.acknowledged_at:
                        active[k] = dataclasses.replace(
                            a,
                            acknowledged_at=s.acknowledged_at,
                            acknowledged_by=s.acknowledged_by,
                            ack_expires_at=s.ack_expires_at,
                        )

    def _unscored_metrics(
        self, project_id: str, rule: Rule, names: dict[str, set[tuple[str, str]]]
    ) -> list[str]:
        """Score metrics the rule reads of which the project has no score at all yet.

        Such a rule would say ``ok`` with evaluation off (or its evaluator not running): not
        healthy, unknown. Once a score of the name is stored, the metric is available for good.
        ``names``: the project's stored (name, source) pairs, read at most once a tick.
        """
        out = []
        for name in metrics_of(rule):
            m = METRICS.get(name)
            if m is None or m.score_name is None:
                continue
            key = (project_id, m.score_name, m.score_source)
            if key in self._scored:
                continue
            if project_id not in names:
                names[project_id] = self._store.score_names(project_id)
            if (m.score_name, m.score_source) in names[project_id]:
                self._scored.add(key)
            else:
                out.append(name)
        return out

    def evaluate_project(self, project_id: str, now: datetime) -> None:
        """One tick of one project."""
        self._sync(project_id, now)
        entries = self._store.list_rules(project_id)
        status: dict[str, tuple[str, datetime | None, str | None]] = {}
        runnable: list[tuple[RuleVersion, Rule]] = []
        names: dict[str, set[tuple[str, str]]] = {}
        for v in entries:
            rule = self._parse(v)
            if isinstance(rule, ConfigError):
                status[v.name] = ("error", now, str(rule))
                continue
            if not rule.enabled:
                status[v.name] = ("disabled", None, None)
                continue
            missing = missing_metrics(rule)
            unscored = [] if missing else self._unscored_metrics(project_id, rule, names)
            if missing or unscored:
                msg = (
                    f"metric not available yet: {', '.join(missing)}"
                    if missing
                    else f"no score stored yet for {', '.join(unscored)} (is evaluation on?)"
                )
                missing = missing or unscored
                status[v.name] = ("metric_unavailable", now, msg)
                if (project_id, v.name) not in self._warned:
                    self._warned.add((project_id, v.name))
                    log.warning(
                        "rule_metric_unavailable", project=project_id, rule=v.name, metrics=missing
                    )
                continue
            try:
                for m, a in _metric_aggs(rule):
                    _check_metric(m, a)
                if isinstance(rule, SloRule) and rule.sli == "quality" and rule.metric:
                    if METRICS[rule.metric].unit != "ratio":
                        raise ValueError(
                            f"a quality SLO needs a ratio metric; {rule.metric} is in"
                            f" {METRICS[rule.metric].unit}"
                        )
            except ValueError as e:
                status[v.name] = ("error", now, str(e))
                continue
            runnable.append((v, rule))

        aggs: list[WindowAgg] = []
        slices: dict[str, tuple[int, int]] = {}
        for v, rule in runnable:
            ra = aggs_for(rule)
            slices[v.name] = (len(aggs), len(aggs) + len(ra))
            aggs += ra
        values = self._store.query_windows(project_id, now, aggs) if aggs else []
        drift_rules = [r for _, r in runnable if isinstance(r, DriftRule)]
        drift = (
            self._store.list_drift_results(
                DriftQuery(
                    project_id=project_id,
                    start=now - timedelta(seconds=max(r.window for r in drift_rules)),
                    limit=1000,
                )
            )
            if drift_rules
            else []
        )
        observed: dict[str, list[Any]] = {}
        slos: dict[str, SloStatus] = {}
        for v, rule in runnable:
            lo, hi = slices[v.name]
            try:
                baselines = (
                    self._baseline(project_id, v, rule, now)
                    if isinstance(rule, AnomalyRule)
                    else None
                )
                slo_out: list[SloStatus] = []
                observed[v.name] = observe(
                    rule, values[lo:hi], baselines=baselines, drift=drift, slo_out=slo_out
                )
                for s in slo_out:
                    slos[s.name] = s
            except (SightlineError, ValueError) as e:
                status[v.name] = ("error", now, str(e))
                log.error("rule_evaluation_failed", project=project_id, rule=v.name, error=str(e))
        self._apply(project_id, now, runnable, observed, status, entries)
        with self._lock:
            self._slos[project_id] = slos

    # -- state changes -----------------------------------------------------------------------

    def _apply(
        self,
        project_id: str,
        now: datetime,
        runnable: list[tuple[RuleVersion, Rule]],
        observed: dict[str, list[Any]],
        status: dict[str, tuple[str, datetime | None, str | None]],
        entries: list[RuleVersion],
    ) -> None:
        silences = [s for s in self._store.list_silences(project_id) if s.ends_at > now]
        evaluated = {v.name for v, _ in runnable}
        live = {v.name for v in entries}
        # the rules that fired the alerts of deleted or disabled rules: those alerts resolve,
        # and whoever the firing was sent to hears it (read before the lock: a store read)
        with self._lock:
            ending = {
                (name, a.rule_version)
                for (name, _), a in self._active.get(project_id, {}).items()
                if name not in evaluated
                and (name not in live or status.get(name, ("",))[0] == "disabled")
                and a.status == "firing"
                and a.last_notified_at is not None
            }
        fired_by = {key: self._rule_version(project_id, *key) for key in ending}
        changed: list[Alert] = []
        events: list[AlertEvent] = []
        notify: list[tuple[Alert, str, Rule]] = []
        with self._lock:
            # a copy, kept only once saved: a tick whose save fails leaves the state as it
            # was, and the next tick makes the same changes (and notifications) again
            active = dict(self._active.get(project_id, {}))
            for v, rule in runnable:
                if v.name not in observed:
                    continue
                info = _info(rule, v.version)
                obs_by_key = {group_key(o.group): o for o in observed[v.name]}
                keys = list(obs_by_key) + [
                    k for (r, k) in active if r == v.name and k not in obs_by_key
                ]
                state = "ok"
                for k in keys:
                    prior = active.get((v.name, k))
                    obs = obs_by_key.get(k)
                    sev = (obs.severity if obs else None) or (
                        prior.severity if prior else rule.severity
                    )
                    group = obs.group if obs else (prior.group if prior else {})
                    silenced = (
                        matching_silence(silences, alert_labels(info, sev, group), now) is not None
                    )
                    step = advance(
                        info,
                        prior,
                        obs,
                        now,
                        project_id=project_id,
                        group_key=k,
                        silenced=silenced,
                        new_id=lambda: secrets.token_hex(8),
                    )
                    if step.alert is None:
                        continue
                    a = step.alert
                    if a.active:
                        active[(v.name, k)] = a
                        state = "firing" if a.status == "firing" or state == "firing" else "pending"
                    else:
                        active.pop((v.name, k), None)
                    changed.append(a)
                    events += [self._event(a, kind, msg, now) for kind, msg in step.events]
                    if step.notify:
                        notify.append((a, step.notify, rule))
                status.setdefault(v.name, (state, now, None))
            # Alerts of rules that were deleted or disabled resolve, and a firing one that was
            # notified says so (on-call tools would keep its incident open), with the reason.
            for (name, k), a in list(active.items()):
                gone = name not in live or status.get(name, ("",))[0] == "disabled"
                if name in evaluated or not gone:
                    continue
                reason = "rule deleted" if name not in live else "rule disabled"
                status_: AlertStatus = "cancelled" if a.status == "pending" else "resolved"
                was_notified = a.status == "firing" and a.last_notified_at is not None
                a = dataclasses.replace(a, status=status_, ended_at=now, last_evaluated_at=now)
                if status_ == "resolved":
                    a = dataclasses.replace(a, summary=f"{reason}; last: {a.summary}")
                del active[(name, k)]
                changed.append(a)
                events.append(self._event(a, status_, reason, now))
                fired = fired_by.get((name, a.rule_version))
                if was_notified and fired is not None:
                    info = _info(fired, a.rule_version)
                    labels = alert_labels(info, a.severity, a.group)
                    if matching_silence(silences, labels, now) is None:
                        notify.append((a, "resolved", fired))
            deliveries = []
            if self._dispatcher is not None:
                for a, kind, rule in notify:
                    if rule.notify:
                        deliveries += self._dispatcher.prepare(
                            project_id, a.alert_id, kind, self._payload(a, kind, rule), rule.notify
                        )
            # the deliveries in the state change's transaction: a crash after it commits
            # leaves them pending, sent when the next start resumes them
            self._store.save_alerts(changed, events, deliveries)
            self._active[project_id] = active
            self._status[project_id] = status
        for a, kind, _ in notify:
            if kind == "firing":
                log.warning(
                    "alert_firing",
                    project=project_id,
                    rule=a.rule,
                    group=a.group,
                    severity=a.severity,
                    value=a.value,
                )
            else:
                log.info("alert_resolved", project=project_id, rule=a.rule, group=a.group)
        if self._dispatcher is not None:
            self._dispatcher.enqueue(deliveries)

    def _payload(self, a: Alert, kind: str, rule: Rule) -> dict[str, Any]:
        return alert_payload(
            a,
            status=kind,
            owner=rule.owner,
            runbook=rule.runbook,
            labels=rule.labels,
            dashboard_url=f"{self._public_url}/api/v1/alerts/{a.alert_id}",
        )

    @staticmethod
    def _event(a: Alert, kind: str, message: str, now: datetime) -> AlertEvent:
        return AlertEvent(
            project_id=a.project_id,
            event_id=secrets.token_hex(8),
            alert_id=a.alert_id,
            rule=a.rule,
            kind=kind,
            at=now,
            value=a.value,
            message=message,
        )

    # -- anomaly baselines -------------------------------------------------------------------

    def _baseline(
        self, project_id: str, v: RuleVersion, rule: AnomalyRule, now: datetime
    ) -> dict[str, list[float]]:
        """Window values per group over the baseline, recomputed once per completed window."""
        w = rule.window
        epoch = int((now - timedelta(seconds=w)).timestamp())
        end = datetime.fromtimestamp(epoch - epoch % w, UTC)
        key = (project_id, v.name, v.version)
        cached = self._baselines.get(key)
        if cached is not None and cached[0] == end:
            return cached[1]
        m = METRICS[rule.metric]
        agg = rule.agg or m.default_agg
        series = self._store.query_metric(
            MetricQuery(
                project_id=project_id,
                metric=m,
                agg=agg,  # type: ignore[arg-type]
                start=end - timedelta(seconds=rule.baseline),
                end=end,
                step_s=w,
                group_by=tuple(rule.group_by),
                filters=dict(rule.filter),
            )
        )
        out: dict[str, list[float]] = {}
        # An hour without calls cost nothing: sums and counts fill empty windows with 0, from
        # the first window with data (not before: a new project has no history, not zeros).
        fill = agg in ("sum", "count")
        for s in series:
            pts = [(t, x) for t, x in s.points if x is not None]
            if not pts:
                continue
            if fill:
                have = dict(pts)
                t, vals = pts[0][0], []
                while t < end:
                    vals.append(have.get(t, 0.0))
                    t += timedelta(seconds=w)
                out[group_key(s.group)] = vals
            else:
                out[group_key(s.group)] = [x for _, x in pts]
        self._baselines[key] = (end, out)
        return out

    # -- rules -------------------------------------------------------------------------------

    def _rule_version(self, project_id: str, name: str, version: int) -> Rule | None:
        """The rule as it was at ``version`` (None when that version is gone or unparsable)."""
        r = self._parsed.get((project_id, name, version))
        if r is None:
            try:
                versions = self._store.list_rule_versions(project_id, name)
                found = [v for v in versions if v.version == version]
            except SightlineError as e:
                log.error("rule_version_unreadable", project=project_id, rule=name, error=str(e))
                return None
            if not found:
                return None
            r = self._parse(found[0])
        return None if isinstance(r, ConfigError) else r

    def _parse(self, v: RuleVersion) -> Rule | ConfigError:
        key = (v.project_id, v.name, v.version)
        r = self._parsed.get(key)
        if r is None:
            try:
                r = parse_rule(v.spec, stored=True)
            except ConfigError as e:
                r = e
            self._parsed[key] = r
        return r

    def _sync(self, project_id: str, now: datetime) -> None:
        """Write the file's and the default pack's rules into the project, when they changed."""
        if project_id in self._synced or not self._owns_rules:
            return
        # The loop and an API call may sync a new project at once. Its own lock, not _lock:
        # syncing writes a rule version per rule, seconds on a remote store, and /metrics and
        # the alert list must not wait for it.
        with self._sync_lock:
            if project_id not in self._synced:
                self._sync_locked(project_id, now)

    def _sync_locked(self, project_id: str, now: datetime) -> None:
        latest = {v.name: v for v in self._store.list_rules(project_id, include_deleted=True)}
        for name, (rule, source) in self._managed.items():
            spec = rule_to_spec(rule)
            cur = latest.get(name)
            if cur is None:
                pass
            elif cur.source == "api" and source == "default":
                continue  # the user's edit (or deletion) of a default rule stands
            elif cur.source == source and cur.spec == spec and not cur.deleted:
                continue
            self._store.add_rule_version(
                RuleVersion(
                    project_id=project_id,
                    name=name,
                    version=0,
                    spec=spec,
                    source=source,
                    created_at=now,
                )
            )
        for name, cur in latest.items():
            if cur.source in ("file", "default") and not cur.deleted and name not in self._managed:
                self._store.add_rule_version(
                    RuleVersion(
                        project_id=project_id,
                        name=name,
                        version=0,
                        spec=cur.spec,
                        source=cur.source,
                        deleted=True,
                        created_at=now,
                    )
                )
        self._synced.add(project_id)

    def list_rules(self, project_id: str) -> list[RuleView]:
        """The project's rules with their last evaluation."""
        self._sync(project_id, self._clock())
        with self._lock:
            status = dict(self._status.get(project_id, {}))
            active = self._active.get(project_id, {})
            counts: dict[str, int] = {}
            for name, _ in active:
                counts[name] = counts.get(name, 0) + 1
        out = []
        for v in self._store.list_rules(project_id):
            st = status.get(v.name, ("not_evaluated", None, None))
            out.append(RuleView(v, st[0], st[1], st[2], counts.get(v.name, 0)))
        return out

    def get_rule(self, project_id: str, name: str) -> RuleView:
        """One rule; NotFound if there is none."""
        for r in self.list_rules(project_id):
            if r.version.name == name:
                return r
        raise NotFound(f"no rule named {name!r}")

    def put_rule(
        self,
        project_id: str,
        spec: Mapping[str, Any],
        *,
        author: str | None = None,
        create: bool = False,
    ) -> RuleVersion:
        """Create (``create``: 409 if it exists) or replace a rule; a new version either way."""
        rule = parse_rule(dict(spec))
        self._check_channels(rule)
        self._sync(project_id, self._clock())
        with self._lock:
            cur = {v.name: v for v in self._store.list_rules(project_id)}.get(rule.name)
            if cur is not None and cur.source == "file":
                raise Conflict(f"rule {rule.name!r} comes from the alerts file; edit the file")
            if create and cur is not None:
                raise Conflict(f"a rule named {rule.name!r} exists; PUT it to change it")
            if cur is None and len(self._store.list_rules(project_id)) >= MAX_RULES:
                raise ConfigError(f"a project has at most {MAX_RULES} rules")
            v = self._store.add_rule_version(
                RuleVersion(
                    project_id=project_id,
                    name=rule.name,
                    version=0,
                    spec=rule_to_spec(rule),
                    source="api",
                    author=author,
                    created_at=self._clock(),
                )
            )
        log.info("rule_changed", project=project_id, rule=rule.name, version=v.version)
        return v

    def delete_rule(self, project_id: str, name: str, *, author: str | None = None) -> RuleVersion:
        """Delete a rule (a new, deleted version); its active alerts resolve at the next tick."""
        self._sync(project_id, self._clock())
        with self._lock:
            cur = {v.name: v for v in self._store.list_rules(project_id)}.get(name)
            if cur is None:
                raise NotFound(f"no rule named {name!r}")
            if cur.source == "file":
                raise Conflict(f"rule {name!r} comes from the alerts file; edit the file")
            v = self._store.add_rule_version(
                dataclasses.replace(
                    cur,
                    version=0,
                    deleted=True,
                    source="api",
                    author=author,
                    created_at=self._clock(),
                )
            )
        log.info("rule_deleted", project=project_id, rule=name, version=v.version)
        return v

    def rule_versions(self, project_id: str, name: str) -> list[RuleVersion]:
        """Every version of a rule; NotFound if it never existed."""
        self._sync(project_id, self._clock())
        vs = self._store.list_rule_versions(project_id, name)
        if not vs:
            raise NotFound(f"no rule named {name!r}")
        return vs

    def _check_channels(self, rule: Rule) -> None:
        known = self._dispatcher.channels if self._dispatcher is not None else {}
        unknown = [c for c in rule.notify if c not in known]
        if unknown:
            raise ConfigError(
                f"rule {rule.name}: unknown channel(s) {', '.join(unknown)};"
                f" configured: {', '.join(sorted(known)) or 'none'}"
            )

    # -- alerts, acknowledgements, silences --------------------------------------------------

    def acknowledge(
        self,
        project_id: str,
        alert_id: str,
        *,
        by: str | None,
        comment: str | None,
        expires_at: datetime | None,
    ) -> Alert:
        """Acknowledge an active alert: no repeat notifications until it resolves (or expiry)."""
        now = self._clock()
        with self._lock:
            if self._thread is None and self.interval_s > 0:
                # not ticking in this process (an api node): its alerts are the store's
                self._load_active()
            active = self._active.get(project_id, {})
            found = next(((k, a) for k, a in active.items() if a.alert_id == alert_id), None)
            if found is None:
                if self._store.get_alert(project_id, alert_id) is None:
                    raise NotFound(f"no alert {alert_id!r}")
                raise Conflict(f"alert {alert_id} is no longer active")
            if expires_at is not None and expires_at <= now:
                raise ConfigError("expires_at must be in the future")
            key, a = found
            a = dataclasses.replace(
                a, acknowledged_at=now, acknowledged_by=by, ack_expires_at=expires_at
            )
            self._store.save_alerts([a], [self._event(a, "acknowledged", comment or "", now)])
            active[key] = a
        return a

    def add_silence(
        self,
        project_id: str,
        matchers: Mapping[str, str],
        *,
        starts_at: datetime | None,
        ends_at: datetime,
        by: str | None,
        comment: str | None,
    ) -> Silence:
        """Mute notifications of matching alerts until ``ends_at``."""
        now = self._clock()
        start = starts_at or now
        if not matchers:
            raise ConfigError("a silence needs at least one matcher (rule, severity or a label)")
        if ends_at <= start or ends_at <= now:
            raise ConfigError("a silence must end after it starts, and in the future")
        s = Silence(
            project_id=project_id,
            silence_id=secrets.token_hex(8),
            matchers=dict(matchers),
            starts_at=start,
            ends_at=ends_at,
            created_by=by,
            comment=comment,
            created_at=now,
        )
        self._store.save_silence(s)
        return s

    def expire_silence(self, project_id: str, silence_id: str) -> Silence:
        """End a silence now."""
        now = self._clock()
        s = next(
            (x for x in self._store.list_silences(project_id) if x.silence_id == silence_id), None
        )
        if s is None:
            raise NotFound(f"no silence {silence_id!r}")
        if s.ends_at > now:
            s = dataclasses.replace(s, ends_at=max(now, s.starts_at))
            self._store.save_silence(s)
        return s

    def list_silences(self, project_id: str) -> list[Silence]:
        """A project's silences, newest first."""
        return self._store.list_silences(project_id)

    def slos(self, project_id: str) -> list[SloStatus]:
        """Each SLO's status at the last tick."""
        with self._lock:
            return list(self._slos.get(project_id, {}).values())

    def firing(self, project_id: str) -> list[Alert]:
        """The project's firing alerts."""
        if self._thread is None and self.interval_s > 0:
            # not ticking in this process (an api node; a standby monitor): the store knows
            return [
                a
                for a in self._store.list_active_alerts()
                if a.project_id == project_id and a.status == "firing"
            ]
        with self._lock:
            return [a for a in self._active.get(project_id, {}).values() if a.status == "firing"]

    def firing_counts(self, project_id: str) -> dict[tuple[str, str], int]:
        """Firing alerts per (rule, severity), with 0 for each severity an enabled rule fires at.

        A gauge series that vanishes when nothing fires makes ``sum(sightline_alerts_firing)``
        "No data" rather than 0.
        """
        counts: dict[tuple[str, str], int] = {}
        # read only: syncing here wrote this node's view of the alerts file into the store, and
        # a node without the file (an ingest or worker node scraped for /metrics) deleted the
        # monitors' file rules
        for v in self._store.list_rules(project_id):
            rule = self._parse(v)
            if isinstance(rule, ConfigError) or not rule.enabled:
                continue
            sevs = {rule.severity}
            if isinstance(rule, SloRule):  # an SLO fires at its burn alerts' severities
                sevs = {b.severity for b in rule.burn_alerts} or sevs
            for sev in sevs:
                counts[(v.name, sev)] = 0
        for a in self.firing(project_id):
            counts[(a.rule, a.severity)] = counts.get((a.rule, a.severity), 0) + 1
        return counts

    def now(self) -> datetime:
        """The monitor's clock."""
        return self._clock()


def _metric_aggs(rule: Rule) -> list[tuple[str, str | None]]:
    if isinstance(rule, ThresholdRule | AnomalyRule):
        return [(rule.metric, rule.agg)]
    if isinstance(rule, CompositeRule):
        return [(c.metric, c.agg) for c in rule.conditions]
    if isinstance(rule, SloRule) and rule.sli == "quality" and rule.metric:
        return [(rule.metric, None)]
    return []
