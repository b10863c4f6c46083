"""The online runner on a real DuckDB store: cursor, grace, sampling, failures, feedback."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from _evalspans import insert, rag_trace
from sightline.evals import (
    Embedder,
    EvalCase,
    EvalResult,
    EvalRunner,
    RunnerOptions,
    case_from_span,
    sampled,
)
from sightline.evals.evaluators import ContextRelevance, Relevance, UserCorrection
from sightline.model import Score
from sightline.store import DuckDBStore, ScoreQuery

P = "proj"
Q = "How many requests per minute does the API allow?"
DOCS = [
    "The API allows 600 requests per minute per key; more get HTTP 429.",
    "Invoices are emailed on the first day of each month.",
]
ANSWER = "The API allows 600 requests per minute per key."


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(threads=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore(tmp_path / "db.duckdb")
    s.migrate()
    yield s
    s.close()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Boom:
    name = "boom"
    version = "0"

    def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
        raise RuntimeError("model file corrupt")


class Moon:
    """A stand-in faithfulness evaluator: the demo's fabricated sentence is a hallucination."""

    name = "faithfulness"
    version = "test"

    def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
        return [
            EvalResult(score=0.0, label="hallucination", passed=False, explanation="Moon")
            if "Moon" in (c.answer or "")
            else EvalResult(score=1.0, label="faithful", passed=True)
            for c in cases
        ]


def _scores(store: DuckDBStore, **kw: object) -> list[Score]:
    return store.query_scores(ScoreQuery(project_id=P, limit=1000, **kw)).scores  # type: ignore[arg-type]


def _runner(store: DuckDBStore, evaluators: list, clock: Clock, **opts: object) -> EvalRunner:  # type: ignore[type-arg]
    opts.setdefault("grace_s", 2.0)
    return EvalRunner(store, evaluators, options=RunnerOptions(**opts), clock=clock)  # type: ignore[arg-type]


class TestCases:
    def test_rag_case_takes_the_question_from_the_root_and_documents_from_retrieval(
        self,
    ) -> None:
        recs = rag_trace(P, Q, DOCS, ANSWER)
        s = DuckDBStore(":memory:")
        s.migrate()
        insert(s, recs)
        spans = s.get_trace(P, recs[0]["trace_id"])
        llm = next(x for x in spans if x.kind == "llm")
        case = case_from_span(llm, spans)
        assert case.question == Q  # not the templated prompt holding the context
        assert case.contexts == tuple(DOCS)
        assert case.answer == ANSWER
        assert case.metadata["model"] == "gpt-4o-mini"
        assert case.metadata["feature"] == "support"
        assert case.case_id == f"{llm.trace_id}:{llm.span_id}"
        assert case.messages[0]["role"] == "user"
        # alone, the LLM span is its own question
        assert case_from_span(llm).question == llm.input
        s.close()


