"""app -> SDK -> running `sightline serve` -> the trace tree, with every stage."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from _helpers import API_KEY, Server


def _run_app(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``script`` in a fresh interpreter, without the suite's SIGHTLINE_/OTEL_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    return subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


APP = textwrap.dedent("""
    import sys, time
    import sightline

    sightline.init(endpoint=sys.argv[1], api_key=sys.argv[2], service_name="rag-app",
                   environment="test")

    @sightline.observe(kind="chain", name="router")
    def route(q):
        return "support"

    @sightline.observe(kind="retrieval", name="retrieve")
    def retrieve(q):
        docs = [{"id": "kb-1", "content": "Refunds within 30 days.", "score": 0.92}]
        sightline.current_span().set_documents(docs)
        return docs

    def generate(q, docs):
        with sightline.span("chat gpt-4o-mini", kind="llm") as s:
            time.sleep(0.05)
            s.set_llm(model="gpt-4o-mini", provider="openai",
                      input_messages=[{"role": "user", "content": q}],
                      output="Annual plans are refundable within 30 days.",
                      usage={"input_tokens": 1200, "output_tokens": 11},
                      finish_reason="stop", ttft_ms=20.0)
            return "Annual plans are refundable within 30 days."

    with sightline.trace("rag-request", user_id="u-7", session_id="s-7",
                         feature="support-answer") as root:
        q = "Can I get a refund?"
        route(q)
        docs = retrieve(q)
        with sightline.span("build-prompt"):
            prompt = q
        answer = generate(prompt, docs)
        with sightline.span("safety-filter", kind="guardrail") as g:
            g.set_guardrail(blocked=False)
        trace_id = root.otel.get_span_context().trace_id
        print(format(trace_id, "032x"))
    sightline.shutdown()
    sightline.feedback(trace_id, score=-1, comment="wrong refund period", user_id="u-7",
                       wait=True)
""")


def test_rag_app_trace_lands_with_every_stage(server: Server) -> None:
    proc = _run_app(APP, server.url, API_KEY)
    assert proc.returncode == 0, proc.stderr
    trace_id = proc.stdout.strip()
    with server.client() as c:
        t = c.get(f"/api/v1/traces/{trace_id}").json()
    [root] = t["spans"]
    assert root["name"] == "rag-request" and root["user_id"] == "u-7"
    stages = {s["name"]: s for s in root["children"]}
    assert list(stages) == [
        "router",
        "retrieve",
        "build-prompt",
        "chat gpt-4o-mini",
        "safety-filter",
    ]
    assert stages["retrieve"]["kind"] == "retrieval"
    assert stages["retrieve"]["documents"][0]["id"] == "kb-1"
    llm = stages["chat gpt-4o-mini"]
    assert llm["kind"] == "llm" and llm["model"] == "gpt-4o-mini"
    assert (llm["input_tokens"], llm["output_tokens"]) == (1200, 11)
    assert llm["cost_usd"] == pytest.approx((1200 * 0.15 + 11 * 0.6) / 1e6)
    assert llm["ttft_ms"] == 20.0
    assert llm["tpot_ms"] == pytest.approx((llm["duration_ms"] - 20.0) / 10)
    assert llm["session_id"] == "s-7" and llm["feature"] == "support-answer"
    assert llm["service_name"] == "rag-app" and llm["environment"] == "test"
    assert stages["safety-filter"]["kind"] == "guardrail"
    assert all(s["duration_ms"] >= 0 for s in stages.values())
    [fb] = t["scores"]
    assert (fb["name"], fb["source"], fb["value"], fb["label"]) == (
        "feedback",
        "user",
        -1.0,
        "negative",
    )
    assert fb["explanation"] == "wrong refund period" and fb["user_id"] == "u-7"


OPENAI_APP = textwrap.dedent("""
    import sys
    import openai
    import sightline

    sightline.init(endpoint=sys.argv[1], api_key=sys.argv[2], service_name="rag-app")
    client = openai.OpenAI(base_url=sys.argv[3], api_key="test")

    @sightline.observe(kind="retrieval", name="retrieve")
    def retrieve(q):
        docs = [{"id": "kb-12", "content": "Annual plans: refund within 30 days.", "score": 0.9}]
        sightline.current_span().set_documents(docs)
        return docs

    with sightline.trace("rag-request", user_id="u-9", feature="support-answer") as root:
        q = "Can I get a refund on an annual plan?"
        docs = retrieve(q)
        with sightline.span("build-prompt"):
            messages = [{"role": "system", "content": "Answer from: " + docs[0]["content"]},
                        {"role": "user", "content": q}]
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True,
            extra_headers={"x-fake-ttft-ms": "150", "x-fake-token-ms": "60"})
        answer = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        with sightline.span("safety-filter", kind="guardrail") as g:
            g.set_guardrail(blocked=False)
        print(format(root.otel.get_span_context().trace_id, "032x"))
    sightline.shutdown()
