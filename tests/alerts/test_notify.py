"""Deliveries to real local receivers: webhook and Slack over HTTP, email over SMTP (aiosmtpd);
a failing webhook is retried, recorded, and does not hold back the other channels."""

from __future__ import annotations

import email
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from _alerting import T0, Crash, Harness, HttpReceiver, harness, then_crash, wait_for
from _helpers import free_port
from sightline.alerts._notify import check_host
from sightline.errors import NotifyError, StoreError


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


def test_an_email_whose_subject_would_hold_a_line_break_is_sent_on_one_line(
    tmp_path: Path, mailbox: tuple[_Mailbox, int]
) -> None:
    """A group value comes from span data: a model name with CR/LF made the Subject header
    raise ValueError, which the worker did not count as an attempt: the delivery stayed
    pending with 0 attempts forever, and no email was sent."""
    box, port = mailbox
    yaml = f"""
channels:
  mail: {{type: email, smtp_host: 127.0.0.1, smtp_port: {port}, tls: none,
          from: sightline@example.com, to: [oncall@example.com], backoff_s: 0.01}}
rules:
  - {{name: errors, metric: error_rate, threshold: 0.05, window: 1m, group_by: [model],
      notify: [mail]}}
"""
    gen = harness(tmp_path, alerts_yaml=yaml)
    h = next(gen)
    try:
        h.traffic(20, T0, error=True, model="gpt-4o\r\nBcc: someone@example.com")
        h.tick()
        wait_for(lambda: len(box.messages) == 1)
        [msg] = box.messages
        assert msg["Subject"] == "[P2] FIRING: errors (model=gpt-4o  Bcc: someone@example.com)"
        assert msg["Bcc"] is None
        wait_for(
            lambda: (
                [d["status"] for d in h.api("GET", "/api/v1/alerts/deliveries").json()["data"]]
                == ["delivered"]
            )
        )
    finally:
        gen.close()


class _RawReceiver:
    """A raw HTTP receiver: answers ``status`` with a body of ``size`` bytes, sent in
    ``chunk``-byte pieces every ``every_s``; counts what it managed to send."""

    def __init__(self, status: int, size: int, chunk: int, every_s: float) -> None:
        self.status, self.size, self.chunk, self.every_s = status, size, chunk, every_s
        self.sent = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.recv(65536)
                c.sendall(
                    f"HTTP/1.1 {self.status} X\r\ncontent-length: {self.size}\r\n\r\n".encode()
                )
                piece = b"x" * self.chunk
                try:
                    while self.sent < self.size:
                        c.sendall(piece)
                        self.sent += len(piece)
                        time.sleep(self.every_s)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    ("status", "size", "chunk", "every_s"),
    [
        (200, 100, 1, 0.2),  # a trickling answer: 20 s of body, with timeout_s 1
        (500, 400 * 2**20, 2**20, 0.0),  # a 400 MiB error page
    ],
)
def test_a_receivers_answer_body_is_not_read_whole(
    tmp_path: Path, status: int, size: int, chunk: int, every_s: float
) -> None:
    """The body of the receiver's answer was read whole: a trickling body held each attempt
    far past timeout_s, and a huge one was loaded into the server's memory."""
    rx = _RawReceiver(status, size, chunk, every_s)
    yaml = f"""
channels:
  hook: {{type: webhook, url: "{rx.url}", timeout_s: 1, max_attempts: 1}}
rules:
  - {{name: errors, metric: error_rate, threshold: 0.05, window: 1m, notify: [hook]}}
"""
    gen = harness(tmp_path, alerts_yaml=yaml)
    h = next(gen)
    try:
        h.traffic(20, T0, error=True)
        h.tick()
        want = "delivered" if status == 200 else "failed"
        wait_for(
            lambda: (
                [d["status"] for d in h.api("GET", "/api/v1/alerts/deliveries").json()["data"]]
                == [want]
            ),
            timeout_s=8,
        )
        [d] = h.api("GET", "/api/v1/alerts/deliveries").json()["data"]
        if status != 200:
            assert d["last_error"] == "NotifyError: HTTP 500: " + "x" * 200
            time.sleep(0.5)
            assert rx.sent < size // 4  # the server stopped reading: the receiver could not
    finally:
        gen.close()
        rx.close()


def test_a_rate_limited_receivers_retry_after_is_honoured(tmp_path: Path) -> None:
    """A 429 (Slack's rate limit) was retried on the channel's own backoff, ignoring its
    Retry-After: every attempt fell inside the limit and the notification was lost."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    first: list[float] = []
    got: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", "0")))
            now = time.monotonic()
            first.append(now)
            limited = now - first[0] < 1.0
            self.send_response(429 if limited else 200)
            if limited:
                self.send_header("retry-after", "1")
            else:
                got.append(now)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yaml = f"""
channels:
  slack: {{type: slack, url: "http://127.0.0.1:{srv.server_address[1]}/s", backoff_s: 0.01,
           max_attempts: 3}}
rules:
  - {{name: errors, metric: error_rate, threshold: 0.05, window: 1m, notify: [slack]}}
