"""OTLP metric points and logs, and business outcomes: the same on every backend."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from sightline.errors import ConfigError, StoreError
from sightline.ingest._signals import LOG_SCHEMA, MetricRows, dumps_attrs
from sightline.model import LogRecord, Outcome
from sightline.store.base import (
    OUTCOME_METRICS,
    LogPage,
    LogQuery,
    MetricQuery,
    MetricSeries,
    OutcomeQuery,
    TraceStore,
    WindowAgg,
    otel_metric,
)
from store._spans import T0, batch, span_record


def _ns(t: datetime) -> int:
    return int(t.timestamp() * 1e9)


def _metric(store: TraceStore, q: MetricQuery) -> list[MetricSeries]:
    """The metric through the backend's entry for data-point or outcome metrics."""
    if q.metric.otel_name is not None and hasattr(store, "_query_otel_metric"):
        return store._query_otel_metric(q)  # type: ignore[no-any-return]
    if q.metric.otel_name is None and hasattr(store, "_query_outcome_metric"):
        return store._query_outcome_metric(q)  # type: ignore[no-any-return]
    return store.query_metric(q)


def _points(project: str = "p") -> pa.Table:
    rows = MetricRows(project)
    for i in range(4):  # a gauge, two models, one point a minute
        for model, v in (("gpt-4o", 10.0 + i), ("claude", 100.0)):
            rows.add(
                name="queue_depth",
                type_="gauge",
                attributes=dumps_attrs({"gen_ai.request.model": model, "replica": i % 2}),
                resource_attributes=dumps_attrs({"service.name": "bot"}),
                service_name="bot",
                time_ns=_ns(T0 + timedelta(minutes=i)),
                value=v,
            )
    for i, total in enumerate((5.0, 8.0, 20.0)):  # a cumulative counter started before T0
        rows.add(
            name="vllm:num_requests",
            alias="serving_requests",
            type_="sum",
            attributes="{}",
            resource_attributes="{}",
            service_name="engine",
            time_ns=_ns(T0 + timedelta(minutes=i)),
            start_ns=_ns(T0 - timedelta(hours=1)),
            temporality="cumulative",
            monotonic=True,
            value=total,
            source="scrape",
        )
    rows.add(  # a delta histogram: 4 values in (0, 10], 6 in (10, 100]
        name="latency",
        type_="histogram",
        attributes="{}",
        resource_attributes="{}",
        service_name="bot",
        time_ns=_ns(T0),
        temporality="delta",
        unit="ms",
        count=10.0,
        sum_=300.0,
        min_=1.0,
        max_=90.0,
        bounds=[10.0, 100.0],
        bucket_counts=[4.0, 6.0, 0.0],
    )
    t = rows.table()
    assert t is not None
    return t


def _logs(*recs: dict[str, Any]) -> pa.Table:
    cols: dict[str, list[Any]] = {f.name: [] for f in LOG_SCHEMA}
    for r in recs:
        full: dict[str, Any] = {f.name: None for f in LOG_SCHEMA}
        full.update(project_id="p", attributes="{}", resource_attributes="{}")
        full.update(r)
        full["time"] = _ns(full["time"])
        for k, v in full.items():
            cols[k].append(v)
    return pa.table(cols, schema=LOG_SCHEMA)


class TestSignalInserts:
    def test_insert_counts_rows_and_refuses_unknown_signals(self, any_store: TraceStore) -> None:
        assert any_store.insert_signal_batches("metrics", [_points(), _points("q")]) == 24
        assert any_store.insert_signal_batches("logs", [_logs({"time": T0})]) == 1
        with pytest.raises(StoreError, match="unknown signal"):
            any_store.insert_signal_batches("traces", [_logs({"time": T0})])


