"""Deliveries to real local receivers: webhook and Slack over HTTP, email over SMTP (aiosmtpd);
a failing webhook is retried, recorded, and does not hold back the other channels."""

from __future__ import annotations

import email
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from _alerting import T0, Harness, HttpReceiver, harness, wait_for
from _helpers import free_port
from sightline.alerts._notify import check_host
from sightline.errors import NotifyError


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    r = HttpReceiver(fail_paths={"/broken": 500}).start()
    yield r
    r.stop()


@pytest.fixture
def mailbox() -> Iterator[tuple[_Mailbox, int]]:
    box = _Mailbox()
    port = free_port()
    c = Controller(box, hostname="127.0.0.1", port=port)
    c.start()
    yield box, port
    c.stop()


@pytest.fixture
def hn(tmp_path: Path, receiver: HttpReceiver, mailbox: tuple[_Mailbox, int]) -> Iterator[Harness]:
    _, smtp_port = mailbox
    yaml = f"""
channels:
  hook:
    type: webhook
    url: {receiver.url}/hook
    headers: {{x-token: secret-1}}
  slack:
    type: slack
    url: {receiver.url}/slack
  mail:
    type: email
    smtp_host: 127.0.0.1
    smtp_port: {smtp_port}
    tls: none
    from: sightline@example.com
    to: [oncall@example.com]
  broken:
    type: webhook
    url: {receiver.url}/broken
    max_attempts: 3
    backoff_s: 0.05
rules:
  - name: errors
    metric: error_rate
    op: ">"
    threshold: 0.05
    window: 1m
    min_requests: 10
    severity: P1
    owner: team-llm
    runbook: https://runbooks.example/errors
    labels: {{team: llm}}
    group_by: [model]
    notify: [broken, hook, slack, mail]
"""
    yield from harness(tmp_path, alerts_yaml=yaml, public_url="https://sightline.example")


def test_deliveries_reach_webhook_slack_and_smtp_while_a_broken_webhook_is_retried(
    hn: Harness, receiver: HttpReceiver, mailbox: tuple[_Mailbox, int]
) -> None:
    box, _ = mailbox
    h = hn
    h.traffic(20, T0, error=True, model="gpt-4o")
    h.tick()
    [a] = h.alerts(status="firing")
    wait_for(lambda: len(receiver.bodies("/hook")) == 1 and len(receiver.bodies("/slack")) == 1)
    wait_for(lambda: len(box.messages) == 1)
    [hook] = receiver.bodies("/hook")
    assert hook == {
        "status": "firing",
        "rule": "errors",
        "severity": "P1",
        "labels": {"team": "llm", "model": "gpt-4o"},
        "group": {"model": "gpt-4o"},
        "value": 1.0,
        "threshold": 0.05,
        "window": "1m",
        "started_at": T0.isoformat(),
        "ended_at": None,
        "owner": "team-llm",
        "runbook": "https://runbooks.example/errors",
        "dashboard_url": f"https://sightline.example/api/v1/alerts/{a['alert_id']}",
        "summary": "error_rate = 1 > 0.05 over 1m (model=gpt-4o)",
        "alert_id": a["alert_id"],
        "project": "alerts",
    }
    [got] = [r for r in receiver.received if r.path == "/hook"]
    assert got.headers["x-token"] == "secret-1"
    [slack] = receiver.bodies("/slack")
    assert slack["text"].startswith(":red_circle: [P1] FIRING: errors (model=gpt-4o)")
    assert slack["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "[P1] FIRING: errors (model=gpt-4o)"},
    }
    assert slack["blocks"][-1]["elements"][0]["url"] == hook["dashboard_url"]
    [msg] = box.messages
    assert msg["Subject"] == "[P1] FIRING: errors (model=gpt-4o)"
    assert msg["To"] == "oncall@example.com"
    body = msg.get_payload(decode=True).decode().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert "Runbook:\nhttps://runbooks.example/errors" in body
    assert hook["dashboard_url"] in body
    # the broken webhook: three attempts, then recorded as failed, visible through the API
    wait_for(lambda: receiver.attempts.get("/broken") == 3)
    wait_for(
        lambda: bool(
            h.api("GET", "/api/v1/alerts/deliveries", params={"status": "failed"}).json()["data"]
        )
    )
    [failed] = h.api("GET", "/api/v1/alerts/deliveries", params={"status": "failed"}).json()["data"]
    assert failed["channel"] == "broken" and failed["attempts"] == 3
    assert failed["last_error"].startswith("NotifyError: HTTP 500")
    detail = h.api("GET", f"/api/v1/alerts/{a['alert_id']}").json()
    assert {d["channel"]: d["status"] for d in detail["deliveries"]} == {
        "broken": "failed",
        "hook": "delivered",
        "slack": "delivered",
        "mail": "delivered",
    }
    # resolving notifies too
    h.clock.advance(minutes=2)
    h.traffic(20, h.clock(), model="gpt-4o")
    h.tick()
    wait_for(lambda: len(receiver.bodies("/hook")) == 2)
    resolved = receiver.bodies("/hook")[1]
    assert resolved["status"] == "resolved"
    assert resolved["ended_at"] == h.clock().isoformat()
    wait_for(lambda: len(box.messages) == 2)
    assert box.messages[1]["Subject"].startswith("[P1] RESOLVED: errors")


