"""Anomaly rules against their own baseline, no-traffic (model down) rules, drift rules."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from _alerting import T0, Harness, span
from sightline.alerts import ewma_z, robust_z
from sightline.model import DriftResult


def _hourly_cost(h: Harness, hours: int, end: object, rng: random.Random) -> None:
    spans = []
    for i in range(1, hours + 1):
        start = T0 - timedelta(hours=i + 1)
        for j in range(4):
            spans.append(
                span(start + timedelta(minutes=5 + 12 * j), cost_usd=rng.gauss(0.25, 0.02))
            )
    h.post_spans(spans)


class TestAnomaly:
    @pytest.mark.parametrize("method", ["robust_z", "ewma"])
    def test_cost_3_sigma_above_the_last_7_days_fires(self, h: Harness, method: str) -> None:
        rng = random.Random(7)
        _hourly_cost(h, 7 * 24, T0, rng)
        h.put_rule(
            {
                "name": "cost",
                "type": "anomaly",
                "metric": "cost_usd",
                "agg": "sum",
                "window": "1h",
                "baseline": "7d",
                "threshold": 3,
                "method": method,
            }
        )
        h.traffic(4, T0, seconds=3000, cost_usd=0.25)  # a normal hour: ~1 USD
        h.tick()
        assert h.alerts() == []
        h.traffic(8, T0, seconds=3000, cost_usd=0.5)  # the hour now costs ~5 USD
        h.tick(seconds=1)
        [a] = h.alerts(status="firing")
        assert a["value"] == pytest.approx(5.0)
        assert a["details"]["baseline_points"] == 168
        assert a["details"]["baseline_center"] == pytest.approx(1.0, abs=0.1)
        assert a["details"]["z"] > 3 and a["threshold"] < 5.0

    def test_no_alert_without_enough_history(self, h: Harness) -> None:
        _hourly_cost(h, 5, T0, random.Random(1))
        h.put_rule({"name": "cost", "type": "anomaly", "metric": "cost_usd", "agg": "sum"})
        h.traffic(10, T0, seconds=3000, cost_usd=5.0)
        h.tick()
        assert h.alerts() == []

    def test_robust_z_ignores_outliers_in_the_baseline(self) -> None:
        hist = [10.0] * 20 + [11.0] * 20 + [1000.0]  # one spike does not widen the band
        z, center, scale = robust_z(hist, 20.0)
        assert center == 10.0 or center == 11.0
        assert z > 3
        z2, mean, sd = ewma_z([10.0, 12.0] * 20, 11.0, 0.3)
        assert abs(z2) < 1 and 10 < mean < 12 and sd > 0


class TestNoTraffic:
    def test_a_model_that_stops_sending_fires_and_resumes(self, h: Harness) -> None:
        h.put_rule(
            {
                "name": "model-down",
                "type": "no_traffic",
                "group_by": ["model"],
                "window": "10m",
                "lookback": "1h",
                "min_requests": 5,
                "severity": "P1",
            }
        )
        h.traffic(20, T0, seconds=1800, model="gpt-4o")
        h.traffic(20, T0, seconds=1800, model="claude")
        h.tick()
        assert h.alerts() == []
        h.clock.advance(minutes=15)
        h.traffic(10, h.clock(), seconds=300, model="gpt-4o")  # claude sends nothing
        h.tick()
        [a] = h.alerts(status="firing")
        assert a["group"] == {"model": "claude"} and a["value"] == 0
        assert "no spans for 10m (model=claude)" in a["summary"]
        h.traffic(3, h.clock(), seconds=60, model="claude")
        h.tick(seconds=1)
        assert h.alerts(status="firing") == []


def test_drift_rule_follows_the_latest_result(h: Harness) -> None:
    h.put_rule({"name": "drift", "type": "drift", "window": "3h", "severity": "P2"})

    def result(fired: bool, minutes_ago: int) -> DriftResult:
        now = h.clock()
        return DriftResult(
            project_id="alerts",
            result_id=f"r{minutes_ago}{fired}",
            job="default",
            detector="embedding_mmd",
            feature="prompt",
            created_at=now - timedelta(minutes=minutes_ago),
            current_start=now - timedelta(hours=1),
            current_end=now,
            num_baseline=100,
            num_current=100,
            score=0.2 if fired else 0.01,
            threshold=0.05,
            p_value=0.001 if fired else 0.4,
            fired=fired,
        )

    h.store.add_drift_results([result(True, 5)])
    h.tick()
    [a] = h.alerts(status="firing")
    assert a["group"] == {"job": "default", "detector": "embedding_mmd", "feature": "prompt"}
    assert a["severity"] == "P2" and a["value"] == 0.2
    h.store.add_drift_results([result(False, 0)])
    h.tick(seconds=1)
    assert h.alerts(status="firing") == []
