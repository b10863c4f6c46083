"""One structured log line per LLM request, when asked for (structlog, else stdlib logging)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

APP = textwrap.dedent("""
    import logging, sys
    if sys.argv[1] == "stdlib":
        sys.modules["structlog"] = None  # as if structlog were not installed
    else:
        import structlog
        structlog.configure(processors=[structlog.processors.JSONRenderer()],
                            logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    import sightline

    sightline.init(span_exporter=InMemorySpanExporter(), instrument=False,
                   log_requests=sys.argv[2] == "on")
    with sightline.trace("rag", user_id="u-1"):
        with sightline.span("retrieve", kind="retrieval") as r:
            r.set_documents([{"id": "kb-1", "content": "x"}, {"id": "kb-2", "content": "y"}])
        with sightline.span("chat gpt-4o-mini", kind="llm") as s:
            s.set_llm(model="gpt-4o-mini", provider="openai",
                      input_messages=[{"role": "user", "content": "Refund?"}],
                      output="Within 30 days.", usage={"input_tokens": 1000, "output_tokens": 10},
                      finish_reason="stop", ttft_ms=50.0)
""")


def _lines(mode: str, on: str) -> list[dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    proc = subprocess.run(
        [sys.executable, "-c", APP, mode, on], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    out = []
    for line in proc.stderr.splitlines():
        if "llm_request" in line:
            out.append(json.loads(line))
    return out


@pytest.mark.parametrize("mode", ["structlog", "stdlib"])
def test_log_line_per_llm_request(mode: str) -> None:
    [line] = _lines(mode, "on")
    assert line["event"] == "llm_request"
    assert line["model"] == "gpt-4o-mini" and line["provider"] == "openai"
    assert line["query"] == "Refund?" and line["response"] == "Within 30 days."
    assert line["document_ids"] == ["kb-1", "kb-2"]
    assert (line["input_tokens"], line["output_tokens"]) == (1000, 10)
    assert line["ttft_ms"] == 50.0 and isinstance(line["latency_ms"], float)
    assert line["cost_usd"] == pytest.approx((1000 * 0.15 + 10 * 0.6) / 1e6)
    assert line["user_id"] == "u-1" and line["status"] == "ok"


def test_off_by_default() -> None:
    assert _lines("structlog", "off") == []
