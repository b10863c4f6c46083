"""Points of the SDK's contract (issue 3) not covered elsewhere in tests/sdk.

- every ``init`` argument from the environment;
- ``init`` beside an application's own OpenTelemetry provider adds to it, never replaces it;
- process exit delivers the spans still queued, to a slow collector, within a short time;
- a call that fails after the client's retries records both the error and the retries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic
import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import StatusCode

from sightline.sdk._config import resolve_options
from sightline.testing import CapturedSpans, FakeProvider

Q = [{"role": "user", "content": "Can I get a refund on an annual plan?"}]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}


class TestOptionsFromTheEnvironment:
    NONE = dict.fromkeys(
        (
            "endpoint",
            "api_key",
            "service_name",
            "service_version",
            "environment",
            "sample_rate",
            "capture_content",
            "redact",
        )
    )

    def test_every_argument_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for k in list(os.environ):
            if k.startswith(("SIGHTLINE_", "OTEL_")):
                monkeypatch.delenv(k)
        env = {
            "SIGHTLINE_ENDPOINT": "http://collector:4318/",
            "SIGHTLINE_API_KEY": "sl_ingest_x",
            "SIGHTLINE_SERVICE_NAME": "support-bot",
            "SIGHTLINE_SERVICE_VERSION": "1.4.2",
            "SIGHTLINE_ENVIRONMENT": "staging",
            "SIGHTLINE_SAMPLE_RATE": "0.25",
            "SIGHTLINE_CAPTURE_CONTENT": "false",
            "SIGHTLINE_LOG_REQUESTS": "true",
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        o = resolve_options(**self.NONE)  # type: ignore[arg-type]
        assert (o.endpoint, o.api_key, o.service_name) == (
            "http://collector:4318",
            "sl_ingest_x",
            "support-bot",
        )
        assert (o.service_version, o.environment, o.sample_rate) == ("1.4.2", "staging", 0.25)
        assert o.capture_content is False and o.log_requests is True
        # an explicit argument wins over the environment
        given = {**self.NONE, "service_name": "explicit", "sample_rate": 1.0}
        o = resolve_options(**given)  # type: ignore[arg-type]
        assert o.service_name == "explicit" and o.sample_rate == 1.0

    @pytest.mark.parametrize("raw", ["lots", "1.5", "-0.1"])
    def test_bad_sample_rate_is_refused(self, raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SIGHTLINE_SAMPLE_RATE", raw)
        with pytest.raises(ValueError, match="sample_rate|SIGHTLINE_SAMPLE_RATE"):
            resolve_options(**self.NONE)  # type: ignore[arg-type]


BESIDE = textwrap.dedent("""
    import json
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    import sightline

    apps = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(apps))
    trace.set_tracer_provider(provider)

    ours = InMemorySpanExporter()
    sightline.init(service_name="beside", span_exporter=ours, instrument=False)
    with sightline.trace("rag-request", user_id="u1"):
        with trace.get_tracer("app").start_as_current_span("app-span"):
            pass
    sightline.shutdown()
    print(json.dumps({
        "same_provider": trace.get_tracer_provider() is provider,
        "app_exporter": sorted(s.name for s in apps.get_finished_spans()),
        "sightline_exporter": sorted(s.name for s in ours.get_finished_spans()),
    }))
""")


def test_init_beside_an_existing_provider_adds_a_processor() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BESIDE],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["same_provider"] is True
    # the app's exporter still gets everything; Sightline's gets the same spans
    assert out["app_exporter"] == ["app-span", "rag-request"]
    assert out["sightline_exporter"] == ["app-span", "rag-request"]


@pytest.fixture
def slow_collector() -> Iterator[tuple[str, list[str]]]:
    """A collector that answers, but only after 300 ms; records the span names it got."""
    names: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            time.sleep(0.3)
            req = ExportTraceServiceRequest()
            req.ParseFromString(body)
            for rs in req.resource_spans:
                for ss in rs.scope_spans:
                    names.extend(s.name for s in ss.spans)
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", names
    srv.shutdown()
    srv.server_close()


EXITING = textwrap.dedent("""
    import sys, time
    import sightline

    sightline.init(endpoint=sys.argv[1], api_key="k", service_name="exiting", instrument=False)
    for i in range(200):
        with sightline.span("queued-%d" % i):
            pass
    print(time.time(), flush=True)
    # no shutdown(): the spans are still queued (the batch waits 1 s) when the process exits
""")


def test_process_exit_delivers_queued_spans_within_a_short_time(
    slow_collector: tuple[str, list[str]],
) -> None:
    endpoint, names = slow_collector
    proc = subprocess.run(
        [sys.executable, "-c", EXITING, endpoint],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    exited_at = time.time()
    assert proc.returncode == 0, proc.stderr
    done_at = float(proc.stdout.strip())
    assert sorted(names) == sorted(f"queued-{i}" for i in range(200))
    # the flush waited on the slow collector, but no longer than the SDK's 3 s exit limit
    assert exited_at - done_at < 6, exited_at - done_at


@pytest.mark.usefixtures("instrumented")
class TestRetriesThenFailure:
    def test_openai(self, fake: FakeProvider, capture_spans: CapturedSpans) -> None:
        fake.fail_next(503, 3, path_prefix="/v1/chat")
        with (
            openai.OpenAI(base_url=fake.openai_base_url, api_key="t", max_retries=2) as client,
            pytest.raises(openai.InternalServerError),
        ):
            client.chat.completions.create(model="gpt-4o-mini", messages=Q)  # type: ignore[arg-type]
        span = capture_spans.one("chat gpt-4o-mini")
        a = span.attributes or {}
        assert span.status.status_code == StatusCode.ERROR and a["error.type"] == "503"
        assert a["http.request.resend_count"] == 2

    def test_anthropic_stream_helper(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        fake.fail_next(529, 2, path_prefix="/v1/messages")
        client = anthropic.Anthropic(base_url=fake.base_url, api_key="t", max_retries=1)
        with (
            client,
            pytest.raises(anthropic.APIStatusError),
            client.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=Q),  # type: ignore[arg-type]
        ):
            pass
        span = capture_spans.one("chat claude-haiku-4-5")
        a = span.attributes or {}
        assert span.status.status_code == StatusCode.ERROR and a["error.type"] == "529"
        assert a["http.request.resend_count"] == 1