class TestLogs:
    def test_filters_order_and_fields(self, any_store: TraceStore) -> None:
        tid = "ab" * 16
        any_store.insert_signal_batches(
            "logs",
            [
                _logs(
                    {"time": T0, "body": "User said: Refund please", "severity_number": 9,
                     "severity_text": "INFO", "event_name": "gen_ai.user.message",
                     "trace_id": tid, "span_id": "02" * 8, "service_name": "bot",
                     "attributes": '{"gen_ai.system":"openai"}',
                     "resource_attributes": '{"service.name":"bot"}', "scope": "app",
                     "observed_time": _ns(T0 + timedelta(seconds=1))},
                    {"time": T0 + timedelta(seconds=1), "body": "choice", "severity_number": 17,
                     "trace_id": tid, "span_id": "01" * 8, "service_name": "bot"},
                    {"time": T0 + timedelta(minutes=5), "body": "other", "severity_number": 5,
                     "service_name": "worker"},
                    {"time": T0, "body": "elsewhere", "project_id": "q"},
                )
            ],
        )  # fmt: skip
        newest = any_store.list_logs(LogQuery(project_id="p")).records
        assert [r.body for r in newest] == ["other", "choice", "User said: Refund please"]
        first = newest[-1]
        assert first.time == T0 and first.time.tzinfo is UTC
        assert first.observed_time == T0 + timedelta(seconds=1)
        assert first.attributes == {"gen_ai.system": "openai"}
        assert first.resource_attributes == {"service.name": "bot"}
        assert (first.severity_number, first.severity_text, first.scope) == (9, "INFO", "app")
        assert first.event_name == "gen_ai.user.message" and first.span_id == "02" * 8
        assert newest[0].trace_id is None and newest[0].observed_time is None
        trace = any_store.list_logs(LogQuery(project_id="p", trace_id=tid)).records
        assert [r.body for r in trace] == ["User said: Refund please", "choice"]  # time order

        def bodies(**kw: Any) -> list[str | None]:
            return [r.body for r in any_store.list_logs(LogQuery(project_id="p", **kw)).records]

        assert bodies(min_severity=9) == ["choice", "User said: Refund please"]
        assert bodies(service_name="worker") == ["other"]
        assert bodies(event_name="gen_ai.user.message") == ["User said: Refund please"]
        assert bodies(span_id="01" * 8) == ["choice"]
        assert bodies(text="REFUND") == ["User said: Refund please"]
        assert bodies(text="100%") == []
        assert bodies(start=T0 + timedelta(seconds=1), end=T0 + timedelta(minutes=5)) == ["choice"]
        assert bodies(limit=1) == ["other"]
        assert any_store.list_logs(LogQuery(project_id="none")) == LogPage([], None)


def _walk_logs(store: TraceStore, limit: int, **kw: Any) -> list[LogRecord]:
    """Every record of the query, page after page of ``limit``."""
    out: list[LogRecord] = []
    cursor = None
    for _ in range(1000):
        page = store.list_logs(LogQuery(project_id="p", limit=limit, cursor=cursor, **kw))
        assert len(page.records) <= limit
        out += page.records
        if page.next_cursor is None:
            return out
        assert len(page.records) == limit  # only a full page has a next one
        cursor = page.next_cursor
    raise AssertionError("the cursor never ended")


