"""Each demo scenario injects its fault into the simulated app's spans (and only while on)."""

from __future__ import annotations

import random
import statistics

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from sightline.demo import SCENARIOS, SupportBot
from sightline.demo._app import HALLUCINATIONS, QUESTIONS, TOXIC


def _run(fault: str | None, n: int = 300, speed: float = 1e6) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bot = SupportBot(provider.get_tracer("t"), rng=random.Random(3), speed=speed)
    bot.fault = fault
    rng = random.Random(4)
    for i in range(n):
        bot.answer(rng.choice(QUESTIONS), user_id=f"u{i}", session_id="s", tenant="t")
    return [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]


def _attr(s: ReadableSpan, k: str) -> object:
    return (s.attributes or {}).get(k)


def _error_share(spans: list[ReadableSpan]) -> float:
    return sum(s.status.status_code == StatusCode.ERROR for s in spans) / len(spans)


@pytest.fixture(scope="module")
def healthy() -> list[ReadableSpan]:
    return _run(None)


def test_healthy_traffic_stays_under_the_default_thresholds(healthy: list[ReadableSpan]) -> None:
    assert _error_share(healthy) < 0.015  # 0.2-0.3% per call; the rule fires above 1%
    answers = [str(_attr(s, "gen_ai.output.messages")) for s in healthy]
    assert not any(t in a for a in answers for t in TOXIC)


def test_error_burst_and_outage(healthy: list[ReadableSpan]) -> None:
    assert 0.15 < _error_share(_run("error-burst")) < 0.35
    outage = _run("outage")
    by_provider = {
        p: [s for s in outage if _attr(s, "gen_ai.provider.name") == p]
        for p in ("openai", "anthropic")
    }
    assert _error_share(by_provider["anthropic"]) == 1.0
    assert _error_share(by_provider["openai"]) < 0.05


def test_latency_spike_slows_every_call() -> None:
    # the simulated waits are real sleeps, 50x shorter: long enough to dominate overhead
    def first_token(spans: list[ReadableSpan]) -> float:
        return statistics.median(
            e.timestamp - (s.start_time or 0)
            for s in spans
            for e in s.events
            if e.name == "gen_ai.first_token"
        )

    assert first_token(_run("latency-spike", 20, 50)) > 3 * first_token(_run(None, 20, 50))


def test_quality_faults_change_the_answers() -> None:
    hall = [str(_attr(s, "gen_ai.output.messages")) for s in _run("hallucinations", 200)]
    assert 0.25 < sum(any(h in a for h in HALLUCINATIONS) for a in hall) / len(hall) < 0.55
    toxic = [str(_attr(s, "gen_ai.output.messages")) for s in _run("toxic", 200)]
    assert 0.15 < sum(any(t in a for t in TOXIC) for a in toxic) / len(toxic) < 0.45


def test_cost_spike_uses_a_pricier_model_and_more_tokens(healthy: list[ReadableSpan]) -> None:
    spike = _run("cost-spike", 100)
    assert {_attr(s, "gen_ai.request.model") for s in spike} == {"gpt-4o"}
    tokens = [int(_attr(s, "gen_ai.usage.input_tokens") or 0) for s in spike]  # type: ignore[call-overload]
    normal = [int(_attr(s, "gen_ai.usage.input_tokens") or 0) for s in healthy]  # type: ignore[call-overload]
    assert statistics.median(tokens) > 30 * statistics.median(normal)
    assert statistics.mean(tokens) > 5000


def test_every_scenario_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "alerting.md").read_text()
    for name in SCENARIOS:
        assert f"`{name}`" in doc, name
