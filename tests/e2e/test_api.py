"""REST API against a real server, on data with known answers."""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from _helpers import API_KEY, Server, start_server

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
TRACE = "ab" * 16


def _span(i: int, **kw: Any) -> dict[str, Any]:
    model = ["gpt-4o", "gpt-4o-mini"][i % 2]
    base = {
        "trace_id": os.urandom(16).hex(),
        "span_id": f"{i + 1:016x}",
        "name": f"chat {model}",
        "kind": "llm",
        "model": model,
        "provider": "openai",
        "start_time": T0 + i * 60,
        "duration_ms": 100.0 * (i + 1),
        "input_tokens": 1000,
        "output_tokens": 10 * (i + 1),
        "ttft_ms": 50.0,
        "status": "error" if i % 5 == 4 else "ok",
        "user_id": f"u{i % 3}",
        "session_id": f"s{i % 4}",
        "feature": "answer",
        "input": f"question number {i}",
        "output": "the ANSWER" if i == 7 else f"answer {i}",
    }
    base.update(kw)
    return base


@pytest.fixture(scope="module", params=["duckdb", "clickhouse", "clickhouse-http"])
def api(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Server]:
    # The whole API suite on both stores: ClickHouse on the engine chdb embeds in the server,
    # and the server path (clickhouse://, the HTTP client) on the ClickHouseHTTP harness.
    tmp = tmp_path_factory.mktemp("api")
    args = ["--store", f"chdb://{tmp / 'ch'}"] if request.param == "clickhouse" else []
    if request.param == "clickhouse-http":
        ch = request.getfixturevalue("clickhouse_http")
        args = ["--store", ch.store_url(f"api_{os.urandom(4).hex()}")]
    srv = start_server(tmp, args=args)
    spans = [_span(i) for i in range(20)]
    tree = [  # one RAG trace: root -> retrieval, llm -> (tool)
        {
            "trace_id": TRACE,
            "span_id": "01" * 8,
            "name": "rag",
            "kind": "chain",
            "start_time": "2026-01-01T00:00:00Z",
            "end_time": "2026-01-01T00:00:02Z",
        },
        {
            "trace_id": TRACE,
            "span_id": "02" * 8,
            "parent_span_id": "01" * 8,
            "name": "retrieve",
            "kind": "retrieval",
            "start_time": "2026-01-01T00:00:00.100Z",
            "end_time": "2026-01-01T00:00:00.300Z",
            "documents": [{"id": "d1", "content": "Refunds within 30 days.", "score": 0.9}],
        },
        {
            "trace_id": TRACE,
            "span_id": "03" * 8,
            "parent_span_id": "01" * 8,
            "name": "chat",
            "kind": "llm",
            "model": "gpt-4o",
            "start_time": "2026-01-01T00:00:00.300Z",
            "end_time": "2026-01-01T00:00:01.900Z",
            "input_tokens": 100,
            "output_tokens": 20,
        },
        {
            "trace_id": TRACE,
            "span_id": "04" * 8,
            "parent_span_id": "03" * 8,
            "name": "lookup",
            "kind": "tool",
            "start_time": "2026-01-01T00:00:00.500Z",
            "end_time": "2026-01-01T00:00:00.600Z",
        },
    ]
    with srv.client() as c:
        r = c.post("/api/v1/spans", json=spans + tree)
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 24
    yield srv
    srv.stop()


def _get(srv: Server, path: str, **params: Any) -> Any:
    with srv.client() as c:
        r = c.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


