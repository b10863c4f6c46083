"""The rules API: CRUD with versions, validation errors, the default pack, file rules,
per-project isolation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from _alerting import KEY, OTHER_KEY, T0, Harness, harness, span
from sightline.alerts import default_rules
from sightline.server._auth import ensure_project_with_key

RULE = {"name": "slow", "metric": "latency_ms", "threshold": 2000, "window": "5m"}


class TestCrud:
    def test_create_read_update_delete_with_versions(self, h: Harness) -> None:
        r = h.api("POST", "/api/v1/alerts/rules", json=RULE)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["version"] == 1 and body["source"] == "api" and body["state"] == "not_evaluated"
        assert body["spec"]["agg"] is None and body["spec"]["for"] == "0s"
        assert h.api("POST", "/api/v1/alerts/rules", json=RULE).status_code == 409
        r = h.api("PUT", "/api/v1/alerts/rules/slow", json={**RULE, "threshold": 3000})
        assert r.json()["version"] == 2 and r.json()["spec"]["threshold"] == 3000
        assert [x["name"] for x in h.api("GET", "/api/v1/alerts/rules").json()["data"]] == ["slow"]
        assert h.api("DELETE", "/api/v1/alerts/rules/slow").json() == {
            "name": "slow",
            "version": 3,
            "deleted": True,
        }
        assert h.api("GET", "/api/v1/alerts/rules/slow").status_code == 404
        assert h.api("GET", "/api/v1/alerts/rules").json()["data"] == []
        versions = h.api("GET", "/api/v1/alerts/rules/slow/versions").json()["data"]
        assert [(v["version"], v["deleted"], v["spec"]["threshold"]) for v in versions] == [
            (1, False, 2000),
            (2, False, 3000),
            (3, True, 3000),
        ]
        assert h.api("DELETE", "/api/v1/alerts/rules/slow").status_code == 404

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ({**RULE, "metric": "latncy_ms"}, "unknown metric 'latncy_ms'"),
            ({**RULE, "agg": "p95", "metric": "error_rate"}, "is a ratio"),
            ({**RULE, "window": "soon"}, "expected a duration"),
            ({**RULE, "op": "=>"}, "op"),
            ({**RULE, "severity": "P7"}, "severity"),
            ({**RULE, "group_by": ["colour"]}, "cannot group by 'colour'"),
            ({**RULE, "filter": {"colour": "red"}}, "cannot filter by 'colour'"),
            ({**RULE, "notify": ["pager"]}, "unknown channel(s) pager"),
            ({**RULE, "name": "../etc"}, "name"),
            ({**RULE, "thresold": 1}, "thresold"),
            ({**RULE, "type": "magic"}, "type"),
            ({"name": "s", "type": "slo", "sli": "latency", "objective": 0.99}, "threshold_ms"),
            ({"name": "s", "type": "slo", "sli": "availability", "objective": 99.5}, "objective"),
            (
                {
                    "name": "a",
                    "type": "anomaly",
                    "metric": "cost_usd",
                    "window": "1h",
                    "baseline": "2h",
                },
                "min_baseline_points",
            ),
        ],
    )
    def test_bad_rules_are_400_with_a_clear_message(
        self, h: Harness, spec: dict[str, object], message: str
    ) -> None:
        r = h.api("POST", "/api/v1/alerts/rules", json=spec)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_config"
        assert message in r.json()["error"]["message"]

    def test_bad_bodies_and_unknown_alerts(self, h: Harness) -> None:
        json_type = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
        r = h.client.post("/api/v1/alerts/rules", content=b"[1, 2]", headers=json_type)
        assert r.status_code == 400, r.text
        # without a content type the body is not read as JSON: a 415 that says so
        assert h.api("POST", "/api/v1/alerts/rules", content=b"[1, 2]").status_code == 415
        assert h.api("PUT", "/api/v1/alerts/rules/a", json={**RULE, "name": "b"}).status_code == 400
        assert h.api("GET", "/api/v1/alerts/nope").status_code == 404
        assert h.api("POST", "/api/v1/alerts/nope/ack").status_code == 404
        assert h.api("GET", "/api/v1/alerts", params={"status": "burning"}).status_code == 400
        assert h.api("GET", "/api/v1/alerts", params={"cursor": "%%%"}).status_code == 400
        r = h.api("POST", "/api/v1/alerts/silences", json={"matchers": {}, "duration": "1h"})
        assert r.status_code == 400
        r = h.api("POST", "/api/v1/alerts/silences", json={"matchers": {"rule": "x"}})
        assert r.status_code == 400 and "ends_at or duration" in r.json()["error"]["message"]
        r = h.api(
            "POST",
            "/api/v1/alerts/silences",
            json={"matchers": {"rule": "x"}, "ends_at": "2020-01-01T00:00:00Z"},
        )
        assert r.status_code == 400
        assert h.api("DELETE", "/api/v1/alerts/silences/nope").status_code == 404
        assert h.client.get("/api/v1/alerts/rules").status_code == 401

    def test_acknowledging_a_resolved_alert_is_409(self, h: Harness) -> None:
        h.put_rule({**RULE, "window": "1m"})
        h.traffic(10, T0, latency_ms=5000)
        h.tick()
        [a] = h.alerts()
        h.tick(minutes=5)
        assert h.alerts()[0]["status"] == "resolved"
        assert h.api("POST", f"/api/v1/alerts/{a['alert_id']}/ack").status_code == 409


def test_history_pages_with_a_cursor(h: Harness) -> None:
    h.put_rule({**RULE, "window": "1m"})
    for _ in range(3):
        h.traffic(10, h.clock(), latency_ms=5000)
        h.tick()
        h.tick(minutes=5)  # resolves
    page = h.api("GET", "/api/v1/alerts", params={"limit": 2}).json()
    assert len(page["data"]) == 2 and page["next_cursor"]
    rest = h.api("GET", "/api/v1/alerts", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert len(rest["data"]) == 1 and rest["next_cursor"] is None
    ids = [a["alert_id"] for a in page["data"] + rest["data"]]
    assert len(set(ids)) == 3
    times = [a["pending_since"] for a in page["data"] + rest["data"]]
    assert times == sorted(times, reverse=True)


def test_projects_see_only_their_rules_and_alerts(h: Harness) -> None:
    ensure_project_with_key(h.store, "other", OTHER_KEY)
    h.put_rule({**RULE, "window": "1m"})
    h.put_rule({**RULE, "name": "theirs", "window": "1m"}, key=OTHER_KEY)
    h.traffic(10, T0, latency_ms=5000)
    h.tick()
    assert [a["rule"] for a in h.alerts()] == ["slow"]
    theirs = h.api("GET", "/api/v1/alerts", key=OTHER_KEY).json()["data"]
    assert theirs == []  # the other project sent no slow spans
    names = [r["name"] for r in h.api("GET", "/api/v1/alerts/rules", key=OTHER_KEY).json()["data"]]
    assert names == ["theirs"]
    a = h.alerts()[0]
    assert h.api("GET", f"/api/v1/alerts/{a['alert_id']}", key=OTHER_KEY).status_code == 404
    assert h.api("POST", f"/api/v1/alerts/{a['alert_id']}/ack", key=OTHER_KEY).status_code == 404
    assert h.api("DELETE", "/api/v1/alerts/rules/slow", key=OTHER_KEY).status_code == 404


@pytest.fixture
def hd(tmp_path: Path) -> Iterator[Harness]:
    yaml = """
