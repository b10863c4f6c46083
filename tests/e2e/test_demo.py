"""`sightline demo` (what `make demo` runs) serves spans from its simulated app."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from _dashboard import login
from _helpers import free_port
from sightline.cli import DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, DEMO_KEY


def test_demo_serves_its_traffic(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    env["SIGHTLINE_INGEST_WORKERS"] = "0"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sightline",
            "demo",
            "--port",
            str(port),
            "--otlp-grpc-port",
            "0",
            "--data-dir",
            str(tmp_path),
            "--rate",
            "10",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        headers = {"authorization": f"Bearer {DEMO_KEY}"}
        deadline = time.monotonic() + 60
        kinds: set[str] = set()
        while (
            time.monotonic() < deadline and not {"llm", "retrieval", "chain", "guardrail"} <= kinds
        ):
            time.sleep(1)
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/spans",
                    headers=headers,
                    params={"limit": 1000},
                    timeout=5,
                )
            except httpx.HTTPError:
                continue
            if r.status_code == 200:
                kinds = {s["kind"] for s in r.json()["data"]}
        assert {"llm", "retrieval", "chain", "guardrail"} <= kinds
        llm = [s for s in r.json()["data"] if s["kind"] == "llm" and s["status"] != "error"]
        assert llm and all(s["ttft_ms"] and s["cost_usd"] for s in llm)
        # The root span ends last, so it is exported after its children: wait for it.
        url = f"http://127.0.0.1:{port}/api/v1/traces/{llm[0]['trace_id']}"
        roots: list[str] = []
        while time.monotonic() < deadline + 30 and roots != ["rag-request"]:
            roots = [s["name"] for s in httpx.get(url, headers=headers).json()["spans"]]
            time.sleep(0.5)
        assert roots == ["rag-request"]
        # the printed dashboard login works and shows the demo's traces
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as web:
            login(web, DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD)
            page = web.get("/traces")
            assert page.status_code == 200 and "rag-request" in page.text
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert b"API key: " + DEMO_KEY.encode() in err
    assert f"email: {DEMO_ADMIN_EMAIL}    password: {DEMO_ADMIN_PASSWORD}".encode() in err


def test_the_demos_healthy_answers_keep_the_default_quality_rules_quiet() -> None:
    """Without a scenario, `make demo` fires no quality alert: `hallucination-rate-high` (> 5%)
    and `relevance-low` (mean < 0.7) are the scenarios' to fire. The fake model answers with the
    best retrieved document, word for word: faithfulness once flagged one of them as its own
    contradiction, and the retriever found no teammate for "teammates" (mean relevance ~0.69)."""
    from opentelemetry import trace

    from sightline.demo._app import QUESTIONS, SupportBot
    from sightline.evals import EvalCase
    from sightline.evals.evaluators import Faithfulness, Relevance

    bot = SupportBot(trace.get_tracer("demo-test"))
    cases = []
    for q in QUESTIONS:
        docs = bot._retrieve(q)
        assert docs and docs[0][0] > 0 or q.startswith("Ignore previous"), q
        answer = docs[0][1].text if docs[0][0] > 0 else "I don't know."
        cases.append(EvalCase(question=q, answer=answer, contexts=tuple(c.text for _, c in docs)))
    assert [r.label for r in Faithfulness().evaluate(cases)] == ["faithful"] * len(cases)
    relevance = [r.score for r in Relevance().evaluate(cases)]
    assert all(s is not None for s in relevance)
    mean = sum(relevance) / len(relevance)  # type: ignore[arg-type]
    assert mean >= 0.75, list(zip(QUESTIONS, relevance, strict=True))
