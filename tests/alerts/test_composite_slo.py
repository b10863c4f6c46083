"""Composite rules (k of n) and SLO burn rates checked against hand-computed windows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from _alerting import T0, Harness

COMPOSITE = {
    "name": "degradation",
    "type": "composite",
    "window": "5m",
    "k": 2,
    "min_requests": 10,
    "severity": "P1",
    "conditions": [
        {"metric": "latency_ms", "agg": "p95", "op": ">", "threshold": 2000},
        {"metric": "error_rate", "op": ">", "threshold": 0.1},
        {
            "name": "slow first token",
            "metric": "ttft_ms",
            "agg": "p95",
            "op": ">",
            "threshold": 800,
        },
    ],
}


class TestComposite:
    def test_one_breach_does_not_fire(self, h: Harness) -> None:
        h.put_rule(COMPOSITE)
        h.traffic(40, T0, latency_ms=5000)  # latency only
        h.tick()
        h.tick(seconds=1)
        assert h.alerts() == []
        rule = h.api("GET", "/api/v1/alerts/rules/degradation").json()
        assert rule["state"] == "ok"

    def test_k_breaches_fire_with_the_composite_severity(self, h: Harness) -> None:
        h.put_rule(COMPOSITE)
        h.traffic(30, T0, latency_ms=5000)
        h.traffic(10, T0, latency_ms=5000, error=True)  # errors 25% and latency: 2 of 3
        h.tick()
        [a] = h.alerts(status="firing")
        assert a["severity"] == "P1" and a["value"] == 2 and a["threshold"] == 2
        conds = {c["condition"]: c["breached"] for c in a["details"]["conditions"]}
        assert conds == {
            "latency_ms > 2000": True,
            "error_rate > 0.1": True,
            "slow first token": False,
        }

    def test_k_must_not_exceed_the_conditions(self, h: Harness) -> None:
        r = h.api("POST", "/api/v1/alerts/rules", json={**COMPOSITE, "k": 4})
        assert r.status_code == 400
        assert "k (4) exceeds" in r.json()["error"]["message"]


def _block(h: Harness, start_ago: timedelta, end_ago: timedelta, n: int, errors: int) -> None:
    """``n`` calls (``errors`` of them failed) spread strictly inside [now-start, now-end)."""
    now = h.clock()
    a, b = now - start_ago, now - end_ago
    step = (b - a) / (n + 1)
    spans = []
    from _alerting import span

    for i in range(n):
        spans.append(span(a + step * (i + 1), error=i < errors))
    h.post_spans(spans)


class TestSloBurnRate:
    """Hand-computed windows (multi-window, multi-burn-rate alerts of the SRE workbook).

    calls / errors:   [-5m, 0): 50/10   [-30m, -5m): 200/20   [-1h, -30m): 250/50
                      [-6h, -1h): 2500/0   [-10d, -9d): 5000/20
    bad share:  5m 10/50 = 0.2    30m 30/250 = 0.12    1h 80/500 = 0.16
                6h 80/3000 = 0.02667    28d 100/8000 = 0.0125
    """

    @pytest.fixture
    def traffic(self, h: Harness) -> Harness:
        _block(h, timedelta(minutes=5), timedelta(0), 50, 10)
        _block(h, timedelta(minutes=30), timedelta(minutes=5), 200, 20)
        _block(h, timedelta(hours=1), timedelta(minutes=30), 250, 50)
        _block(h, timedelta(hours=6), timedelta(hours=1), 2500, 0)
        _block(h, timedelta(days=10), timedelta(days=9), 5000, 20)
        return h

    def test_fast_burn_pages_and_slow_burn_holds(self, traffic: Harness) -> None:
        h = traffic
        h.put_rule({"name": "avail-99", "type": "slo", "sli": "availability", "objective": 0.99})
        h.tick()
        [slo] = h.api("GET", "/api/v1/alerts/slos").json()["data"]
        # budget 1%: burn = bad share / 0.01
        assert slo["burn_rates"] == pytest.approx(
            {"28d": 1.25, "1h": 16.0, "5m": 20.0, "6h": 80 / 3000 / 0.01, "30m": 12.0}
        )
        assert slo["bad_ratio"] == pytest.approx(0.0125)
        assert slo["error_budget_remaining"] == pytest.approx(-0.25)
        assert slo["num_events"] == 8000
        # fast: 16 > 14.4 over 1h and 20 > 14.4 over 5m -> P1; slow: 6h burns 2.67 < 6 -> no
        [a] = h.alerts(status="firing")
        assert a["group"] == {"burn_window": "1h/5m"}
        assert a["severity"] == "P1"
        assert a["value"] == pytest.approx(16.0) and a["threshold"] == 14.4

    def test_slow_burn_fires_at_p2_with_a_tighter_objective(self, traffic: Harness) -> None:
        h = traffic
        h.put_rule({"name": "avail-996", "type": "slo", "sli": "availability", "objective": 0.996})
        h.tick()
        # budget 0.4%: 6h burns 0.02667 / 0.004 = 6.67 > 6 and 30m 0.12 / 0.004 = 30 > 6
        firing = {a["group"]["burn_window"]: a for a in h.alerts(status="firing")}
        assert set(firing) == {"1h/5m", "6h/30m"}
        assert firing["6h/30m"]["severity"] == "P2"
        assert firing["6h/30m"]["value"] == pytest.approx(80 / 3000 / 0.004)
        assert firing["1h/5m"]["value"] == pytest.approx(40.0)
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(h.api("GET", "/metrics").text)
            for s in fam.samples
        }
        # 28d: 0.0125 / 0.004 = 3.125 budgets spent
        key = ("sightline_slo_error_budget_remaining", (("slo", "avail-996"),))
        assert samples[key] == pytest.approx(-2.125)
        firing = ("sightline_alerts_firing", (("rule", "avail-996"), ("severity", "P2")))
        assert samples[firing] == 1

    def test_short_window_alone_does_not_page(self, h: Harness) -> None:
        # a 5-minute burst on a quiet hour: 5m burns, 1h does not reach 14.4
        _block(h, timedelta(minutes=5), timedelta(0), 50, 10)
        _block(h, timedelta(hours=1), timedelta(minutes=5), 2000, 0)
        h.put_rule({"name": "avail", "type": "slo", "sli": "availability", "objective": 0.99})
        h.tick()
        # 1h: 10 / 2050 = 0.488% -> burn 0.49
        [slo] = h.api("GET", "/api/v1/alerts/slos").json()["data"]
        assert slo["burn_rates"]["1h"] == pytest.approx(10 / 2050 / 0.01)
        assert h.alerts() == []

    def test_latency_slo_counts_calls_slower_than_the_threshold(self, h: Harness) -> None:
        now = h.clock()
        from _alerting import span

        h.post_spans(
            [span(now - timedelta(minutes=2, seconds=i), latency_ms=3000) for i in range(30)]
            + [span(now - timedelta(minutes=3, seconds=i), latency_ms=800) for i in range(70)]
        )
        h.put_rule(
            {"name": "lat", "type": "slo", "sli": "latency", "threshold_ms": 1000, "objective": 0.9}
        )
        h.tick()
        [slo] = h.api("GET", "/api/v1/alerts/slos").json()["data"]
        assert slo["bad_ratio"] == pytest.approx(0.3)
        assert slo["burn_rates"]["5m"] == pytest.approx(3.0)
        assert slo["error_budget_remaining"] == pytest.approx(-2.0)


def test_a_quality_slo_needs_a_ratio_metric(h: Harness) -> None:
    h.put_rule(
        {"name": "q", "type": "slo", "sli": "quality", "metric": "cost_usd", "objective": 0.99}
    )
    h.tick()
    rule = h.api("GET", "/api/v1/alerts/rules/q").json()
    assert rule["state"] == "error" and "needs a ratio metric" in rule["error"]