rules:
  - {name: file-rule, metric: error_rate, threshold: 0.5, window: 5m}
  - {name: latency-p95-high, metric: latency_ms, agg: p99, threshold: 9000, window: 5m}
"""
    yield from harness(tmp_path, alerts_yaml=yaml, default_rules=True)


def test_default_pack_and_file_rules_load_into_every_project(hd: Harness) -> None:
    h = hd
    h.tick()
    rules = {r["name"]: r for r in h.api("GET", "/api/v1/alerts/rules").json()["data"]}
    pack = {r.name for r in default_rules()}
    assert len(pack) == 17  # 12, the 2 guardrail rules, and the GPU and capacity rules
    assert set(rules) == pack | {"file-rule"}
    # the file's rule of the same name replaces the default one
    assert rules["latency-p95-high"]["source"] == "file"
    assert rules["latency-p95-high"]["spec"]["agg"] == "p99"
    assert rules["ttft-p95-high"]["source"] == "default"
    # quality rules read the evaluation stage's score metrics: without any score they are not
    # "ok" but unknown (docs/alerting.md), then evaluate like the rest once scores exist
    for name in ("hallucination-rate-high", "toxicity-high", "relevance-low"):
        assert rules[name]["state"] == "metric_unavailable", (name, rules[name])
        assert "no score stored yet" in rules[name]["error"], rules[name]
    assert rules["error-rate-high"]["state"] == "ok"
    assert rules["drift-detected"]["state"] == "ok"
    # file rules are read-only through the API; default ones can be changed, and stay changed
    r = h.api(
        "PUT", "/api/v1/alerts/rules/file-rule", json={"metric": "error_rate", "threshold": 1}
    )
    assert r.status_code == 409
    assert h.api("DELETE", "/api/v1/alerts/rules/file-rule").status_code == 409
    assert h.api("DELETE", "/api/v1/alerts/rules/tpot-p95-high").status_code == 200
    h.put_rule({"name": "ttft-p95-high", "metric": "ttft_ms", "threshold": 900, "enabled": False})
    h.tick()
    rules = {r["name"]: r for r in h.api("GET", "/api/v1/alerts/rules").json()["data"]}
    assert "tpot-p95-high" not in rules
    assert rules["ttft-p95-high"]["state"] == "disabled"


def test_default_pack_edits_survive_a_restart(tmp_path: Path) -> None:
    gen = harness(tmp_path, default_rules=True)
    h = next(gen)
    assert h.api("DELETE", "/api/v1/alerts/rules/tpot-p95-high").status_code == 200
    gen.close()
    gen = harness(tmp_path, default_rules=True)
    h = next(gen)
    try:
        names = {r["name"] for r in h.api("GET", "/api/v1/alerts/rules").json()["data"]}
        assert "tpot-p95-high" not in names and "ttft-p95-high" in names
    finally:
        gen.close()


def test_a_bad_alerts_file_stops_the_server_with_a_message(tmp_path: Path) -> None:
    from sightline.config import Settings
    from sightline.errors import ConfigError
    from sightline.server import create_app

    f = tmp_path / "alerts.yaml"
    f.write_text("rules:\n  - {name: x, metric: latency_ms, threshold: 1, notify: [pager]}\n")
    with pytest.raises(ConfigError, match="unknown channel"):
        create_app(Settings(data_dir=tmp_path, alerts_file=f))
    f.write_text("rules: {name: x}\n")
    with pytest.raises(ConfigError, match="rules must be a list"):
        create_app(Settings(data_dir=tmp_path, alerts_file=f))
    f.write_text("rules:\n  - {name: x, metric: latency_ms, threshold: '${NOPE_NOT_SET}'}\n")
    with pytest.raises(ConfigError, match="NOPE_NOT_SET is not set"):
        create_app(Settings(data_dir=tmp_path, alerts_file=f))


def test_a_quality_rule_fires_on_evaluation_scores(h: Harness) -> None:
    """hallucination_rate reads the faithfulness scores joined to their spans (through
    query_metric); the scores are written as the evaluation runner would."""
    import secrets

    from sightline.model import Score
    from sightline.store import SpanQuery

    h.put_rule(
        {
            "name": "halluc",
            "metric": "hallucination_rate",
            "threshold": 0.05,
            "window": "5m",
            "min_requests": 10,
            "severity": "P1",
        }
    )
    h.traffic(20, T0, output="Our office is on the Moon.")
    h.tick()
    assert h.alerts() == []  # no scores yet
    spans = h.store.list_spans(SpanQuery(project_id="alerts", limit=100)).spans
    assert len(spans) == 20
    h.store.add_scores(
        [
            Score(
                project_id="alerts",
                score_id=secrets.token_hex(8),
                trace_id=s.trace_id,
                span_id=s.span_id,
                name="faithfulness",
                value=0.0,
                label="hallucination",
                passed=False,
                source="evaluator",
                evaluator="faithfulness",
                evaluator_version="1",
                created_at=T0,
            )
            for s in spans
        ]
    )
    h.tick(seconds=1)
    [a] = h.alerts(status="firing")
    assert a["rule"] == "halluc" and a["value"] == 1.0 and a["details"]["num_spans"] == 20


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "x", "metric": "latency_ms", "threshold": 1, "window": "9" * 400 + "s"},
        {"name": "x", "metric": "latency_ms", "threshold": 1, "repeat_interval": "9" * 30},
        {"name": "x", "metric": "latency_ms", "threshold": 1, "for": "9" * 30},
        {"name": "x", "metric": "latency_ms", "threshold": 1, "min_requests": 10**30},
        {"name": "x", "type": "slo", "sli": "availability", "objective": 0.9, "period": "9" * 30},
        {"name": "x", "type": "slo", "sli": "availability", "objective": 0.9, "period": 0},
        {
            "name": "x",
            "type": "slo",
            "sli": "availability",
            "objective": 0.9,
            "burn_alerts": [{"long": "9" * 30, "short": "1m", "factor": 2, "severity": "P1"}],
        },
        {
            "name": "x",
            "type": "slo",
            "sli": "availability",
            "objective": 0.9,
            "burn_alerts": [{"long": "1h", "short": "0s", "factor": 2, "severity": "P1"}],
        },
        {"name": "x", "type": "no_traffic", "lookback": "9" * 30},
        {"name": "x", "type": "drift", "window": "9" * 30},
    ],
)
def test_absurd_durations_and_counts_are_400_and_never_reach_the_monitor(
    h: Harness, spec: dict[str, Any]
) -> None:
    """Durations past a float, or past what the tick's date arithmetic holds, were a 500 (or
    were accepted, and then every tick of the project failed with an OverflowError, its other
    rules unevaluated)."""
    h.put_rule({**RULE, "name": "good", "window": "1m"})
    r = h.api("POST", "/api/v1/alerts/rules", json=spec)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_config"
    h.traffic(10, T0, latency_ms=5000)
    h.tick()
    assert [a["rule"] for a in h.alerts(status="firing")] == ["good"]


def test_a_project_whose_tick_fails_does_not_stop_the_other_projects(h: Harness) -> None:
    ensure_project_with_key(h.store, "other", OTHER_KEY)
    h.put_rule({**RULE, "window": "1m"})
    h.put_rule({**RULE, "window": "1m"}, key=OTHER_KEY)
    h.traffic(10, T0, latency_ms=5000)
    h.post_spans(
        [span(T0 - timedelta(seconds=i + 1), latency_ms=5000) for i in range(10)], OTHER_KEY
    )
    first = h.store.list_projects()[0].id
    real = h.store.query_windows

    def query_windows(project_id: str, *args: Any) -> Any:
        if project_id == first:
            raise OverflowError("date value out of range")
        return real(project_id, *args)

    h.store.query_windows = query_windows  # type: ignore[method-assign]
    h.tick()
    other = "other" if first == "alerts" else "alerts"
    key = OTHER_KEY if other == "other" else KEY
    firing = h.api("GET", "/api/v1/alerts", key=key).json()["data"]
    assert [a["rule"] for a in firing] == ["slow"]


@pytest.mark.parametrize(
    ("channel", "match"),
    [
        ("{type: webhook, url: 'file:///etc/passwd'}", "url: .*http:// or https:// URL"),
        (
            "{type: slack, url: 'hooks.slack.com/services/T0/B0/x'}",
            "url: .*http:// or https:// URL",
        ),
        ("{type: webhook, url: 'https://h.example', headers: {x-a: \"1\\nx-b: 2\"}}", "headers"),
        (
            "{type: email, smtp_host: smtp.example.com, from: a@example.com,"
            ' to: ["b@example.com\\r\\nBcc: c@example.com"]}',
            "to.0: .*line breaks",
        ),
    ],
)
def test_a_channel_that_could_never_deliver_stops_the_server(
    tmp_path: Path, channel: str, match: str
) -> None:
    """Such channels loaded, and every delivery to them then failed: a URL that is not http(s),
    a line break in a header or an address."""
    from sightline.config import Settings
    from sightline.errors import ConfigError
    from sightline.server import create_app

    f = tmp_path / "alerts.yaml"
    f.write_text(f"channels:\n  c: {channel}\n")
    with pytest.raises(ConfigError, match=f"channel c: {match}"):
        create_app(Settings(data_dir=tmp_path, alerts_file=f))


def test_environment_values_are_taken_verbatim_not_parsed_as_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """${VAR} was replaced in the file's text before parsing: a password starting with '#'
    became a comment (or broke a {...} mapping), a token with a quote broke its string, and
    'yes' became a boolean."""
    from sightline.alerts import parse_alerts_file

    monkeypatch.setenv("SL_TEST_PASSWORD", "#s3cret: x")
    monkeypatch.setenv("SL_TEST_TOKEN", 'a"b')
    monkeypatch.setenv("SL_TEST_USER", "yes")
    monkeypatch.setenv("SL_TEST_PORT", "2525")
    f = parse_alerts_file(
        """
