"""Metrics, the monitor's windows, alert rules and alert state: the same on every backend."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from sightline.errors import ConfigError
from sightline.model import Alert, AlertEvent, Delivery, DriftResult, RuleVersion, Score, Silence
from sightline.store import open_store
from sightline.store.base import (
    METRICS,
    AlertQuery,
    DriftQuery,
    MetricQuery,
    SampleQuery,
    TraceStore,
    WindowAgg,
)
from store._spans import BACKENDS, T0, batch, span_record, spans_over, store_url

END = T0 + timedelta(hours=2)
_GUARDRAIL_SCORED = ("guardrail_false_positive_rate", "guardrail_bypass_rate")


def _mixed_spans() -> pa.Table:
    """LLM calls and guardrail checks with the values every named metric reads, NULLs too."""
    recs: list[dict[str, Any]] = []
    models = ["gpt-4o", "claude", None]
    fallback = [True, False, "yes", "0", None, 1, "bogus"]
    for i in range(60):
        over: dict[str, Any] = {
            "start": T0 + timedelta(minutes=i * 2, seconds=i % 7),
            "duration_ms": 100.0 + (i * 37) % 400,
            "model": models[i % 3],
            "provider": "openai" if i % 2 else "anthropic",
            "status": "error" if i % 5 == 0 else "ok",
            "ttft_ms": None if i % 4 == 0 else 20.0 + i,
            "tpot_ms": None if i % 6 == 0 else 2.0 + (i % 9) / 3,
            "output_tokens": None if i % 11 == 0 else 10 + i % 13,
            "input_tokens": 50 + i,
            "total_tokens": 60 + 2 * i,
            "cost_usd": None if i % 8 == 0 else 0.001 * (1 + i % 5),
            "session_id": None if i % 3 == 0 else f"s{i % 7}",
            "user_id": f"u{i % 4}",
            "tenant_id": "t1" if i < 30 else "t2",
        }
        fb = fallback[i % len(fallback)]
        if fb is not None:
            over["attributes"] = {"sightline.gateway.fallback": fb}
        recs.append(span_record(**over))
    stages = ["input", "output", None]
    blocked = [True, False, "true", None]
    for i in range(24):
        attrs: dict[str, Any] = {"sightline.guardrail.version": f"v{i % 2}"}
        if blocked[i % 4] is not None:
            attrs["sightline.guardrail.blocked"] = blocked[i % 4]
        if stages[i % 3] is not None:
            attrs["sightline.guardrail.stage"] = stages[i % 3]
        recs.append(
            span_record(
                start=T0 + timedelta(minutes=i * 5),
                kind="guardrail",
                name=f"check-{i % 2}",
                duration_ms=5.0 + i,
                model=None,
                attributes=attrs,
            )
        )
    return batch(*recs)


def _guardrail_scores(spans: pa.Table) -> list[Score]:
    """Human labels and evaluator flags on some guardrail checks' spans and traces."""
    rows = [r for r in spans.to_pylist() if r["kind"] == "guardrail"]
    out: list[Score] = []
    labels = ["legitimate", "harmful", "correct", "wrong"]
    for i, r in enumerate(rows):
        if i % 2 == 0:
            out.append(
                Score(
                    project_id="p",
                    score_id=uuid.uuid4().hex,
                    trace_id=r["trace_id"],
                    span_id=r["span_id"] if i % 4 == 0 else None,
                    name="guardrail_review",
                    label=labels[i % 4],
                    source="human",
                    created_at=T0 + timedelta(hours=3, minutes=i),
                )
            )
        if i % 3 == 0:
            out.append(
                Score(
                    project_id="p",
                    score_id=uuid.uuid4().hex,
                    trace_id=r["trace_id"],
                    span_id=None,
                    name=["prompt_injection", "toxicity", "pii_leak"][i % 3 // 1 % 3],
                    passed=False,
                    value=0.0,
                    source="evaluator",
                    created_at=T0 + timedelta(hours=3),
                )
            )
    return out


@pytest.fixture(scope="class")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TraceStore]]:
    """One store of each backend holding the same spans (and scores, where supported).

    Class-scoped: chdb opens one data directory per process, so it is closed before the
    next class opens its own."""
    data = _mixed_spans()
    scores = _guardrail_scores(data)
    stores: dict[str, TraceStore] = {}
    try:
        for b in BACKENDS:
            st = open_store(store_url(b, tmp_path_factory.mktemp(b)))
            st.migrate()
            stores[b] = st
            st.insert_batches([data])
            if hasattr(st, "add_scores"):
                st.add_scores(scores)
        yield stores
    finally:
        for st in stores.values():
            st.close()


