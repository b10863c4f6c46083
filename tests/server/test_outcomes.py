"""Business outcomes: record them, and their metrics per group and in an A/B split."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from _alerting import T0, Harness, harness, span

H = "0123456789abcdef"


def _tid(n: int) -> str:
    return f"{n:032x}"


def _llm(minutes_ago: float, *, cost: float, variant: str, model: str, trace: int,
         session: str | None = None) -> dict[str, Any]:  # fmt: skip
    extra: dict[str, Any] = {"trace_id": _tid(trace), "variant": variant, "feature": "checkout"}
    if session:
        extra["session_id"] = session
    return span(T0 - timedelta(minutes=minutes_ago), cost_usd=cost, model=model, **extra)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    yield from harness(tmp_path)


def _seed(h: Harness) -> None:
    """The hand-worked example of docs/signals.md."""
    a = {"variant": "A", "model": "gpt-4o-mini"}
    b = {"variant": "B", "model": "gpt-4o"}
    h.post_spans(
        [
            # A: 4 units, cost 0.12; sA1 converts, tA3 completes its task
            _llm(50, cost=0.01, trace=1, session="sA1", **a),
            _llm(45, cost=0.02, trace=2, session="sA1", **a),
            _llm(40, cost=0.03, trace=3, session="sA2", **a),
            _llm(35, cost=0.04, trace=4, **a),
            _llm(30, cost=0.02, trace=5, session="sA4", **a),
            # B: 4 units, cost 0.15; sB1 and sB2 convert, sB1 and tB3 resolve a ticket
            _llm(50, cost=0.05, trace=11, session="sB1", **b),
            _llm(45, cost=0.05, trace=12, session="sB2", **b),
            _llm(40, cost=0.02, trace=13, **b),
            _llm(35, cost=0.03, trace=14, session="sB4", **b),
            # outside the window: its conversion does not count
            _llm(60 * 30, cost=9.0, trace=21, session="old", **a),
            # a tool span of a converting session: not an LLM call, not a unit
            span(
                T0 - timedelta(minutes=20),
                kind="tool",
                cost_usd=5.0,
                trace_id=_tid(22),
                session_id="sA4",
                variant="A",
            ),  # fmt: skip
        ]
    )
    outcomes = [
        {"session_id": "sA1", "name": "converted"},
        {"session_id": "sA2", "name": "converted", "value": 0},  # a recorded failure
        {"trace_id": _tid(4), "name": "task_completed"},
        {"session_id": "sB1", "name": "converted", "value": 49.5},  # an amount: a success
        {"trace_id": _tid(11), "name": "ticket_resolved"},
        {"session_id": "sB2", "name": "converted"},
        {"trace_id": _tid(13), "name": "ticket_resolved"},
        {"trace_id": _tid(99), "name": "converted"},  # a trace never seen
        {"session_id": "old", "name": "converted"},
    ]
    r = h.api("POST", "/api/v1/outcomes", json=outcomes)
    assert r.status_code == 201, r.text
    assert r.json()["accepted"] == len(outcomes)


def _metrics(h: Harness, **params: str) -> list[dict[str, Any]]:
    q = {"from": (T0 - timedelta(hours=1)).isoformat(), "to": T0.isoformat(), **params}
    r = h.api("GET", "/api/v1/outcomes/metrics", params=q)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


class TestOutcomeMetrics:
    def test_hand_worked_example_per_variant(self, h: Harness) -> None:
        _seed(h)
        rows = {r["group"]["variant"]: r for r in _metrics(h, group_by="variant")}
        a, b = rows["A"], rows["B"]
        assert (a["num_units"], a["num_converted"], a["num_completed"], a["num_outcomes"]) == (
            4, 1, 1, 2,
        )  # fmt: skip
        assert a["conversion_rate"] == 0.25 and a["task_completion_rate"] == 0.25
        assert a["cost_usd"] == pytest.approx(0.12)
        assert a["cost_per_outcome"] == pytest.approx(0.06)
        assert (b["num_units"], b["num_converted"], b["num_completed"], b["num_outcomes"]) == (
            4, 2, 2, 3,
        )  # fmt: skip
        assert b["conversion_rate"] == 0.5 and b["task_completion_rate"] == 0.5
        assert b["cost_per_outcome"] == pytest.approx(0.05)

    def test_per_model_filters_and_custom_outcome_names(self, h: Harness) -> None:
        _seed(h)
        rows = {r["group"]["model"]: r for r in _metrics(h, group_by="model")}
        assert rows["gpt-4o"]["conversion_rate"] == 0.5
        [only_b] = _metrics(h, variant="B")
        assert only_b["num_units"] == 4 and only_b["group"] == {}
        # cost per conversion only: B spent 0.15 for 2 conversions
        [conv] = _metrics(h, variant="B", outcome="converted")
        assert conv["cost_per_outcome"] == pytest.approx(0.075)
        # "completion" redefined as the ticket outcome only: A has none
        [a] = _metrics(h, variant="A", completion="ticket_resolved")
        assert a["task_completion_rate"] == 0.0
        assert _metrics(h, feature="nope") == []

    def test_ab_split_with_a_two_proportion_test(self, h: Harness) -> None:
        _seed(h)
        q = {"a": "A", "b": "B", "from": (T0 - timedelta(hours=1)).isoformat(),
             "to": T0.isoformat()}  # fmt: skip
        r = h.api("GET", "/api/v1/outcomes/ab", params=q)
        assert r.status_code == 200, r.text
        ab = r.json()
        assert ab["a"]["conversion_rate"] == 0.25 and ab["b"]["conversion_rate"] == 0.5
        assert ab["difference"] == 0.25 and ab["lift"] == 1.0
        # pooled p = 3/8; se = sqrt(3/8 · 5/8 · (1/4 + 1/4)) = 0.342327; z = 0.25 / se
        assert ab["z"] == pytest.approx(0.730297, abs=1e-5)
        assert ab["p_value"] == pytest.approx(math.erfc(0.730297 / math.sqrt(2)), abs=1e-5)
        assert ab["p_value"] == pytest.approx(0.4652, abs=1e-4)
        r = h.api("GET", "/api/v1/outcomes/ab", params={**q, "b": "C"})
        assert r.status_code == 200 and r.json()["b"]["num_units"] == 0
        assert r.json()["z"] is None

    def test_time_buckets(self, h: Harness) -> None:
        _seed(h)
        rows = _metrics(h, step="30m", variant="A")
        assert sum(r["num_units"] for r in rows) == 4
        assert len(rows) == 2

    def test_listing_outcomes(self, h: Harness) -> None:
        h.store.add_outcomes([])  # nothing to write
        _seed(h)
        r = h.api("GET", "/api/v1/outcomes", params={"name": "ticket_resolved"})
        assert len(r.json()["data"]) == 2
        r = h.api("GET", "/api/v1/outcomes", params={"session_id": "sA1"})
        assert r.status_code == 200
        [o] = r.json()["data"]
        assert o["name"] == "converted" and o["value"] == 1.0 and o["trace_id"] is None


class TestBadInput:
    @pytest.mark.parametrize(
        "body",
        [
            {"name": "converted"},  # neither trace nor session
            {"trace_id": "xyz", "name": "converted"},
            {"session_id": "s", "name": "Converted!"},
            {"session_id": "s", "name": "converted", "value": "NaN"},
            {"session_id": "s", "name": "converted", "extra": 1},
            {"session_id": "s", "name": "converted", "metadata": {"a": {"b": 1}}},
            [],
            [{"session_id": "s", "name": "x"}] * 1001,
            "converted",
        ],
    )
    def test_rejected_with_a_message(self, h: Harness, body: Any) -> None:
        r = h.api("POST", "/api/v1/outcomes", json=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"]
        assert h.store.list_outcomes("alerts") == []

    @pytest.mark.parametrize(
        "params",
        [
            {"group_by": "nope"},
            {"from": "yesterday"},
            {"step": "0"},
            {"completion": "Bad Name"},
            {"from": "2026-03-02T12:00:00Z", "to": "2026-03-01T12:00:00Z"},
        ],
    )
    def test_bad_metric_queries(self, h: Harness, params: dict[str, str]) -> None:
        r = h.api("GET", "/api/v1/outcomes/metrics", params=params)
        assert r.status_code == 400, r.text

    @pytest.mark.parametrize(
        "params",
        [
            {"a": "A"},
            {"a": "A", "b": "A"},
            {"a": "A", "b": "B", "metric": "cost_usd"},
            {"a": "A", "b": "B", "dimension": "input"},
        ],  # fmt: skip
    )
    def test_bad_ab_queries(self, h: Harness, params: dict[str, str]) -> None:
        r = h.api("GET", "/api/v1/outcomes/ab", params=params)
        assert r.status_code == 400, r.text

    def test_an_ingest_key_records_but_cannot_read(self, h: Harness) -> None:
        r = h.api("POST", "/api/v1/keys", json={"role": "ingest"})
        assert r.status_code == 201, r.text
        key = r.json()["key"]
        r = h.api("POST", "/api/v1/outcomes", key=key, json={"session_id": "s", "name": "x"})
        assert r.status_code == 201
        assert h.api("GET", "/api/v1/outcomes", key=key).status_code == 403
        assert h.api("GET", "/api/v1/outcomes/metrics", key=key).status_code == 403


def test_erasing_a_user_erases_their_outcomes(h: Harness) -> None:
    h.post_spans(
        [
            span(T0 - timedelta(minutes=5), user_id="u-1", session_id="s-1", trace_id=_tid(1)),
            span(T0 - timedelta(minutes=5), user_id="u-2", session_id="s-2", trace_id=_tid(2)),
        ]
    )
    body = [
        {"session_id": "s-1", "name": "converted"},
        {"trace_id": _tid(1), "name": "task_completed"},
        {"session_id": "s-9", "name": "converted", "user_id": "u-1"},
        {"session_id": "s-2", "name": "converted"},
    ]
    assert h.api("POST", "/api/v1/outcomes", json=body).status_code == 201
    r = h.api("DELETE", "/api/v1/users/u-1/data")
    assert r.status_code == 200, r.text
    left = h.store.list_outcomes("alerts")
    assert [(o.session_id, o.name) for o in left] == [("s-2", "converted")]


def test_outcome_metrics_in_the_metrics_api_and_alert_rules(h: Harness) -> None:
    _seed(h)
    got = {}
    for m in ("conversion_rate", "task_completion_rate", "cost_per_outcome"):
        params = {"name": m, "group_by": "variant", "from": (T0 - timedelta(hours=1)).isoformat(),
                  "to": T0.isoformat()}  # fmt: skip
        r = h.api("GET", "/api/v1/metrics", params=params)
        assert r.status_code == 200, r.text
        got[m] = {s["group"]["variant"]: s["points"][0]["value"] for s in r.json()["series"]}
    assert got["conversion_rate"] == {"A": 0.25, "B": 0.5}
    assert got["task_completion_rate"] == {"A": 0.25, "B": 0.5}
    assert got["cost_per_outcome"] == pytest.approx({"A": 0.06, "B": 0.05})
    h.put_rule(
        {
            "name": "conversion-low",
            "metric": "conversion_rate",
            "op": "<",
            "threshold": 0.3,
            "window": "1h",
            "group_by": ["variant"],
            "severity": "P2",
        }  # fmt: skip
    )
    h.tick()
    firing = [a["group"] for a in h.alerts(status="firing") if a["rule"] == "conversion-low"]
    assert firing == [{"variant": "A"}]
