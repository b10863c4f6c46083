"""Threshold rules through the API on a controllable clock: fire, hold back noise, resolve."""

from __future__ import annotations

from datetime import timedelta

from _alerting import T0, Harness

LATENCY_RULE = {
    "name": "latency-p95",
    "metric": "latency_ms",
    "agg": "p95",
    "op": ">",
    "threshold": 2000,
    "window": "1m",
    "min_requests": 20,
    "severity": "P1",
    "owner": "team-llm",
    "runbook": "https://runbooks.example/latency",
}


class TestThresholdRule:
    def test_a_spike_fires_within_two_ticks_and_resolves_after(self, h: Harness) -> None:
        h.put_rule(LATENCY_RULE)
        h.traffic(50, T0, latency_ms=500)
        h.tick()
        assert h.alerts() == []
        # the spike: 60 slow calls in the next 30 s
        h.clock.advance(seconds=30)
        h.traffic(60, h.clock(), seconds=30, latency_ms=5000)
        h.tick()
        h.tick(seconds=1)
        firing = h.alerts(status="firing")
        assert len(firing) == 1
        a = firing[0]
        assert a["rule"] == "latency-p95" and a["severity"] == "P1"
        assert a["value"] > 2000 and a["threshold"] == 2000 and a["window"] == "1m"
        # back to normal: once the slow calls leave the 1-minute window it resolves
        h.clock.advance(seconds=90)
        h.traffic(50, h.clock(), seconds=60, latency_ms=400)
        h.tick()
        assert h.alerts(status="firing") == []
        [resolved] = h.alerts(status="resolved")
        assert resolved["alert_id"] == a["alert_id"]
        assert resolved["ended_at"] == h.clock().isoformat()
        detail = h.api("GET", f"/api/v1/alerts/{a['alert_id']}").json()
        assert [e["kind"] for e in detail["events"]] == ["pending", "firing", "resolved"]

    def test_min_requests_holds_back_a_handful_of_slow_calls(self, h: Harness) -> None:
        h.put_rule(LATENCY_RULE)
        h.traffic(5, T0, latency_ms=9000)  # all slow, but only 5 calls
        for _ in range(3):
            h.tick(seconds=5)
        assert h.alerts() == []
        rule = h.api("GET", "/api/v1/alerts/rules/latency-p95").json()
        assert rule["state"] == "ok"
        # the same breach with enough calls fires
        h.traffic(30, h.clock(), seconds=20, latency_ms=9000)
        h.tick(seconds=1)
        assert len(h.alerts(status="firing")) == 1

    def test_for_holds_back_a_short_blip(self, h: Harness) -> None:
        h.put_rule({**LATENCY_RULE, "for": "2m", "window": "30s"})
        h.traffic(40, T0, seconds=20, latency_ms=6000)
        h.tick()
        [a] = h.alerts()
        assert a["status"] == "pending"
        # the blip passes before `for` elapses: cancelled, never fired, nothing notified
        h.clock.advance(seconds=40)
        h.traffic(40, h.clock(), seconds=20, latency_ms=300)
        h.tick()
        [a] = h.alerts()
        assert a["status"] == "cancelled" and a["started_at"] is None
        # a sustained breach fires once `for` has elapsed, not before
        for i in range(5):
            h.clock.advance(seconds=30)
            h.traffic(40, h.clock(), seconds=25, latency_ms=6000)
            h.tick()
            firing = h.alerts(status="firing")
            assert len(firing) == (1 if i >= 4 else 0), i
        pend = h.alerts(status="firing")[0]
        assert pend["started_at"] is not None

    def test_group_by_dedups_per_group(self, h: Harness) -> None:
        h.put_rule({**LATENCY_RULE, "group_by": ["model"], "min_requests": 5})
        h.traffic(20, T0, latency_ms=5000, model="gpt-4o")
        h.traffic(20, T0, latency_ms=300, model="gpt-4o-mini")
        for _ in range(3):
            h.tick(seconds=1)
        firing = h.alerts(status="firing")
        assert [a["group"] for a in firing] == [{"model": "gpt-4o"}]
        h.traffic(20, h.clock(), latency_ms=5000, model="gpt-4o-mini")
        h.tick(seconds=1)
        assert sorted(a["group"]["model"] for a in h.alerts(status="firing")) == [
            "gpt-4o",
            "gpt-4o-mini",
        ]
        assert len(h.alerts()) == 2  # still one alert per group: ticks update, not duplicate

    def test_filter_limits_the_rule_to_matching_spans(self, h: Harness) -> None:
        h.put_rule({**LATENCY_RULE, "filter": {"model": "gpt-4o"}, "min_requests": 5})
        h.traffic(30, T0, latency_ms=9000, model="claude")
        h.tick()
        assert h.alerts() == []
        h.traffic(30, T0, latency_ms=9000, model="gpt-4o")
        h.tick()
        assert len(h.alerts(status="firing")) == 1

    def test_error_rate_rule_and_deleting_the_rule_resolves_its_alert(self, h: Harness) -> None:
        h.put_rule(
            {
                "name": "errors",
                "metric": "error_rate",
                "op": ">",
                "threshold": 0.01,
                "window": "5m",
                "min_requests": 20,
            }
        )
        h.traffic(95, T0, seconds=120)
        h.traffic(5, T0, seconds=120, error=True)
        h.tick()
        [a] = h.alerts(status="firing")
        assert abs(a["value"] - 0.05) < 1e-9
        r = h.api("DELETE", "/api/v1/alerts/rules/errors")
        assert r.status_code == 200 and r.json()["deleted"] is True
        h.tick(seconds=1)
        [a] = h.alerts()
        assert a["status"] == "resolved"
        events = h.api("GET", f"/api/v1/alerts/{a['alert_id']}").json()["events"]
        assert events[-1]["message"] == "rule deleted"


def test_alert_state_survives_a_restart(tmp_path: object) -> None:
    from pathlib import Path

    from _alerting import harness

    tmp = Path(str(tmp_path))
    gen = harness(tmp)
    h = next(gen)
    h.put_rule({**LATENCY_RULE, "min_requests": 5})
    h.traffic(20, T0, latency_ms=5000)
    h.tick()
    [a] = h.alerts(status="firing")
    gen.close()  # stops the app (the store is closed)
    gen2 = harness(tmp, start=T0 + timedelta(seconds=5))
    h2 = next(gen2)
    try:
        h2.tick()
        # the same alert is still firing: not forgotten, not fired twice
        [b] = h2.alerts()
        assert b["alert_id"] == a["alert_id"] and b["status"] == "firing"
        events = h2.api("GET", f"/api/v1/alerts/{a['alert_id']}").json()["events"]
        assert [e["kind"] for e in events] == ["pending", "firing"]
    finally:
        gen2.close()