def _values(st: TraceStore, q: MetricQuery) -> dict[tuple[Any, ...], list[Any]]:
    return {
        tuple(sorted(s.group.items())): [(t, v) for t, v in s.points] for s in st.query_metric(q)
    }


def _span_metric_cases() -> list[tuple[str, str]]:
    cases = []
    for name, m in METRICS.items():
        if m.score_name or m.otel_name or (m.formula or "").startswith("--"):
            continue
        if m.formula is not None:
            cases.append((name, m.default_agg))
        else:
            cases += [(name, a) for a in ("count", "sum", "avg", "min", "max", "p50", "p99")]
    return cases


class TestMetricsAgree:
    """Each named span metric computes the same value on both backends from the same data."""

    @pytest.mark.parametrize(("name", "agg"), _span_metric_cases())
    @pytest.mark.parametrize(
        ("step_s", "group_by"), [(None, ()), (1800, ("model",)), (600, ("model", "tenant_id"))]
    )
    def test_metric(
        self,
        both: dict[str, TraceStore],
        name: str,
        agg: str,
        step_s: int | None,
        group_by: tuple[str, ...],
    ) -> None:
        if name in _GUARDRAIL_SCORED and not hasattr(both["clickhouse"], "add_scores"):
            pytest.skip("scores are ported to ClickHouse on another branch (ch-evals)")
        m = METRICS[name]
        if m.kind == "guardrail" and group_by:
            group_by = ("name",)
        q = MetricQuery(
            project_id="p",
            metric=m,
            agg=agg,  # type: ignore[arg-type]
            start=T0,
            end=END,
            step_s=step_s,
            group_by=group_by,
        )
        want = _values(both["duckdb"], q)
        got = _values(both["clickhouse"], q)
        assert want, name  # the data exercises the metric
        assert got.keys() == want.keys()
        for k, points in want.items():
            assert [t for t, _ in got[k]] == [t for t, _ in points], (name, k)
            for (_, gv), (_, wv) in zip(got[k], points, strict=True):
                assert gv == (None if wv is None else pytest.approx(wv)), (name, agg, k)

    def test_every_span_metric_has_a_non_null_value_somewhere(
        self, both: dict[str, TraceStore]
    ) -> None:
        for name, agg in _span_metric_cases():
            if name in _GUARDRAIL_SCORED and not hasattr(both["clickhouse"], "add_scores"):
                continue
            q = MetricQuery(
                project_id="p",
                metric=METRICS[name],
                agg=agg,  # type: ignore[arg-type]
                start=T0,
                end=END,
            )
            [series] = both["clickhouse"].query_metric(q)
            assert series.points[0][1] is not None, name

    def test_windows_agree(self, both: dict[str, TraceStore]) -> None:
        lat = METRICS["latency_ms"]
        aggs = [
            WindowAgg(metric=lat, agg="p95", window_s=3600),
            WindowAgg(metric=lat, agg="p50", window_s=3600, group_by=("model",)),
            WindowAgg(metric=lat, agg="p99", window_s=3600, group_by=("model", "provider")),
            WindowAgg(metric=METRICS["error_rate"], agg="rate", window_s=3600, group_by=("model",)),
            WindowAgg(metric=METRICS["cost_per_session"], agg="avg", window_s=7200),
            WindowAgg(
                metric=METRICS["ttft_ms"], agg="avg", window_s=7200, filters={"model": "gpt-4o"}
            ),
            WindowAgg(metric=lat, agg="share_above", above=300.0, window_s=7200),
            WindowAgg(metric=METRICS["guardrail_block_rate"], agg="rate", window_s=7200),
            WindowAgg(
                metric=METRICS["fallback_rate"], agg="rate", window_s=7200, group_by=("model",)
            ),
            # not batched: through query_metric, with its span counts
            WindowAgg(
                metric=dataclasses.replace(lat, name="latency_copy"),
                agg="p90",
                window_s=3600,
                group_by=("model",),
            ),
            WindowAgg(metric=METRICS["requests"], agg="count", window_s=60),
        ]
        want = both["duckdb"].query_windows("p", END, aggs)
        got = both["clickhouse"].query_windows("p", END, aggs)
        for a, w, g in zip(aggs, want, got, strict=True):
            wb = {tuple(sorted(v.group.items())): (v.value, v.num_spans) for v in w}
            gb = {tuple(sorted(v.group.items())): (v.value, v.num_spans) for v in g}
            assert gb.keys() == wb.keys(), a
            for k, (v, n) in wb.items():
                assert gb[k][1] == n, (a, k)
                assert gb[k][0] == (None if v is None else pytest.approx(v)), (a, k)
        assert got[-1] == []  # no span in the last minute


