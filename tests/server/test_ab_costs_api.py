"""A/B comparison, metrics split by prompt version, and cost breakdowns through the API.

One hand-made dataset (in-process app, real DuckDB store): prompt ``support-answer`` version 1
(group A) and version 2 (group B), three calls each, with evaluator scores and user feedback;
plus a ``search`` feature whose prompt grows by 10 tokens a day. Every expected figure below
is worked out by hand from that data.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sightline.config import Settings
from sightline.model import Score
from sightline.server import create_app

KEY = "sl_ab_costs_key_0123456789"
P = "abcosts"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
RANGE = {"from": (T0 - timedelta(days=3)).isoformat(), "to": (T0 + timedelta(hours=1)).isoformat()}

# (version, duration_ms, cost_usd, status, user, session, tenant, relevance, passed, feedback)
SUPPORT = [
    ("1", 100, 0.001, "ok", "u1", "s1", "t1", 0.9, True, 1),
    ("1", 300, 0.003, "ok", "u2", "s1", "t1", 0.8, True, 1),
    ("1", 500, 0.005, "ok", "u3", "s2", "t1", 0.7, True, -1),
    ("2", 200, 0.002, "ok", "u1", "s3", "t2", 0.4, False, -1),
    ("2", 400, 0.004, "ok", "u4", "s3", "t2", 0.5, False, -1),
    ("2", 600, 0.006, "error", "u4", "s4", "t2", 0.6, True, None),
]


def _span(**f: Any) -> dict[str, Any]:
    return {
        "trace_id": secrets.token_hex(16),
        "span_id": secrets.token_hex(8),
        "name": "chat",
        "kind": "llm",
        **f,
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("abcosts")
    settings = Settings(
        data_dir=tmp,
        otlp_grpc_port=0,
        ingest_workers=0,
        init_project=P,
        init_api_key=KEY,
        eval_enabled=False,
        monitor_interval_s=0,
        drift_interval_s=0,
        retention_interval_s=0,
    )
    app = create_app(settings)
    with TestClient(app, headers={"authorization": f"Bearer {KEY}"}) as c:
        spans, scores, feedback = [], [], []
        for i, (ver, dur, cost, status, user, session, tenant, rel, ok, fb) in enumerate(SUPPORT):
            s = _span(
                model="acme-small",
                prompt_name="support-answer",
                prompt_version=ver,
                feature="support",
                duration_ms=dur,
                cost_usd=cost,
                status=status,
                user_id=user,
                session_id=session,
                tenant_id=tenant,
                input_tokens=50,
                output_tokens=10,
                start_time=(T0 - timedelta(minutes=10 - i)).isoformat(),
            )
            spans.append(s)
            scores.append(
                Score(
                    project_id=P,
                    score_id=secrets.token_hex(8),
                    trace_id=s["trace_id"],
                    span_id=s["span_id"],
                    name="relevance",
                    value=rel,
                    passed=ok,
                    label="relevant" if ok else "irrelevant",
                    source="evaluator",
                    evaluator="relevance",
                    evaluator_version="1",
                    created_at=T0,
                )
            )
            if fb is not None:
                feedback.append({"trace_id": s["trace_id"], "score": fb})
        for day, tokens in ((2, 100), (1, 110), (0, 120)):
            spans.append(
                _span(
                    model="acme-large",
                    feature="search",
                    prompt_name="search-rewrite",
                    prompt_version="1",
                    duration_ms=50,
                    cost_usd=0.01,
                    input_tokens=tokens,
                    output_tokens=5,
                    input="x" * tokens,
                    start_time=(T0 - timedelta(days=day, minutes=30)).isoformat(),
                )
            )
        r = c.post("/api/v1/spans", json=spans)
        assert r.status_code == 200 and r.json()["accepted"] == len(spans), r.text
        app.state.sightline.store.add_scores(scores)
        for fb in feedback:
            assert c.post("/api/v1/feedback", json=fb).status_code == 201
        yield c


def _metric(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in result["metrics"] if m["metric"] == name)


@pytest.fixture(scope="module")
def result(client: TestClient) -> dict[str, Any]:
    """Version 1 (A) against version 2 (B) of support-answer."""
    r = client.get(
        "/api/v1/compare",
        params={
            "dimension": "prompt_version",
            "a": "1",
            "b": "2",
            "prompt_name": "support-answer",
            **RANGE,
        },
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


class TestCompare:
    def test_sample_sizes(self, result: dict[str, Any]) -> None:
        assert result["samples"] == {
            "a": {"calls": 3, "traces": 3, "errors": 0, "scores": 3, "feedback": 3},
            "b": {"calls": 3, "traces": 3, "errors": 1, "scores": 3, "feedback": 2},
        }

    def test_latency_and_cost_use_mann_whitney(self, result: dict[str, Any]) -> None:
        # A = 100, 300, 500 ms against B = 200, 400, 600: U_A = 3 (300>200, 500>200, 500>400);
        # exact two-sided p = 2 * P(U <= 3) = 2 * 7/20 = 0.7. Costs follow the same order.
        for name in ("latency_ms", "cost_usd"):
            m = _metric(result, name)
            assert (m["test"], m["u"], m["method"]) == ("mann_whitney_u", 3.0, "exact")
            assert m["p_value"] == pytest.approx(0.7) and m["significant"] is False
            assert (m["a"]["n"], m["b"]["n"]) == (3, 3)
        lat = _metric(result, "latency_ms")
        assert (lat["a"]["median"], lat["b"]["median"], lat["difference"]) == (300, 400, 100)

    def test_quality_scores_and_pass_rates(self, result: dict[str, Any]) -> None:
        # relevance 0.9, 0.8, 0.7 against 0.4, 0.5, 0.6: every A above every B, U_A = 9,
        # exact p = 2/20 = 0.1.
        m = _metric(result, "score.relevance")
        assert m["u"] == 9.0 and m["p_value"] == pytest.approx(0.1)
        assert m["a"]["mean"] == pytest.approx(0.8) and m["b"]["mean"] == pytest.approx(0.5)
        # passes 3/3 against 1/3: pooled 2/3, se = 2/sqrt(27), z = sqrt(3).
        m = _metric(result, "pass_rate.relevance")
        assert m["test"] == "two_proportion_z"
        assert m["z"] == pytest.approx(math.sqrt(3))
        assert m["p_value"] == pytest.approx(math.erfc(math.sqrt(3) / math.sqrt(2)))
        assert (m["a"]["successes"], m["a"]["n"], m["b"]["successes"], m["b"]["n"]) == (3, 3, 1, 3)

    def test_errors_and_feedback(self, result: dict[str, Any]) -> None:
        # errors 0/3 against 1/3: pooled 1/6, se = sqrt(1/6 * 5/6 * 2/3), z = -(1/3) / se
        m = _metric(result, "error_rate")
        z = -(1 / 3) / math.sqrt(1 / 6 * 5 / 6 * 2 / 3)
        assert m["z"] == pytest.approx(z) and m["difference"] == pytest.approx(1 / 3)
        # positive feedback 2/3 against 0/2: pooled 2/5, se = sqrt(0.4 * 0.6 * (1/3 + 1/2))
        m = _metric(result, "feedback_positive_rate")
        z = (2 / 3) / math.sqrt(0.4 * 0.6 * (1 / 3 + 1 / 2))
        assert m["z"] == pytest.approx(z)
        assert m["p_value"] == pytest.approx(math.erfc(z / math.sqrt(2)))
        # feedback values 1, 1, -1 against -1, -1 (ties): U_A = 5, mean 3, sigma 1.5,
        # z = (5 - 3 - 0.5) / 1.5 = 1, p = erfc(1 / sqrt 2)
        m = _metric(result, "feedback_score")
        assert (m["u"], m["method"]) == (5.0, "asymptotic")
        assert m["p_value"] == pytest.approx(math.erfc(1 / math.sqrt(2)))

    def test_holm_adjustment_over_every_tested_metric(self, result: dict[str, Any]) -> None:
        tested = [m for m in result["metrics"] if m["p_value"] is not None]
        assert len(tested) == 8  # latency, cost, tokens, errors, score, pass rate, 2x feedback
        for m in tested:
            assert m["p_value"] <= m["p_value_holm"] <= 1.0
        smallest = min(tested, key=lambda m: m["p_value"])
        assert smallest["p_value_holm"] == pytest.approx(min(1.0, 8 * smallest["p_value"]))
        # three calls a side: the smallest p (pass rate, 0.083) is not significant, alone or not
        assert smallest["metric"] == "pass_rate.relevance"
        assert not any(m["significant"] or m["significant_holm"] for m in result["metrics"])

    def test_variants_and_models_compare_the_same_way(self, client: TestClient) -> None:
        r = client.get(
            "/api/v1/compare",
            params={"dimension": "model", "a": "acme-small", "b": "acme-large", **RANGE},
        )
        assert r.status_code == 200, r.text
        assert r.json()["samples"]["a"]["calls"] == 6 and r.json()["samples"]["b"]["calls"] == 3
        r = client.get("/api/v1/compare", params={"dimension": "variant", "a": "x", "b": "y"})
        assert r.status_code == 200
        assert _metric(r.json(), "latency_ms")["status"] == "insufficient_data"

    @pytest.mark.parametrize(
        ("params", "fragment"),
        [
            ({"dimension": "colour", "a": "1", "b": "2"}, "dimension"),
            ({"dimension": "variant", "a": "1", "b": "1"}, "same group"),
            ({"dimension": "prompt_version", "a": "1", "b": "2"}, "prompt_name"),
            ({"dimension": "variant", "a": "1", "b": "2", "variant": "1"}, "filter"),
            ({"dimension": "variant", "a": "1", "b": "2", "from": "yesterday"}, "from"),
            (
                {
                    "dimension": "variant",
                    "a": "1",
                    "b": "2",
                    "from": "2026-03-02",
                    "to": "2026-03-01",
                },
                "before",
            ),
            ({"dimension": "variant", "a": "1", "b": "2", "alpha": "2"}, "alpha"),
            ({"dimension": "variant", "a": "1"}, "b"),
        ],
    )
    def test_bad_requests_get_400(
        self, client: TestClient, params: dict[str, str], fragment: str
    ) -> None:
        r = client.get("/api/v1/compare", params=params)
        assert r.status_code == 400, r.text
        assert fragment in r.json()["error"]["message"]


class TestMetricsByPromptVersion:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("requests", {"1": 3, "2": 3}),
            ("cost_usd", {"1": 0.009, "2": 0.012}),
            ("error_rate", {"1": 0.0, "2": 1 / 3}),
            ("relevance", {"1": 0.8, "2": 0.5}),
            ("feedback_positive_rate", {"1": 2 / 3, "2": 0.0}),
        ],
    )
    def test_every_metric_splits_by_prompt_version(
        self, client: TestClient, name: str, expected: dict[str, float]
    ) -> None:
        r = client.get(
            "/api/v1/metrics",
            params={
                "name": name,
                "group_by": "prompt_version",
                "prompt_name": "support-answer",
                **RANGE,
            },
        )
        assert r.status_code == 200, r.text
        got = {s["group"]["prompt_version"]: s["points"][0]["value"] for s in r.json()["series"]}
        assert got == pytest.approx(expected)


class TestCostBreakdown:
    @pytest.mark.parametrize(
        ("by", "expected"),
        [
            ("session", {"s1": 0.004, "s2": 0.005, "s3": 0.006, "s4": 0.006, None: 0.03}),
            ("user", {"u1": 0.003, "u2": 0.003, "u3": 0.005, "u4": 0.010, None: 0.03}),
            ("tenant", {"t1": 0.009, "t2": 0.012, None: 0.03}),
            ("feature", {"support": 0.021, "search": 0.03}),
            ("model", {"acme-small": 0.021, "acme-large": 0.03}),
            ("prompt_version", {"1": 0.039, "2": 0.012}),
        ],
    )
    def test_cost_per_group(self, client: TestClient, by: str, expected: dict[Any, float]) -> None:
        r = client.get("/api/v1/costs", params={"by": by, **RANGE})
        assert r.status_code == 200, r.text
        got = {row["key"]: row["cost_usd"] for row in r.json()["data"]}
        assert got == pytest.approx(expected)
        costs = [row["cost_usd"] for row in r.json()["data"]]
        assert costs == sorted(costs, reverse=True)  # most expensive first

    def test_session_summary_is_the_cost_per_session(self, client: TestClient) -> None:
        r = client.get("/api/v1/costs", params={"by": "session", **RANGE}).json()
        s = r["summary"]
        assert s["groups"] == 4 and s["cost_usd"] == pytest.approx(0.021)
        assert s["mean_cost_usd"] == pytest.approx(0.021 / 4)
        assert s["median_cost_usd"] == pytest.approx(0.0055)
        assert s["max_cost_usd"] == pytest.approx(0.006)
        assert s["unattributed_cost_usd"] == pytest.approx(0.03)
        assert (s["unattributed_calls"], s["calls"]) == (3, 9)
        s1 = next(row for row in r["data"] if row["key"] == "s1")
        assert (s1["requests"], s1["input_tokens"], s1["output_tokens"]) == (2, 100, 20)
        assert s1["cost_per_call"] == pytest.approx(0.002)

    def test_per_request_is_per_trace_and_limit_keeps_the_top(self, client: TestClient) -> None:
        r = client.get("/api/v1/costs", params={"by": "request", "limit": 4, **RANGE}).json()
        assert r["summary"]["groups"] == 9 and len(r["data"]) == 4
        assert [row["cost_usd"] for row in r["data"]] == pytest.approx([0.01, 0.01, 0.01, 0.006])

    def test_filters_narrow_the_calls(self, client: TestClient) -> None:
        r = client.get(
            "/api/v1/costs", params={"by": "user", "feature": "support", "tenant_id": "t2", **RANGE}
        )
        assert {row["key"]: row["cost_usd"] for row in r.json()["data"]} == pytest.approx(
            {"u1": 0.002, "u4": 0.010}
        )

    def test_cost_per_successful_task(self, client: TestClient) -> None:
        # support: v1 traces +1, +1, -1 (feedback wins over the passing evaluation);
        # v2 traces -1, -1 and one without feedback whose relevance passed -> 3 of 6 succeed.
        r = client.get("/api/v1/costs/tasks", params={"group_by": "feature", **RANGE})
        assert r.status_code == 200, r.text
        rows = {row["group"]["feature"]: row for row in r.json()["data"]}
        sup = rows["support"]
        assert (sup["tasks"], sup["successful"], sup["failed"], sup["unjudged"]) == (6, 3, 3, 0)
        assert sup["cost_usd"] == pytest.approx(0.021)
        assert sup["cost_successful_usd"] == pytest.approx(0.001 + 0.003 + 0.006)
        assert sup["cost_per_successful_task"] == pytest.approx(0.007)
        assert sup["success_rate"] == pytest.approx(0.5)
        search = rows["search"]
        assert (search["tasks"], search["unjudged"], search["cost_per_successful_task"]) == (
            3,
            3,
            None,
        )
        r = client.get(
            "/api/v1/costs/tasks",
            params={"group_by": "prompt_version", "prompt_name": "support-answer", **RANGE},
        )
        by_v = {row["group"]["prompt_version"]: row for row in r.json()["data"]}
        assert by_v["1"]["cost_per_successful_task"] == pytest.approx(0.009 / 2)
        assert by_v["2"]["cost_per_successful_task"] == pytest.approx(0.012 / 1)

    def test_empty_parameters_mean_the_defaults(self, client: TestClient) -> None:
        # found by the fuzzer: an empty step was a 500
        r = client.get("/api/v1/costs/prompt-length", params={"step": "", "from": "", "to": ""})
        assert r.status_code == 200 and r.json()["step_s"] == 86_400, r.text

    def test_prompt_length_trend_per_feature(self, client: TestClient) -> None:
        r = client.get("/api/v1/costs/prompt-length", params={"step": "1d", **RANGE})
        assert r.status_code == 200, r.text
        by_f = {s["feature"]: s for s in r.json()["data"]}
        search = by_f["search"]
        assert [p["input_tokens"] for p in search["points"]] == [100, 110, 120]
        assert [p["input_chars"] for p in search["points"]] == [100, 110, 120]
        assert search["slope_tokens_per_day"] == pytest.approx(10.0)
        assert search["change_pct"] == pytest.approx(20.0)
        assert [p["input_tokens"] for p in by_f["support"]["points"]] == [50]
        assert by_f["support"]["slope_tokens_per_day"] is None

    @pytest.mark.parametrize(
        ("path", "params", "fragment"),
        [
            ("/api/v1/costs", {"by": "planet"}, "by"),
            ("/api/v1/costs", {}, "by"),
            ("/api/v1/costs", {"by": "user", "kind": "tool"}, "kind"),
            ("/api/v1/costs", {"by": "user", "limit": "0"}, "limit"),
            ("/api/v1/costs", {"by": "user", "to": "never"}, "to"),
            ("/api/v1/costs/tasks", {"group_by": "span_id"}, "group_by"),
            ("/api/v1/costs/prompt-length", {"step": "fortnight"}, "step"),
            ("/api/v1/costs/prompt-length", {"step": "1s"}, "too many buckets"),
        ],
    )
    def test_bad_requests_get_400(
        self, client: TestClient, path: str, params: dict[str, str], fragment: str
    ) -> None:
        r = client.get(path, params=params)
        assert r.status_code == 400, r.text
        assert fragment in r.json()["error"]["message"]
