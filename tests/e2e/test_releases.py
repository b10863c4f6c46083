"""Release markers against a real `sightline serve`: posted, detected from a new
service.version, and the before/after comparison finding an injected regression."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from _alerting import span, wait_for
from _helpers import Server, start_server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("rel"), args=["--monitor-interval", "1"])
    yield s
    s.stop()


def _releases(srv: Server, **params: Any) -> list[dict[str, Any]]:
    with srv.client() as c:
        r = c.get("/api/v1/releases", params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def test_version_change_marks_a_release_and_the_comparison_finds_the_regression(
    srv: Server,
) -> None:
    """v1.4 for two hours; v1.5 ships an hour ago with slower calls, more errors and worse
    relevance labels (a person's, ``score:human.relevance``); cost is unchanged. The marker
    appears on its own at v1.5's first span."""
    rng = random.Random(7)
    now = datetime.now(UTC).replace(microsecond=0)
    shipped = now - timedelta(hours=1)
    before, after = [], []
    for i in range(120):
        at = shipped - timedelta(hours=2) + timedelta(minutes=i)
        before.append(span(at, latency_ms=rng.gauss(500, 60), error=i % 50 == 0,
                           service_name="support-bot", service_version="1.4",
                           prompt_name="answer", prompt_version="3",
                           cost_usd=0.002))  # fmt: skip
    for i in range(60):
        at = shipped + timedelta(minutes=i)
        after.append(span(at, latency_ms=rng.gauss(800, 80), error=i % 5 == 0,
                          service_name="support-bot", service_version="1.5",
                          prompt_name="answer", prompt_version="4",
                          model="gpt-4o-mini" if i % 2 else "llama-3.1-8b",
                          cost_usd=0.002))  # fmt: skip
    with srv.client() as c:
        assert c.post("/api/v1/spans", json=before).status_code == 200
        assert c.post("/api/v1/spans", json=after).status_code == 200
        for s in before[-10:]:
            r = c.post("/api/v1/scores", json={"span_id": s["span_id"], "trace_id": s["trace_id"],
                                               "name": "relevance", "value": 0.9})  # fmt: skip
            assert r.status_code == 201, r.text
        for s in after[:10]:
            r = c.post("/api/v1/scores", json={"span_id": s["span_id"], "trace_id": s["trace_id"],
                                               "name": "relevance", "value": 0.3})  # fmt: skip
            assert r.status_code == 201, r.text

    def marker() -> dict[str, Any] | None:
        for r in _releases(srv):
            if r["kind"] == "service_version" and r["version"] == "1.5":
                return r
        return None

    wait_for(lambda: marker() is not None, timeout_s=20)
    m = marker()
    assert m is not None
    assert m["service"] == "support-bot"
    assert datetime.fromisoformat(m["at"]) == datetime.fromisoformat(after[0]["start_time"])
    with srv.client() as c:
        r = c.get(f"/api/v1/releases/{m['release_id']}/compare", params={"hours": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    metrics = {x["metric"]: x for x in body["metrics"]}
    assert set(body["regressions"]) == {"latency_ms", "error_rate", "score:human.relevance"}
    lat = metrics["latency_ms"]
    assert lat["test"] == "mann_whitney_u" and lat["p_value"] < 1e-6
    assert lat["num_before"] == 60 and lat["num_after"] == 60  # 1 h each side
    assert metrics["error_rate"]["test"] == "two_proportion_z"
    assert metrics["error_rate"]["after"] == pytest.approx(12 / 60)
    assert metrics["cost_usd"]["direction"] == "none"
    # the same before/after over 3 h still finds it
    with srv.client() as c:
        r = c.get(f"/api/v1/releases/{m['release_id']}/compare", params={"hours": 3})
    assert "latency_ms" in r.json()["regressions"]
    assert sum(1 for r in _releases(srv) if r["version"] == "1.5") == 1
    # a new prompt version and a new model are marked too, at their first span
    kinds = {(r["kind"], r["service"], r["version"]): r["at"] for r in _releases(srv)}
    assert datetime.fromisoformat(kinds[("prompt_version", "answer", "4")]) == shipped
    assert ("prompt_version", "answer", "3") in kinds
    assert datetime.fromisoformat(kinds[("model", "openai", "llama-3.1-8b")]) == shipped
    # every time-series answer carries the markers of its range, for charts to draw
    with srv.client() as c:
        since = (now - timedelta(hours=4)).isoformat()
        r = c.get("/api/v1/metrics", params={"name": "latency_ms", "step": "1h", "from": since})
    assert m["release_id"] in {x["release_id"] for x in r.json()["releases"]}


def test_posted_release_and_bad_input(srv: Server) -> None:
    with srv.client() as c:
        body = {"service": "api", "version": "2026.11.1", "git_sha": "a1b2c3d", "notes": "x"}
        r = c.post("/api/v1/releases", json=body)
        assert r.status_code == 201, r.text
        rel = r.json()
        assert rel["kind"] == "manual" and rel["git_sha"] == "a1b2c3d"
        assert any(
            x["release_id"] == rel["release_id"] for x in c.get("/api/v1/releases").json()["data"]
        )
        for bad in ({"service": "api"}, {"service": "", "version": "1"},
                    {"service": "a", "version": "1", "git_sha": "not-a-sha"},
                    {"service": "a", "version": "1", "extra": 1}):  # fmt: skip
            r = c.post("/api/v1/releases", json=bad)
            assert r.status_code in (400, 422), (bad, r.text)
            assert "error" in r.json()
        assert c.get("/api/v1/releases/" + "0" * 32 + "/compare").status_code == 404
        assert c.get("/api/v1/releases/nope/compare").status_code in (400, 404, 422)
        r = c.get(f"/api/v1/releases/{rel['release_id']}/compare", params={"hours": -1})
        assert r.status_code in (400, 422)
        r = c.get(f"/api/v1/releases/{rel['release_id']}/compare")
        assert r.status_code == 200
        # no traffic around it: nothing is significant
        assert r.json()["regressions"] == []


def test_an_ingest_key_may_post_releases(srv: Server, tmp_path: Path) -> None:
    with srv.client() as c:
        key = c.post("/api/v1/keys", json={"role": "ingest"}).json()["key"]
    with srv.client(key=key) as c:
        r = c.post("/api/v1/releases", json={"service": "ci", "version": "9"})
        assert r.status_code == 201
        assert c.get("/api/v1/releases").status_code == 403
