"""A real `sightline serve` with a dashboard admin and a trace full of hostile text."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from _helpers import Server, free_port

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"
XSS = (
    "<script>alert('xss-script')</script> <img src=x onerror=alert('xss-img')> "
    "[click me](javascript:alert('xss-md')) <a href=\"javascript:alert('xss-a')\">link</a>"
)
"""Text an attacker controls: it must render as text and run nothing."""
MARKER = "zebra-marker"


@dataclass
class Seeded:
    server: Server
    xss_trace: str = ""
    plain_traces: list[str] = field(default_factory=list)
    llm_span: str = ""
    rule: str = "slow-answers"
    release_id: str = ""
    release_label: str = ""

    @property
    def url(self) -> str:
        return self.server.url


def _trace(
    now: datetime, *, text: str, model: str, user: str, latency: float
) -> list[dict[str, Any]]:
    tid = secrets.token_hex(16)
    root, retr, llm, guard = (secrets.token_hex(8) for _ in range(4))
    t0 = now - timedelta(seconds=30)

    def at(ms: float) -> str:
        return (t0 + timedelta(milliseconds=ms)).isoformat()

    common = {"trace_id": tid, "user_id": user, "session_id": f"s-{user}"}
    return [
        {**common, "span_id": root, "name": f"answer {text[:80]}", "kind": "chain",
         "start_time": at(0), "duration_ms": latency + 200, "input": text, "output": text},
        {**common, "span_id": retr, "parent_span_id": root, "name": "retrieve", "kind": "retrieval",
         "start_time": at(5), "duration_ms": 80, "input": text,
         "documents": [{"id": "doc-1", "content": text, "score": 0.9}]},
        {**common, "span_id": llm, "parent_span_id": root, "name": "chat", "kind": "llm",
         "model": model, "provider": "openai", "start_time": at(90), "duration_ms": latency,
         "input_tokens": 400, "output_tokens": 80, "ttft_ms": 120.0, "input": text, "output": text,
         "input_messages": [{"role": "system", "content": "Answer from the context."},
                            {"role": "user", "content": text}],
         "output_messages": [{"role": "assistant", "content": text}]},
        {**common, "span_id": guard, "parent_span_id": root, "name": "safety filter",
         "kind": "guardrail", "start_time": at(90 + latency), "duration_ms": 12, "output": text},
    ]  # fmt: skip


def admin_server(tmp: Path, args: list[str] | None = None) -> Server:
    """A started server in ``tmp`` with the dashboard admin and no default alert rules."""
    return Server(
        data_dir=tmp / "data",
        port=free_port(),
        env={
            "SIGHTLINE_INIT_ADMIN_EMAIL": ADMIN_EMAIL,
            "SIGHTLINE_INIT_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "SIGHTLINE_DEFAULT_ALERT_RULES": "false",
        },
        args=args or [],
    ).start()


def start_dashboard_server(tmp: Path) -> Seeded:
    srv = admin_server(tmp, ["--monitor-interval", "1"])
    seeded = Seeded(srv)
    now = datetime.now(UTC)
    spans: list[dict[str, Any]] = []
    x = _trace(now, text=XSS, model="gpt-4o", user=XSS[:60], latency=900)
    seeded.xss_trace = x[0]["trace_id"]
    seeded.llm_span = x[2]["span_id"]
    spans += x
    for i in range(6):
        t = _trace(now - timedelta(minutes=i), text=f"{MARKER} question {i}" if i == 0 else
                   f"How do I reset my password? ({i})", model="gpt-4o-mini" if i % 2 else "gpt-4o",
                   user=f"user-{i}", latency=300 + 50 * i)  # fmt: skip
        seeded.plain_traces.append(t[0]["trace_id"])
        spans += t
    with srv.client() as c:
        r = c.post("/api/v1/spans", json=spans)
        assert r.status_code == 200 and r.json()["accepted"] == len(spans), r.text
        r = c.post("/api/v1/feedback", json={"trace_id": seeded.xss_trace, "score": -1,
                                             "comment": XSS})  # fmt: skip
        assert r.status_code == 201, r.text
        # a release marker 6 h ago (left of the newest points), its version hostile text
        seeded.release_label = f"api v2 {XSS[:60]}"
        at = (now - timedelta(hours=6)).isoformat()
        r = c.post(
            "/api/v1/releases", json={"service": "api", "version": f"v2 {XSS[:60]}", "time": at}
        )
        assert r.status_code == 201, r.text
        seeded.release_id = r.json()["release_id"]
        # logs of the hostile trace: one under its LLM span, one of the trace only
        ns = str(int(now.timestamp() * 1e9))
        logs = [{"timeUnixNano": ns, "traceId": seeded.xss_trace, "spanId": seeded.llm_span,
                 "severityText": "WARN", "body": {"stringValue": f"span log {XSS}"}},
                {"timeUnixNano": ns, "traceId": seeded.xss_trace, "severityText": "INFO",
                 "body": {"stringValue": "trace-level log"}}]  # fmt: skip
        r = c.post("/v1/logs", json={"resourceLogs": [{"scopeLogs": [{"logRecords": logs}]}]})
        assert r.status_code == 200, r.text
        # budgets: each user's spend against a tiny soft limit (all over), a roomy hard one
        for b in ({"name": "per-user", "scope": "user", "limit_usd": 0.000001},
                  {"name": "project-cap", "limit_usd": 1000, "hard": True,
                   "thresholds": [0.5, 0.9]}):  # fmt: skip
            r = c.post("/api/v1/budgets", json=b)
            assert r.status_code == 201, r.text
        rule = {"name": seeded.rule, "metric": "latency_ms", "agg": "max", "threshold": 100,
                "window": "1h", "severity": "P1", "runbook": "javascript:alert('xss-runbook')",
                "description": XSS}  # fmt: skip
        r = c.post("/api/v1/alerts/rules", json=rule)
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            firing = c.get("/api/v1/alerts", params={"status": "firing"}).json()["data"]
            if firing:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"the alert never fired: {srv.log()[-2000:]}")
    return seeded


def login(client: httpx.Client, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> str:
    """Log an httpx client in through the form; return the session's CSRF token."""
    r = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', r.text)
    assert csrf, r.text
    r = client.post("/login", data={"email": email, "password": password,
                                    "csrf": csrf.group(1), "next": "/"})  # fmt: skip
    assert r.status_code == 303, r.text
    page = client.get("/settings")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token, page.text
    return token.group(1)
