"""Scores, evaluation cursors, datasets and score metrics, the same on every backend."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from sightline.errors import ConfigError, StoreError
from sightline.model import Score
from sightline.store import open_store
from sightline.store._eval_records import Dataset, EvalCursor, ScoreQuery
from sightline.store.base import SCORE_METRICS, MetricQuery, MetricSeries, TraceStore
from store._spans import T0, batch, span_record, store_url

_ALL = 2**62  # an upto_seq past every commit


def score(**over: Any) -> Score:
    d: dict[str, Any] = {
        "project_id": "p",
        "score_id": os.urandom(8).hex(),
        "trace_id": "t1",
        "span_id": "s1",
        "name": "faithfulness",
        "value": 0.5,
        "source": "evaluator",
        "evaluator": "faithfulness",
        "evaluator_version": "1",
        "created_at": T0,
    }
    d.update(over)
    return Score(**d)


def metric(store: TraceStore, q: MetricQuery) -> list[MetricSeries]:
    """Score metrics through the store's query_metric, or the ClickHouse part of it until the
    ClickHouse store has one."""
    if hasattr(store, "query_metric"):
        return store.query_metric(q)
    return store._query_score_metric(q)  # type: ignore[attr-defined,no-any-return]


# -- scores --------------------------------------------------------------------------------------


def test_scores_read_back_field_for_field_oldest_first(any_store: TraceStore) -> None:
    a = score(
        created_at=T0 + timedelta(seconds=2),
        label="hallucination",
        passed=False,
        explanation="claim 2 unsupported",
        details={"tokens": 12, "cost_usd": 0.0001, "claims": ["a", "b"]},
    )
    b = score(
        span_id=None,
        name="feedback",
        value=-1.0,
        source="user",
        evaluator=None,
        evaluator_version=None,
        user_id="u1",
        created_at=T0 + timedelta(microseconds=1),
    )
    other = score(trace_id="t2")
    any_store.add_scores([a, b, other, score(project_id="q")])
    got = any_store.list_scores("p", "t1")
    assert got == [b, a]
    assert got[1].details == {"tokens": 12, "cost_usd": 0.0001, "claims": ["a", "b"]}
    assert got[0].created_at == T0 + timedelta(microseconds=1)
    assert got[0].created_at.tzinfo is not None
    assert any_store.list_scores("p", "nope") == []
    any_store.add_scores([])


def test_equal_times_order_by_score_id(any_store: TraceStore) -> None:
    s = [score(score_id=i) for i in ("c", "a", "b")]
    any_store.add_scores(s)
    assert [x.score_id for x in any_store.list_scores("p", "t1")] == ["a", "b", "c"]
    assert [x.score_id for x in any_store.list_trace_scores("p", ["t1"])] == ["a", "b", "c"]


def test_a_score_id_added_twice(any_store: TraceStore, backend: str) -> None:
    """DuckDB has no key on scores; ClickHouse keys added scores by id (docs/clickhouse.md)."""
    s = score()
    any_store.add_scores([s])
    any_store.add_scores([s])
    want = [s] if backend == "clickhouse" else [s, s]
    assert any_store.list_scores("p", "t1") == want
    assert any_store.list_trace_scores("p", ["t1"]) == want


def test_scores_written_without_a_key_keep_their_ids(backend: str, tmp_path: Path) -> None:
    """A writer that knows only DuckDB's columns (``sightline migrate``) gets ``_key = score_id``:
    the scores of a trace stay apart."""
    if backend != "clickhouse":
        pytest.skip("only ClickHouse has the _key column")
    from sightline.store._duckdb_evals import SCORE_FIELDS

    st = open_store(store_url(backend, tmp_path))
    st.migrate()
    try:
        a, b = score(score_id="a"), score(score_id="b")
        rows = [[getattr(s, f) if f != "details" else None for f in SCORE_FIELDS] for s in (a, b)]
        st._insert_rows("scores", SCORE_FIELDS, rows)  # type: ignore[attr-defined]
        st._cmd("OPTIMIZE TABLE scores FINAL")  # type: ignore[attr-defined]
        assert [s.score_id for s in st.list_scores("p", "t1")] == ["a", "b"]
    finally:
        st.close()


def test_eval_cursor_moves_with_the_scores(any_store: TraceStore) -> None:
    assert any_store.get_eval_cursor("main") is None
    s1 = score()
    any_store.append_eval_scores([s1], cursor_name="main", cursor=EvalCursor(5, "p/t/s"))
    assert any_store.get_eval_cursor("main") == EvalCursor(5, "p/t/s")
    assert any_store.list_scores("p", "t1") == [s1]
    # a cursor moves without scores too, and cursors are independent by name
    any_store.append_eval_scores([], cursor_name="main", cursor=EvalCursor(9))
    any_store.append_eval_scores([], cursor_name="main:feedback", cursor=EvalCursor(1))
    assert any_store.get_eval_cursor("main") == EvalCursor(9, "")
    assert any_store.get_eval_cursor("main:feedback") == EvalCursor(1, "")
    s2 = score(span_id="s2", created_at=T0 + timedelta(seconds=1))
    any_store.append_eval_scores([s2], cursor_name="main", cursor=EvalCursor(12))
    assert any_store.list_scores("p", "t1") == [s1, s2]
    assert any_store.get_eval_cursor("main") == EvalCursor(12, "")


def test_a_batch_replayed_after_a_crash_before_the_cursor_moved_scores_once(
    backend: str, tmp_path: Path
) -> None:
    """ClickHouse has no transaction around scores and cursor: it writes the scores, then the
    cursor. A crash in between leaves the stored scores and the old cursor (here: the cursor
    put back), and the runner evaluates the batch again with new score ids."""
    if backend != "clickhouse":
        pytest.skip("DuckDB moves scores and cursor in one transaction")
    st = open_store(store_url(backend, tmp_path))
    st.migrate()
    try:
        st.append_eval_scores([], cursor_name="main", cursor=EvalCursor(10))
        first = [score(span_id="s1"), score(span_id="s2"), score(span_id="s2", name="relevance")]
        st.append_eval_scores(first, cursor_name="main", cursor=EvalCursor(20))
        st.append_eval_scores([], cursor_name="main", cursor=EvalCursor(10))  # the "crash"
        # the replay reads one more span (more was eligible) and scores everything again
        replay = [
            score(span_id=s, name=n, value=0.9, created_at=T0 + timedelta(days=1))
            for s, n in (("s1", "faithfulness"), ("s2", "faithfulness"), ("s2", "relevance"))
        ] + [score(span_id="s3")]
        st.append_eval_scores(replay, cursor_name="main", cursor=EvalCursor(21))
        got = st.list_scores("p", "t1")
        assert sorted((s.span_id, s.name, s.value) for s in got) == [
            ("s1", "faithfulness", 0.5),
            ("s2", "faithfulness", 0.5),
            ("s2", "relevance", 0.5),
            ("s3", "faithfulness", 0.5),
        ]
        assert st.get_eval_cursor("main") == EvalCursor(21)
        # the next batch (from cursor 21) scores the same span again: a new score
        st.append_eval_scores([score(span_id="s1")], cursor_name="main", cursor=EvalCursor(30))
        assert len(st.list_scores("p", "t1")) == 5
    finally:
        st.close()


def test_the_cursor_moves_past_a_writer_whose_clock_ran_ahead(backend: str, tmp_path: Path) -> None:
    if backend != "clickhouse":
        pytest.skip("only ClickHouse versions the cursor row by a clock")
    st = open_store(store_url(backend, tmp_path))
    st.migrate()
    try:
        ahead = [["main", 7, "", T0.replace(tzinfo=None), 2**62]]  # another server, far ahead
        cols = ["name", "seq", "pos", "updated_at", "_version"]
        st._insert_rows("eval_cursors", cols, ahead)  # type: ignore[attr-defined]
        assert st.get_eval_cursor("main") == EvalCursor(7)
        st.append_eval_scores([], cursor_name="main", cursor=EvalCursor(8))
        assert st.get_eval_cursor("main") == EvalCursor(8)
        st.append_eval_scores([score()], cursor_name="main", cursor=EvalCursor(9))
        assert st.get_eval_cursor("main") == EvalCursor(9)
    finally:
        st.close()


def test_one_batch_may_score_a_span_twice_under_one_name(any_store: TraceStore) -> None:
    """Two later turns of a session can judge the same previous answer in one batch."""
    pair = [score(details={"judged_by": "a"}), score(details={"judged_by": "b"})]
    any_store.append_eval_scores(pair, cursor_name="main", cursor=EvalCursor(3))
    got = any_store.list_scores("p", "t1")
    assert sorted(s.details["judged_by"] for s in got if s.details) == ["a", "b"]


def test_query_scores_filters_and_pages_newest_first(any_store: TraceStore) -> None:
    base = [
        score(
            score_id=f"{i:04d}",
            trace_id=f"t{i % 3}",
            name="relevance" if i % 2 else "faithfulness",
            label="ok" if i % 5 == 0 else None,
            created_at=T0 + timedelta(minutes=i // 2),
        )
        for i in range(23)
    ]
    any_store.add_scores([*base, score(project_id="q"), score(source="human", evaluator=None)])
    seen: list[str] = []
    cursor = None
    while True:
        page = any_store.query_scores(
            ScoreQuery(project_id="p", source="evaluator", limit=5, cursor=cursor)
        )
        seen += [s.score_id for s in page.scores]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"{i:04d}" for i in range(22, -1, -1)]

    def ids(**q: Any) -> list[str]:
        return [s.score_id for s in any_store.query_scores(ScoreQuery(project_id="p", **q)).scores]

    assert ids(trace_id="t1", name="relevance") == ["0019", "0013", "0007", "0001"]
    assert ids(label="ok") == ["0020", "0015", "0010", "0005", "0000"]
    assert ids(start=T0 + timedelta(minutes=10), end=T0 + timedelta(minutes=11)) == [
        "0021",
        "0020",
    ]
    assert ids(source="human", evaluator=None) != []
    assert ids(span_id="nope") == []
    assert ids(evaluator="nope") == []


def test_a_bad_score_cursor_is_a_config_error(any_store: TraceStore) -> None:
    with pytest.raises(ConfigError):
        any_store.query_scores(ScoreQuery(project_id="p", cursor="%%%"))


def test_score_distributions_count_every_span_of_the_window(any_store: TraceStore) -> None:
    at = T0 + timedelta(minutes=1)
    values = [0.0, 0.05, 0.1, 0.55, 0.999, 1.0, 1.5, -0.2, None]
    passed = [True, False, None, True, True, None, False, False, True]
    spans = iter(f"{i:016x}" for i in range(1, 100))  # one score per span: each counts
    rel = [score(name="rel", value=v, passed=p, created_at=at, span_id=next(spans))
           for v, p in zip(values, passed, strict=True)]  # fmt: skip
    any_store.add_scores(
        rel
        + [score(name="tox", value=0.3, passed=True, created_at=at, span_id=next(spans))
           for _ in range(3)]
        + [score(name="rel", value=0.5, created_at=T0 - timedelta(seconds=1),  # before
                 span_id=next(spans)),
           score(name="rel", value=0.5, created_at=T0 + timedelta(hours=1),  # at the end
                 span_id=next(spans)),
           score(name="rel", value=0.5, created_at=at, source="human", span_id=next(spans)),
           score(name="rel", value=0.5, created_at=at, project_id="q", span_id=next(spans))]
    )  # fmt: skip
    got = any_store.score_distributions("p", T0, T0 + timedelta(hours=1), source="evaluator")
    assert [d.name for d in got] == ["rel", "tox"]
    dist, tox = got
    assert dist.num_scores == 9
    # [0, .1): 0.0, 0.05, -0.2 · [.1, .2): 0.1 · [.5, .6): 0.55 · [.9, 1]: 0.999, 1.0, 1.5
    assert dist.bins == (3, 1, 0, 0, 0, 1, 0, 0, 0, 3)
    assert dist.mean == pytest.approx(sum(v for v in values if v is not None) / 8)
    assert dist.pass_rate == pytest.approx(4 / 7)
    assert (tox.num_scores, tox.bins[3], tox.mean, tox.pass_rate) == (3, 3, pytest.approx(0.3), 1.0)
    assert any_store.score_distributions("p", T0, T0 + timedelta(hours=1), source="user") == []


def test_list_trace_scores(any_store: TraceStore) -> None:
    a = score(trace_id="t1", created_at=T0 + timedelta(seconds=3))
    b = score(trace_id="t2", created_at=T0 + timedelta(seconds=1))
    any_store.add_scores([a, b, score(trace_id="t3"), score(project_id="q", trace_id="t1")])
    assert any_store.list_trace_scores("p", ["t1", "t2", "t9"]) == [b, a]
    assert any_store.list_trace_scores("p", []) == []


def test_list_scores_created_after_reads_every_project_oldest_first(
    any_store: TraceStore,
) -> None:
    fb = [
        score(
            project_id=p,
            name="feedback",
            source="user",
            span_id=None,
            created_at=T0 + timedelta(seconds=i),
        )
        for i, p in enumerate(["a", "b", "a", "c"])
    ]
    any_store.add_scores([*fb, score(created_at=T0 + timedelta(seconds=9))])
    got = any_store.list_scores_created_after(T0, source="user", name="feedback", limit=10)
    assert got == fb[1:]  # strictly after
    assert (
        any_store.list_scores_created_after(
            T0 - timedelta(seconds=1), source="user", name="feedback", limit=2
        )
        == fb[:2]
    )
    assert any_store.list_scores_created_after(T0, source="human", name="feedback", limit=9) == []


def test_agreement_pairs_take_the_latest_verdicts(any_store: TraceStore) -> None:
    t = T0

    def ev(span: str, passed: bool, at: int, **k: Any) -> Score:
        return score(span_id=span, passed=passed, created_at=t + timedelta(seconds=at), **k)

    def hu(span: str | None, passed: bool, at: int, **k: Any) -> Score:
        return score(
            span_id=span,
            passed=passed,
            source="human",
            evaluator=None,
            created_at=t + timedelta(seconds=at),
            **k,
        )

    any_store.add_scores(
        [
            ev("s1", True, 1, label="faithful"),
            ev("s1", False, 2),  # the latest verdict; its label is the latest one not NULL
            ev("s1", True, 3, label="failed"),  # the evaluator failed: not a verdict
            hu("s1", False, 1, label="wrong"),
            hu("s1", True, 5, label="right"),
            ev("s2", True, 1),
            hu(None, False, 4, label="trace-wide"),  # a trace-level label judges every span
            ev("s9", True, 1, trace_id="t9"),  # no human verdict
            hu("s8", True, 1, trace_id="t8"),  # no evaluator verdict
            ev("s1", True, 1, name="relevance", value=None),
            hu("s1", None, 1, name="relevance"),  # type: ignore[arg-type]
            ev("s1", True, 1, project_id="q"),
            hu("s1", True, 1, project_id="q"),
        ]
    )
    pairs = any_store.list_agreement_pairs("p")
    got = sorted((p.span_id, p.evaluator_passed, p.evaluator_label, p.human_passed, p.human_label)
                 for p in pairs)  # fmt: skip
    # s1 has a label of its own: it wins over the trace-wide one (one span, one pair)
    assert got == [
        ("s1", False, "faithful", True, "right"),
        ("s2", True, None, False, "trace-wide"),
    ]
    assert [(p.name, p.trace_id) for p in pairs] == [("faithfulness", "t1")] * 2
    assert [p.span_id for p in pairs] == sorted(p.span_id for p in pairs)
    assert any_store.list_agreement_pairs("nobody") == []


# -- the runner's span reads ---------------------------------------------------------------------


def test_list_spans_after_walks_every_commit_once_in_order(any_store: TraceStore) -> None:
    c1 = [span_record(project_id=p, kind=k) for p in ("a", "b") for k in ("llm", "tool", "llm")]
    c2 = [span_record(project_id="a") for _ in range(4)]
    any_store.insert_batches([batch(*c1)])
    any_store.insert_batches([batch(*c2)])
    everything = any_store.list_spans_after(EvalCursor(0), upto_seq=_ALL, kinds=None, limit=100)
    # each commit has one seq (on a shared ClickHouse, last_ingest_seq lags: read them here)
    seq1, seq2 = everything[0].ingest_seq, everything[-1].ingest_seq
    assert 0 < seq1 < seq2
    assert [r.ingest_seq for r in everything] == [seq1] * 6 + [seq2] * 4
    assert {r.span.span_id for r in everything[:6]} == {str(r["span_id"]) for r in c1}
    keys = [(r.ingest_seq, r.span.project_id, r.span.trace_id, r.span.span_id) for r in everything]
    assert keys == sorted(keys)
    # read in batches of 3, as the runner does: the cursor's pos resumes inside a commit
    cursor, walked = EvalCursor(0), []
    while True:
        rows = any_store.list_spans_after(cursor, upto_seq=_ALL, kinds=["llm"], limit=3)
        walked += [r.span.span_id for r in rows]
        if len(rows) < 3:
            break
        s = rows[-1].span
        cursor = EvalCursor(rows[-1].ingest_seq, f"{s.project_id}/{s.trace_id}/{s.span_id}")
    llm = [r.span.span_id for r in everything if r.span.kind == "llm"]
    assert walked == llm and len(llm) == 8
    # bounds: after a whole commit, up to a commit
    after1 = any_store.list_spans_after(EvalCursor(seq1), upto_seq=_ALL, kinds=None, limit=100)
    assert {r.span.span_id for r in after1} == {r["span_id"] for r in c2}
    upto1 = any_store.list_spans_after(EvalCursor(0), upto_seq=seq1, kinds=None, limit=100)
    assert len(upto1) == 6
    assert any_store.list_spans_after(EvalCursor(seq2), upto_seq=_ALL, kinds=None, limit=9) == []
    assert any_store.list_spans_after(EvalCursor(0), upto_seq=_ALL, kinds=[], limit=9) == []
    # the span reads back whole
    first = everything[0].span
    assert first == any_store.get_trace(first.project_id, first.trace_id)[0]


def test_get_traces_groups_spans_by_trace_in_start_order(any_store: TraceStore) -> None:
    recs = [span_record(trace_id="aa" * 16, start=T0 + timedelta(seconds=s)) for s in (3, 1, 2)] + [
        span_record(trace_id="bb" * 16, start=T0 + timedelta(hours=5))
    ]
    any_store.insert_batches([batch(*recs), batch(span_record(project_id="q", trace_id="aa" * 16))])
    [stored] = {
        r.ingest_seq
        for r in any_store.list_spans_after(EvalCursor(0), upto_seq=_ALL, kinds=None, limit=9)
    }
    got = any_store.get_traces("p", ["aa" * 16, "bb" * 16, "cc" * 16])
    assert set(got) == {"aa" * 16, "bb" * 16, "cc" * 16}
    a = got["aa" * 16]
    assert [r.span.start_time for r in a] == [T0 + timedelta(seconds=s) for s in (1, 2, 3)]
    assert all(r.ingest_seq == stored for r in a)
    assert len(got["bb" * 16]) == 1 and got["cc" * 16] == []
    bounded = any_store.get_traces(
        "p", ["aa" * 16, "bb" * 16], start=T0 + timedelta(seconds=2), end=T0 + timedelta(hours=1)
    )
    assert [r.span.start_time for r in bounded["aa" * 16]] == [
        T0 + timedelta(seconds=2),
        T0 + timedelta(seconds=3),
    ]
    assert bounded["bb" * 16] == []
    assert any_store.get_traces("p", []) == {}


def test_list_session_turns(any_store: TraceStore) -> None:
    def rec(session: str | None, minutes: int, kind: str = "llm", project: str = "p") -> Any:
        return span_record(
            session_id=session, kind=kind, project_id=project, start=T0 + timedelta(minutes=minutes)
        )

    recs = [
        rec("s1", 2),
        rec("s1", 1),
        rec("s1", 3, kind="tool"),
        rec("s2", 4),
        rec("s3", 1),
        rec(None, 1),
        rec("s1", 1, project="q"),
        rec("s1", 30),
    ]
    any_store.insert_batches([batch(*recs)])
    got = any_store.list_session_turns(
        "p",
        ["s1", "s2"],
        kinds=["llm"],
        start=T0 + timedelta(minutes=1),
        end=T0 + timedelta(minutes=4),
    )
    assert [(s.session_id, s.start_time, s.kind, s.trace_id, s.span_id) for s in got] == [
        ("s1", T0 + timedelta(minutes=1), "llm", recs[1]["trace_id"], recs[1]["span_id"]),
        ("s1", T0 + timedelta(minutes=2), "llm", recs[0]["trace_id"], recs[0]["span_id"]),
        ("s2", T0 + timedelta(minutes=4), "llm", recs[3]["trace_id"], recs[3]["span_id"]),
    ]  # end is inclusive
    assert all(s.start_time.tzinfo is not None for s in got)
    both = any_store.list_session_turns(
        "p", ["s1"], kinds=["llm", "tool"], start=T0, end=T0 + timedelta(minutes=3)
    )
    assert [s.kind for s in both] == ["llm", "llm", "tool"]
    assert any_store.list_session_turns("p", [], kinds=["llm"], start=T0, end=T0) == []


# -- datasets ------------------------------------------------------------------------------------


def _dataset(did: str, minutes: int, n: int = 2, project: str = "p") -> Dataset:
    return Dataset(
        project_id=project,
        dataset_id=did,
        name=f"set {did}",
        filter={"model": "gpt-4o", "limit": n},
        num_rows=n,
        created_at=T0 + timedelta(minutes=minutes),
    )


def test_datasets_round_trip(any_store: TraceStore) -> None:
    rows = [{"input": f"q{i}", "expected": {"answer": i, "ok": None}} for i in range(12)]
    a = _dataset("d1", 1, n=12)
    any_store.create_dataset(a, rows)
    any_store.create_dataset(_dataset("d2", 5), [])
    any_store.create_dataset(_dataset("d0", 5), [{"input": "x"}])
    any_store.create_dataset(_dataset("d1", 9, project="q"), [{"input": "other"}])
    assert any_store.get_dataset("p", "d1") == a
    assert any_store.get_dataset_rows("p", "d1") == rows  # in order (12 > 9: not by text)
    assert [d.dataset_id for d in any_store.list_datasets("p")] == ["d0", "d2", "d1"]
    assert any_store.get_dataset_rows("p", "d2") == []
    assert any_store.get_dataset("p", "nope") is None
    assert any_store.get_dataset_rows("p", "nope") == []
    assert any_store.list_datasets("nobody") == []
    assert any_store.get_dataset_rows("q", "d1") == [{"input": "other"}]


def test_a_taken_dataset_id_is_refused(any_store: TraceStore) -> None:
    any_store.create_dataset(_dataset("d1", 1), [{"input": "a"}])
    with pytest.raises(StoreError):
        any_store.create_dataset(_dataset("d1", 2), [{"input": "b"}, {"input": "c"}])
    assert any_store.get_dataset_rows("p", "d1") == [{"input": "a"}]
    assert any_store.get_dataset("p", "d1") == _dataset("d1", 1)


# -- score metrics -------------------------------------------------------------------------------


def _scored_spans(store: TraceStore) -> dict[str, dict[str, Any]]:
    """Four LLM spans (two models, two environments) over two hours and a tool span."""
    recs = {
        "a": span_record(model="gpt-4o", environment="prod", start=T0 + timedelta(minutes=5)),
        "b": span_record(model="gpt-4o", environment="dev", start=T0 + timedelta(minutes=50)),
        "c": span_record(model="claude", environment="prod", start=T0 + timedelta(minutes=70)),
        "d": span_record(model="claude", environment="prod", start=T0 + timedelta(minutes=80)),
        "late": span_record(model="claude", start=T0 + timedelta(hours=5)),
    }
    store.insert_batches([batch(*recs.values())])
    return recs


def _q(name: str, **over: Any) -> MetricQuery:
    m = SCORE_METRICS[name]
    d: dict[str, Any] = {
        "project_id": "p",
        "metric": m,
        "agg": m.default_agg,
        "start": T0,
        "end": T0 + timedelta(hours=2),
    }
    d.update(over)
    return MetricQuery(**d)


def _on(r: dict[str, Any], **over: Any) -> Score:
    return score(trace_id=r["trace_id"], span_id=r["span_id"], **over)


def _points(series: list[MetricSeries]) -> dict[tuple[Any, ...], list[tuple[datetime, Any]]]:
    return {
        tuple(s.group.values()): [(t, None if v is None else round(v, 9)) for t, v in s.points]
        for s in series
    }


def test_every_score_metric_computes_on_its_scores(any_store: TraceStore) -> None:
    r = _scored_spans(any_store)
    a, b, c = r["a"], r["b"], r["c"]
    any_store.add_scores(
        [
            _on(a, name="faithfulness", value=1.0, label="faithful"),
            _on(b, name="faithfulness", value=0.0, label="hallucination"),
            _on(c, name="faithfulness", value=0.5, label="hallucination"),
            _on(c, name="faithfulness", value=None, label="failed"),  # left out
            _on(r["late"], name="faithfulness", value=0.0, label="hallucination"),  # outside
            _on(a, name="relevance", value=0.25),
            _on(a, name="toxicity", value=0.9),
            _on(b, name="toxicity", value=0.7),
            _on(a, name="refusal", label="refusal"),
            _on(b, name="refusal", label="over_refusal"),
            _on(c, name="refusal", label="answered"),
            _on(a, name="format", passed=True),
            _on(b, name="format", passed=False),
            _on(c, name="format", passed=None),
            _on(a, name="prompt_injection", passed=False),
            _on(b, name="prompt_injection", passed=True),
            _on(a, name="pii_leak", passed=True),
            _on(a, name="uncertainty", value=0.2),
            _on(a, name="self_consistency", value=0.6),
            _on(b, name="self_consistency", value=0.8),
            _on(a, name="descriptors", value=1.0, details={"reading_level": 8.5, "json": True}),
            _on(b, name="descriptors", value=0.5, details={"reading_level": 6, "json": False}),
            _on(c, name="descriptors", value=0.0, details={"other": 1}),
        ]
    )
    expected = {
        "hallucination_rate": 2 / 3,
        "faithfulness": 0.5,
        "relevance": 0.25,
        "toxicity": (0.1 + 0.3) / 2,
        "refusal_rate": 2 / 3,
        "format_compliance": 0.5,
        "injection_rate": 0.5,
        "pii_rate": 0.0,
        "uncertainty": 0.8,
        "self_consistency": 0.7,
        "sentiment": (1.0 + 0.0 - 1.0) / 3,
        "reading_level": 7.25,
        "json_share": 1 / 3,
    }
    for name, want in expected.items():
        got = metric(any_store, _q(name))
        assert _points(got) == {(): [(T0, round(want, 9))]}, name
    assert set(expected) | {"feedback_positive_rate"} == set(SCORE_METRICS)


def test_score_metrics_bucket_group_filter_and_aggregate(any_store: TraceStore) -> None:
    r = _scored_spans(any_store)
    any_store.add_scores(
        [
            _on(r["a"], value=0.2),
            _on(r["b"], value=0.4),
            _on(r["c"], value=1.0),
            _on(r["d"], value=0.0),
            _on(r["d"], value=0.5, source="human", evaluator=None),  # another source
        ]
    )
    hour = T0 + timedelta(hours=1)
    by_model = metric(any_store, _q("faithfulness", step_s=3600, group_by=("model",)))
    assert _points(by_model) == {
        ("claude",): [(hour, 0.5)],
        ("gpt-4o",): [(T0, 0.3)],
    }
    assert [s.group for s in by_model] == [{"model": "claude"}, {"model": "gpt-4o"}]
    prod = metric(any_store, _q("faithfulness", filters={"environment": "prod"}, step_s=3600))
    assert _points(prod) == {(): [(T0, 0.2), (hour, 0.5)]}
    # buckets start at the query's start, not at the epoch's hours
    off = T0 + timedelta(minutes=30, microseconds=123_457)
    shifted = metric(any_store, _q("faithfulness", start=off, step_s=3600))
    assert _points(shifted) == {(): [(off, round((0.4 + 1.0 + 0.0) / 3, 9))]}
    two = metric(any_store, _q("faithfulness", group_by=("environment", "model")))
    assert _points(two) == {
        ("dev", "gpt-4o"): [(T0, 0.4)],
        ("prod", "claude"): [(T0, 0.5)],
        ("prod", "gpt-4o"): [(T0, 0.2)],
    }
    for agg, want in [("count", 4), ("sum", 1.6), ("min", 0.0), ("max", 1.0), ("p50", 0.3),
                      ("p90", 0.82)]:  # fmt: skip
        got = metric(any_store, _q("faithfulness", agg=agg))
        assert _points(got) == {(): [(T0, round(want, 9))]}, agg
    assert metric(any_store, _q("relevance")) == []
    assert metric(any_store, _q("faithfulness", project_id="nobody")) == []


def test_a_score_stored_before_its_span_counts_in_its_time_once_the_span_arrives(
    any_store: TraceStore,
) -> None:
    early = span_record(start=T0 + timedelta(minutes=10))
    any_store.add_scores([_on(early, value=0.2)])  # e.g. an OTLP evaluation event sent first
    assert metric(any_store, _q("faithfulness")) == []
    later = span_record(start=T0 + timedelta(minutes=20))
    any_store.insert_batches([batch(early, later)])
    any_store.add_scores([_on(later, value=0.6)])
    quarter = T0 + timedelta(minutes=15)
    assert _points(metric(any_store, _q("faithfulness"))) == {(): [(T0, 0.4)]}
    assert _points(metric(any_store, _q("faithfulness", step_s=900))) == {
        (): [(T0, 0.2), (quarter, 0.6)]
    }
    assert _points(metric(any_store, _q("faithfulness", start=quarter))) == {(): [(quarter, 0.6)]}
    assert _points(metric(any_store, _q("faithfulness", group_by=("model",)))) == {
        ("gpt-4o",): [(T0, 0.4)]
    }


def test_a_score_counts_in_the_span_start_time_its_writer_gives(any_store: TraceStore) -> None:
    r = _scored_spans(any_store)
    a, late = r["a"], r["late"]
    east = timezone(timedelta(hours=5))  # an aware time in another zone is the same instant

    def at(rec: dict[str, Any]) -> datetime:
        return datetime.fromtimestamp(rec["start_ns"] / 1e9, UTC).astimezone(east)

    any_store.add_scores(
        [
            _on(a, value=0.2, span_start_time=at(a)),
            _on(late, value=1.0, span_start_time=at(late)),  # outside the range
            # a trace-level evaluator score counts nowhere, its time given or not
            score(trace_id=a["trace_id"], span_id=None, value=0.0, span_start_time=at(a)),
        ]
    )
    assert _points(metric(any_store, _q("faithfulness"))) == {(): [(T0, 0.2)]}
    assert _points(metric(any_store, _q("faithfulness", step_s=300))) == {
        (): [(T0 + timedelta(minutes=5), 0.2)]
    }
    assert _points(metric(any_store, _q("faithfulness", group_by=("model",)))) == {
        ("gpt-4o",): [(T0, 0.2)]
    }
    late_range = _q("faithfulness", start=T0 + timedelta(hours=4), end=T0 + timedelta(hours=6))
    assert _points(metric(any_store, late_range)) == {(): [(T0 + timedelta(hours=4), 1.0)]}
    # a hint of the store, not part of the score
    stored = any_store.list_scores("p", a["trace_id"])
    assert {s.value for s in stored} == {0.2, 0.0}
    assert all(s.span_start_time is None for s in stored)
    assert "span_start_time" not in stored[0].to_dict()


def test_only_the_newest_score_of_a_span_counts(any_store: TraceStore) -> None:
    r = _scored_spans(any_store)
    a, b = r["a"], r["b"]
    t = T0 + timedelta(hours=3)
    any_store.add_scores([_on(a, value=0.2, created_at=t), _on(b, value=0.4, created_at=t)])
    any_store.add_scores([_on(a, value=0.6, created_at=t + timedelta(minutes=1))])  # a re-run
    # a run that raised does not erase the verdict; an older one sent late does not replace it
    any_store.add_scores([_on(a, value=None, label="failed", created_at=t + timedelta(minutes=2))])
    any_store.add_scores([_on(a, value=0.0, created_at=t - timedelta(minutes=1))])
    # a person's label of the same name is another verdict
    any_store.add_scores([_on(a, value=1.0, source="human", evaluator=None, created_at=t)])
    assert _points(metric(any_store, _q("faithfulness"))) == {(): [(T0, 0.5)]}  # 0.6 and 0.4
    assert _points(metric(any_store, _q("faithfulness", agg="count"))) == {(): [(T0, 2.0)]}
    assert _points(metric(any_store, _q("faithfulness", group_by=("model",)))) == {
        ("gpt-4o",): [(T0, 0.5)]
    }
    window = (t - timedelta(hours=1), t + timedelta(hours=1))
    (dist,) = any_store.score_distributions("p", *window, source="evaluator")
    assert (dist.num_scores, dist.mean) == (3, pytest.approx(0.5))  # the failed run, 0.6, 0.4
    (human,) = any_store.score_distributions("p", *window, source="human")
    assert (human.num_scores, human.mean) == (1, 1.0)


def test_erasing_a_newest_label_lets_the_one_before_count(any_store: TraceStore) -> None:
    r = _scored_spans(any_store)
    t = T0 + timedelta(hours=3)

    def label(value: float, user: str, minutes: int) -> Score:
        return _on(r["a"], value=value, source="human", evaluator=None, user_id=user,
                   created_at=t + timedelta(minutes=minutes))  # fmt: skip

    any_store.add_scores([label(0.0, "yves", 0), label(1.0, "xena", 1)])
    window = (t - timedelta(hours=1), t + timedelta(hours=1))
    (human,) = any_store.score_distributions("p", *window, source="human")
    assert (human.num_scores, human.mean) == (1, 1.0)
    any_store.erase_user("p", "xena")
    (human,) = any_store.score_distributions("p", *window, source="human")
    assert (human.num_scores, human.mean) == (1, 0.0)


def test_user_feedback_counts_on_the_traces_last_llm_span(any_store: TraceStore) -> None:
    tid = os.urandom(16).hex()
    root = span_record(trace_id=tid, kind="chain", model=None, start=T0)
    llm1 = span_record(trace_id=tid, model="gpt-4o", start=T0 + timedelta(seconds=1))
    llm2 = span_record(trace_id=tid, model="claude", start=T0 + timedelta(seconds=2))
    tool = span_record(trace_id=tid, kind="tool", model=None, start=T0 + timedelta(seconds=9))
    tid2 = os.urandom(16).hex()
    only_root = span_record(trace_id=tid2, kind="chain", model="router", start=T0)
    any_store.insert_batches([batch(root, llm1, llm2, tool, only_root)])

    def fb(trace: str, value: float, **k: Any) -> Score:
        k.setdefault("span_id", None)
        return score(
            trace_id=trace,
            name="feedback",
            value=value,
            source="user",
            evaluator=None,
            **k,
        )

    any_store.add_scores(
        [
            fb(tid, -1.0),
            fb(tid, 1.0, created_at=T0 + timedelta(minutes=1)),  # the vote changed: this counts
            fb(tid2, 1.0),
            fb(tid, 1.0, span_id=llm1["span_id"]),  # a span-level one counts on its span
            fb("ff" * 16, -1.0),  # a trace without spans in the window
        ]
    )
    got = metric(any_store, _q("feedback_positive_rate", group_by=("model",)))
    assert _points(got) == {
        ("claude",): [(T0, 1.0)],
        ("gpt-4o",): [(T0, 1.0)],
        ("router",): [(T0, 1.0)],
    }
    any_store.add_scores([fb(tid, -1.0, created_at=T0 + timedelta(minutes=2))])
    got = metric(any_store, _q("feedback_positive_rate", group_by=("model",)))
    assert _points(got)[("claude",)] == [(T0, 0.0)]


def test_score_metrics_refuse_unknown_dimensions(any_store: TraceStore) -> None:
    with pytest.raises(ConfigError):
        metric(any_store, _q("faithfulness", group_by=("input",)))
    with pytest.raises(ConfigError):
        metric(any_store, _q("faithfulness", filters={"1=1) OR (1": "x"}))


def test_score_names_are_the_projects_name_and_source_pairs(any_store: TraceStore) -> None:
    """What the alert monitor asks each tick for rules on score metrics (none: unavailable)."""
    assert any_store.score_names("p") == set()
    r = span_record()
    any_store.add_scores(
        [
            _on(r, value=0.5),
            _on(r, value=0.7),  # a re-run: one pair
            _on(r, value=1.0, source="human", evaluator=None),
            score(trace_id=r["trace_id"], span_id=None, name="feedback", value=1.0,
                  source="user", project_id="q"),
        ]
    )  # fmt: skip
    assert any_store.score_names("p") == {("faithfulness", "evaluator"), ("faithfulness", "human")}
    assert any_store.score_names("q") == {("feedback", "user")}
