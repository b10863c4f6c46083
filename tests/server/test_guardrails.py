"""Guardrail effectiveness from labelled fixtures: block rate, latency, false positives, bypass."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from _alerting import T0, Harness, harness, span
from sightline.model import Score

# (guardrail, version, stage, blocked, latency_ms, human label, evaluator scores that failed)
FIXTURES: list[tuple[str, str, str, bool, float, str | None, tuple[str, ...]]] = [
    ("injection-shield", "1", "input", True, 12, "legitimate", ()),
    ("injection-shield", "1", "input", True, 14, "harmful", ()),
    ("injection-shield", "1", "input", True, 16, None, ()),
    ("injection-shield", "1", "input", True, 18, "legitimate", ()),
    ("injection-shield", "1", "input", False, 10, None, ("prompt_injection",)),  # bypass
    ("injection-shield", "1", "input", False, 10, None, ()),
    ("injection-shield", "1", "input", False, 10, None, ("toxicity",)),  # not its stage
    ("injection-shield", "1", "input", False, 10, "correct", ()),
    ("injection-shield", "2", "input", True, 10, "harmful", ()),
    ("injection-shield", "2", "input", True, 20, "harmful", ()),
    ("injection-shield", "2", "input", False, 30, None, ()),
    ("injection-shield", "2", "input", False, 40, None, ()),
    ("toxicity-filter", "1", "output", True, 50, "legitimate", ()),
    ("toxicity-filter", "1", "output", False, 50, None, ("toxicity",)),  # bypass
    ("toxicity-filter", "1", "output", False, 50, None, ("pii_leak",)),  # bypass
    ("toxicity-filter", "1", "output", False, 50, "harmful", ()),  # bypass, found by a person
    ("toxicity-filter", "1", "output", False, 50, None, ("prompt_injection",)),  # not its stage
    *[("toxicity-filter", "1", "output", False, 50, None, ())] * 5,
]


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    yield from harness(tmp_path, default_rules=True)


def _seed(h: Harness) -> None:
    spans: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    scores: list[Score] = []
    for i, (name, version, stage, blocked, ms, label, failed) in enumerate(FIXTURES):
        at = T0 - timedelta(minutes=55 - 2 * i)
        trace = secrets.token_hex(16)
        llm = span(at, trace_id=trace)
        guard = span(at, kind="guardrail", trace_id=trace, latency_ms=ms, ttft_ms=None,
                     attributes={"sightline.guardrail.blocked": blocked,
                                 "sightline.guardrail.version": version,
                                 "sightline.guardrail.stage": stage})  # fmt: skip
        guard["name"] = name
        spans += [llm, guard]
        if label:
            labels.append({"trace_id": trace, "span_id": guard["span_id"], "label": label})
        for ev in failed:
            scores.append(
                Score(
                    project_id="alerts",
                    score_id=secrets.token_hex(8),
                    trace_id=trace,
                    span_id=llm["span_id"],
                    name=ev,
                    value=0.0,
                    passed=False,
                    source="evaluator",
                    evaluator=ev,
                    created_at=datetime.now(UTC),
                )  # fmt: skip
            )
    h.post_spans(spans)
    for body in labels:
        r = h.api("POST", "/api/v1/scores", json=body)
        assert r.status_code == 201, r.text
    h.store.add_scores(scores)


def _window() -> dict[str, str]:
    return {"from": (T0 - timedelta(hours=1)).isoformat(), "to": T0.isoformat()}


class TestGuardrailEffectiveness:
    def test_per_guardrail_and_version(self, h: Harness) -> None:
        _seed(h)
        r = h.api("GET", "/api/v1/guardrails", params=_window())
        assert r.status_code == 200, r.text
        got = {(g["name"], g["version"]): g for g in r.json()["data"]}
        v1 = got[("injection-shield", "1")]
        assert (v1["num_checks"], v1["num_blocked"], v1["block_rate"]) == (8, 4, 0.5)
        assert (v1["num_reviewed_blocked"], v1["num_false_positives"]) == (3, 2)
        assert v1["false_positive_rate"] == pytest.approx(2 / 3)
        assert (v1["num_bypass_inputs"], v1["num_bypass_outputs"]) == (1, 0)
        assert v1["bypass_attempts"] == 1 and v1["bypass_rate"] == 1 / 8
        v2 = got[("injection-shield", "2")]
        assert (v2["num_checks"], v2["num_blocked"], v2["false_positive_rate"]) == (4, 2, 0.0)
        assert v2["bypass_attempts"] == 0
        assert v2["latency_ms_p50"] == 25.0 and v2["latency_ms_p95"] == pytest.approx(38.5)
        tox = got[("toxicity-filter", "1")]
        assert (tox["num_checks"], tox["num_blocked"], tox["false_positive_rate"]) == (10, 1, 1.0)
        assert (tox["num_bypass_inputs"], tox["num_bypass_outputs"]) == (0, 3)
        assert tox["bypass_rate"] == 3 / 10

    def test_metrics_and_default_alerts(self, h: Harness) -> None:
        _seed(h)
        values = {}
        for m in ("guardrail_false_positive_rate", "guardrail_bypass_rate", "guardrail_block_rate"):
            r = h.api("GET", "/api/v1/metrics", params={"name": m, "group_by": "name", **_window()})
            assert r.status_code == 200, r.text
            values[m] = {s["group"]["name"]: s["points"][0]["value"] for s in r.json()["series"]}
        fp, bypass = values["guardrail_false_positive_rate"], values["guardrail_bypass_rate"]
        assert fp == pytest.approx({"injection-shield": 2 / 5, "toxicity-filter": 1.0})
        assert bypass == pytest.approx({"injection-shield": 1 / 12, "toxicity-filter": 3 / 10})
        assert values["guardrail_block_rate"]["injection-shield"] == pytest.approx(6 / 12)
        h.tick()
        firing = {(a["rule"], a["group"].get("name")) for a in h.alerts(status="firing")}
        assert ("guardrail-false-positives-high", "toxicity-filter") in firing
        assert ("guardrail-bypass", "toxicity-filter") in firing
        assert ("guardrail-false-positives-high", "injection-shield") not in firing
        assert ("guardrail-bypass", "injection-shield") not in firing

    def test_empty_window_and_bad_times(self, h: Harness) -> None:
        assert h.api("GET", "/api/v1/guardrails").json()["data"] == []
        for params in ({"from": "nope"}, {"from": "2026-03-02T12:00:00Z", "to": "2026-03-01"}):
            r = h.api("GET", "/api/v1/guardrails", params=params)
            assert r.status_code == 400 and r.json()["error"]["message"]