class TestLogPages:
    """Pages of log records: every record once, in the order of a single read."""

    TID = "cd" * 16

    def _store_many(self, store: TraceStore) -> list[dict[str, Any]]:
        """Records, most of them sharing a few timestamps; 4 exact copies of one record."""
        recs: list[dict[str, Any]] = []
        for i in range(40):  # one timestamp, distinct bodies: the tiebreaker decides
            recs.append({"time": T0, "body": f"same-{i}", "service_name": "bot"})
        for i in range(30):  # one trace, two timestamps, several spans, some without one
            recs.append({"time": T0 + timedelta(seconds=i % 2), "body": f"trace-{i}",
                         "trace_id": self.TID, "span_id": None if i % 5 == 0 else f"{i % 3:016x}",
                         "severity_number": 17 if i % 2 else 9, "service_name": "bot"})  # fmt: skip
        recs += [{"time": T0 + timedelta(minutes=1), "body": "copy"}] * 4
        for i in range(10):
            recs.append({"time": T0 - timedelta(seconds=i), "body": f"older-{i}",
                         "service_name": "worker", "severity_number": 13})  # fmt: skip
        store.insert_signal_batches("logs", [_logs(*recs[:50]), _logs(*recs[50:])])
        return recs

    @pytest.mark.parametrize("limit", [1, 3, 7, 1000])
    def test_newest_first_pages_hold_every_record_once(
        self, any_store: TraceStore, limit: int
    ) -> None:
        recs = self._store_many(any_store)
        whole = any_store.list_logs(LogQuery(project_id="p", limit=1000))
        assert whole.next_cursor is None and len(whole.records) == len(recs) == 84
        assert sorted(r["body"] for r in recs) == sorted(r.body or "" for r in whole.records)
        times = [r.time for r in whole.records]
        assert times == sorted(times, reverse=True)
        assert _walk_logs(any_store, limit) == whole.records

    @pytest.mark.parametrize("limit", [1, 4, 11])
    def test_the_pages_of_one_trace_come_in_time_order(
        self, any_store: TraceStore, limit: int
    ) -> None:
        self._store_many(any_store)
        whole = any_store.list_logs(LogQuery(project_id="p", trace_id=self.TID, limit=1000))
        assert sorted(r.body or "" for r in whole.records) == sorted(
            f"trace-{i}" for i in range(30)
        )
        assert [r.time for r in whole.records] == [T0] * 15 + [T0 + timedelta(seconds=1)] * 15
        assert _walk_logs(any_store, limit, trace_id=self.TID) == whole.records

    def test_a_cursor_keeps_the_filters_it_is_passed_with(self, any_store: TraceStore) -> None:
        self._store_many(any_store)
        want = any_store.list_logs(
            LogQuery(project_id="p", service_name="bot", min_severity=9, limit=1000)
        ).records
        assert len(want) == 30 and {r.body[:6] for r in want if r.body} == {"trace-"}
        assert _walk_logs(any_store, 4, service_name="bot", min_severity=9) == want
        got = _walk_logs(any_store, 6, text="SAME-", start=T0, end=T0 + timedelta(seconds=1))
        assert sorted(r.body or "" for r in got) == sorted(f"same-{i}" for i in range(40))
        assert _walk_logs(any_store, 2, trace_id=self.TID, min_severity=17) == [
            r for r in any_store.list_logs(
                LogQuery(project_id="p", trace_id=self.TID, limit=1000)
            ).records if r.severity_number == 17
        ]  # fmt: skip

    def test_a_record_stored_between_pages_at_the_cursor_time_shifts_nothing(
        self, any_store: TraceStore
    ) -> None:
        any_store.insert_signal_batches(
            "logs", [_logs(*({"time": T0, "body": f"b{i}"} for i in range(20)))]
        )
        first = any_store.list_logs(LogQuery(project_id="p", limit=8))
        late = [{"time": T0, "body": f"late{i}"} for i in range(20)]
        any_store.insert_signal_batches("logs", [_logs(*late)])
        rest = _walk_rest(any_store, first.next_cursor)
        bodies = [r.body or "" for r in first.records + rest]
        assert len(bodies) == len(set(bodies))  # none twice
        assert {f"b{i}" for i in range(20)} <= set(bodies)  # none of the earlier ones skipped

    def test_a_cursor_of_the_other_order_or_a_forged_one_is_refused(
        self, any_store: TraceStore
    ) -> None:
        self._store_many(any_store)
        newest = any_store.list_logs(LogQuery(project_id="p", limit=2)).next_cursor
        trace = any_store.list_logs(
            LogQuery(project_id="p", trace_id=self.TID, limit=2)
        ).next_cursor
        assert newest is not None and trace is not None
        with pytest.raises(ConfigError, match="invalid cursor"):
            any_store.list_logs(LogQuery(project_id="p", trace_id=self.TID, cursor=newest))
        with pytest.raises(ConfigError, match="invalid cursor"):
            any_store.list_logs(LogQuery(project_id="p", cursor=trace))
        for raw in ("nope", "1:2", f"1:{1 << 64}:1", "1:5:0", "1:5:-1", "x:5:1", "1:five:1"):
            forged = base64.urlsafe_b64encode(raw.encode()).decode()
            with pytest.raises(ConfigError, match="invalid cursor"):
                any_store.list_logs(LogQuery(project_id="p", cursor=forged))


