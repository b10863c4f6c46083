"""Apps instrumented with OpenLLMetry or OpenInference (the real packages) land the same fields.

Each app runs in its own process (the instrumentors patch the openai client globally), calls
the real openai client against the fake provider, and exports over OTLP/HTTP to a real
``sightline serve``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from _helpers import API_KEY, Server
from sightline.testing import FakeProvider

APP = textwrap.dedent("""
    import sys
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    which, endpoint, key, base_url = sys.argv[1:5]
    provider = TracerProvider(resource=Resource.create({"service.name": which}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=endpoint + "/v1/traces", headers={"authorization": "Bearer " + key})))
    trace.set_tracer_provider(provider)
    if which == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    else:
        from openinference.instrumentation.openai import OpenAIInstrumentor
    OpenAIInstrumentor().instrument()

    import openai
    q = [{"role": "user", "content": "Can I get a refund on an annual plan?"}]
    tracer = trace.get_tracer("app")
    with openai.OpenAI(base_url=base_url, api_key="test") as client:
        with tracer.start_as_current_span("plain") as s:
            client.chat.completions.create(model="gpt-4o-mini", messages=q)
            print(format(s.get_span_context().trace_id, "032x"))
        with tracer.start_as_current_span("streamed") as s:
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=q, stream=True,
                stream_options={"include_usage": True},
                extra_headers={"x-fake-ttft-ms": "100", "x-fake-token-ms": "10"})
            for _ in stream:
                pass
            print(format(s.get_span_context().trace_id, "032x"))
    provider.shutdown()
""")
REPLY = "Annual plans are refundable within thirty days."


_RUNS: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}


def _run(which: str, server: Server) -> dict[str, dict[str, Any]]:
    """Run the app once per instrumentor and server (the tests read the same spans)."""
    key = (which, server.port)
    if key not in _RUNS:
        _RUNS[key] = _run_app(which, server)
    return _RUNS[key]


def _run_app(which: str, server: Server) -> dict[str, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    with FakeProvider(reply=REPLY) as fake:
        proc = subprocess.run(
            [sys.executable, "-c", APP, which, server.url, API_KEY, fake.openai_base_url],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
    assert proc.returncode == 0, proc.stderr
    plain_id, streamed_id = proc.stdout.split()
    out = {}
    with server.client() as c:
        for label, tid in (("plain", plain_id), ("streamed", streamed_id)):
            [root] = c.get(f"/api/v1/traces/{tid}").json()["spans"]
            [llm] = root["children"]
            out[label] = llm
    return out


@pytest.fixture(scope="module", params=["openllmetry", "openinference"])
def landed(request: pytest.FixtureRequest, server: Server) -> dict[str, dict[str, Any]]:
    return _run(request.param, server)


def test_model_tokens_prompt_and_completion_land(landed: dict[str, dict[str, Any]]) -> None:
    for label in ("plain", "streamed"):
        llm = landed[label]
        assert llm["kind"] == "llm", label
        assert llm["model"] == "gpt-4o-mini" and llm["provider"] == "openai", label
        # the fake provider counts words: 9 in the question, 7 in the reply
        assert (llm["input_tokens"], llm["output_tokens"]) == (9, 7), label
        assert llm["cost_usd"] == pytest.approx((9 * 0.15 + 7 * 0.6) / 1e6), label
        assert llm["input_messages"][-1]["role"] == "user", label
        assert llm["input_messages"][-1]["content"] == "Can I get a refund on an annual plan?"
        assert llm["output_messages"][0]["content"] == REPLY, label


def test_openllmetry_prompt_and_completion_text(server: Server) -> None:
    llm = _run("openllmetry", server)["plain"]
    assert llm["input"] == "Can I get a refund on an annual plan?"
    assert llm["output"] == REPLY
    assert llm["finish_reason"] == "stop"


def test_openinference_finish_reason(server: Server) -> None:
    assert _run("openinference", server)["plain"]["finish_reason"] == "stop"


def test_openinference_prompt_and_completion_text(server: Server) -> None:
    llm = _run("openinference", server)["plain"]
    assert llm["input"] == "Can I get a refund on an annual plan?"
    assert llm["output"] == REPLY


def test_openllmetry_streaming_ttft_from_its_chunk_events(server: Server) -> None:
    llm = _run("openllmetry", server)["streamed"]
    # OpenLLMetry records one gen_ai.content.completion.chunk event per chunk; the first one
    # (the role-only chunk) marks the first token
    assert llm["ttft_ms"] is not None and 0 <= llm["ttft_ms"] <= llm["duration_ms"]
    assert llm["tpot_ms"] is not None


def test_openllmetry_streaming_flag(server: Server) -> None:
    assert _run("openllmetry", server)["streamed"]["is_streaming"] is True


def test_openinference_streaming_flag_from_invocation_parameters(server: Server) -> None:
    assert _run("openinference", server)["streamed"]["is_streaming"] is True


def test_openinference_streaming_ttft(server: Server) -> None:
    llm = _run("openinference", server)["streamed"]
    assert llm["ttft_ms"] is not None and 100 <= llm["ttft_ms"] <= llm["duration_ms"]