class TestRunner:
    def test_scores_llm_spans_after_the_grace_and_resumes_from_its_cursor(
        self, store: DuckDBStore, embedder: Embedder
    ) -> None:
        clock = Clock()
        evs = [Relevance(embedder=embedder), ContextRelevance(embedder=embedder)]
        insert(store, rag_trace(P, Q, DOCS, ANSWER) + rag_trace(P, Q, DOCS, "Bananas are yellow."))
        r = _runner(store, evs, clock)
        assert r.step() is False
        assert _scores(store) == []  # committed just now: inside the grace period
        assert r.lag_s() == 0.0
        clock.t += 1.0
        assert r.lag_s() == pytest.approx(1.0)
        clock.t += 1.5
        r.step()
        got = _scores(store)
        assert sorted((s.name, s.label) for s in got) == [
            ("context_relevance", "relevant_context"),
            ("context_relevance", "relevant_context"),
            ("relevance", "irrelevant"),
            ("relevance", "relevant"),
        ]
        assert all(s.source == "evaluator" and s.span_id for s in got)
        assert {(s.evaluator, s.evaluator_version) for s in got} == {
            ("relevance", "2"),  # 2: paraphrase-MiniLM-L3-v2
            ("context_relevance", "1"),
        }
        assert r.lag_s() == 0.0
        # a new runner on the same store (a restart) starts after the cursor
        clock.t += 10
        r2 = _runner(store, evs, clock)
        r2.step()
        assert len(_scores(store)) == 4
        insert(store, rag_trace(P, Q, DOCS, ANSWER))
        r2.step()
        clock.t += 3
        r2.step()
        assert len(_scores(store)) == 6

    def test_a_commit_larger_than_a_batch_is_read_in_several_without_duplicates(
        self, store: DuckDBStore, embedder: Embedder
    ) -> None:
        clock = Clock()
        recs = [x for i in range(5) for x in rag_trace(P, Q, DOCS, f"{ANSWER} ({i})")]
        insert(store, recs)
        r = _runner(store, [Relevance(embedder=embedder)], clock, batch_size=2)
        r.step()
        clock.t += 3
        assert r.step() is True  # a full batch: more is waiting
        while r.step():
            pass
        got = _scores(store)
        assert len(got) == 5 and len({s.span_id for s in got}) == 5
        assert r.num_spans == 5

    def test_a_crashing_evaluator_marks_its_scores_failed_and_the_others_go_on(
        self, store: DuckDBStore, embedder: Embedder
    ) -> None:
        clock = Clock()
        insert(store, rag_trace(P, Q, DOCS, ANSWER))
        r = _runner(store, [Boom(), Relevance(embedder=embedder)], clock, grace_s=0.0)
        r.step()
        failed = _scores(store, name="boom")
        assert len(failed) == 1
        f = failed[0]
        assert f.label == "failed" and f.value is None and f.passed is None
        assert f.explanation == "evaluator error: RuntimeError: model file corrupt"
        assert [s.label for s in _scores(store, name="relevance")] == ["relevant"]
        assert r.num_failed == {"boom": 1}

    def test_sampling_always_keeps_errors_thumbs_down_and_guardrail_hits(
        self, store: DuckDBStore, embedder: Embedder
    ) -> None:
        clock = Clock()
        plain = rag_trace(P, Q, DOCS, ANSWER)
        err = rag_trace(P, Q, DOCS, ANSWER, status="error")
        guard = rag_trace(P, Q, DOCS, ANSWER, guardrail_blocked=True)
        calm_guard = rag_trace(P, Q, DOCS, ANSWER, guardrail_blocked=False)
        down = rag_trace(P, Q, DOCS, ANSWER)
        insert(store, plain + err + guard + calm_guard + down)
        store.add_scores([_feedback(down[0]["trace_id"], -1.0)])
        r = _runner(store, [Moon()], clock, grace_s=0.0, sample_rate=0.0)
        r.step()
        scored = {s.trace_id for s in _scores(store, name="faithfulness")}
        # the error span has no answer, yet it was picked: the evaluator saw it
        assert scored == {guard[0]["trace_id"], down[0]["trace_id"], err[0]["trace_id"]}

    def test_thumbs_down_after_evaluation_scores_what_sampling_skipped(
        self, store: DuckDBStore
    ) -> None:
        clock = Clock()
        recs = rag_trace(P, Q, DOCS, "Our office is on the Moon.")
        insert(store, recs)
        r = _runner(store, [Moon()], clock, grace_s=0.0, sample_rate=0.0)
        r.step()  # sampled out; the first pass also starts the feedback cursor
        assert _scores(store, name="faithfulness") == []
        store.add_scores([_feedback(recs[0]["trace_id"], -1.0)])
        r.step()
        [s] = _scores(store, name="faithfulness")
        assert s.label == "hallucination" and s.span_id == recs[2]["span_id"]
        r.step()  # not twice
        assert len(_scores(store, name="faithfulness")) == 1

    def test_over_the_lag_bound_only_forced_spans_are_evaluated_until_it_catches_up(
        self, store: DuckDBStore
    ) -> None:
        clock = Clock()
        plain = [rag_trace(P, Q, DOCS, "Our office is on the Moon.") for _ in range(3)]
        err = rag_trace(P, Q, DOCS, ANSWER, status="error")
        insert(store, [x for t in plain for x in t] + err)
        r = _runner(store, [Moon()], clock, grace_s=2.0, max_lag_s=5.0)
        assert r.step() is False  # sees the commit, inside the grace period
        clock.t += 8.0  # the commit has waited 8 s: over the bound
        assert r.lag_s() == pytest.approx(8.0)
        r.step()
        scored = {s.trace_id for s in _scores(store, name="faithfulness")}
        assert scored == {err[0]["trace_id"]}  # the error span, not the three others
        assert r.num_shed == 3
        assert r.lag_s() == 0.0
        # back under the bound: spans are evaluated again
        later = rag_trace(P, Q, DOCS, "Our office is on the Moon.")
        insert(store, later)
        r.step()
        clock.t += 3.0
        r.step()
        assert later[0]["trace_id"] in {s.trace_id for s in _scores(store, name="faithfulness")}
        assert r.num_shed == 3
        # a skipped span whose trace gets a thumbs-down is scored after all
        store.add_scores([_feedback(plain[1][0]["trace_id"], -1.0)])
        r.step()
        got = {s.trace_id: s.label for s in _scores(store, name="faithfulness")}
        assert got[plain[1][0]["trace_id"]] == "hallucination"
        assert plain[0][0]["trace_id"] not in got

    def test_shedding_reads_whole_spans_only_of_the_forced_traces(
        self, store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clock = Clock()
        plain = [rag_trace(P, Q, DOCS, "Our office is on the Moon.") for _ in range(3)]
        err = rag_trace(P, Q, DOCS, ANSWER, status="error")
        guard = rag_trace(P, Q, DOCS, ANSWER, guardrail_blocked=True)
        calm_guard = rag_trace(P, Q, DOCS, ANSWER, guardrail_blocked=False)
        down = rag_trace(P, Q, DOCS, ANSWER)
        insert(store, [x for t in plain for x in t] + err + guard + calm_guard + down)
        store.add_scores([_feedback(down[0]["trace_id"], -1.0)])
        r = _runner(store, [Moon()], clock, grace_s=2.0, max_lag_s=5.0)
        r.step()
        clock.t += 8.0
        read: list[tuple[tuple[str, ...], object]] = []
        real = store.get_traces

        def get_traces(project_id: str, trace_ids: list[str], **kw: object) -> object:
            read.append((tuple(trace_ids), kw.get("kinds")))
            return real(project_id, trace_ids, **kw)  # type: ignore[arg-type]

        def no_spans(*a: object, **kw: object) -> None:
            raise AssertionError("whole spans listed while shedding")

        monkeypatch.setattr(store, "get_traces", get_traces)
        monkeypatch.setattr(store, "list_spans_after", no_spans)
        r.step()
        forced = {t[0]["trace_id"] for t in (err, guard, down)}
        assert {s.trace_id for s in _scores(store, name="faithfulness")} == forced
        assert r.num_shed == 4  # the three plain traces and the guardrail that let it pass
        whole = {t for ids, kinds in read if kinds is None for t in ids}
        assert whole == forced
        assert all(kinds == ("guardrail",) for ids, kinds in read if set(ids) - forced)

    def test_shedding_gives_an_evaluator_no_more_than_a_batch_of_forced_spans(
        self, store: DuckDBStore
    ) -> None:
        clock = Clock()
        calls: list[int] = []

        class Sizes(Moon):
            def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
                calls.append(len(cases))
                return super().evaluate(cases)

        recs: list[dict[str, object]] = []
        errors = []
        for i in range(20):
            t = rag_trace(P, Q, DOCS, ANSWER, status="error" if i % 2 else "ok")
            recs += t
            if i % 2:
                errors.append(t[2]["span_id"])
        insert(store, recs)
        r = _runner(store, [Sizes()], clock, grace_s=2.0, max_lag_s=5.0, batch_size=4)
        r.warm_up()
        calls.clear()
        r.step()
        clock.t += 8.0
        while r.step():
            pass
        assert calls and max(calls) <= 4
        assert {s.span_id for s in _scores(store, name="faithfulness")} == set(errors)
        assert r.num_shed == 10 and r.num_spans == 20

    def test_a_forced_span_gone_before_it_is_read_whole_is_counted_skipped(
        self, store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clock = Clock()
        err = rag_trace(P, Q, DOCS, ANSWER, status="error")
        insert(store, err + rag_trace(P, Q, DOCS, ANSWER))
        r = _runner(store, [Moon()], clock, grace_s=2.0, max_lag_s=5.0)
        r.step()
        clock.t += 8.0
        real = store.get_traces

        def retention_ran(project_id: str, trace_ids: list[str], **kw: object) -> object:
            got = real(project_id, trace_ids, **kw)  # type: ignore[arg-type]
            return {t: [] for t in got} if kw.get("kinds") is None else got

        monkeypatch.setattr(store, "get_traces", retention_ran)
        r.step()
        assert _scores(store, name="faithfulness") == []
        assert r.num_shed == 2 and r.num_spans == 2

    def test_shedding_keeps_each_projects_forced_spans_apart(self, store: DuckDBStore) -> None:
        clock = Clock()
        # the same trace id in two projects: one errs, the other got a thumbs-down
        a_err = rag_trace(P, Q, DOCS, ANSWER, status="error")
        b_same = [{**x, "project_id": "other"} for x in rag_trace(P, Q, DOCS, ANSWER)]
        for x in b_same:
            x["trace_id"] = a_err[0]["trace_id"]
        b_down = [{**x, "project_id": "other"} for x in rag_trace(P, Q, DOCS, ANSWER)]
        insert(store, a_err + b_same + b_down + rag_trace(P, Q, DOCS, ANSWER))
        store.add_scores(
            [dataclasses.replace(_feedback(b_down[0]["trace_id"], -1.0), project_id="other")]
        )
        r = _runner(store, [Moon()], clock, grace_s=2.0, max_lag_s=5.0)
        r.step()
        clock.t += 8.0
        r.step()
        got = {
            (s.project_id, s.span_id)
            for p in (P, "other")
            for s in store.query_scores(ScoreQuery(project_id=p, name="faithfulness")).scores
        }
        assert got == {(P, a_err[2]["span_id"]), ("other", b_down[2]["span_id"])}
        assert r.num_shed == 2

    def test_without_a_lag_bound_nothing_is_skipped(self, store: DuckDBStore) -> None:
        clock = Clock()
        insert(store, rag_trace(P, Q, DOCS, ANSWER) + rag_trace(P, Q, DOCS, ANSWER))
        r = _runner(store, [Moon()], clock, grace_s=2.0, max_lag_s=None)
        r.step()
        clock.t += 10_000.0
        r.step()
        assert len(_scores(store, name="faithfulness")) == 2 and r.num_shed == 0

    def test_per_evaluator_sample_rates_are_deterministic(self) -> None:
        picks = [sampled(f"{i:016x}", "relevance", 0.3) for i in range(2000)]
        assert 0.25 < sum(picks) / len(picks) < 0.35
        assert picks == [sampled(f"{i:016x}", "relevance", 0.3) for i in range(2000)]
        assert sampled("a", "x", 1.0) and not sampled("a", "x", 0.0)

    def test_user_correction_marks_the_previous_answer_of_the_session(
        self, store: DuckDBStore
    ) -> None:
        clock = Clock()
        first = rag_trace(P, Q, DOCS, "The API allows 60 requests per minute.", session_id="s1")
        second = rag_trace(
            P,
            "That's wrong, the docs say 600.",
            DOCS,
            "Sorry, 600.",
            session_id="s1",
            start_ms=5000,
        )
        third = rag_trace(
            P, "Thanks! And invoices?", DOCS, "Emailed monthly.", session_id="s1", start_ms=9000
        )
        insert(store, first + second + third)
        r = _runner(store, [UserCorrection()], clock, grace_s=0.0)
        r.step()
        got = {s.span_id: s for s in _scores(store, name="user_correction")}
        assert got[first[2]["span_id"]].label == "corrected"
        assert got[first[2]["span_id"]].details == {
            "judged_by": f"{second[2]['trace_id']}:{second[2]['span_id']}"
        }
        assert got[second[2]["span_id"]].label == "accepted"
        assert third[2]["span_id"] not in got  # no later turn yet

    def test_a_long_session_is_read_whole_only_at_the_previous_turn(
        self, store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clock = Clock()
        turns = [
            rag_trace(P, Q, DOCS, f"Answer {i}.", session_id="long", start_ms=1000 * i)
            for i in range(29)
        ]
        insert(store, [x for t in turns for x in t])
        r = _runner(store, [UserCorrection()], clock, grace_s=0.0)
        r.step()
        last = rag_trace(P, "That's wrong.", DOCS, "Sorry.", session_id="long", start_ms=40_000)
        insert(store, last)
        read: list[str] = []
        real = store.get_traces

        def get_traces(project_id: str, trace_ids: list[str], **kw: object) -> object:
            read.extend(trace_ids)
            return real(project_id, trace_ids, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(store, "get_traces", get_traces)
        r.step()
        got = {s.span_id: s for s in _scores(store, name="user_correction")}
        assert got[turns[-1][2]["span_id"]].label == "corrected"  # the answer before "wrong"
        # the new turn's own trace, and of the 29 earlier turns only the previous one
        assert set(read) == {last[0]["trace_id"], turns[-1][0]["trace_id"]}

    def test_the_daemon_scores_in_its_own_thread(
        self, store: DuckDBStore, embedder: Embedder
    ) -> None:
        import time

        insert(store, rag_trace(P, Q, DOCS, ANSWER))
        r = EvalRunner(
            store,
            [Relevance(embedder=embedder)],
            options=RunnerOptions(grace_s=0.0, interval_s=0.05),
        )
        with r:
            deadline = time.monotonic() + 30
            while not _scores(store) and time.monotonic() < deadline:
                time.sleep(0.02)
        assert len(_scores(store)) == 1


class Slow:
    name = "slow"
    version = "0"

    def __init__(self, delay: float = 0.5) -> None:
        import threading

        self.delay = delay
        self.started = threading.Event()
        self.finished = False

    def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
        import time

        if not any(c.case_id for c in cases):
            return [EvalResult(score=1.0) for _ in cases]  # the runner's warm-up: no delay
        self.started.set()
        time.sleep(self.delay)
        self.finished = True
        return [EvalResult(score=1.0) for _ in cases]


def test_stop_waits_for_the_pass_in_flight(store: DuckDBStore) -> None:
    """The server closes the store right after stopping the runner: no pass may still run."""
    insert(store, rag_trace(P, Q, DOCS, ANSWER))
    slow = Slow()
    r = EvalRunner(store, [slow], options=RunnerOptions(grace_s=0.0, interval_s=0.05))
    r.start()
    assert slow.started.wait(10)
    r.stop()
    assert slow.finished
    assert len(_scores(store, name="slow")) == 1


def _feedback(trace_id: str, value: float) -> Score:
    import secrets
    from datetime import UTC, datetime

    return Score(
        project_id=P,
        score_id=secrets.token_hex(8),
        trace_id=trace_id,
        name="feedback",
        value=value,
        label="negative" if value < 0 else "positive",
        passed=value > 0,
        source="user",
        created_at=datetime.now(UTC),
    )


def test_ingest_commits_while_an_evaluator_is_busy(store: DuckDBStore) -> None:
    """Evaluation holds no lock the writer needs: a commit goes through mid-evaluation."""
    import threading
    import time

    insert(store, rag_trace(P, Q, DOCS, ANSWER))
    slow = Slow(delay=3.0)
    r = EvalRunner(store, [slow], options=RunnerOptions(grace_s=0.0))
    t = threading.Thread(target=r.step)
    t.start()
    assert slow.started.wait(10)
    t0 = time.perf_counter()
    insert(store, rag_trace(P, Q, DOCS, ANSWER))
    took = time.perf_counter() - t0
    assert not slow.finished  # the commit did not wait for the evaluator
    t.join(10)
    assert took < 2.0
    r.step()
    assert len(_scores(store, name="slow")) == 2


def test_stop_abandons_the_rest_of_the_batch_and_the_next_start_redoes_it(
    store: DuckDBStore,
) -> None:
    """A stop waits for the evaluator in progress only; nothing of the batch is stored."""
    insert(store, rag_trace(P, Q, DOCS, ANSWER))
    slow, after = Slow(delay=0.5), Moon()
    r = EvalRunner(store, [slow, after], options=RunnerOptions(grace_s=0.0, interval_s=0.05))
    r.start()
    assert slow.started.wait(10)
    r.stop()
    assert slow.finished
    assert _scores(store) == []  # abandoned whole: no half batch, the cursor did not move
    r2 = EvalRunner(store, [Moon()], options=RunnerOptions(grace_s=0.0))
    r2.step()
    assert [s.name for s in _scores(store)] == ["faithfulness"]


def test_warm_up_loads_each_evaluator_once_and_survives_a_broken_one(store: DuckDBStore) -> None:
    seen: list[int] = []

    class Counting(Moon):
        def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
            seen.append(len(cases))
            return super().evaluate(cases)

    r = EvalRunner(store, [Boom(), Counting()], options=RunnerOptions(grace_s=0.0))
    r.run_once()
    r.run_once()
    assert seen == [1]  # warmed up once; no spans to evaluate
    assert _scores(store) == []  # a warm-up stores nothing


def _yielding(store: DuckDBStore, saturation: object, **opts: object) -> EvalRunner:
    """A runner of the ``Moon`` evaluator that waits on ``saturation`` (see ``yield_s``)."""
    return EvalRunner(store, [Moon()], options=RunnerOptions(**opts), saturation=saturation)  # type: ignore[arg-type]


class TestYieldToIngest:
    """While ingestion is saturated the runner waits (at most ``yield_s``) before a batch."""

    def test_waits_while_ingest_is_saturated_then_scores(self, store: DuckDBStore) -> None:
        import threading
        import time

        insert(store, rag_trace(P, Q, DOCS, ANSWER))
        busy = threading.Event()
        busy.set()
        r = _yielding(
            store, lambda: 0.5 if busy.is_set() else 0.0, grace_s=0.0, interval_s=0.05, yield_s=60.0
        )
        r.start()
        try:
            deadline = time.monotonic() + 30
            while r.yielded_s < 1.0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert r.yielded_s >= 1.0
            assert _scores(store) == []  # the span waits while ingestion holds the CPU
            assert r.lag_s() > 0.5  # and the wait counts in the lag
            busy.clear()
            deadline = time.monotonic() + 10
            while not _scores(store) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert [s.name for s in _scores(store)] == ["faithfulness"]
            assert r.yielded_s >= 1.0
        finally:
            r.stop()

    def test_scores_a_batch_every_yield_s_while_saturation_lasts(self, store: DuckDBStore) -> None:
        import time

        for _ in range(3):
            insert(store, rag_trace(P, Q, DOCS, ANSWER))
        r = _yielding(store, lambda: 0.1, grace_s=0.0, interval_s=0.05, yield_s=0.3, batch_size=1)
        t0 = time.monotonic()
        r.start()
        try:
            deadline = t0 + 10
            while len(_scores(store)) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            took = time.monotonic() - t0
        finally:
            r.stop()
        assert len(_scores(store)) == 3  # never starved: one batch per yield_s
        assert took >= 0.85  # three waits of 0.3 s came first
        assert r.yielded_s >= 0.85

    def test_stop_ends_the_wait(self, store: DuckDBStore) -> None:
        import time

        insert(store, rag_trace(P, Q, DOCS, ANSWER))
        r = _yielding(store, lambda: 0.1, grace_s=0.0, interval_s=0.05, yield_s=60.0)
        r.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        r.stop()
        assert time.monotonic() - t0 < 2.0
        assert _scores(store) == []

    def test_past_the_lag_bound_it_no_longer_waits(self, store: DuckDBStore) -> None:
        """An overload longer than ``max_lag_s`` is not a burst: shedding goes on at once."""
        import time

        insert(store, rag_trace(P, Q, DOCS, ANSWER))
        r = _yielding(store, lambda: 0.1, grace_s=0.0, interval_s=0.05, yield_s=60.0, max_lag_s=0.2)
        r.start()
        try:
            deadline = time.monotonic() + 10
            while r.num_shed == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            r.stop()
        assert r.num_shed == 1  # read (and skipped: not forced) without waiting out yield_s
        assert r.yielded_s < 5.0

    def test_a_saturation_longer_than_yield_s_is_steady_load_and_not_waited_for(
        self, store: DuckDBStore
    ) -> None:
        insert(store, rag_trace(P, Q, DOCS, ANSWER))
        r = EvalRunner(
            store,
            [Moon()],
            options=RunnerOptions(grace_s=0.0, yield_s=5.0),
            saturation=lambda: 6.0,  # saturated for 6 s without a break
        )
        r.run_once()
        assert [s.name for s in _scores(store)] == ["faithfulness"]
        assert r.yielded_s == 0.0

    def test_with_nothing_to_score_it_does_not_wait(self, store: DuckDBStore) -> None:
        """A tick with nothing eligible only looks (and runs the feedback pass) at once."""
        import time

        r = _yielding(store, lambda: 0.1, grace_s=0.0, yield_s=60.0)
        t0 = time.monotonic()
        r.run_once()
        assert time.monotonic() - t0 < 10.0 and r.yielded_s == 0.0


class Sloppy:
    """A plugin evaluator whose results the store cannot take, but for the first case."""

    name = "sloppy"
    version = "0"

    def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
        import numpy as np

        odd: list[object] = [
            EvalResult(score=float("nan")),
            EvalResult(score="0.5"),  # type: ignore[arg-type]
            EvalResult(score=0.5, details={"sim": np.float32(0.5)}),
            {"score": 1.0},
        ]
        return [EvalResult(score=0.9, label="ok", passed=True), *odd][: len(cases)]  # type: ignore[list-item]


def test_results_the_store_cannot_take_fail_their_case_and_the_runner_moves_on(
    store: DuckDBStore,
) -> None:
    """Before, writing the batch raised every tick: the cursor never moved again."""
    clock = Clock()
    traces = [rag_trace(P, f"{Q} {i}", DOCS, ANSWER, start_ms=i) for i in range(5)]
    insert(store, [s for t in traces for s in t])
    r = _runner(store, [Sloppy(), Moon()], clock, grace_s=0.0)
    r.step()
    got = _scores(store, name="sloppy")
    assert len(got) == 5
    ok = [s for s in got if s.label == "ok"]
    assert len(ok) == 1 and ok[0].value == 0.9
    failed = [s for s in got if s.label == "failed"]
    assert len(failed) == 4 and all(s.value is None for s in failed)
    reasons = " | ".join(sorted(s.explanation or "" for s in failed))
    assert "score nan" in reasons and "score '0.5'" in reasons
    assert "not JSON" in reasons and "returned dict" in reasons
    assert len(_scores(store, name="faithfulness")) == 5  # the other evaluator's, stored
    assert r.num_failed == {"sloppy": 4} and r.num_scores["sloppy"] == 1
    assert r.lag_s() == 0.0 and not r.step()  # caught up: nothing is read again
