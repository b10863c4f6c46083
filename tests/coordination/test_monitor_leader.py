"""Two monitors over one store, elected through either coordinator backend: only the leader
ticks and notifies; when it dies (stops renewing, no release) the other takes over after the
lease, and no alert is notified twice."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from _alerting import HttpReceiver, wait_for
from _coord import BACKENDS, MakeCoordinator, coordinators
from _evalspans import _T0, insert, span
from sightline._clock import FakeClock, system_clock
from sightline.alerts import load_alerts_file
from sightline.config import Settings
from sightline.coordination import Leadership
from sightline.server._auth import ensure_project_with_key
from sightline.server._monitoring import Monitoring, build_monitoring
from sightline.store import DuckDBStore

P = "p"
LEASE_S = 1.0


@dataclass
class Node:
    """One monitor process's parts: its loops and its leader lease."""

    monitoring: Monitoring
    leadership: Leadership

    def die(self) -> None:
        """As SIGKILL would: renewals and loops stop; the lease is not released."""
        self.leadership._stop.set()
        assert self.leadership._thread is not None
        self.leadership._thread.join()
        self.monitoring.stop()


@pytest.fixture(params=BACKENDS)
def make(request: pytest.FixtureRequest) -> Iterator[MakeCoordinator]:
    for m, _ in coordinators(request.param):
        yield m


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    r = HttpReceiver().start()
    yield r
    r.stop()


def _errors(store: DuckDBStore, model: str, n: int = 10) -> None:
    now_ms = (time.time_ns() - _T0) / 1e6
    insert(
        store,
        [
            span(
                P,
                secrets.token_hex(16),
                kind="llm",
                name="chat",
                start_ms=now_ms - 2000 - i,
                status="error",
                model=model,
            )  # fmt: skip
            for i in range(n)
        ],
    )


def _two_monitors(
    tmp_path: Path, make: MakeCoordinator, receiver: HttpReceiver
) -> tuple[DuckDBStore, list[Node]]:
    """Two monitor nodes on one store, competing for the lease (not started)."""
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(
        f"""
channels:
  hook: {{type: webhook, url: "{receiver.url}/hook", backoff_s: 0.05}}
rules:
  - name: errors
    metric: error_rate
    op: ">"
    threshold: 0.5
    window: 1m
    min_requests: 5
    severity: P1
    group_by: [model]
    notify: [hook]
"""
    )
    settings = Settings(
        data_dir=tmp_path,
        monitor_interval_s=0.2,
        drift_interval_s=0,
        default_alert_rules=False,
        notify_allow_private=True,
        alerts_file=alerts,
    )
    store = DuckDBStore(settings.db_path)
    store.migrate()
    ensure_project_with_key(store, P, "sl_leader_test_key_0123456789")
    file = load_alerts_file(alerts)
    nodes: list[Node] = []
    for name in ("a", "b"):
        mon = build_monitoring(settings, store, system_clock, file)
        lead = Leadership(
            make(store),
            "monitor",
            owner=name,
            lease_s=LEASE_S,
            on_elected=mon.start,
            on_deposed=mon.stop,
        )
        mon.set_gate(lambda lead=lead: lead.is_leader)  # as the server wires it
        nodes.append(Node(mon, lead))
    return store, nodes


def test_one_monitor_notifies_and_another_takes_over_when_it_dies(
    tmp_path: Path, make: MakeCoordinator, receiver: HttpReceiver
) -> None:
    store, nodes = _two_monitors(tmp_path, make, receiver)
    try:
        for n in nodes:
            n.leadership.start()
        wait_for(lambda: any(n.leadership.is_leader for n in nodes))
        [leader] = [n for n in nodes if n.leadership.is_leader]
        [other] = [n for n in nodes if n is not leader]
        _errors(store, "m1")
        wait_for(lambda: len(receiver.bodies("/hook")) == 1)
        time.sleep(LEASE_S * 1.5)  # several renewals and ticks: the other stays idle
        assert other.leadership.num_elected == 0 and other.monitoring.monitor.num_ticks == 0
        assert leader.leadership.num_elected == 1

        leader.die()
        died = time.monotonic()
        _errors(store, "m2")
        wait_for(lambda: other.leadership.is_leader, timeout_s=10)
        assert time.monotonic() - died >= LEASE_S * 0.5  # it waited for the lease to run out
        wait_for(lambda: len(receiver.bodies("/hook")) >= 2)
        time.sleep(1.0)  # the new leader ticks on: m1 is still firing, and not sent again
        assert other.monitoring.monitor.num_ticks > 2
        bodies = receiver.bodies("/hook")
        assert sorted((b["status"], b["group"]["model"]) for b in bodies) == [
            ("firing", "m1"),
            ("firing", "m2"),
        ]
    finally:
        for n in nodes:
            n.leadership.stop()
            n.monitoring.stop()
        store.close()


