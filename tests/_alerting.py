"""Helpers of the monitoring tests: an in-process app on a fake clock, spans at chosen times,
and real local receivers (HTTP webhooks, SMTP) that record what they get."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from sightline._clock import FakeClock
from sightline.config import Settings
from sightline.server import create_app
from sightline.store import DuckDBStore

KEY = "sl_alerts_key_0123456789abcdef"
OTHER_KEY = "sl_other_key_0123456789abcdef"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def span(
    at: datetime,
    *,
    latency_ms: float = 400.0,
    error: bool = False,
    model: str = "gpt-4o-mini",
    provider: str = "openai",
    ttft_ms: float | None = 100.0,
    input_tokens: int = 500,
    output_tokens: int = 100,
    cost_usd: float | None = None,
    kind: str = "llm",
    text: str = "How do I reset my password?",
    output: str = "Open the sign-in page and choose 'Forgot password'.",
    **extra: Any,
) -> dict[str, Any]:
    d: dict[str, Any] = {
        "trace_id": secrets.token_hex(16),
        "span_id": secrets.token_hex(8),
        "kind": kind,
        "name": f"chat {model}",
        "model": model,
        "provider": provider,
        "start_time": at.isoformat(),
        "duration_ms": latency_ms,
        "status": "error" if error else "ok",
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input": text,
        "output": output,
        **extra,
    }
    if ttft_ms is not None:
        d["ttft_ms"] = ttft_ms
    if cost_usd is not None:
        d["cost_usd"] = cost_usd
    return d


@dataclass
class Harness:
    """An app with a real DuckDB store and a fake clock; ticks are driven by the test."""

    client: TestClient
    clock: FakeClock
    tmp: Path

    @property
    def state(self) -> Any:
        return self.client.app.state.sightline  # type: ignore[attr-defined]

    @property
    def store(self) -> DuckDBStore:
        s: DuckDBStore = self.state.store
        return s

    def post_spans(self, spans: list[dict[str, Any]], key: str = KEY) -> None:
        for i in range(0, len(spans), 1000):
            r = self.client.post(
                "/api/v1/spans",
                json=spans[i : i + 1000],
                headers={"authorization": f"Bearer {key}"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["accepted"] == len(spans[i : i + 1000]), r.text

    def traffic(self, n: int, end: datetime, seconds: float = 60.0, **kw: Any) -> None:
        """``n`` spans spread evenly over the ``seconds`` before ``end``."""
        self.post_spans(
            [span(end - timedelta(seconds=seconds * (i + 1) / (n + 1)), **kw) for i in range(n)]
        )

    def tick(self, **advance: float) -> None:
        if advance:
            self.clock.advance(**advance)
        self.state.monitor.tick()

    def api(self, method: str, path: str, key: str = KEY, **kw: Any) -> Any:
        return self.client.request(method, path, headers={"authorization": f"Bearer {key}"}, **kw)

    def alerts(self, **params: Any) -> list[dict[str, Any]]:
        r = self.api("GET", "/api/v1/alerts", params=params)
        assert r.status_code == 200, r.text
        data: list[dict[str, Any]] = r.json()["data"]
        return data

    def put_rule(self, spec: dict[str, Any], key: str = KEY) -> dict[str, Any]:
        r = self.api("PUT", f"/api/v1/alerts/rules/{spec['name']}", key=key, json=spec)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out


def harness(
    tmp: Path,
    *,
    alerts_yaml: str | None = None,
    default_rules: bool = False,
    start: datetime = T0,
    **settings: Any,
) -> Iterator[Harness]:
    alerts_file = None
    if alerts_yaml is not None:
        alerts_file = tmp / "alerts.yaml"
        alerts_file.write_text(alerts_yaml)
    settings.setdefault("notify_allow_private", True)
    # the monitor's tests write the scores they need; no evaluation runner competes for the CPU
    settings.setdefault("eval_enabled", False)
    s = Settings(
        data_dir=tmp / "data",
        otlp_grpc_port=0,
        ingest_workers=0,
        init_project="alerts",
        init_api_key=KEY,
        monitor_interval_s=0,
        drift_interval_s=0,
        default_alert_rules=default_rules,
        alerts_file=alerts_file,
        **settings,
    )
    clock = FakeClock(start)
    app = create_app(s, clock=clock)
    with TestClient(app) as client:
        yield Harness(client, clock, tmp)


class Crash(BaseException):
    """The process dying at that point (not an error any handler would catch)."""


def then_crash(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` that, once it has returned (committed), kills the 'process' (raises Crash)."""

    def call(*args: Any, **kw: Any) -> Any:
        fn(*args, **kw)
        raise Crash

    return call


# -- receivers ---------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class HttpReceiver:
    """A real HTTP server on a free loopback port that records POSTs (and can fail some)."""

    fail_paths: dict[str, int] = field(default_factory=dict)
    """path -> status to answer (every time)."""
    received: list[Received] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None

    def start(self) -> HttpReceiver:
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(n) or b"null")
                rec.attempts[self.path] = rec.attempts.get(self.path, 0) + 1
                status = rec.fail_paths.get(self.path)
                if status is None:
                    rec.received.append(Received(self.path, body, dict(self.headers)))
                    status = 200
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def bodies(self, path: str) -> list[Any]:
        return [r.body for r in self.received if r.path == path]


def wait_for(pred: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