def test_acknowledged_alerts_stop_repeating_and_silences_mute(
    hn: Harness, receiver: HttpReceiver
) -> None:
    h = hn
    h.traffic(20, T0, error=True, model="gpt-4o")
    h.tick()
    wait_for(lambda: len(receiver.bodies("/hook")) == 1)
    # repeat_interval (4h) re-notifies a firing alert
    h.clock.advance(hours=4)
    h.traffic(20, h.clock(), error=True, model="gpt-4o")
    h.tick()
    wait_for(lambda: len(receiver.bodies("/hook")) == 2)
    [a] = h.alerts(status="firing")
    r = h.api("POST", f"/api/v1/alerts/{a['alert_id']}/ack", json={"by": "ana", "comment": "on it"})
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "ana"
    h.clock.advance(hours=4)
    h.traffic(20, h.clock(), error=True, model="gpt-4o")
    h.tick()
    # a silence on the rule: the next firing alert is recorded but not sent
    r = h.api(
        "POST", "/api/v1/alerts/silences", json={"matchers": {"rule": "errors"}, "duration": "1h"}
    )
    assert r.status_code == 201 and r.json()["active"] is True
    sid = r.json()["silence_id"]
    h.traffic(20, h.clock(), error=True, model="gpt-4o-mini")
    h.tick(seconds=1)
    assert {x["group"]["model"] for x in h.alerts(status="firing")} == {"gpt-4o", "gpt-4o-mini"}
    new = next(x for x in h.alerts(status="firing") if x["group"]["model"] == "gpt-4o-mini")
    events = [e["kind"] for e in h.api("GET", f"/api/v1/alerts/{new['alert_id']}").json()["events"]]
    assert events == ["pending", "firing", "silenced"]
    # expiring the silence lets the muted alert notify at the next tick
    assert h.api("DELETE", f"/api/v1/alerts/silences/{sid}").json()["active"] is False
    h.traffic(20, h.clock(), error=True, model="gpt-4o-mini")
    h.tick(seconds=1)
    wait_for(lambda: len(receiver.bodies("/hook")) == 3)
    assert receiver.bodies("/hook")[2]["group"] == {"model": "gpt-4o-mini"}
    assert len(receiver.bodies("/hook")) == 3  # the acknowledged one did not repeat


def test_private_addresses_are_refused_unless_allowed() -> None:
    with pytest.raises(NotifyError, match="private, loopback or reserved"):
        check_host("127.0.0.1", 80, allow_private=False)
    with pytest.raises(NotifyError, match="private"):
        check_host("10.1.2.3", 80, allow_private=False)
    with pytest.raises(NotifyError, match="private"):
        check_host("169.254.169.254", 80, allow_private=False)
    with pytest.raises(NotifyError, match="private"):
        check_host("::1", 80, allow_private=False)
    check_host("127.0.0.1", 80, allow_private=True)
    check_host("8.8.8.8", 443, allow_private=False)  # resolving a literal needs no network


def test_refused_webhook_is_recorded_failed(tmp_path: Path, receiver: HttpReceiver) -> None:
    yaml = f"""
channels:
  hook: {{type: webhook, url: "{receiver.url}/hook", max_attempts: 2, backoff_s: 0.01}}
rules:
  - {{name: errors, metric: error_rate, threshold: 0.05, window: 1m, notify: [hook]}}
"""
    gen = harness(tmp_path, alerts_yaml=yaml, notify_allow_private=False)
    h = next(gen)
    try:
        h.traffic(20, T0, error=True)
        h.tick()
        wait_for(
            lambda: bool(
                h.api("GET", "/api/v1/alerts/deliveries", params={"status": "failed"}).json()[
                    "data"
                ]
            )
        )
        [d] = h.api("GET", "/api/v1/alerts/deliveries").json()["data"]
        assert "refusing to notify 127.0.0.1" in d["last_error"]
        assert receiver.received == []
    finally:
        gen.close()
