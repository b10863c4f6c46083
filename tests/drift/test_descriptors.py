"""Descriptor drift: a shift to a negative tone fires; a sample of the same traffic does not."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from _alerting import T0, Harness, harness, span
from sightline.evals import EvalRunner, RunnerOptions
from sightline.evals.evaluators._descriptors import Descriptors
from sightline.store.base import SampleQuery

YAML = """
drift:
  - name: tone
    current: 1h
    baseline: {window: 1d, offset: 0s}
    detectors: [descriptors]
    sample: 200
    min_samples: 30
    permutations: 200
"""

BODIES = [
    "Your order ships within 3 business days.",
    "You can reset your password from the sign-in page.",
    "The annual plan includes priority support and two extra seats.",
    "Refunds are processed within a week of the request.",
    "Invoices are available under Billing in your account settings.",
    "The mobile app syncs your notes across devices automatically.",
]
CALM = [
    ("Happy to help!", "Have a wonderful day!"),
    ("Great question.", "Glad I could help."),
    ("Sure thing.", "Let me know if anything else comes up."),
    ("Thanks for reaching out.", ""),
    ("", "Hope this helps."),
    ("", ""),
]
GRIM = [
    ("Unfortunately, this is a frustrating problem.", "Sorry, it may still fail."),
    ("Sorry, that failed again.", "The system is broken and unreliable right now."),
    ("That's a terrible situation, I'm afraid.", "This is annoying and I can't promise anything."),
    ("Bad news: there is a serious outage.", "We regret the awful experience."),
]


def _reply(rng: random.Random, tones: list[tuple[str, str]]) -> str:
    head, tail = rng.choice(tones)
    return " ".join(p for p in (head, rng.choice(BODIES), tail) if p)


def _post(h: Harness, tones: list[tuple[str, str]], end: datetime, hours: float, n: int,
          seed: int) -> None:  # fmt: skip
    rng = random.Random(seed)
    step = timedelta(hours=hours) / (n + 1)
    start = end - timedelta(hours=hours)
    # ids from the seed too: the job samples by a hash of them, and with random ids the
    # same-traffic case fired in ~2% of runs (a test at alpha 0.05 over five features)
    h.post_spans(
        [
            span(
                start + step * (i + 1),
                output=_reply(rng, tones),
                trace_id=rng.randbytes(16).hex(),
                span_id=rng.randbytes(8).hex(),
            )
            for i in range(n)
        ]
    )


def _describe_stored(h: Harness) -> None:
    runner = EvalRunner(h.store, [Descriptors()], options=RunnerOptions(grace_s=0, batch_size=256))
    while runner.step():
        pass


def _run(h: Harness) -> dict[str, dict[str, Any]]:
    r = h.api("POST", "/api/v1/drift/run", json={"job": "tone"})
    assert r.status_code == 200, r.text
    return {x["feature"]: x for x in r.json()["data"] if x["detector"] == "descriptors"}


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    yield from harness(tmp_path, alerts_yaml=YAML)


class TestToneDrift:
    def test_negative_tone_fires_on_sentiment_and_raises_a_drift_alert(self, h: Harness) -> None:
        _post(h, CALM, T0 - timedelta(hours=1), 23, 240, seed=1)
        _post(h, GRIM, T0, 1, 120, seed=2)
        _describe_stored(h)
        # the sampled spans carry the stored descriptors (no recomputation)
        sample = h.store.sample_spans(
            SampleQuery(project_id="alerts", start=T0 - timedelta(hours=1), end=T0, limit=5)
        )
        assert sample and all(s.descriptors is not None for s in sample)
        assert all(s.descriptors["sentiment"] < 0.2 for s in sample if s.descriptors)
        found = _run(h)
        sent = found["sentiment"]
        assert sent["fired"] is True and sent["p_value"] < 0.01
        assert sent["details"]["current_median"] < sent["details"]["baseline_median"]
        assert found["top_terms"]["fired"] is True
        assert found["language"]["fired"] is False  # still English
        assert found["json"]["fired"] is False
        h.put_rule(
            {"name": "tone-drift", "type": "drift", "detector": "descriptors", "severity": "P2"}
        )
        h.tick()
        firing = [a for a in h.alerts(status="firing") if a["rule"] == "tone-drift"]
        assert "sentiment" in {a["group"].get("feature") for a in firing}

    def test_same_distribution_does_not_fire(self, h: Harness) -> None:
        _post(h, CALM, T0 - timedelta(hours=1), 23, 240, seed=3)
        _post(h, CALM, T0, 1, 120, seed=4)
        # not stored: the detector describes the sampled spans itself
        found = _run(h)
        assert set(found) >= {"sentiment", "reading_level", "num_words", "language", "refusal"}
        assert not any(x["fired"] for x in found.values()), {
            k: (x["score"], x["p_value"]) for k, x in found.items()
        }
        assert found["sentiment"]["status"] == "ok"


def test_descriptor_metrics_read_the_stored_descriptors(h: Harness) -> None:
    h.post_spans(
        [
            span(T0 - timedelta(minutes=5), output="Great, thanks, this is wonderful!"),
            span(T0 - timedelta(minutes=4), output='{"status": "ok"}'),
            span(T0 - timedelta(minutes=3), output="This is terrible and broken."),
        ]
    )
    _describe_stored(h)
    start = (T0 - timedelta(hours=1)).isoformat()
    got = {}
    for m in ("sentiment", "json_share", "reading_level"):
        params = {"name": m, "from": start, "to": T0.isoformat()}
        r = h.api("GET", "/api/v1/metrics", params=params)
        assert r.status_code == 200, r.text
        got[m] = r.json()
    value = {m: r["series"][0]["points"][0]["value"] for m, r in got.items()}
    assert value["json_share"] == pytest.approx(1 / 3)
    assert value["reading_level"] is not None
    # (0.85 + 0 - 0.7) / 3 or so: one positive, one neutral JSON, one negative answer
    assert -0.3 < value["sentiment"] < 0.3


def test_categorical_test_is_honest_and_sensitive() -> None:
    from sightline.drift._detectors import categorical_test

    langs, weights = ["en", "fr", "de", "es"], [0.85, 0.07, 0.05, 0.03]

    def run(i: int, shifted: bool = False) -> bool:
        rng = random.Random(i)
        b = [[x] for x in rng.choices(langs, weights, k=150)]
        w = [0.55, 0.35, 0.05, 0.05] if shifted else weights
        c = [[x] for x in rng.choices(langs, w, k=150)]
        d = categorical_test(b, c, feature="language", permutations=100, seed=i)
        return d.fired

    assert sum(run(i) for i in range(100)) <= 5
    assert run(1000, shifted=True)
