"""The example alert of docs/signals.md: confident answers in a feature known to be weak."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from _alerting import T0, Harness, harness, span
from sightline.model import Score

RULE = {
    "name": "confidently-wrong-billing",
    "type": "composite",
    "filter": {"feature": "billing-answer"},
    "window": "30m",
    "k": 2,
    "conditions": [
        {"metric": "uncertainty", "op": "<", "threshold": 0.2},
        {"metric": "faithfulness", "op": "<", "threshold": 0.8},
    ],
    "severity": "P1",
}


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    yield from harness(tmp_path)


def _scored(h: Harness, feature: str, confidence: float, faithfulness: float) -> None:
    spans = [span(T0 - timedelta(minutes=10 - i), feature=feature) for i in range(5)]
    h.post_spans(spans)
    now = datetime.now(UTC)
    h.store.add_scores(
        [
            Score(
                project_id="alerts",
                score_id=secrets.token_hex(8),
                trace_id=s["trace_id"],
                span_id=s["span_id"],
                name=name,
                value=v,
                source="evaluator",
                passed=None,
                created_at=now,
            )  # fmt: skip
            for s in spans
            for name, v in (("uncertainty", confidence), ("faithfulness", faithfulness))
        ]
    )


def test_fires_on_confident_unfaithful_answers_only(h: Harness) -> None:
    h.put_rule(RULE)
    _scored(h, "billing-answer", confidence=0.95, faithfulness=0.9)  # sure and right
    h.tick()
    assert not [a for a in h.alerts(status="firing") if a["rule"] == RULE["name"]]
    _scored(h, "billing-answer", confidence=0.95, faithfulness=0.1)  # sure and wrong
    _scored(h, "other", confidence=0.95, faithfulness=0.0)  # another feature
    h.tick(seconds=60)
    firing = [a for a in h.alerts(status="firing") if a["rule"] == RULE["name"]]
    assert len(firing) == 1 and firing[0]["severity"] == "P1"


def test_route_on_fallback_fires_when_most_calls_fell_over(h: Harness) -> None:
    """The "route running on its fallback" example of docs/signals.md, on fallback_rate."""
    import re

    import yaml

    doc = (Path(__file__).resolve().parents[2] / "docs" / "signals.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S) if "fallback_rate" in b]
    (rule,) = yaml.safe_load(block)["rules"]
    h.put_rule(rule)

    def calls(n: int, fell_over: int, service: str = "sightline-gateway") -> None:
        h.post_spans([
            span(T0 - timedelta(minutes=9) + timedelta(seconds=20 * i), service_name=service,
                 attributes={"sightline.gateway": True, "sightline.gateway.attempts": 1,
                             "sightline.gateway.fallback": i < fell_over})
            for i in range(n)
        ])  # fmt: skip

    calls(30, fell_over=6)  # 20%: the primary mostly serves
    calls(30, fell_over=30, service="another-gateway")  # not the filtered service
    h.tick()
    assert not [a for a in h.alerts(status="firing") if a["rule"] == "route-on-fallback"]
    calls(30, fell_over=30)  # now 36 of 60 fell over: 60%
    h.tick(seconds=60)
    firing = [a for a in h.alerts(status="firing") if a["rule"] == "route-on-fallback"]
    assert len(firing) == 1 and firing[0]["severity"] == "P2"