def _q(metric: str, **over: Any) -> MetricQuery:
    m = METRICS[metric]
    return MetricQuery(
        project_id=over.pop("project_id", "p"),
        metric=m,
        agg=over.pop("agg", m.default_agg),
        start=over.pop("start", T0),
        end=over.pop("end", END),
        **over,
    )


class TestQueryMetric:
    def test_buckets_start_at_the_query_start(self, any_store: TraceStore) -> None:
        any_store.insert_batches([spans_over(10, step=timedelta(minutes=10))])
        start = T0 - timedelta(minutes=5)
        [s] = any_store.query_metric(_q("requests", start=start, step_s=1800))
        assert s.group == {}
        assert [(t - start, v) for t, v in s.points] == [
            (timedelta(0), 3.0),
            (timedelta(minutes=30), 3.0),
            (timedelta(minutes=60), 3.0),
            (timedelta(minutes=90), 1.0),
        ]
        assert all(t.tzinfo is not None for t, _ in s.points)

    def test_filters_groups_and_projects(self, any_store: TraceStore) -> None:
        any_store.insert_batches(
            [
                spans_over(4, model="a"),
                spans_over(2, model="b", user_id="ann"),
                spans_over(3, model="a", project_id="other"),
            ]
        )
        got = any_store.query_metric(_q("requests", group_by=("model",)))
        assert [(s.group, s.points[0][1]) for s in got] == [
            ({"model": "a"}, 4.0),
            ({"model": "b"}, 2.0),
        ]
        [s] = any_store.query_metric(_q("requests", filters={"user_id": "ann"}))
        assert s.points[0][1] == 2.0
        assert any_store.query_metric(_q("requests", filters={"user_id": "bob"})) == []

    def test_an_empty_window_has_no_series(self, any_store: TraceStore) -> None:
        assert any_store.query_metric(_q("latency_ms")) == []
        assert any_store.query_metric(_q("error_rate", group_by=("model",))) == []

    def test_bad_dimensions_are_config_errors(self, any_store: TraceStore) -> None:
        with pytest.raises(ConfigError):
            any_store.query_metric(_q("requests", filters={"input": "x"}))
        with pytest.raises(ConfigError):
            any_store.query_metric(_q("requests", group_by=("1; DROP TABLE spans",)))

    def test_windows_reject_bad_input(self, any_store: TraceStore) -> None:
        lat = METRICS["latency_ms"]
        for bad in (
            WindowAgg(metric=lat, agg="p95", window_s=0),
            WindowAgg(metric=lat, agg="p95", window_s=60, group_by=("kind",)),
            WindowAgg(metric=lat, agg="p95", window_s=60, filters={"nope": "x"}),
            WindowAgg(metric=lat, agg="share_above", window_s=60, above=float("inf")),
        ):
            with pytest.raises(ConfigError):
                any_store.query_windows("p", END, [bad])

    def test_windows_of_an_empty_store(self, any_store: TraceStore) -> None:
        aggs = [
            WindowAgg(metric=METRICS["latency_ms"], agg="p95", window_s=600),
            WindowAgg(metric=METRICS["requests"], agg="count", window_s=600, group_by=("model",)),
        ]
        assert any_store.query_windows("p", END, aggs) == [[], []]


# -- rules and alerts ------------------------------------------------------------------------


def _rule(name: str, **over: Any) -> RuleVersion:
    return RuleVersion(
        project_id=over.pop("project_id", "p"),
        name=name,
        version=0,
        spec=over.pop("spec", {"metric": "latency_ms", "threshold": 1.5}),
        source=over.pop("source", "api"),
        created_at=over.pop("created_at", T0),
        **over,
    )


