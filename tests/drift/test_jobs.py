"""Drift jobs through the API: sample both windows from the store, store results, alert."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from _alerting import OTHER_KEY, T0, Harness, harness, span
from _topics import BASE_MIX, SHIFTED_MIX, sample
from sightline.server._auth import ensure_project_with_key

YAML = """
drift:
  - name: prompts
    current: 1h
    baseline: {window: 1d, offset: 0s}
    detectors: [embedding_mmd, emerging_topics, token_distribution, psi]
    sample: 150
    min_samples: 20
    permutations: 100
"""


@pytest.fixture
def hd(tmp_path: Path) -> Iterator[Harness]:
    yield from harness(tmp_path, alerts_yaml=YAML, default_rules=True)


def _traffic(
    h: Harness, mix: dict[str, float], start: object, hours: float, n: int, seed: int
) -> None:
    rng = random.Random(seed)
    texts = sample(mix, n, rng)
    step = timedelta(hours=hours) / (n + 1)
    h.post_spans(
        [
            span(start + step * (i + 1), text=t, output=f"Answer about {t}")  # type: ignore[operator]
            for i, t in enumerate(texts)
        ]
    )


def test_a_new_topic_is_detected_stored_and_alerted(hd: Harness) -> None:
    h = hd
    _traffic(h, BASE_MIX, T0 - timedelta(days=1, hours=1), 24, 300, seed=1)
    _traffic(h, SHIFTED_MIX, T0 - timedelta(hours=1), 1, 150, seed=2)
    r = h.api("POST", "/api/v1/drift/run", json={"job": "prompts"})
    assert r.status_code == 200, r.text
    results = {(x["detector"], x["feature"]): x for x in r.json()["data"]}
    topics = results[("emerging_topics", "prompt")]
    assert topics["fired"] and topics["p_value"] < 0.01 and topics["num_current"] == 150
    assert any(
        "flight" in e.lower() or "hotel" in e.lower() or "train" in e.lower()
        for e in topics["details"]["topics"][0]["examples"]
    )
    assert results[("embedding_mmd", "prompt")]["fired"]
    assert results[("token_distribution", "response")]["fired"]
    # latency did not change: PSI does not fire on it
    assert not results[("psi", "latency_ms")]["fired"]
    stored = h.api("GET", "/api/v1/drift", params={"fired": "true"}).json()
    assert {(x["detector"], x["feature"]) for x in stored["data"]} >= {
        ("emerging_topics", "prompt"),
        ("embedding_mmd", "prompt"),
    }
    latest = {(x["detector"], x["feature"]): x for x in stored["latest"]}
    assert latest[("emerging_topics", "prompt")]["drift_score"] == topics["score"]
    # the default pack's drift rule turns it into a P2 alert
    h.tick()
    firing = [a for a in h.alerts(status="firing") if a["rule"] == "drift-detected"]
    assert {a["group"]["detector"] for a in firing} >= {"emerging_topics", "embedding_mmd"}
    assert all(a["severity"] == "P2" for a in firing)
    # other projects see none of it
    ensure_project_with_key(h.store, "other", OTHER_KEY)
    assert h.api("GET", "/api/v1/drift", key=OTHER_KEY).json()["data"] == []


def test_too_few_samples_is_reported_not_fired(hd: Harness) -> None:
    h = hd
    _traffic(h, BASE_MIX, T0 - timedelta(hours=1), 1, 5, seed=3)
    results = h.api("POST", "/api/v1/drift/run").json()["data"]
    assert results and all(r["status"] == "insufficient_data" and not r["fired"] for r in results)
    assert h.api("POST", "/api/v1/drift/run", json={"job": "nope"}).status_code == 400
    jobs = h.api("GET", "/api/v1/drift/jobs").json()["data"]
    assert [j["name"] for j in jobs] == ["prompts"]


def test_bad_drift_jobs_are_rejected(tmp_path: Path) -> None:
    from sightline.drift import parse_drift_jobs
    from sightline.errors import ConfigError

    with pytest.raises(ConfigError, match="baseline"):
        parse_drift_jobs([{"name": "x", "baseline": {"window": "1d", "dataset": "a.jsonl"}}])
    with pytest.raises(ConfigError, match="detectors"):
        parse_drift_jobs([{"name": "x", "detectors": ["vibes"]}])
    assert parse_drift_jobs(None)[0].name == "default"


def test_a_drift_filter_on_an_unknown_field_is_refused_at_load(tmp_path: Path) -> None:
    # It loaded, then every run failed in the store ("cannot filter by 'team'"): a 400 from
    # POST /drift/run, an error at every tick, and no result ever. And kind: the sample is of
    # LLM calls, so kind=tool gave empty windows (insufficient_data) forever.
    from sightline.drift import parse_drift_jobs
    from sightline.errors import ConfigError

    with pytest.raises(ConfigError, match="filter.*cannot filter by 'team'"):
        parse_drift_jobs([{"name": "x", "filter": {"team": "search"}}])
    with pytest.raises(ConfigError, match="kind cannot be filtered"):
        parse_drift_jobs([{"name": "x", "filter": {"kind": "tool"}}])
    job = parse_drift_jobs([{"name": "x", "filter": {"feature": "support", "model": "m"}}])[0]
    assert job.filter == {"feature": "support", "model": "m"}


def test_drift_windows_are_bounded_at_load(tmp_path: Path) -> None:
    # current: 1000000w loaded, then every run overflowed (now - current before year 1):
    # an OverflowError, a 500 from POST /drift/run. current: 0s compared empty windows forever.
    from sightline.drift import parse_drift_jobs
    from sightline.errors import ConfigError

    for spec, where in (
        ({"current": "1000000w"}, "current"),
        ({"current": "0s"}, "current"),
        ({"baseline": {"window": "0s"}}, "baseline.window"),
        ({"baseline": {"window": "1d", "offset": "99999999w"}}, "baseline.offset"),
        ({"baseline": {"window": "367d"}}, "baseline.window"),
    ):
        with pytest.raises(ConfigError, match=f"drift job x: {where}"):
            parse_drift_jobs([{"name": "x", **spec}])
    job = parse_drift_jobs(
        [{"name": "x", "current": "366d", "baseline": {"window": "366d", "offset": "366d"}}]
    )[0]
    assert job.current == 366 * 86400 and job.baseline.offset == 366 * 86400


def test_erasing_a_user_removes_their_prompts_from_drift_examples(hd: Harness) -> None:
    """Drift results quote prompts as examples: a user's erasure must take those quotes too."""
    h = hd
    _traffic(h, BASE_MIX, T0 - timedelta(days=1, hours=1), 24, 300, seed=1)
    rng = random.Random(2)
    texts = sample(SHIFTED_MIX, 150, rng)
    step = timedelta(hours=1) / 151
    # half the new traffic is one user's (whose prompts name them), half everyone else's
    mine = [f"{t} (asked by VICTIM-{i})" for i, t in enumerate(texts[:75])]
    h.post_spans(
        [span(T0 - timedelta(hours=1) + step * (i + 1), text=t, user_id="victim")
         for i, t in enumerate(mine)]
        + [span(T0 - timedelta(hours=1) + step * (76 + i), text=t, user_id="other")
           for i, t in enumerate(texts[75:])]
    )  # fmt: skip
    r = h.api("POST", "/api/v1/drift/run", json={"job": "prompts"})
    assert r.status_code == 200, r.text
    assert "VICTIM-" in r.text  # the examples quote the user's prompts
    r = h.api("DELETE", "/api/v1/users/victim/data")
    assert r.status_code == 200 and r.json()["deleted_spans"] == 75
    stored = h.api("GET", "/api/v1/drift", params={"limit": 1000})
    assert stored.status_code == 200
    assert "VICTIM-" not in stored.text
    topics = [x for x in stored.json()["data"] if x["detector"] == "emerging_topics"]
    # what the user did not send stays explained
    assert any(e for x in topics for t in x["details"]["topics"] for e in t["examples"])
