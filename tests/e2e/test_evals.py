"""End to end: a real `sightline serve` scores demo RAG traffic (with injected hallucinations)
within 30 s, and serves the score metrics."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from _helpers import API_KEY, Server, free_port, start_server
from sightline.demo import SupportBot
from sightline.demo._app import QUESTIONS
from sightline.evals import available_evaluators

NUM_TRACES = 40


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, float]]:
    srv = start_server(
        tmp_path_factory.mktemp("evals-e2e"),
        # the defaults of `sightline serve`: every registered evaluator that needs no options
        env={
            "SIGHTLINE_EVAL_ENABLED": "true",
            "SIGHTLINE_EVAL_GRACE_S": "1",
            "SIGHTLINE_EVAL_INTERVAL_S": "0.5",
        },
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "acme-support-bot"}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(
                endpoint=f"{srv.url}/v1/traces", headers={"authorization": f"Bearer {API_KEY}"}
            ),
            schedule_delay_millis=200,
        )
    )
    # The demo app itself: 10% of its answers get "Also, our office is on the Moon." appended.
    bot = SupportBot(provider.get_tracer("e2e"), rng=random.Random(7), speed=50.0)
    rng = random.Random(7)
    for i in range(NUM_TRACES):
        bot.answer(rng.choice(QUESTIONS), user_id=f"u{i % 5}", session_id=f"s{i % 8}", tenant="t1")
    provider.force_flush()
    sent = time.monotonic()
    provider.shutdown()
    yield srv, sent
    srv.stop()


def _llm_spans(c: httpx.Client) -> list[dict]:  # type: ignore[type-arg]
    data = c.get("/api/v1/spans", params={"kind": "llm", "limit": 1000}).json()["data"]
    return [s for s in data if s["status"] != "error"]


def test_demo_traffic_gets_scores_within_30_s(served: tuple[Server, float]) -> None:
    srv, sent = served
    with srv.client() as c:
        scored: list[dict] = []  # type: ignore[type-arg]
        spans: list[dict] = []  # type: ignore[type-arg]
        while time.monotonic() - sent < 30:
            spans = _llm_spans(c)
            scored = [
                s
                for s in spans
                if {"relevance", "context_relevance"} <= {x["name"] for x in s["scores"]}
            ]
            if spans and len(scored) == len(spans):
                break
            time.sleep(0.5)
        assert spans and len(scored) == len(spans), srv.log()[-3000:]
        took = time.monotonic() - sent
        assert took < 30
        # the scores answer the questions: the demo's answers come from the right documents
        rel = [x for s in scored for x in s["scores"] if x["name"] == "relevance"]
        assert all(x["source"] == "evaluator" and x["evaluator_version"] for x in rel)
        for name in ("relevance", "format_compliance", "feedback_positive_rate"):
            r = c.get("/api/v1/metrics", params={"name": name})
            assert r.status_code == 200, r.text
        r = c.get("/api/v1/metrics", params={"name": "relevance", "group_by": "model"})
        values = [s["points"][0]["value"] for s in r.json()["series"]]
        assert values and all(0 < v <= 1 for v in values)
        lag = c.get("/api/v1/metrics", params={"name": "eval_lag_s"}).json()
        assert lag["series"][0]["points"][0]["value"] < 30
        assert "sightline_eval_lag_seconds" in c.get("/metrics").text


@pytest.mark.skipif(
    "faithfulness" not in available_evaluators(), reason="the faithfulness evaluator is not merged"
)
def test_injected_hallucinations_show_in_hallucination_rate(served: tuple[Server, float]) -> None:
    srv, sent = served
    with srv.client() as c:
        value = None
        while time.monotonic() - sent < 30:
            series = c.get("/api/v1/metrics", params={"name": "hallucination_rate"}).json()
            if series["series"]:
                value = series["series"][0]["points"][0]["value"]
                moon = [s for s in _llm_spans(c) if "Moon" in (s["output"] or "")]
                if moon and all(
                    any(x["name"] == "faithfulness" for x in s["scores"]) for s in moon
                ):
                    break
            time.sleep(0.5)
        assert value is not None and value > 0
        for s in moon:
            [f] = [x for x in s["scores"] if x["name"] == "faithfulness"]
            assert f["label"] == "hallucination"


def _send(srv: Server, n: int, seed: int) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "acme-support-bot"}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(
                endpoint=f"{srv.url}/v1/traces", headers={"authorization": f"Bearer {API_KEY}"}
            ),
            schedule_delay_millis=100,
        )
    )
    bot = SupportBot(provider.get_tracer("e2e"), rng=random.Random(seed), speed=50.0)
    rng = random.Random(seed)
    for i in range(n):
        bot.answer(rng.choice(QUESTIONS[:10]), user_id="u", session_id=f"r{seed}-{i}", tenant="t")
    provider.shutdown()


def _relevance_scores(c: httpx.Client) -> list[dict]:  # type: ignore[type-arg]
    return c.get("/api/v1/scores", params={"name": "relevance", "limit": 1000}).json()["data"]


def _wait_scored(c: httpx.Client, n: int, timeout_s: float = 30) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    got: list[dict] = []  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        llm = _llm_spans(c)
        got = _relevance_scores(c)
        if len(llm) >= n and len(got) >= len(llm):
            break
        time.sleep(0.3)
    return got


def test_a_restarted_server_resumes_from_its_cursor(tmp_path: Path) -> None:
    env = {
        "SIGHTLINE_EVAL_ENABLED": "true",
        "SIGHTLINE_EVALUATORS": "relevance",
        "SIGHTLINE_EVAL_GRACE_S": "0.5",
        "SIGHTLINE_EVAL_INTERVAL_S": "0.2",
    }
    srv = start_server(tmp_path, env=env)
    try:
        _send(srv, 6, seed=1)
        with srv.client() as c:
            first = _wait_scored(c, 6)
            assert len(first) == len(_llm_spans(c)) >= 6
    finally:
        srv.stop()
    srv = Server(data_dir=tmp_path / "data", port=free_port(), env=env).start()
    try:
        with srv.client() as c:
            time.sleep(2)  # several ticks: nothing is scored twice
            assert len(_relevance_scores(c)) == len(first)
            _send(srv, 4, seed=2)
            after = _wait_scored(c, 10)
            spans = _llm_spans(c)
            assert len(after) == len(spans) >= 10
            assert len({s["span_id"] for s in after}) == len(after)
    finally:
        srv.stop()


def test_evaluators_run_in_a_niced_process_apart_from_the_server(
    served: tuple[Server, float],
) -> None:
    """Their Python work must not take the GIL from ingestion (bench/ingest.py halves without)."""
    srv, _ = served
    started = [
        json.loads(line)
        for line in srv.log().splitlines()
        if '"eval_worker_started"' in line and line.startswith("{")
    ]
    assert started, srv.log()[-3000:]
    pid = started[-1]["pid"]
    assert pid != srv.proc.pid
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    server_stat = Path(f"/proc/{srv.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    assert int(stat[16]) > int(server_stat[16])  # nice: lower priority than the server