def _alert(alert_id: str, **over: Any) -> Alert:
    d: dict[str, Any] = {
        "project_id": "p",
        "alert_id": alert_id,
        "rule": "slow",
        "rule_version": 1,
        "rule_type": "threshold",
        "severity": "P1",
        "group": {"model": "gpt-4o"},
        "group_key": "model=gpt-4o",
        "status": "pending",
        "value": 2.5,
        "threshold": 1.5,
        "window": "5m",
        "pending_since": T0,
        "last_evaluated_at": T0,
        "summary": "latency high",
        "details": {"n": 3},
    }
    d.update(over)
    return Alert(**d)


def _event(alert_id: str, kind: str, at_min: int, **over: Any) -> AlertEvent:
    return AlertEvent(
        project_id=over.pop("project_id", "p"),
        event_id=uuid.uuid4().hex,
        alert_id=alert_id,
        rule="slow",
        kind=kind,
        at=T0 + timedelta(minutes=at_min),
        value=over.pop("value", None),
        message=over.pop("message", kind),
    )


class TestRules:
    def test_versions_count_up_per_rule(self, any_store: TraceStore) -> None:
        assert any_store.add_rule_version(_rule("slow")).version == 1
        v2 = any_store.add_rule_version(
            _rule("slow", spec={"threshold": 2}, created_at=T0 + timedelta(minutes=1))
        )
        assert v2.version == 2
        assert any_store.add_rule_version(_rule("errors")).version == 1
        assert any_store.add_rule_version(_rule("slow", project_id="other")).version == 1
        versions = any_store.list_rule_versions("p", "slow")
        assert [(r.version, r.spec) for r in versions] == [
            (1, {"metric": "latency_ms", "threshold": 1.5}),
            (2, {"threshold": 2}),
        ]
        assert versions[0].created_at == T0 and versions[1].author is None

    def test_list_rules_gives_the_latest_versions_by_name_and_hides_deleted(
        self, any_store: TraceStore
    ) -> None:
        any_store.add_rule_version(_rule("b"))
        any_store.add_rule_version(_rule("a"))
        any_store.add_rule_version(_rule("b", spec={"v": 2}, author="ann"))
        any_store.add_rule_version(_rule("c"))
        any_store.add_rule_version(_rule("c", deleted=True))
        rules = any_store.list_rules("p")
        assert [(r.name, r.version) for r in rules] == [("a", 1), ("b", 2)]
        assert rules[1].spec == {"v": 2} and rules[1].author == "ann"
        every = any_store.list_rules("p", include_deleted=True)
        assert [(r.name, r.version, r.deleted) for r in every] == [
            ("a", 1, False),
            ("b", 2, False),
            ("c", 2, True),
        ]
        assert any_store.list_rules("other") == []
        assert any_store.list_rule_versions("p", "nope") == []


