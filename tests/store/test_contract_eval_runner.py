"""The online evaluation runner on every backend: cursor, batches, restart, a crash replayed."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import timedelta

from sightline.evals import EvalCase, EvalResult, EvalRunner, RunnerOptions
from sightline.store._clickhouse import SEQ_SETTLE_US
from sightline.store._eval_records import EvalCursor, ScoreQuery
from sightline.store.base import TraceStore
from store._spans import T0, batch, span_record


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Length:
    """Scores an answer by its length: deterministic, so a replay scores alike."""

    name = "length"
    version = "1"

    def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
        return [
            EvalResult(score=min(len(c.answer or "") / 100, 1.0), passed=len(c.answer or "") < 50)
            for c in cases
        ]


def _runner(store: TraceStore, clock: Clock, batch_size: int = 4) -> EvalRunner:
    opts = RunnerOptions(grace_s=2.0, batch_size=batch_size)
    return EvalRunner(store, [Length()], options=opts, clock=clock)


def _settle(store: TraceStore) -> None:
    if getattr(store, "shared", False):
        time.sleep(SEQ_SETTLE_US / 1e6 + 0.2)  # a shared store's readers lag the last commit


def _drain(r: EvalRunner, clock: Clock) -> None:
    _settle(r.store)
    r.step()  # sees the last commit
    clock.t += 5
    while r.step():
        pass


def _spans(n: int, kind: str = "llm") -> list[dict[str, object]]:
    return [
        span_record(kind=kind, output="x" * (10 * i), start=T0 + timedelta(seconds=i))
        for i in range(n)
    ]


def _score_spans(store: TraceStore) -> list[str]:
    page = store.query_scores(ScoreQuery(project_id="p", limit=1000))
    return sorted(s.span_id or "" for s in page.scores)


def test_the_runner_scores_each_llm_span_once_and_resumes_after_a_restart(
    any_store: TraceStore,
) -> None:
    clock = Clock()
    llm = _spans(10)
    any_store.insert_batches([batch(*llm[:6], *_spans(3, kind="tool"))])
    any_store.insert_batches([batch(*llm[6:])])
    r = _runner(any_store, clock)
    _drain(r, clock)
    assert _score_spans(any_store) == sorted(str(x["span_id"]) for x in llm)
    cursor = any_store.get_eval_cursor("online")
    stored = any_store.list_spans_after(EvalCursor(0), upto_seq=2**62, kinds=None, limit=100)
    assert cursor is not None and cursor.pos == ""
    assert cursor.seq >= max(x.ingest_seq for x in stored)  # past every commit
    # a restart reads nothing again; new spans are scored once
    more = _spans(3)
    any_store.insert_batches([batch(*more)])
    r2 = _runner(any_store, clock)
    _drain(r2, clock)
    assert _score_spans(any_store) == sorted(str(x["span_id"]) for x in llm + more)


def test_a_crash_between_scores_and_cursor_does_not_score_twice(
    any_store: TraceStore, backend: str
) -> None:
    """The runner evaluates a batch again after a crash that kept its scores but not the cursor
    (the state ClickHouse can be left in; DuckDB writes both in one transaction)."""
    clock = Clock()
    llm = _spans(6)
    any_store.insert_batches([batch(*llm)])
    r = _runner(any_store, clock, batch_size=4)
    _settle(any_store)
    r.step()
    clock.t += 5
    before = any_store.get_eval_cursor("online") or EvalCursor(0)
    assert r.step() is True  # a full batch of 4 stored
    assert len(_score_spans(any_store)) == 4
    # the crash: the batch's scores are stored, the cursor is where it was before it
    any_store.append_eval_scores([], cursor_name="online", cursor=before)
    r2 = _runner(any_store, clock, batch_size=4)
    _drain(r2, clock)
    got = _score_spans(any_store)
    if backend == "clickhouse":
        assert got == sorted(str(x["span_id"]) for x in llm)  # each span once
    else:
        # DuckDB never leaves this state; put there by hand, it scores the batch again
        assert len(got) == 10 and set(got) == {str(x["span_id"]) for x in llm}


def test_span_keys_follow_the_spans_in_the_same_order(any_store: TraceStore) -> None:
    llm = _spans(7)
    llm[2]["status"] = "error"
    any_store.insert_batches([batch(*llm[:4], *_spans(2, kind="tool"))])
    any_store.insert_batches([batch(*llm[4:])])
    _settle(any_store)
    top = any_store.last_ingest_seq()
    for cursor, kinds, limit in [
        (EvalCursor(0), ("llm",), 100),
        (EvalCursor(0), None, 100),
        (EvalCursor(0), ("llm",), 3),
        (EvalCursor(0), ("tool",), 100),
    ]:
        spans = any_store.list_spans_after(cursor, upto_seq=top, kinds=kinds, limit=limit)
        keys = any_store.list_span_keys_after(cursor, upto_seq=top, kinds=kinds, limit=limit)
        assert [
            (k.ingest_seq, k.project_id, k.trace_id, k.span_id, k.status, k.start_time)
            for k in keys
        ] == [
            (
                x.ingest_seq,
                x.span.project_id,
                x.span.trace_id,
                x.span.span_id,
                x.span.status,
                x.span.start_time,
            )
            for x in spans
        ]
        assert keys and all(k.start_time.tzinfo is not None for k in keys)
    # from inside a commit: after the third span
    first = any_store.list_span_keys_after(EvalCursor(0), upto_seq=top, kinds=("llm",), limit=3)
    k = first[-1]
    inside = EvalCursor(k.ingest_seq, f"{k.project_id}/{k.trace_id}/{k.span_id}")
    rest = any_store.list_span_keys_after(inside, upto_seq=top, kinds=("llm",), limit=100)
    assert {x.span_id for x in first + rest} == {str(x["span_id"]) for x in llm}
    assert len(first) + len(rest) == 7
    assert {x.span_id for x in rest if x.status == "error"} | {
        x.span_id for x in first if x.status == "error"
    } == {str(llm[2]["span_id"])}
    assert (
        any_store.list_span_keys_after(EvalCursor(top), upto_seq=top, kinds=None, limit=100) == []
    )


def test_paging_after_a_cursor_across_many_commits(any_store: TraceStore) -> None:
    """Pages of any size, from a cursor inside a commit or between two, follow the commit
    order with no span twice and none missed (each read is bounded to the commits its spans
    reach), for whole spans and keys alike."""
    for i in range(6):
        any_store.insert_batches([batch(*_spans(5), *_spans(1 + i % 3, kind="tool"))])
    _settle(any_store)
    top = any_store.last_ingest_seq()
    everything = any_store.list_spans_after(EvalCursor(0), upto_seq=top, kinds=("llm",), limit=999)
    want = [(x.ingest_seq, x.span.span_id) for x in everything]
    assert len(want) == 30 and want == sorted(want, key=lambda w: w[0])
    for limit in (1, 3, 4, 7, 11, 30):
        for read in ("spans", "keys"):
            got: list[tuple[int, str]] = []
            cursor = EvalCursor(0)
            while True:
                if read == "spans":
                    page = [
                        (x.ingest_seq, x.span.project_id, x.span.trace_id, x.span.span_id)
                        for x in any_store.list_spans_after(
                            cursor, upto_seq=top, kinds=("llm",), limit=limit
                        )
                    ]
                else:
                    page = [
                        (k.ingest_seq, k.project_id, k.trace_id, k.span_id)
                        for k in any_store.list_span_keys_after(
                            cursor, upto_seq=top, kinds=("llm",), limit=limit
                        )
                    ]
                assert len(page) <= limit
                start = len(got)
                got += [(p[0], p[3]) for p in page]
                assert got == want[: len(got)], (limit, read, start)
                if len(page) < limit:
                    break
                seq, pid, tid, sid = page[-1]
                cursor = EvalCursor(seq, f"{pid}/{tid}/{sid}")
            assert got == want, (limit, read)
    # up to a commit short of the last: the read stops there
    part = any_store.list_span_keys_after(EvalCursor(0), upto_seq=top - 1, kinds=("llm",), limit=99)
    assert [(k.ingest_seq, k.span_id) for k in part] == want[:25]


def test_traces_narrowed_to_kinds(any_store: TraceStore) -> None:
    trace = os.urandom(16).hex()
    llm = span_record(trace_id=trace)
    guard = span_record(trace_id=trace, kind="guardrail", name="pii")
    other = span_record(kind="guardrail")
    any_store.insert_batches([batch(llm, guard, other)])
    _settle(any_store)
    got = any_store.get_traces("p", [trace], kinds=("guardrail",))
    assert [x.span.span_id for x in got[trace]] == [guard["span_id"]]
    both = any_store.get_traces("p", [trace], kinds=None)
    assert {x.span.span_id for x in both[trace]} == {llm["span_id"], guard["span_id"]}
    assert any_store.get_traces("p", [trace], kinds=("tool",)) == {trace: []}


def test_over_the_lag_bound_only_error_spans_are_scored(any_store: TraceStore) -> None:
    clock = Clock()
    llm = _spans(8)
    for x in llm[1::3]:
        x["status"] = "error"
    any_store.insert_batches([batch(*llm[:5])])
    any_store.insert_batches([batch(*llm[5:], *_spans(2, kind="tool"))])
    opts = RunnerOptions(grace_s=2.0, batch_size=2, max_lag_s=5.0)
    r = EvalRunner(any_store, [Length()], options=opts, clock=clock)
    _settle(any_store)
    r.step()  # sees the last commit, inside the grace period
    clock.t += 8.0  # over the bound
    while r.step():
        pass
    errors = sorted(str(x["span_id"]) for x in llm[1::3])
    assert _score_spans(any_store) == errors
    assert r.num_shed == 8 - len(errors) and r.num_spans == 8