""")


def test_openai_streaming_call_lands_with_tokens_cost_ttft_tpot(server: Server) -> None:
    """Acceptance: app -> SDK (openai wrapper, streaming) -> sightline serve -> the trace."""
    from sightline.testing import FakeProvider

    with FakeProvider(reply="Yes: annual plans are refundable within 30 days.") as fake:
        proc = _run_app(OPENAI_APP, server.url, API_KEY, fake.openai_base_url)
    assert proc.returncode == 0, proc.stderr
    trace_id = proc.stdout.strip()
    with server.client() as c:
        t = c.get(f"/api/v1/traces/{trace_id}").json()
    [root] = t["spans"]
    assert root["name"] == "rag-request" and root["user_id"] == "u-9"
    stages = {s["name"]: s for s in root["children"]}
    assert list(stages) == ["retrieve", "build-prompt", "chat gpt-4o-mini", "safety-filter"]
    llm = stages["chat gpt-4o-mini"]
    assert llm["kind"] == "llm" and llm["model"] == "gpt-4o-mini" and llm["provider"] == "openai"
    assert llm["is_streaming"] is True and llm["finish_reason"] == "stop"
    # the fake provider counts words: 8 in the reply, 8 + 9 in the two messages
    assert llm["output_tokens"] == 8 and llm["input_tokens"] == 17
    assert llm["cost_usd"] == pytest.approx((17 * 0.15 + 8 * 0.6) / 1e6)
    assert 150 <= llm["ttft_ms"] < 2000
    # TPOT: (end - first token) / (output tokens - 1)
    assert llm["tpot_ms"] == pytest.approx((llm["duration_ms"] - llm["ttft_ms"]) / 7)
    # The server paces 8 tokens 60 ms apart after a 150 ms TTFT: the call cannot be shorter,
    # and TPOT stays near the pace (a late read of the first chunk under load shortens it a bit).
    assert llm["duration_ms"] >= 150 + 7 * 60
    assert 40 <= llm["tpot_ms"] < 500
    assert llm["output"] == "Yes: annual plans are refundable within 30 days."
    assert llm["input"] == "Can I get a refund on an annual plan?"
    assert llm["feature"] == "support-answer" and llm["user_id"] == "u-9"
    assert stages["retrieve"]["documents"][0]["id"] == "kb-12"


EMBED_APP = textwrap.dedent("""
    import sys
    import openai
    import sightline

    sightline.init(endpoint=sys.argv[1], api_key=sys.argv[2], service_name="rag-app")
    client = openai.OpenAI(base_url=sys.argv[3], api_key="test")
    with sightline.trace("index", user_id="u-emb") as root:
        client.embeddings.create(model="text-embedding-3-small",
                                 input=["refund policy", "annual plan terms"])
        print(format(root.otel.get_span_context().trace_id, "032x"))
    sightline.shutdown()
""")


def test_openai_embeddings_call_lands_as_an_embedding_span(server: Server) -> None:
    # the SDK sent sightline.span.kind "llm" for embeddings: stored as kind llm, where the
    # gateway (and gen_ai.operation.name "embeddings") say embedding
    from sightline.testing import FakeProvider

    with FakeProvider(reply="unused") as fake:
        proc = _run_app(EMBED_APP, server.url, API_KEY, fake.openai_base_url)
    assert proc.returncode == 0, proc.stderr
    trace_id = proc.stdout.strip()
    with server.client() as c:
        t = c.get(f"/api/v1/traces/{trace_id}").json()
    [root] = t["spans"]
    [emb] = root["children"]
    assert emb["name"] == "embeddings text-embedding-3-small"
    assert emb["kind"] == "embedding" and emb["model"] == "text-embedding-3-small"
    assert emb["provider"] == "openai" and emb["input_tokens"] == 5
    assert emb["cost_usd"] and emb["cost_usd"] > 0


REFUSED = textwrap.dedent("""
    import sys
    import sightline

    sightline.init(endpoint=sys.argv[1], api_key=sys.argv[2], instrument=False)
    sightline.feedback("ab" * 16, score=7, wait=True)
    sightline.outcome("ab" * 16, name="converted", value=float("inf"), wait=True)
""")


def test_a_refused_feedback_logs_the_servers_reason(server: Server) -> None:
    """It logged "HTTP Error 400: Bad Request": not which field, nor why."""
    proc = _run_app(REFUSED, server.url, API_KEY)
    assert proc.returncode == 0, proc.stderr
    assert "sightline feedback not delivered: server answered 400: score" in proc.stderr
    assert "sightline outcome not delivered: server answered 400" in proc.stderr
