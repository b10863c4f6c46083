"""The weekly digest, scheduled in a real `sightline serve`, delivered to a real webhook
receiver and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import time
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from _alerting import HttpReceiver, span, wait_for
from _helpers import Server, free_port
from sightline.alerts._digest import DigestConfig, due_time, parse_digest
from sightline.errors import ConfigError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def _serve(data_dir: Path, config: Path | None) -> Server:
    args = ["--monitor-interval", "1"] + (["--alerts", str(config)] if config else [])
    return Server(
        data_dir=data_dir,
        port=free_port(),
        args=args,
        env={"SIGHTLINE_NOTIFY_ALLOW_PRIVATE": "true"},
    ).start()


def test_scheduled_digest_reaches_webhook_and_email_once(tmp_path: Path) -> None:
    receiver = HttpReceiver().start()
    box = _Mailbox()
    smtp_port = free_port()
    ctl = Controller(box, hostname="127.0.0.1", port=smtp_port)
    ctl.start()
    now = datetime.now(UTC)
    data = tmp_path / "data"
    try:
        # a week of traffic (10 calls, 2 errors) and the week before (5 calls)
        srv = _serve(data, None)
        with srv.client() as c:
            this_week = [span(now - timedelta(days=1, minutes=i), error=i < 2, cost_usd=0.01)
                         for i in range(10)]  # fmt: skip
            last_week = [span(now - timedelta(days=8, minutes=i), cost_usd=0.01)
                         for i in range(5)]  # fmt: skip
            assert c.post("/api/v1/spans", json=this_week + last_week).status_code == 200
            r = c.post("/api/v1/digest/send")
            assert r.status_code == 409  # no digest configured
            preview = c.get("/api/v1/digest").json()
            assert preview["trends"]["requests"]["this_week"] == 10
        srv.stop()
        config = tmp_path / "sightline.yaml"
        config.write_text(
            f"""
channels:
  hook: {{type: webhook, url: "{receiver.url}/digest"}}
  mail: {{type: email, smtp_host: 127.0.0.1, smtp_port: {smtp_port}, tls: none,
         from: sightline@example.com, to: [team@example.com]}}
digest:
  channels: [hook, mail]
  weekday: {WEEKDAYS[now.weekday()]}
  hour: 0
"""
        )
        srv = _serve(data, config)  # today 00:00 UTC has passed: this week's digest is due
        wait_for(lambda: bool(receiver.bodies("/digest") and box.messages), timeout_s=30)
        [body] = receiver.bodies("/digest")
        assert body["kind"] == "digest" and body["project_id"] == "test"
        assert body["to"].startswith(now.date().isoformat())
        req = body["trends"]["requests"]
        assert (req["this_week"], req["last_week"], req["change"]) == (10, 5, 1.0)
        assert body["trends"]["error_rate"]["this_week"] == pytest.approx(0.2)
        assert body["trends"]["cost_usd"]["this_week"] == pytest.approx(0.1)
        [mail] = box.messages
        assert "weekly digest" in mail["Subject"] and mail["To"] == "team@example.com"
        text = mail.get_payload()
        assert isinstance(text, str) and "requests (count): 10 (+100% vs last week)" in text
        srv.stop()
        # restarted, the same week's digest is not sent again
        srv = _serve(data, config)
        with srv.client() as c:
            assert c.get("/readyz").status_code == 200
            time.sleep(2)  # two monitor intervals: a duplicate scheduled send would be queued
            r = c.post("/api/v1/digest/send")  # an admin may send one now
            assert r.status_code == 200 and r.json()["kind"] == "digest"
        wait_for(lambda: len(receiver.bodies("/digest")) == 2, timeout_s=20)
        srv.stop()
        assert len(receiver.bodies("/digest")) == 2  # the scheduled one once, the manual one
    finally:
        ctl.stop()
        receiver.stop()


def test_schedule_and_config() -> None:
    cfg = DigestConfig(channels=["a"], weekday="monday", hour=9)
    wed = datetime(2026, 11, 25, 12, tzinfo=UTC)  # a Wednesday
    assert due_time(wed, cfg) == datetime(2026, 11, 23, 9, tzinfo=UTC)
    assert due_time(datetime(2026, 11, 23, 8, tzinfo=UTC), cfg) == datetime(
        2026, 11, 16, 9, tzinfo=UTC
    )
    assert due_time(datetime(2026, 11, 23, 9, tzinfo=UTC), cfg) == datetime(
        2026, 11, 23, 9, tzinfo=UTC
    )
    with pytest.raises(ConfigError, match="unknown channel"):
        parse_digest({"channels": ["nope"]}, ["a"])
    with pytest.raises(ConfigError, match="hour"):
        parse_digest({"channels": ["a"], "hour": 24}, ["a"])
    with pytest.raises(ConfigError, match="weekday"):
        parse_digest({"channels": ["a"], "weekday": "someday"}, ["a"])
    assert parse_digest(None, []) is None