class TestAlerts:
    def test_saved_alerts_read_back_field_for_field(self, any_store: TraceStore) -> None:
        a = _alert(
            "a1",
            started_at=T0 + timedelta(minutes=1),
            acknowledged_by="ann",
            acknowledged_at=T0 + timedelta(minutes=2),
            ack_expires_at=T0 + timedelta(hours=1),
        )
        any_store.save_alerts([a], [_event("a1", "pending", 0, value=2.5)])
        assert any_store.get_alert("p", "a1") == a
        assert any_store.get_alert("other", "a1") is None
        assert any_store.get_alert("p", "nope") is None
        [e] = any_store.list_alert_events("p", "a1")
        assert (e.kind, e.value, e.at) == ("pending", 2.5, T0)

    def test_a_save_replaces_the_alert_and_appends_events(self, any_store: TraceStore) -> None:
        a = _alert("a1")
        any_store.save_alerts([a], [_event("a1", "pending", 0)])
        fired = dataclasses.replace(a, status="firing", started_at=T0 + timedelta(minutes=5))
        any_store.save_alerts([fired], [_event("a1", "firing", 5)])
        any_store.save_alerts([fired], [])  # saving the same state again changes nothing
        ended = dataclasses.replace(fired, status="resolved", ended_at=T0 + timedelta(minutes=9))
        any_store.save_alerts(
            [ended],
            [_event("a1", "resolved", 9, message="r1"), _event("a1", "resolved", 9, message="r2")],
        )
        assert any_store.get_alert("p", "a1") == ended
        assert len(any_store.list_alerts(AlertQuery(project_id="p"))) == 1
        events = any_store.list_alert_events("p", "a1")
        assert [e.message for e in events] == ["pending", "firing", "r1", "r2"]
        assert any_store.list_alert_events("p", "a2") == []
        any_store.save_alerts([], [])

    def test_list_alerts_filters_and_pages_newest_first(self, any_store: TraceStore) -> None:
        alerts = [
            _alert(
                f"a{i}",
                pending_since=T0 + timedelta(minutes=i),
                status=["pending", "firing", "resolved"][i % 3],
                severity="P1" if i % 2 else "P2",
                rule="slow" if i < 6 else "errors",
            )
            for i in range(9)
        ]
        any_store.save_alerts(alerts, [])
        any_store.save_alerts([_alert("x", project_id="other")], [])
        ids = [a.alert_id for a in any_store.list_alerts(AlertQuery(project_id="p"))]
        assert ids == [f"a{i}" for i in range(8, -1, -1)]
        q = AlertQuery(project_id="p", status=("pending", "firing"))
        assert [a.alert_id for a in any_store.list_alerts(q)] == [
            "a7",
            "a6",
            "a4",
            "a3",
            "a1",
            "a0",
        ]
        q = AlertQuery(project_id="p", rule="errors", severity="P2")
        assert [a.alert_id for a in any_store.list_alerts(q)] == ["a8", "a6"]
        q = AlertQuery(
            project_id="p", start=T0 + timedelta(minutes=2), end=T0 + timedelta(minutes=5)
        )
        assert [a.alert_id for a in any_store.list_alerts(q)] == ["a4", "a3", "a2"]
        seen: list[str] = []
        before = None
        while True:
            page = any_store.list_alerts(AlertQuery(project_id="p", limit=4, before=before))
            if not page:
                break
            seen += [a.alert_id for a in page]
            before = (page[-1].pending_since, page[-1].alert_id)
        assert seen == ids

    def test_active_alerts_of_every_project_oldest_first(self, any_store: TraceStore) -> None:
        any_store.save_alerts(
            [
                _alert("a", pending_since=T0 + timedelta(minutes=3)),
                _alert("b", project_id="other", status="firing", pending_since=T0),
                _alert("c", status="resolved"),
            ],
            [],
        )
        any_store.save_alerts([_alert("a", status="cancelled")], [])
        any_store.save_alerts([_alert("c", status="firing")], [])
        assert [a.alert_id for a in any_store.list_active_alerts()] == ["b", "c"]


class TestSilencesAndDeliveries:
    def test_silences_replace_by_id_newest_first(self, any_store: TraceStore) -> None:
        s1 = Silence(
            project_id="p",
            silence_id="s1",
            matchers={"rule": "slow"},
            starts_at=T0,
            ends_at=T0 + timedelta(hours=1),
            created_at=T0,
        )
        s2 = dataclasses.replace(
            s1, silence_id="s2", created_at=T0 + timedelta(minutes=1), comment="deploy"
        )
        any_store.save_silence(s1)
        any_store.save_silence(s2)
        any_store.save_silence(dataclasses.replace(s1, project_id="other"))
        ended = dataclasses.replace(s1, ends_at=T0 + timedelta(minutes=10), created_by="ann")
        any_store.save_silence(ended)
        assert any_store.list_silences("p") == [s2, ended]
        assert any_store.list_silences("nobody") == []

    def test_deliveries_replace_by_id_and_filter(self, any_store: TraceStore) -> None:
        def d(i: int, **over: Any) -> Delivery:
            return Delivery(
                project_id=over.pop("project_id", "p"),
                delivery_id=f"d{i}",
                alert_id=over.pop("alert_id", "a1"),
                channel="hook",
                event="firing",
                status=over.pop("status", "pending"),
                payload={"i": i},
                created_at=T0 + timedelta(minutes=i),
                updated_at=T0 + timedelta(minutes=i),
                **over,
            )

        any_store.save_delivery(d(0))
        any_store.save_delivery(d(1, alert_id="a2"))
        any_store.save_delivery(d(2, project_id="other"))
        done = d(0, status="failed", attempts=3, last_error="HTTP 500")
        any_store.save_delivery(done)
        assert [x.delivery_id for x in any_store.list_deliveries("p")] == ["d1", "d0"]
        assert any_store.list_deliveries("p", status="failed") == [done]
        assert [x.delivery_id for x in any_store.list_deliveries(None)] == ["d2", "d1", "d0"]
        assert [x.delivery_id for x in any_store.list_deliveries(None, limit=1)] == ["d2"]
        assert [x.delivery_id for x in any_store.list_deliveries("p", alert_id="a2")] == ["d1"]

    def test_deliveries_are_saved_with_the_alerts_they_announce(
        self, any_store: TraceStore
    ) -> None:
        def d(i: int, **over: Any) -> Delivery:
            return Delivery(
                project_id="p",
                delivery_id=f"d{i}",
                alert_id="a1",
                channel=f"hook{i}",
                event="firing",
                status=over.pop("status", "pending"),
                payload={"i": i, "text": "ünïcode"},
                created_at=T0 + timedelta(minutes=i),
                updated_at=T0 + timedelta(minutes=i),
                **over,
            )

        fired = _alert("a1", status="firing")
        sent = [d(0), d(1, status="failed", last_error="unknown channel 'hook1'", attempts=0)]
        any_store.save_alerts([fired], [_event("a1", "firing", 0)], sent)
        assert any_store.get_alert("p", "a1") == fired
        assert any_store.list_deliveries("p") == sent[::-1]
        any_store.save_alerts([], [], [dataclasses.replace(sent[0], status="delivered")])
        assert any_store.list_deliveries("p", status="pending") == []