def _walk_rest(store: TraceStore, cursor: str | None) -> list[LogRecord]:
    out: list[LogRecord] = []
    while cursor is not None:
        page = store.list_logs(LogQuery(project_id="p", limit=8, cursor=cursor))
        out += page.records
        cursor = page.next_cursor
    return out


class TestOtelMetrics:
    def test_catalogue_and_existence(self, any_store: TraceStore) -> None:
        assert any_store.list_otel_metrics("p") == []
        assert any_store.has_otel_metric("p", "queue_depth") is False
        any_store.insert_signal_batches("metrics", [_points()])
        got = {m["name"]: m for m in any_store.list_otel_metrics("p")}
        assert list(got) == ["latency", "queue_depth", "vllm:num_requests"]
        assert got["queue_depth"]["num_points"] == 8
        assert got["queue_depth"]["last_time"] == (T0 + timedelta(minutes=3)).isoformat()
        assert got["vllm:num_requests"]["alias"] == "serving_requests"
        assert got["vllm:num_requests"]["source"] == "scrape"
        assert got["latency"]["unit"] == "ms" and got["latency"]["type"] == "histogram"
        assert any_store.has_otel_metric("p", "queue_depth")
        assert any_store.has_otel_metric("p", "serving_requests")  # by alias
        assert not any_store.has_otel_metric("q", "queue_depth")

    def test_gauge_grouped_by_attribute_and_bucketed(self, any_store: TraceStore) -> None:
        any_store.insert_signal_batches("metrics", [_points()])
        m = otel_metric("otel:queue_depth")
        assert m is not None
        q = MetricQuery(project_id="p", metric=m, agg="avg", start=T0,
                        end=T0 + timedelta(minutes=4), step_s=120,
                        group_by=("gen_ai.request.model",))  # fmt: skip
        got = {s.group["gen_ai.request.model"]: s.points for s in _metric(any_store, q)}
        assert got == {
            "claude": [(T0, 100.0), (T0 + timedelta(minutes=2), 100.0)],
            "gpt-4o": [(T0, 10.5), (T0 + timedelta(minutes=2), 12.5)],
        }
        q = MetricQuery(project_id="p", metric=m, agg="max", start=T0,
                        end=T0 + timedelta(minutes=4), filters={"gen_ai.request.model": "gpt-4o"},
                        group_by=("replica",))  # fmt: skip
        by_replica = {s.group["replica"]: s.points[0][1] for s in _metric(any_store, q)}
        assert by_replica == {"0": 12.0, "1": 13.0}  # a number attribute reads as its text
        q = MetricQuery(project_id="p", metric=m, agg="count", start=T0,
                        end=T0 + timedelta(minutes=4),
                        group_by=("service_name", "missing"))  # fmt: skip
        [s] = _metric(any_store, q)
        assert s.group == {"service_name": "bot", "missing": None} and s.points == [(T0, 8.0)]

    def test_counter_increase_by_alias_and_histogram_percentile(
        self, any_store: TraceStore
    ) -> None:
        any_store.insert_signal_batches("metrics", [_points()])
        m = otel_metric("otel:serving_requests")
        assert m is not None
        q = MetricQuery(project_id="p", metric=m, agg="sum", start=T0,
                        end=T0 + timedelta(minutes=5))  # fmt: skip
        assert [s.points for s in _metric(any_store, q)] == [[(T0, 15.0)]]  # 20 - 5
        h = otel_metric("otel:latency")
        assert h is not None
        q = MetricQuery(project_id="p", metric=h, agg="p50", start=T0,
                        end=T0 + timedelta(minutes=1))  # fmt: skip
        [s] = _metric(any_store, q)
        assert s.points[0][1] == pytest.approx(
            10.0 + (90.0 - 10.0) / 6
        )  # 5th of 10; max 90 ends the bucket
        q = MetricQuery(project_id="p", metric=h, agg="avg", start=T0,
                        end=T0 + timedelta(minutes=1))  # fmt: skip
        assert _metric(any_store, q)[0].points == [(T0, 30.0)]

    def test_counter_increase_spans_steps_and_resets(self, any_store: TraceStore) -> None:
        # a cumulative counter scraped every 15 s (+1 a second): each 1-minute step gained 60,
        # and a step holding one sample still knows its increase since the previous one
        rows = MetricRows("p")

        def add(name: str, t: datetime, v: float, start: datetime | None) -> None:
            rows.add(name=name, type_="sum", attributes="{}", resource_attributes="{}",
                     service_name="s", time_ns=_ns(t), value=v, temporality="cumulative",
                     monotonic=True, start_ns=_ns(start) if start else None)  # fmt: skip

        for i in range(16):
            add("ticks", T0 + timedelta(seconds=15 * i), 15.0 * i, T0 - timedelta(hours=1))
        # no start time (a scraped Prometheus counter): the drop from 120 to 5 is a reset
        for i, v in enumerate((100.0, 110.0, 120.0, 5.0, 15.0)):
            add("resets", T0 + timedelta(seconds=15 * i), v, None)
        t = rows.table()
        assert t is not None
        any_store.insert_signal_batches("metrics", [t])
        m = otel_metric("otel:ticks")
        assert m is not None
        q = MetricQuery(project_id="p", metric=m, agg="sum", start=T0,
                        end=T0 + timedelta(minutes=4), step_s=60)  # fmt: skip
        [s] = _metric(any_store, q)
        assert [v for _, v in s.points] == [45.0, 60.0, 60.0, 60.0]
        q = MetricQuery(project_id="p", metric=m, agg="rate", start=T0,
                        end=T0 + timedelta(minutes=1), step_s=15)  # fmt: skip
        [s] = _metric(any_store, q)
        assert [v for _, v in s.points] == [None, 1.0, 1.0, 1.0]
        r = otel_metric("otel:resets")
        assert r is not None
        q = MetricQuery(project_id="p", metric=r, agg="sum", start=T0,
                        end=T0 + timedelta(minutes=2))  # fmt: skip
        assert [s.points for s in _metric(any_store, q)] == [[(T0, 35.0)]]  # 10 + 10 + 5 + 10

    def test_empty_and_bad_attribute_names(self, any_store: TraceStore) -> None:
        m = otel_metric("otel:queue_depth")
        assert m is not None
        q = MetricQuery(project_id="p", metric=m, agg="avg", start=T0,
                        end=T0 + timedelta(minutes=4))  # fmt: skip
        assert _metric(any_store, q) == []
        bad = MetricQuery(project_id="p", metric=m, agg="avg", start=T0,
                          end=T0 + timedelta(minutes=4), group_by=('a"b',))  # fmt: skip
        with pytest.raises(ConfigError, match="attribute name"):
            _metric(any_store, bad)

    @pytest.mark.parametrize("key", ["*", "**", "$", "a/b", "a~1", "[0]", "a.*", "@"])
    def test_attribute_names_are_read_literally(self, any_store: TraceStore, key: str) -> None:
        # JSON path syntax in a key ('*' a wildcard, '/' a pointer step) must not apply
        rows = MetricRows("p")
        for i, v in enumerate(("x", "y")):
            rows.add(name="g", type_="gauge", time_ns=_ns(T0 + timedelta(minutes=i)),
                     attributes=dumps_attrs({key: v, "a": {"b": "nested"}, "other": v}),
                     resource_attributes="{}", service_name="bot", value=float(i))  # fmt: skip
        t = rows.table()
        assert t is not None
        any_store.insert_signal_batches("metrics", [t])
        m = otel_metric("otel:g")
        assert m is not None
        q = MetricQuery(project_id="p", metric=m, agg="max", start=T0,
                        end=T0 + timedelta(minutes=4), group_by=(key,))  # fmt: skip
        got = {s.group[key]: s.points[0][1] for s in _metric(any_store, q)}
        assert got == {"x": 0.0, "y": 1.0}
        q = MetricQuery(project_id="p", metric=m, agg="max", start=T0,
                        end=T0 + timedelta(minutes=4), filters={key: "y"})  # fmt: skip
        assert [s.points[0][1] for s in _metric(any_store, q)] == [1.0]
        q = MetricQuery(project_id="p", metric=m, agg="max", start=T0,
                        end=T0 + timedelta(minutes=4), filters={key: "nested"})  # fmt: skip
        assert _metric(any_store, q) == []

    def test_windows_of_a_data_point_metric(self, any_store: TraceStore) -> None:
        if not hasattr(any_store, "_otel_windows") and not hasattr(any_store, "query_windows"):
            pytest.skip("no windows entry on this backend")
        any_store.insert_signal_batches("metrics", [_points()])
        m = otel_metric("otel:queue_depth")
        assert m is not None
        a = WindowAgg(metric=m, agg="max", window_s=600, group_by=("gen_ai.request.model",))
        end = T0 + timedelta(minutes=5)
        if hasattr(any_store, "_otel_windows"):
            values = any_store._otel_windows("p", end, a)
        else:
            [values] = any_store.query_windows("p", end, [a])
        got = {v.group["gen_ai.request.model"]: (v.value, v.num_spans) for v in values}
        assert got == {"gpt-4o": (13.0, 4), "claude": (100.0, 4)}