channels:
  mail: {type: email, smtp_host: smtp.example.com, smtp_port: ${SL_TEST_PORT},
         username: ${SL_TEST_USER}, password: ${SL_TEST_PASSWORD},
         from: a@example.com, to: [b@example.com]}
  hook:
    type: webhook
    url: https://hooks.example.com/x
    headers: {Authorization: "Bearer ${SL_TEST_TOKEN}"}
    # set SL_TEST_NOT_SET_ANYWHERE for ... (a comment is not read): ${SL_TEST_NOT_SET_ANYWHERE}
"""
    )
    mail, hook = f.channels["mail"], f.channels["hook"]
    assert mail.type == "email" and hook.type == "webhook"
    assert (mail.password, mail.username, mail.smtp_port) == ("#s3cret: x", "yes", 2525)
    assert hook.headers == {"Authorization": 'Bearer a"b'}


def test_a_composite_of_counts_sees_0_in_a_window_with_no_span(h: Harness) -> None:
    """As a threshold rule does: the composite saw no group at all and never fired."""
    h.put_rule(
        {
            "name": "traffic-collapse",
            "type": "composite",
            "window": "1m",
            "k": 2,
            "conditions": [
                {"metric": "requests", "agg": "count", "op": "<", "threshold": 5},
                {"metric": "output_tokens", "agg": "sum", "op": "<", "threshold": 10},
                {"metric": "latency_ms", "agg": "p95", "op": ">", "threshold": 1000},
            ],
        }
    )
    h.tick(seconds=1)
    [a] = h.alerts()
    assert (a["rule"], a["status"]) == ("traffic-collapse", "firing")
    members = {m["condition"]: m["value"] for m in a["details"]["conditions"]}
    assert sorted(members.values(), key=str) == [0.0, 0.0, None]
    h.traffic(10, h.clock())
    h.tick(seconds=1)
    assert [x["status"] for x in h.alerts()] == ["resolved"]


def test_a_count_below_a_threshold_keeps_firing_when_traffic_stops(h: Harness) -> None:
    """With no span in the window the rule saw no data and resolved: 'requests count < 5'
    resolved as soon as traffic stopped altogether."""
    h.put_rule(
        {
            "name": "low-traffic",
            "metric": "requests",
            "agg": "count",
            "op": "<",
            "threshold": 5,
            "window": "1m",
        }
    )
    h.traffic(3, T0)
    h.tick(seconds=1)
    [a] = h.alerts()
    assert (a["rule"], a["status"], a["value"]) == ("low-traffic", "firing", 3.0)
    h.tick(minutes=5)
    [a] = h.alerts()
    assert (a["status"], a["value"]) == ("firing", 0.0)
    h.traffic(10, h.clock())
    h.tick(seconds=1)
    assert [x["status"] for x in h.alerts()] == ["resolved"]


@pytest.mark.parametrize("repeat", ["0s", "5s", "59s"])
def test_a_repeat_interval_under_a_minute_is_refused(
    h: Harness, tmp_path: Path, repeat: str
) -> None:
    """`repeat_interval: 0s` was accepted, and a firing alert paged on every tick."""
    from sightline.config import Settings
    from sightline.errors import ConfigError
    from sightline.server import create_app

    for method, path in (("POST", "/api/v1/alerts/rules"), ("PUT", "/api/v1/alerts/rules/slow")):
        r = h.api(method, path, json={**RULE, "repeat_interval": repeat})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "invalid_config"
        assert "repeat_interval: must be at least 1m" in err["message"], err
    assert h.api("GET", "/api/v1/alerts/rules").json()["data"] == []
    assert h.put_rule({**RULE, "repeat_interval": "1m"})["spec"]["repeat_interval"] == "1m"
    f = tmp_path / "alerts.yaml"
    f.write_text(
        f"rules:\n  - {{name: x, metric: latency_ms, threshold: 1, repeat_interval: {repeat}}}\n"
    )
    with pytest.raises(ConfigError, match="repeat_interval: must be at least 1m"):
        create_app(Settings(data_dir=tmp_path / "other", alerts_file=f))


def test_alerts_firing_is_0_for_each_enabled_rule_when_nothing_fires(h: Harness) -> None:
    """The series vanished when nothing fired: Grafana's sum(sightline_alerts_firing) showed
    "No data" instead of 0."""
    from prometheus_client.parser import text_string_to_metric_families

    def firing() -> dict[tuple[str, str], float]:
        text = h.api("GET", "/metrics").text
        return {
            (s.labels["rule"], s.labels["severity"]): s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
            if s.name == "sightline_alerts_firing"
        }

    h.put_rule({**RULE, "severity": "P1"})
    h.put_rule({**RULE, "name": "off", "enabled": False})
    h.put_rule({"name": "avail", "type": "slo", "sli": "availability", "objective": 0.99})
    h.tick()
    assert h.alerts() == []
    assert firing() == {("slow", "P1"): 0, ("avail", "P1"): 0, ("avail", "P2"): 0}
    h.traffic(10, h.clock(), latency_ms=5000)
    h.tick()
    assert firing() == {("slow", "P1"): 1, ("avail", "P1"): 0, ("avail", "P2"): 0}
    assert h.api("DELETE", "/api/v1/alerts/rules/slow").status_code == 200
    h.tick()
    assert firing() == {("avail", "P1"): 0, ("avail", "P2"): 0}


def test_a_rule_stored_before_the_minimum_runs_with_it(h: Harness) -> None:
    """A version written when 5s was allowed is not refused when read back (its rule would
    stop: state error, its alerts never resolving): it repeats every minute instead."""
    from datetime import UTC, datetime

    from sightline.alerts._rules import parse_rule
    from sightline.errors import ConfigError
    from sightline.model import RuleVersion

    with pytest.raises(ConfigError, match="repeat_interval"):
        parse_rule({**RULE, "repeat_interval": "5s"})
    assert parse_rule({**RULE, "repeat_interval": "5s"}, stored=True).repeat_interval == 60
    h.store.add_rule_version(
        RuleVersion(project_id="alerts", name="slow", version=1, source="api",
                    spec={**RULE, "repeat_interval": "5s"}, created_at=datetime.now(UTC))
    )  # fmt: skip
    h.tick(seconds=1)
    [rule] = h.api("GET", "/api/v1/alerts/rules").json()["data"]
    assert rule["name"] == "slow" and rule.get("state") != "error", rule