class TestSpans:
    def test_filters(self, api: Server) -> None:
        assert len(_get(api, "/api/v1/spans", model="gpt-4o", kind="llm")["data"]) == 11
        assert {s["user_id"] for s in _get(api, "/api/v1/spans", user_id="u1")["data"]} == {"u1"}
        assert len(_get(api, "/api/v1/spans", status="error")["data"]) == 4
        assert len(_get(api, "/api/v1/spans", session_id="s0")["data"]) == 5
        [hit] = (
            _get(api, "/api/v1/spans", q="answer")["data"]
            and _get(api, "/api/v1/spans", q="the answer")["data"]
        )
        assert hit["span_id"] == f"{8:016x}"
        window = _get(api, "/api/v1/spans", **{"from": T0 + 60, "to": "2026-01-01T00:03:00Z"})
        assert sorted(s["span_id"] for s in window["data"] if s["kind"] == "llm") == [
            f"{2:016x}",
            f"{3:016x}",
        ]

    def test_item_fields(self, api: Server) -> None:
        [s] = _get(api, "/api/v1/spans", trace_id=TRACE, kind="retrieval")["data"]
        for f in (
            "trace_id",
            "span_id",
            "parent_span_id",
            "kind",
            "model",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "ttft_ms",
            "tpot_ms",
            "duration_ms",
            "status",
            "input",
            "output",
            "documents",
            "attributes",
        ):
            assert f in s
        assert s["documents"] == [
            {"id": "d1", "content": "Refunds within 30 days.", "score": 0.9, "metadata": None}
        ]
        assert s["duration_ms"] == pytest.approx(200.0)

    def test_cursor_pagination_walks_everything_once(self, api: Server) -> None:
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 7}
            if cursor:
                params["cursor"] = cursor
            page = _get(api, "/api/v1/spans", **params)
            seen += [s["span_id"] for s in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 24
        times = [s for s in seen]
        assert times  # newest first is checked below
        first = _get(api, "/api/v1/spans", limit=24)["data"]
        starts = [s["start_time"] for s in first]
        assert starts == sorted(starts, reverse=True)

    def test_cost_is_priced_at_ingest(self, api: Server) -> None:
        [s] = _get(api, "/api/v1/spans", trace_id=TRACE, kind="llm")["data"]
        assert s["cost_usd"] == pytest.approx((100 * 2.5 + 20 * 10) / 1e6)


class TestTraces:
    def test_tree_with_timings(self, api: Server) -> None:
        t = _get(api, f"/api/v1/traces/{TRACE}")
        assert t["num_spans"] == 4
        assert t["duration_ms"] == pytest.approx(2000.0)
        [root] = t["spans"]
        assert root["name"] == "rag" and root["offset_ms"] == 0
        assert [c["name"] for c in root["children"]] == ["retrieve", "chat"]
        chat = root["children"][1]
        assert chat["offset_ms"] == pytest.approx(300.0)
        assert chat["duration_ms"] == pytest.approx(1600.0)
        assert [c["name"] for c in chat["children"]] == ["lookup"]

    def test_unknown_trace_is_404(self, api: Server) -> None:
        with api.client() as c:
            r = c.get(f"/api/v1/traces/{'cd' * 16}")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"


class TestMetrics:
    RANGE = {"from": T0, "to": T0 + 3600}

    def _series(self, api: Server, **params: Any) -> dict[str, Any]:
        return dict(_get(api, "/api/v1/metrics", **self.RANGE, **params))

    def test_p95_latency_by_model(self, api: Server) -> None:
        out = self._series(api, name="latency_ms", agg="p95", group_by="model")
        got = {s["group"]["model"]: s["points"][0]["value"] for s in out["series"]}
        lat = {
            m: [100.0 * (i + 1) for i in range(20) if i % 2 == k]
            for k, m in enumerate(["gpt-4o", "gpt-4o-mini"])
        }
        lat["gpt-4o"].append(1600.0)  # the trace's llm span

        def p95(xs: list[float]) -> float:
            return statistics.quantiles(xs, n=100, method="inclusive")[94]

        assert got == pytest.approx({m: p95(v) for m, v in lat.items()})

    def test_token_weighted_latency(self, api: Server) -> None:
        out = self._series(api, name="token_weighted_latency_ms", model="gpt-4o-mini")
        xs = [(100.0 * (i + 1), 10 * (i + 1)) for i in range(20) if i % 2 == 1]
        expect = sum(d * t for d, t in xs) / sum(t for _, t in xs)
        assert out["series"][0]["points"][0]["value"] == pytest.approx(expect)

    def test_error_rate_and_requests_per_step(self, api: Server) -> None:
        out = self._series(api, name="error_rate")
        assert out["series"][0]["points"][0]["value"] == pytest.approx(4 / 21)
        out = self._series(api, name="requests", step="5m")
        points = out["series"][0]["points"]
        assert [p["value"] for p in points] == [6, 5, 5, 5]  # 5 per 5 minutes (+1 trace llm)
        assert points[1]["t"] == "2026-01-01T00:05:00+00:00"

    def test_sums_and_ratios(self, api: Server) -> None:
        assert self._series(api, name="output_tokens", user_id="u0")["series"][0]["points"][0][
            "value"
        ] == sum(10 * (i + 1) for i in range(20) if i % 3 == 0)
        cps = self._series(api, name="cost_per_session")["series"][0]["points"][0]["value"]
        total = self._series(api, name="cost_usd", session_id="s0")["series"][0]["points"][0][
            "value"
        ]
        assert cps > 0 and total > 0

    @pytest.mark.parametrize(
        ("params", "fragment"),
        [
            ({"name": "nope"}, "unknown metric"),
            ({"name": "latency_ms", "agg": "p42"}, "agg"),
            ({"name": "error_rate", "agg": "p95"}, "ratio"),
            ({"name": "latency_ms", "group_by": "password"}, "group"),
            ({"name": "latency_ms", "step": "0s"}, "step"),
            ({"name": "latency_ms", "step": "1s", "from": 0}, "too many buckets"),
            ({"name": "latency_ms", "from": T0 + 10, "to": T0}, "before"),
            ({"name": "drift_score"}, "drift detection jobs"),
        ],
    )
    def test_bad_metric_queries(self, api: Server, params: dict[str, Any], fragment: str) -> None:
        with api.client() as c:
            r = c.get("/api/v1/metrics", params=params)
        assert r.status_code == 400, r.text
        assert fragment in r.json()["error"]["message"]


class TestServiceEndpoints:
    def test_health_and_ready_need_no_key(self, api: Server) -> None:
        assert httpx.get(f"{api.url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{api.url}/readyz").json() == {"status": "ok"}

    def test_prometheus_metrics(self, api: Server) -> None:
        assert httpx.get(f"{api.url}/metrics").status_code == 401
        r = httpx.get(f"{api.url}/metrics", headers={"x-api-key": API_KEY})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        text = r.text
        assert 'sightline_llm_requests_total{model="gpt-4o",status="ok"} 8.0' in text
        assert 'sightline_llm_requests_total{model="gpt-4o",status="error"} 2.0' in text
        assert 'sightline_ingest_spans_total{format="native"} 24.0' in text
        assert "sightline_llm_request_duration_seconds_bucket" in text
        assert 'sightline_llm_tokens_total{direction="input",model="gpt-4o-mini"} 10000.0' in text

    def test_openapi_documents_the_routes(self, api: Server) -> None:
        spec = httpx.get(f"{api.url}/openapi.json").json()
        for path in (
            "/v1/traces",
            "/api/v1/spans",
            "/api/v1/traces/{trace_id}",
            "/api/v1/feedback",
            "/api/v1/metrics",
            "/healthz",
            "/readyz",
            "/metrics",
        ):
            assert path in spec["paths"], path

    def test_unknown_model_has_no_cost_and_is_counted(self, api: Server) -> None:
        span = _span(50, model="acme-private-llm", trace_id="ef" * 16)
        with api.client() as c:
            assert c.post("/api/v1/spans", json=[span]).json()["repaired_reasons"] == {
                "unknown_model": 1
            }
            [got] = c.get("/api/v1/spans", params={"trace_id": "ef" * 16}).json()["data"]
            text = c.get("/metrics").text
        assert got["cost_usd"] is None and got["ingest_notes"] == ["unknown_model"]
        assert 'sightline_ingest_spans_repaired_total{reason="unknown_model"} 1.0' in text

    def test_a_span_without_a_name_is_stored_and_the_store_stays_ready(self, api: Server) -> None:
        span = _span(97, trace_id="97" * 16)
        del span["name"]  # optional in the native format (docs/ingestion.md's example has none)
        with api.client() as c:
            r = c.post("/api/v1/spans", json=[span])
            assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
            [got] = c.get("/api/v1/spans", params={"trace_id": "97" * 16}).json()["data"]
            assert c.get("/readyz").status_code == 200
        assert got["name"] == "" and got["span_id"] == span["span_id"]

    def test_native_ingest_bad_input(self, api: Server) -> None:
        with api.client() as c:
            r = c.post(
                "/api/v1/spans", content=b"{oops", headers={"content-type": "application/json"}
            )
            assert r.status_code == 400
            r = c.post("/api/v1/spans", content=b"<xml/>", headers={"content-type": "text/xml"})
            assert r.status_code == 415
            r = c.post(
                "/api/v1/spans",
                json=[
                    {"trace_id": "x", "span_id": "y"},
                    3,
                    _span(99, input_tokens=-3, kind="weird"),
                ],
            )
            assert r.status_code == 200
            body = r.json()
        assert body["accepted"] == 1 and body["rejected"] == 2
        assert body["rejected_reasons"] == {"invalid_trace_id": 1, "invalid_span": 1}
        assert body["repaired_reasons"] == {"invalid_input_tokens": 1, "unknown_kind": 1}


class TestFeedback:
    def test_feedback_by_span_id_lands_on_its_trace(self, api: Server) -> None:
        with api.client() as c:
            r = c.post("/api/v1/feedback", json={"span_id": "03" * 8, "score": 1})
            assert r.status_code == 201, r.text
            assert r.json()["trace_id"] == TRACE and r.json()["passed"] is True
            scores = c.get(f"/api/v1/traces/{TRACE}").json()["scores"]
        assert [s["label"] for s in scores] == ["positive"]

    @pytest.mark.parametrize(
        ("body", "status"),
        [
            ({"score": 1}, 400),
            ({"trace_id": TRACE, "score": 2}, 400),
            ({"trace_id": TRACE, "score": "nan"}, 400),
            ({"trace_id": "xyz", "score": 1}, 400),
            ({"trace_id": TRACE, "score": 1, "admin": True}, 400),
            ({"trace_id": TRACE, "score": 1, "comment": "x" * 10_001}, 400),
            ({"span_id": "99" * 8, "score": 1}, 404),
        ],
    )
    def test_bad_feedback(self, api: Server, body: dict[str, Any], status: int) -> None:
        with api.client() as c:
            r = c.post("/api/v1/feedback", json=body)
        assert r.status_code == status, r.text
        assert "message" in r.json()["error"]

    def test_feedback_before_the_trace_arrives_is_kept(self, api: Server) -> None:
        early = "fe" * 16
        with api.client() as c:
            assert (
                c.post("/api/v1/feedback", json={"trace_id": early, "score": 0}).status_code == 201
            )
            c.post("/api/v1/spans", json=[_span(77, trace_id=early)])
            [s] = c.get(f"/api/v1/traces/{early}").json()["scores"]
        assert s["label"] == "neutral"