class TestDrift:
    def _result(self, i: int, **over: Any) -> DriftResult:
        d: dict[str, Any] = {
            "project_id": "p",
            "result_id": f"r{i}",
            "job": "prompts",
            "detector": "embedding_mmd",
            "feature": "prompt",
            "created_at": T0 + timedelta(hours=i),
            "current_start": T0,
            "current_end": T0 + timedelta(hours=1),
            "num_baseline": 100,
            "num_current": 50,
            "score": 0.1 * i,
            "fired": i % 2 == 1,
            "details": {"topics": ["refunds"]},
        }
        d.update(over)
        return DriftResult(**d)

    def test_results_read_back_and_filter_newest_first(self, any_store: TraceStore) -> None:
        r0 = self._result(
            0,
            baseline_start=T0 - timedelta(days=1),
            baseline_end=T0,
            threshold=0.5,
            p_value=0.01,
            status="insufficient_data",
            score=None,
        )
        rest = [self._result(i, job="latency" if i == 3 else "prompts") for i in range(1, 5)]
        any_store.add_drift_results([r0, *rest])
        any_store.add_drift_results([])
        any_store.add_drift_results([self._result(9, project_id="other")])
        got = any_store.list_drift_results(DriftQuery(project_id="p"))
        assert [r.result_id for r in got] == ["r4", "r3", "r2", "r1", "r0"]
        assert got[-1] == r0
        fired = any_store.list_drift_results(DriftQuery(project_id="p", fired=True))
        assert [r.result_id for r in fired] == ["r3", "r1"]
        q = DriftQuery(project_id="p", job="prompts", start=T0 + timedelta(hours=2), limit=1)
        assert [r.result_id for r in any_store.list_drift_results(q)] == ["r4"]
        q = DriftQuery(project_id="p", detector="psi")
        assert any_store.list_drift_results(q) == []
        # a range in the past: created at or after start, before end
        q = DriftQuery(project_id="p", start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=3))
        assert [r.result_id for r in any_store.list_drift_results(q)] == ["r2", "r1"]

    def test_end_and_latest(self, any_store: TraceStore) -> None:
        # r0..r5 hourly: prompt features of job prompts, r3 of job latency, r5 a response
        rows = [self._result(i, job="latency" if i == 3 else "prompts") for i in range(5)]
        any_store.add_drift_results([*rows, self._result(5, feature="response")])
        any_store.add_drift_results([self._result(9, project_id="other")])
        q = DriftQuery(project_id="p", end=T0 + timedelta(hours=3))
        assert [r.result_id for r in any_store.list_drift_results(q)] == ["r2", "r1", "r0"]
        newest = DriftQuery(project_id="p", latest=True)
        assert [r.result_id for r in any_store.list_drift_results(newest)] == ["r5", "r4", "r3"]
        q = dataclasses.replace(newest, end=T0 + timedelta(hours=3), job="prompts")
        assert [r.result_id for r in any_store.list_drift_results(q)] == ["r2"]
        q = dataclasses.replace(newest, fired=False)  # the newest of the unfired ones
        assert [r.result_id for r in any_store.list_drift_results(q)] == ["r4"]