"""
    gen = harness(tmp_path, alerts_yaml=yaml)
    h = next(gen)
    try:
        h.traffic(20, T0, error=True)
        h.tick()
        wait_for(
            lambda: (
                [d["status"] for d in h.api("GET", "/api/v1/alerts/deliveries").json()["data"]]
                in (["delivered"], ["failed"])
            ),
            timeout_s=10,
        )
        [d] = h.api("GET", "/api/v1/alerts/deliveries").json()["data"]
        assert (d["status"], d["attempts"]) == ("delivered", 2), d
        assert len(got) == 1
    finally:
        gen.close()
        srv.shutdown()
        srv.server_close()


_ONE_HOOK = """
channels:
  hook: {{type: webhook, url: "{url}/hook", max_attempts: 2, backoff_s: 0.01}}
rules:
  - {{name: errors, metric: error_rate, threshold: 0.05, window: 1m, min_requests: 10,
      notify: [hook]}}
"""


def test_a_crash_right_after_an_alert_fires_does_not_lose_its_notification(
    tmp_path: Path, receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The firing state and its deliveries are committed together: a process that dies right
    after the commit, before queueing anything, sends the notification at its next start.
    (The deliveries were stored after the alert's own transaction: a crash in between left the
    alert firing, marked notified, with nothing to send until its repeat interval.)"""
    yaml = _ONE_HOOK.format(url=receiver.url)
    gen = harness(tmp_path, alerts_yaml=yaml)
    h = next(gen)
    try:
        h.traffic(20, T0, error=True)
        monkeypatch.setattr(h.store, "save_alerts", then_crash(h.store.save_alerts))
        with pytest.raises(Crash):
            h.state.monitor.tick()
        monkeypatch.undo()
        [a] = h.alerts(status="firing")
    finally:
        gen.close()
    assert receiver.bodies("/hook") == []
    gen = harness(tmp_path, alerts_yaml=yaml)  # the next start, on the same data directory
    next(gen)
    try:
        wait_for(lambda: len(receiver.bodies("/hook")) == 1)
        [body] = receiver.bodies("/hook")
        assert body["status"] == "firing" and body["alert_id"] == a["alert_id"]
    finally:
        gen.close()


def test_a_tick_whose_save_fails_notifies_at_the_next_tick(
    tmp_path: Path, receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed save leaves the monitor's state as it was (it was advanced in memory first:
    the next tick found the alert firing and already notified, and nothing was ever sent)."""
    gen = harness(tmp_path, alerts_yaml=_ONE_HOOK.format(url=receiver.url))
    h = next(gen)
    try:
        h.traffic(20, T0, error=True)

        def unavailable(*args: Any, **kw: Any) -> None:
            raise StoreError("disk full")

        monkeypatch.setattr(h.store, "save_alerts", unavailable)
        h.tick()  # logged, as any one project's failure is
        monkeypatch.undo()
        assert h.alerts() == []
        h.tick(seconds=1)
        [a] = h.alerts(status="firing")
        wait_for(lambda: len(receiver.bodies("/hook")) == 1)
        assert receiver.bodies("/hook")[0]["alert_id"] == a["alert_id"]
    finally:
        gen.close()


@pytest.mark.parametrize("how", ["disabled", "deleted", "deleted after a restart"])
def test_disabling_or_deleting_a_rule_sends_the_resolved_notification(
    tmp_path: Path, receiver: HttpReceiver, how: str
) -> None:
    # the alert ended (event "rule disabled"/"rule deleted") but nothing was sent: the on-call
    # tool that got the firing kept its incident open
    yaml = f"""
channels:
  hook:
    type: webhook
    url: {receiver.url}/hook
"""
    rule = {
        "name": "errors",
        "metric": "error_rate",
        "op": ">",
        "threshold": 0.05,
        "window": "1m",
        "min_requests": 10,
        "group_by": ["model"],
        "notify": ["hook"],
    }
    restart = "restart" in how

    def end_the_rule(h: Harness, alert_id: str) -> None:
        if how == "disabled":
            h.put_rule({**rule, "enabled": False})
        else:
            assert h.api("DELETE", "/api/v1/alerts/rules/errors").status_code == 200
        h.tick()
        wait_for(lambda: len(receiver.bodies("/hook")) == 2)
        resolved = receiver.bodies("/hook")[1]
        assert resolved["status"] == "resolved" and resolved["alert_id"] == alert_id
        assert resolved["ended_at"] == h.clock().isoformat()
        reason = "rule disabled" if how == "disabled" else "rule deleted"
        assert resolved["summary"].startswith(f"{reason}; last: error_rate = 1 > 0.05")
        assert h.api("GET", f"/api/v1/alerts/{alert_id}").json()["status"] == "resolved"
        h.tick(minutes=5)  # once
        time.sleep(0.3)
        assert len(receiver.bodies("/hook")) == 2

    for h in harness(tmp_path, alerts_yaml=yaml):
        h.put_rule(rule)
        h.traffic(20, T0, error=True, model="gpt-4o")
        h.tick()
        [a] = h.alerts(status="firing")
        wait_for(lambda: len(receiver.bodies("/hook")) == 1)
        if not restart:
            h.clock.advance(seconds=30)
            end_the_rule(h, a["alert_id"])
    if restart:  # the rule version that fired is read back from the store
        for h in harness(tmp_path, alerts_yaml=yaml, start=T0 + timedelta(seconds=30)):
            end_the_rule(h, a["alert_id"])
