"""Span writes and reads, the same on every backend (see conftest.py)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sightline.errors import ConfigError, StoreError
from sightline.store import open_store
from sightline.store.base import SpanQuery, TraceStore
from store._spans import T0, batch, span_record, spans_over, store_url


def test_inserted_spans_read_back_field_for_field(any_store: TraceStore) -> None:
    rec = span_record(
        user_id="u1",
        session_id="s1",
        ttft_ms=120.5,
        is_streaming=True,
        documents=[{"id": "d1", "content": "policy", "score": 0.9}],
        ingest_notes=["truncated input"],
    )
    assert any_store.insert_batches([batch(rec)]) == 1
    [s] = any_store.get_trace("p", rec["trace_id"])
    assert s.span_id == rec["span_id"]
    assert s.start_time == T0
    assert s.end_time == T0 + timedelta(milliseconds=250)
    assert s.user_id == "u1" and s.session_id == "s1"
    assert s.ttft_ms == 120.5 and s.is_streaming is True
    assert s.documents == [{"id": "d1", "content": "policy", "score": 0.9}]
    assert s.attributes == {"gen_ai.request.model": "gpt-4o"}
    assert s.resource_attributes == {"service.name": "bot"}
    assert s.ingest_notes == ["truncated input"]
    assert s.input_messages is None and s.parent_span_id is None


def test_a_resent_batch_adds_nothing(any_store: TraceStore) -> None:
    b = spans_over(5)
    any_store.insert_batches([b])
    any_store.insert_batches([b])
    any_store.insert_batches([b, b])
    assert any_store.count_spans("p") == 5


def test_a_resent_batch_over_many_hours_and_days_adds_nothing(any_store: TraceStore) -> None:
    b = spans_over(30, step=timedelta(hours=5, minutes=7))
    any_store.insert_batches([b])
    any_store.insert_batches([spans_over(3), b])
    assert any_store.count_spans("p") == 33


def test_a_batch_holding_one_span_twice_stores_it_once(any_store: TraceStore) -> None:
    rec = span_record()
    any_store.insert_batches([batch(rec, rec)])
    assert any_store.count_spans("p") == 1


def test_each_commit_has_a_larger_ingest_seq(any_store: TraceStore) -> None:
    before = any_store.last_ingest_seq()
    any_store.insert_batches([spans_over(2)])
    first = any_store.last_ingest_seq()
    any_store.insert_batches([spans_over(2)])
    assert before < first < any_store.last_ingest_seq()


def test_pages_walk_every_span_once_newest_first(any_store: TraceStore) -> None:
    any_store.insert_batches([spans_over(25)])
    seen: list[str] = []
    cursor = None
    while True:
        page = any_store.list_spans(SpanQuery(project_id="p", limit=10, cursor=cursor))
        seen += [s.span_id for s in page.spans]
        starts = [s.start_time for s in page.spans]
        assert starts == sorted(starts, reverse=True)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 25


def test_filters_time_range_text_and_projects(any_store: TraceStore) -> None:
    any_store.insert_batches(
        [
            spans_over(10),
            batch(span_record(project_id="other", input="refund please")),
            batch(span_record(model="claude", user_id="ann", output="The REFUND is done")),
        ]
    )
    assert any_store.count_spans("other") == 1
    q = SpanQuery(project_id="p", start=T0 + timedelta(minutes=3), end=T0 + timedelta(minutes=6))
    assert len(any_store.list_spans(q).spans) == 3
    assert [
        s.user_id for s in any_store.list_spans(SpanQuery(project_id="p", model="claude")).spans
    ] == ["ann"]
    found = any_store.list_spans(SpanQuery(project_id="p", text="refund is")).spans
    assert [s.model for s in found] == ["claude"]


def test_find_span_trace(any_store: TraceStore) -> None:
    rec = span_record()
    any_store.insert_batches([batch(rec)])
    assert any_store.find_span_trace("p", rec["span_id"]) == rec["trace_id"]
    assert any_store.find_span_trace("p", "0" * 16) is None
    assert any_store.find_span_trace("other", rec["span_id"]) is None


@pytest.mark.parametrize("start", ["2040-04-29T05:00:16.188379", "1974-04-23T12:30:52.834150"])
def test_pages_walk_every_span_sharing_one_start_time(any_store: TraceStore, start: str) -> None:
    # start times whose float epoch seconds times 10**6 lands just below the integer: a cursor
    # made that way points 1 µs early and the next page skips the rest of the group
    t = datetime.fromisoformat(start).replace(tzinfo=UTC)
    ns = (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    recs = [span_record(start=t) for _ in range(20)]
    for r in recs:
        r["start_ns"], r["end_ns"] = ns, ns + 250_000_000
    any_store.insert_batches([batch(*recs), spans_over(3)])
    for limit in (1, 7):
        seen: list[str] = []
        cursor = None
        while True:
            page = any_store.list_spans(
                SpanQuery(project_id="p", limit=limit, cursor=cursor, start=t, end=t + timedelta(1))
            )
            seen += [s.span_id for s in page.spans]
            assert all(s.start_time == t for s in page.spans)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert sorted(seen) == sorted(r["span_id"] for r in recs), limit


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        _cursor("99999999999999999999999:aa:bb"),
        _cursor("-99999999999999999:aa:bb"),
        _cursor("1:aa"),
        _cursor("1:aa:bb:cc"),
        _cursor("1:zz:bb"),
    ],
)
def test_a_bad_cursor_is_a_config_error(any_store: TraceStore, cursor: str) -> None:
    with pytest.raises(ConfigError, match="invalid cursor"):
        any_store.list_spans(SpanQuery(project_id="p", cursor=cursor))


def test_spans_survive_a_reopen(backend: str, tmp_path: Path) -> None:
    url = store_url(backend, tmp_path)
    st = open_store(url)
    st.migrate()
    st.insert_batches([spans_over(3)])
    seq = st.last_ingest_seq()
    st.close()
    st = open_store(url)
    st.migrate()
    try:
        assert st.count_spans("p") == 3
        if not getattr(st, "shared", False):
            assert st.last_ingest_seq() == seq
    finally:
        st.close()


def test_unknown_store_urls_are_config_errors(tmp_path: Path) -> None:
    for url in ("mysql://x", "chdb://", "clickhouse:///db"):
        with pytest.raises(ConfigError):
            open_store(url)


def test_a_healthy_store_is_writable_and_closed_one_is_not(any_store: TraceStore) -> None:
    any_store.check_writable()
    any_store.check_writable()
    any_store.close()
    with pytest.raises(StoreError):
        any_store.check_writable()


def test_nanosecond_start_times_are_stored_to_the_microsecond(any_store: TraceStore) -> None:
    rec = span_record()
    rec["start_ns"] += 789  # OTLP times are nanoseconds; the stores keep microseconds
    rec["end_ns"] += 789
    any_store.insert_batches([batch(rec)])
    any_store.insert_batches([batch(rec)])
    [s] = any_store.get_trace("p", rec["trace_id"])
    # DuckDB rounds to the nearest microsecond, ClickHouse truncates
    assert abs(s.start_time - T0) <= timedelta(microseconds=1)
    assert any_store.count_spans("p") == 1


class TestTracePages:
    """A trace read in bounded pages, and its totals without reading its spans."""

    def _trace(self, any_store: TraceStore) -> tuple[str, list[str]]:
        tid = "ab" * 16
        # two share a start time: the span id orders them; the tool span's tokens do not count
        recs = [
            span_record(trace_id=tid, start=T0 + timedelta(seconds=i // 2), duration_ms=500.0)
            for i in range(7)
        ]
        recs.append(span_record(trace_id=tid, kind="tool", start=T0, input_tokens=999))
        any_store.insert_batches([batch(*recs)])
        any_store.insert_batches([batch(recs[0])])  # a resent span counts once
        every = [s.span_id for s in any_store.get_trace("p", tid)]
        return tid, every

    def test_limit_and_after_walk_the_trace_in_start_order(self, any_store: TraceStore) -> None:
        tid, every = self._trace(any_store)
        assert len(every) == 8
        first = any_store.get_trace("p", tid, limit=3)
        assert [s.span_id for s in first] == every[:3]
        got = [s.span_id for s in first]
        while True:
            last = any_store.get_trace("p", tid, limit=3, after=(first[-1].start_time, got[-1]))
            if not last:
                break
            got += [s.span_id for s in last]
            first = last
        assert got == every

    def test_summary_counts_every_span_once(self, any_store: TraceStore) -> None:
        tid, _ = self._trace(any_store)
        summary = any_store.summarize_trace("p", tid)
        assert summary is not None
        assert summary.num_spans == 8
        assert summary.start_time == T0
        assert summary.end_time == T0 + timedelta(seconds=3, milliseconds=500)
        assert summary.input_tokens == 700 and summary.output_tokens == 140
        assert summary.cost_usd == pytest.approx(0.008)
        assert any_store.summarize_trace("p", "cd" * 16) is None
        assert any_store.summarize_trace("other", tid) is None


def test_first_span_time_is_the_projects_earliest_start(any_store: TraceStore) -> None:
    assert any_store.first_span_time("p") is None
    any_store.insert_batches([spans_over(3, step=timedelta(minutes=7))])
    any_store.insert_batches([batch(span_record(project_id="q", start=T0 - timedelta(days=2)))])
    assert any_store.first_span_time("p") == T0
    assert any_store.first_span_time("q") == T0 - timedelta(days=2)
    assert any_store.first_span_time("nobody") is None


class TestTraceList:
    """The dashboard's trace list: root spans, each with a rollup of its trace's spans."""

    def _traces(self, any_store: TraceStore) -> tuple[str, str, str]:
        failed, fine, lone = "a1" * 16, "b2" * 16, "c3" * 16
        root_f = span_record(trace_id=failed, kind="chain", model=None, input_tokens=None,
                             output_tokens=None, total_tokens=None, cost_usd=None,
                             status="unset", start=T0)  # fmt: skip
        root_o = {**root_f, "trace_id": fine, "span_id": "0e" * 8}
        root_o["start_ns"] += 10**9
        recs = [
            root_f,
            span_record(trace_id=failed, parent_span_id=root_f["span_id"], model="gpt-4o"),
            span_record(
                trace_id=failed,
                parent_span_id=root_f["span_id"],
                kind="tool",
                model=None,
                status="error",
                input_tokens=999,
                cost_usd=None,
            ),  # fmt: skip
            root_o,
            span_record(
                trace_id=fine,
                parent_span_id=root_o["span_id"],
                model="gpt-4o-mini",
                status="unset",
                cost_usd=0.000042,
            ),  # fmt: skip
            span_record(trace_id=fine, parent_span_id=root_o["span_id"], model="gpt-4o"),
            span_record(trace_id=lone, start=T0 + timedelta(seconds=2), status="unset"),
        ]
        any_store.insert_batches([batch(*recs)])
        any_store.insert_batches([batch(recs[1])])  # a resent span counts once
        return failed, fine, lone

    def test_rollup_sums_each_trace_over_its_spans(self, any_store: TraceStore) -> None:
        failed, fine, lone = self._traces(any_store)
        got = {r.trace_id: r for r in any_store.summarize_traces("p", [failed, fine, "dd" * 16])}
        assert set(got) == {failed, fine}
        f, o = got[failed], got[fine]
        assert (f.num_spans, f.errors, f.models) == (3, 1, ("gpt-4o",))
        assert (f.input_tokens, f.output_tokens) == (100, 20)  # the tool span's do not count
        assert f.cost_usd == pytest.approx(0.001)
        assert (o.num_spans, o.errors, o.models) == (3, 0, ("gpt-4o", "gpt-4o-mini"))
        assert (o.input_tokens, o.output_tokens) == (200, 40)
        assert o.cost_usd == pytest.approx(0.001042)
        assert any_store.summarize_traces("p", []) == []
        assert any_store.summarize_traces("other", [failed]) == []

    def test_trace_status_filters_roots_by_any_errored_span(self, any_store: TraceStore) -> None:
        failed, fine, lone = self._traces(any_store)

        def roots(status: str | None) -> list[str]:
            q = SpanQuery(project_id="p", root_only=True, trace_status=status)
            return [s.trace_id for s in any_store.list_spans(q).spans]

        assert roots(None) == [lone, fine, failed]
        assert roots("error") == [failed]
        assert roots("ok") == [lone, fine]

    def test_trace_status_pages_walk_every_hour_of_the_range(self, any_store: TraceStore) -> None:
        # 40 traces over 13 hours, every third with an errored child: pages of 3 newest first
        recs, want = [], {"ok": [], "error": []}
        for i in range(40):
            root = span_record(start=T0 - timedelta(minutes=20 * i), kind="chain", status="unset")
            child = span_record(trace_id=root["trace_id"], parent_span_id=root["span_id"],
                                start=T0 - timedelta(minutes=20 * i - 1),
                                status="error" if i % 3 == 0 else "ok")  # fmt: skip
            recs += [root, child]
            want["error" if i % 3 == 0 else "ok"].append(root["trace_id"])
        any_store.insert_batches([batch(*recs)])
        for status, expected in want.items():
            got: list[str] = []
            cursor = None
            while True:
                q = SpanQuery(project_id="p", root_only=True, trace_status=status, limit=3,
                              start=T0 - timedelta(days=1), end=T0 + timedelta(hours=1),
                              cursor=cursor)  # fmt: skip
                page = any_store.list_spans(q)
                got += [s.trace_id for s in page.spans]
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            assert got == expected, status
