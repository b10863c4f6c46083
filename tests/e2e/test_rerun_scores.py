"""An evaluator run twice on the same spans, against a real `sightline serve`: the A/B
comparison and the release comparison count each span once, with its newest
score, instead of every stored row (which doubled n and claimed confidence the data lacks)."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from _alerting import span
from _helpers import Server, start_server

N = 6
FIRST_RUN = [0.1] * N  # both variants, before the evaluator was fixed
RERUN_A = [0.5 + 0.05 * i for i in range(N)]
RERUN_B = [0.52 + 0.05 * i for i in range(N)]


def _evaluation_logs(spans: list[dict[str, Any]], values: list[float], at: datetime) -> bytes:
    """An external evaluator's verdicts: ``gen_ai.evaluation.result`` log records in the
    judged spans' contexts (docs/evals.md)."""
    req = ExportLogsServiceRequest()
    recs = req.resource_logs.add().scope_logs.add().log_records
    ns = int(at.timestamp() * 1e9)
    for s, v in zip(spans, values, strict=True):
        r = recs.add(
            time_unix_nano=ns,
            event_name="gen_ai.evaluation.result",
            trace_id=bytes.fromhex(s["trace_id"]),
            span_id=bytes.fromhex(s["span_id"]),
        )
        r.attributes.add(key="gen_ai.evaluation.name").value.string_value = "relevance"
        r.attributes.add(key="gen_ai.evaluation.score.value").value.double_value = v
    return req.SerializeToString()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, Any]]]:
    """Variant A an hour before a release, variant B after it; relevance scored twice."""
    srv = start_server(tmp_path_factory.mktemp("rerun"))
    now = datetime.now(UTC).replace(microsecond=0)
    shipped = now - timedelta(hours=1)
    a = [span(shipped - timedelta(minutes=50 - i), variant="A", service_name="bot")
         for i in range(N)]  # fmt: skip
    b = [span(shipped + timedelta(minutes=5 + i), variant="B", service_name="bot")
         for i in range(N)]  # fmt: skip
    try:
        with srv.client() as c:
            assert c.post("/api/v1/spans", json=a + b).status_code == 200
            r = c.post("/api/v1/releases", json={"service": "bot", "version": "2",
                                                 "time": shipped.isoformat()})  # fmt: skip
            assert r.status_code == 201, r.text
            release = r.json()
            runs = [(FIRST_RUN, FIRST_RUN, now - timedelta(minutes=3)),
                    (RERUN_A, RERUN_B, now - timedelta(minutes=1))]  # fmt: skip
            for va, vb, at in runs:
                r = c.post("/v1/logs", content=_evaluation_logs(a + b, va + vb, at),
                           headers={"content-type": "application/x-protobuf"})  # fmt: skip
                assert r.status_code == 200, r.text
            stored = c.get("/api/v1/scores", params={"name": "relevance", "limit": 100})
            assert len(stored.json()["data"]) == 4 * N  # both runs are kept (append-only)
        yield srv, {"now": now, "shipped": shipped, "release": release}
    finally:
        srv.stop()


def test_ab_comparison_counts_each_span_once_with_its_newest_score(
    seeded: tuple[Server, dict[str, Any]],
) -> None:
    srv, d = seeded
    window = {"from": (d["now"] - timedelta(hours=3)).isoformat(), "to": d["now"].isoformat()}
    with srv.client() as c:
        r = c.get("/api/v1/compare", params={"dimension": "variant", "a": "A", "b": "B", **window})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["samples"]["a"]["scores"] == N and body["samples"]["b"]["scores"] == N
    m = next(x for x in body["metrics"] if x["metric"] == "score.relevance")
    assert (m["a"]["n"], m["b"]["n"]) == (N, N)
    assert m["a"]["mean"] == pytest.approx(statistics.fmean(RERUN_A))
    assert m["b"]["mean"] == pytest.approx(statistics.fmean(RERUN_B))
    # B is above A by 0.02 at each rank: with six a side that is no evidence of a difference
    assert m["significant"] is False


def test_release_comparison_counts_each_span_once_with_its_newest_score(
    seeded: tuple[Server, dict[str, Any]],
) -> None:
    srv, d = seeded
    with srv.client() as c:
        r = c.get(f"/api/v1/releases/{d['release']['release_id']}/compare", params={"hours": 1})
    assert r.status_code == 200, r.text
    m = next(x for x in r.json()["metrics"] if x["metric"] == "score:relevance")
    assert (m["num_before"], m["num_after"]) == (N, N)
    assert m["before"] == pytest.approx(statistics.fmean(RERUN_A))
    assert m["after"] == pytest.approx(statistics.fmean(RERUN_B))
    assert m["significant"] is False