class TestSampleSpans:
    def test_a_seeded_sample_is_repeatable_and_filtered(self, any_store: TraceStore) -> None:
        any_store.insert_batches(
            [
                spans_over(50, model="a"),
                spans_over(20, model="b"),
                spans_over(10, kind="tool", model="a"),
            ]
        )
        q = SampleQuery(project_id="p", start=T0, end=END, limit=15, seed=7)
        first = any_store.sample_spans(q)
        assert len(first) == 15
        assert any_store.sample_spans(q) == first
        assert any_store.sample_spans(dataclasses.replace(q, seed=8)) != first
        every = any_store.sample_spans(dataclasses.replace(q, limit=1000))
        assert len(every) == 70  # LLM spans only
        only_b = any_store.sample_spans(dataclasses.replace(q, filters={"model": "b"}, limit=100))
        assert {s.model for s in only_b} == {"b"} and len(only_b) == 20
        s = first[0]
        assert s.start_time.tzinfo is not None
        assert (s.input_tokens, s.output_tokens, s.duration_ms) == (100, 20, 250.0)
        assert s.descriptors is None
        with pytest.raises(ConfigError):
            any_store.sample_spans(dataclasses.replace(q, filters={"input": "x"}))

    def test_sampled_spans_carry_their_latest_descriptors(self, any_store: TraceStore) -> None:
        if not hasattr(any_store, "add_scores"):
            pytest.skip("scores are ported to ClickHouse on another branch (ch-evals)")
        rec = span_record()
        any_store.insert_batches([batch(rec)])
        scores = [
            Score(
                project_id="p",
                score_id=uuid.uuid4().hex,
                trace_id=rec["trace_id"],
                span_id=rec["span_id"],
                name="descriptors",
                value=0.5,
                source="evaluator",
                created_at=T0 + timedelta(minutes=m),
                details={"reading_level": m},
            )
            for m in (1, 3, 2)
        ]
        any_store.add_scores(scores)
        [s] = any_store.sample_spans(SampleQuery(project_id="p", start=T0, end=END))
        assert s.descriptors == {"reading_level": 3}


def test_alert_state_survives_a_reopen(backend: str, tmp_path: Path) -> None:
    url = store_url(backend, tmp_path)
    st = open_store(url)
    st.migrate()
    st.add_rule_version(_rule("slow"))
    st.save_alerts([_alert("a1", status="firing")], [_event("a1", "firing", 0)])
    st.close()
    st = open_store(url)
    try:
        st.migrate()
        assert [a.alert_id for a in st.list_active_alerts()] == ["a1"]
        assert [r.name for r in st.list_rules("p")] == ["slow"]
        assert len(st.list_alert_events("p", "a1")) == 1
    finally:
        st.close()


def test_a_node_with_a_slow_clock_still_replaces_alert_state(
    backend: str, any_store: TraceStore
) -> None:
    """Saves from a node whose clock runs an hour ahead are replaced by a later save here."""
    if backend == "duckdb":
        pytest.skip("DuckDB replaces rows in place (no row versions)")
    import time

    st: Any = any_store
    st._version = lambda: time.time_ns() + 3600 * 10**9  # the other node, an hour ahead
    silence = Silence(
        project_id="p",
        silence_id="s1",
        matchers={"rule": "slow"},
        starts_at=T0,
        ends_at=T0 + timedelta(hours=1),
        created_at=T0,
    )
    delivery = Delivery(
        project_id="p",
        delivery_id="d1",
        alert_id="a1",
        channel="hook",
        event="firing",
        status="pending",
        created_at=T0,
        updated_at=T0,
    )
    st.save_alerts([_alert("a1", status="firing")], [])
    st.save_silence(silence)
    st.save_delivery(delivery)
    del st._version  # this node's own clock again
    st.save_alerts([_alert("a1", status="resolved")], [])
    st.save_silence(dataclasses.replace(silence, comment="ended early"))
    st.save_delivery(dataclasses.replace(delivery, status="delivered"))
    alert = st.get_alert("p", "a1")
    assert alert is not None and alert.status == "resolved"
    assert st.list_active_alerts() == []
    assert [s.comment for s in st.list_silences("p")] == ["ended early"]
    assert [d.status for d in st.list_deliveries("p")] == ["delivered"]