def test_a_leader_whose_renewals_stall_stops_acting_when_its_lease_runs_out(
    tmp_path: Path, make: MakeCoordinator, receiver: HttpReceiver
) -> None:
    """Its renewals stuck (a hung Redis connection, a busy thread), the leader's loops go on,
    but only until its lease runs out by its own clock: the next leader notifies alone."""
    store, nodes = _two_monitors(tmp_path, make, receiver)
    try:
        for n in nodes:
            n.leadership.start()
        wait_for(lambda: any(n.leadership.is_leader for n in nodes))
        [leader] = [n for n in nodes if n.leadership.is_leader]
        [other] = [n for n in nodes if n is not leader]
        _errors(store, "m1")
        wait_for(lambda: len(receiver.bodies("/hook")) == 1)
        with leader.leadership._lock:  # its renewal thread is stuck from now on
            wait_for(lambda: other.leadership.is_leader, timeout_s=10)
            assert not leader.leadership.is_leader  # by its own clock
            _errors(store, "m2")
            wait_for(lambda: len(receiver.bodies("/hook")) >= 2)
            time.sleep(1.0)  # the stalled leader's monitor would tick m2 five times here
        bodies = receiver.bodies("/hook")
        assert sorted((b["status"], b["group"]["model"]) for b in bodies) == [
            ("firing", "m1"),
            ("firing", "m2"),
        ]
    finally:
        for n in nodes:
            n.leadership.stop()
            n.monitoring.stop()
        store.close()


def test_a_reelected_leader_does_not_send_again_what_it_had_queued(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    """Deposed with deliveries queued (its channel was down), a leader stops its notifiers; the
    next leader sends them from the store. Elected again later, it sends none of them twice
    (its in-memory queue kept them), and it can still send (its HTTP client was closed)."""
    from sightline.alerts import Dispatcher, WebhookChannel

    store = DuckDBStore(tmp_path / "d.duckdb")
    store.migrate()
    ensure_project_with_key(store, P, "sl_leader_test_key_0123456789")
    ch = {"hook": WebhookChannel(type="webhook", url=f"{receiver.url}/hook", backoff_s=5.0)}
    a = Dispatcher(store, ch, allow_private=True)
    b = Dispatcher(store, ch, allow_private=True)
    receiver.fail_paths["/hook"] = 503
    try:
        a.start()
        for i in range(3):
            a.submit(P, f"alert-{i}", "firing", {"n": i}, ["hook"])
        wait_for(lambda: receiver.attempts.get("/hook", 0) >= 1)
        a.stop()  # deposed: alert-0 is waiting for its retry, alert-1 and -2 are queued
        receiver.fail_paths.clear()
        b.start()  # the new leader resumes the pending deliveries
        wait_for(lambda: len(receiver.bodies("/hook")) == 3)
        b.stop()
        a.start()  # re-elected: it sends a new alert, and nothing again
        a.submit(P, "alert-3", "firing", {"n": 3}, ["hook"])
        wait_for(lambda: len(receiver.bodies("/hook")) >= 4, timeout_s=10)
        time.sleep(0.5)
        assert sorted(x["n"] for x in receiver.bodies("/hook")) == [0, 1, 2, 3]
        assert {d.status for d in store.list_deliveries(None, limit=10)} == {"delivered"}
    finally:
        a.stop()
        b.stop()
        store.close()


def test_an_alert_acknowledged_on_an_api_node_stops_the_leaders_repeats(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    """Split roles: the api node's monitor does not tick (its alerts were read at its start),
    the monitor node's does. Acknowledging an alert fired since the api node started answered
    409 'no longer active'; and the leader, ticking from its own memory, never saw an
    acknowledgement made elsewhere: it kept re-notifying and wrote the alert back unacked."""
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(
        f"""
channels:
  hook: {{type: webhook, url: "{receiver.url}/hook", backoff_s: 0.05}}
rules:
  - name: errors
    metric: error_rate
    op: ">"
    threshold: 0.5
    window: 10m
    min_requests: 5
    group_by: [model]
    notify: [hook]
    repeat_interval: 1m
"""
    )
    settings = Settings(
        data_dir=tmp_path,
        monitor_interval_s=0.2,
        drift_interval_s=0,
        default_alert_rules=False,
        notify_allow_private=True,
        alerts_file=alerts,
    )
    store = DuckDBStore(settings.db_path)
    store.migrate()
    ensure_project_with_key(store, P, "sl_leader_test_key_0123456789")
    file = load_alerts_file(alerts)
    # repeat_interval is at least 1m: the nodes' clock is moved past it (the spans are real
    # time, inside the 10m window)
    clock = FakeClock(datetime.now(UTC))
    api = build_monitoring(settings, store, clock, file)  # built, never started
    leader = build_monitoring(settings, store, clock, file)
    try:
        leader.start()
        _errors(store, "m1")
        wait_for(lambda: len(receiver.bodies("/hook")) >= 1)  # fired
        clock.advance(seconds=61)
        wait_for(lambda: len(receiver.bodies("/hook")) >= 2)  # repeated
        [a] = api.monitor.firing(P)
        acked = api.monitor.acknowledge(P, a.alert_id, by="oncall", comment=None, expires_at=None)
        assert acked.acknowledged_by == "oncall"
        time.sleep(0.5)  # the leader's next ticks see it
        n = len(receiver.bodies("/hook"))
        clock.advance(seconds=130)  # over two repeat intervals
        time.sleep(1.0)  # several ticks
        assert len(receiver.bodies("/hook")) == n
        [stored] = [x for x in store.list_active_alerts() if x.alert_id == a.alert_id]
        assert stored.acknowledged_by == "oncall"
    finally:
        leader.stop()
        store.close()