def _outcome(oid: str, name: str = "converted", **over: Any) -> Outcome:
    fields: dict[str, Any] = {"project_id": "p", "outcome_id": oid, "name": name,
                              "created_at": T0}  # fmt: skip
    fields.update(over)
    return Outcome(**fields)


class TestOutcomes:
    def test_add_and_list_with_filters(self, any_store: TraceStore) -> None:
        any_store.add_outcomes([])
        any_store.add_outcomes(
            [_outcome("o1", trace_id="t1", metadata={"order": 42}, value=19.5, user_id="u1"),
             _outcome("o2", "ticket_resolved", session_id="s1",
                      created_at=T0 + timedelta(minutes=1)),
             _outcome("o3", trace_id="t2", value=0.0, project_id="q")]
        )  # fmt: skip
        got = any_store.list_outcomes("p")
        assert [o.outcome_id for o in got] == ["o2", "o1"]  # newest first
        o1 = got[1]
        assert (o1.trace_id, o1.session_id, o1.value, o1.user_id) == ("t1", None, 19.5, "u1")
        assert o1.metadata == {"order": 42} and o1.created_at == T0
        assert got[0].metadata == {}
        assert [o.outcome_id for o in any_store.list_outcomes("p", trace_id="t1")] == ["o1"]
        assert [o.outcome_id for o in any_store.list_outcomes("p", session_id="s1")] == ["o2"]
        assert [o.outcome_id for o in any_store.list_outcomes("p", name="converted")] == ["o1"]
        assert [o.outcome_id for o in any_store.list_outcomes("p", limit=1)] == ["o2"]
        assert any_store.list_outcomes("none") == []

    def _units(self, store: TraceStore) -> None:
        """Four units: session s1 (2 traces, completed), s2 (converted), two bare traces."""
        s1a = span_record(session_id="s1", model="gpt-4o", cost_usd=0.25)
        s1b = span_record(session_id="s1", model="gpt-4o", cost_usd=0.25,
                          start=T0 + timedelta(minutes=30))  # fmt: skip
        s2 = span_record(session_id="s2", model="claude", cost_usd=1.0)
        t1 = span_record(model="gpt-4o", cost_usd=0.5, start=T0 + timedelta(hours=1))
        t2 = span_record(model="claude", cost_usd=None, start=T0 + timedelta(hours=1))
        tool = span_record(session_id="s3", kind="tool")  # not an LLM span: no unit
        store.insert_batches([batch(s1a, s1b, s2, t1, t2, tool)])
        store.add_outcomes(
            [_outcome("a", "task_completed", trace_id=s1b["trace_id"]),
             _outcome("b", "converted", session_id="s2"),
             _outcome("c", "converted", trace_id=t1["trace_id"], value=0.0),  # a failure
             _outcome("d", "refund", trace_id=t2["trace_id"]),
             _outcome("e", "converted", session_id="s3")]
        )  # fmt: skip

    def test_units_outcomes_and_cost(self, any_store: TraceStore) -> None:
        self._units(any_store)
        end = T0 + timedelta(hours=2)
        [g] = any_store.query_outcomes(OutcomeQuery(project_id="p", start=T0, end=end))
        assert g.group == {} and g.t == T0
        assert (g.num_units, g.num_completed, g.num_converted, g.num_outcomes) == (4, 1, 1, 3)
        assert g.cost_usd == pytest.approx(2.0)
        assert g.task_completion_rate == 0.25 and g.conversion_rate == 0.25
        by_model = any_store.query_outcomes(
            OutcomeQuery(project_id="p", start=T0, end=end, group_by=("model",),
                         outcome_names=("converted",))
        )  # fmt: skip
        got = {g.group["model"]: (g.num_units, g.num_converted, g.num_outcomes, g.cost_usd)
               for g in by_model}  # fmt: skip
        assert got == {"claude": (2, 1, 1, 1.0), "gpt-4o": (2, 0, 0, 1.0)}
        by_session = any_store.query_outcomes(  # a dimension the query also reads for units
            OutcomeQuery(project_id="p", start=T0, end=end, group_by=("session_id",))
        )
        got = {g.group["session_id"]: (g.num_units, g.num_completed) for g in by_session}
        assert got == {"s1": (1, 1), "s2": (1, 0), None: (2, 0)}
        hourly = any_store.query_outcomes(
            OutcomeQuery(project_id="p", start=T0, end=end, step_s=3600)
        )
        assert [(g.t, g.num_units) for g in hourly] == [
            (T0, 2),
            (T0 + timedelta(hours=1), 2),
        ]
        only = any_store.query_outcomes(
            OutcomeQuery(project_id="p", start=T0, end=end, filters={"session_id": "s2"})
        )
        assert [(g.num_units, g.num_converted) for g in only] == [(1, 1)]
        assert any_store.query_outcomes(OutcomeQuery(project_id="none", start=T0, end=end)) == []
        with pytest.raises(ConfigError):
            any_store.query_outcomes(
                OutcomeQuery(project_id="p", start=T0, end=end, group_by=("input",))
            )

    def test_outcome_metrics(self, any_store: TraceStore) -> None:
        self._units(any_store)
        end = T0 + timedelta(hours=2)
        m = OUTCOME_METRICS["conversion_rate"]
        q = MetricQuery(project_id="p", metric=m, agg=m.default_agg, start=T0, end=end,
                        group_by=("model",), filters={"kind": "llm"})  # fmt: skip
        got = {s.group["model"]: s.points for s in _metric(any_store, q)}
        assert got == {"claude": [(T0, 0.5)], "gpt-4o": [(T0, 0.0)]}
        m = OUTCOME_METRICS["cost_per_outcome"]
        q = MetricQuery(project_id="p", metric=m, agg=m.default_agg, start=T0, end=end)
        [s] = _metric(any_store, q)
        assert s.points[0][1] == pytest.approx(2.0 / 3)


def test_a_resent_request_of_logs_or_metrics_is_stored_once(any_store: TraceStore) -> None:
    from ingest import logs_request, metrics_request
    from sightline.ingest._service import _prepare_signal

    def table(signal: str, body: bytes) -> pa.Table:
        t, _ = _prepare_signal(signal, "otlp_proto", body, None, "p", 1 << 26)
        assert t is not None
        return t

    l1, l2 = table("logs", logs_request(1)), table("logs", logs_request(2))
    assert any_store.insert_signal_batches("logs", [l1, l1]) == l1.num_rows
    assert any_store.insert_signal_batches("logs", [l1]) == 0
    assert any_store.insert_signal_batches("logs", [l2, l1]) == l2.num_rows
    m1 = table("metrics", metrics_request(1))
    assert any_store.insert_signal_batches("metrics", [m1]) == m1.num_rows
    assert any_store.insert_signal_batches("metrics", [m1]) == 0
    unkeyed = m1.replace_schema_metadata(None)  # scraped batches carry no key: always written
    assert any_store.insert_signal_batches("metrics", [unkeyed]) == m1.num_rows
