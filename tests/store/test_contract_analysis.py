"""Releases, A/B samples, costs and guardrail effectiveness: the same on every backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest

from sightline.errors import ConfigError
from sightline.model import Release, Score
from sightline.store import open_store
from sightline.store._analysis_records import COST_DIMENSIONS, CostQuery
from sightline.store.base import METRICS, MetricQuery, TraceStore
from store._spans import BACKENDS, T0, batch, span_record, spans_over, store_url

END = T0 + timedelta(hours=3)
NO_SCORES = "scores are ported to ClickHouse on another branch (ch-evals)"


def _score(rec: dict[str, Any], name: str, **over: Any) -> Score:
    return Score(
        project_id=over.pop("project_id", "p"),
        score_id=uuid.uuid4().hex,
        trace_id=rec["trace_id"],
        span_id=over.pop("span_id", rec["span_id"]),
        name=name,
        source=over.pop("source", "evaluator"),
        created_at=over.pop("created_at", T0 + timedelta(hours=4)),
        **over,
    )


def _needs_scores(st: TraceStore) -> None:
    if not hasattr(st, "add_scores"):
        pytest.skip(NO_SCORES)


def _release(i: int, **over: Any) -> Release:
    d: dict[str, Any] = {
        "project_id": "p",
        "release_id": f"r{i}",
        "kind": "manual",
        "service": "bot",
        "version": f"1.{i}",
        "at": T0 + timedelta(hours=i),
        "created_at": T0 + timedelta(hours=i, minutes=1),
    }
    d.update(over)
    return Release(**d)


class TestReleases:
    def test_markers_read_back_newest_first_within_a_range(self, any_store: TraceStore) -> None:
        r1 = _release(1, git_sha="abc123", notes="hotfix")
        any_store.add_release(_release(0))
        any_store.add_release(r1)
        any_store.add_release(_release(2, service=None))
        any_store.add_release(_release(3, project_id="other"))
        assert [r.release_id for r in any_store.list_releases("p")] == ["r2", "r1", "r0"]
        assert any_store.get_release("p", "r1") == r1
        assert any_store.get_release("other", "r1") is None
        assert any_store.get_release("p", "nope") is None
        got = any_store.list_releases(
            "p", start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=2)
        )
        assert got == [r1]
        assert [r.release_id for r in any_store.list_releases("p", limit=1)] == ["r2"]
        assert any_store.list_releases("nobody") == []

    def test_new_versions_in_spans_become_markers_once(self, any_store: TraceStore) -> None:
        any_store.insert_batches(
            [
                spans_over(3, service_name="bot", service_version="1.0"),
                batch(
                    span_record(
                        start=T0 + timedelta(minutes=9),
                        service_name="bot",
                        service_version="1.1",
                        prompt_name="greet",
                        prompt_version="3",
                    ),
                    span_record(service_name=None, service_version="0.9", model=None),
                ),
                spans_over(2, project_id="other", service_name="bot", service_version="7"),
            ]
        )
        now = T0 + timedelta(hours=5)
        found = any_store.detect_releases("p", now)
        key = lambda r: tuple(str(x) for x in r)  # noqa: E731 - None sorts too
        assert sorted(((r.kind, r.service, r.version, r.at) for r in found), key=key) == sorted(
            [
                ("service_version", "bot", "1.0", T0),
                ("service_version", "bot", "1.1", T0 + timedelta(minutes=9)),
                ("service_version", None, "0.9", T0),
                ("model", "openai", "gpt-4o", T0),
                ("prompt_version", "greet", "3", T0 + timedelta(minutes=9)),
            ],
            key=key,
        )
        assert all(r.created_at == now and r.notes == "first seen in spans" for r in found)
        stored = {r.release_id for r in any_store.list_releases("p")}
        assert stored == {r.release_id for r in found}
        # each version is recorded once, a version without a service too
        assert any_store.detect_releases("p", now) == []
        seq = any_store.last_ingest_seq()
        any_store.insert_batches(
            [
                spans_over(2, service_name="bot", service_version="1.0"),
                spans_over(1, service_name="bot", service_version="2.0", model="gpt-5"),
            ]
        )
        again = any_store.detect_releases("p", now, after_seq=seq)
        assert sorted((r.kind, r.version) for r in again) == [
            ("model", "gpt-5"),
            ("service_version", "2.0"),
        ]


class TestCompareValues:
    def test_values_of_an_interval_and_service(self, any_store: TraceStore) -> None:
        recs = [
            span_record(duration_ms=100.0, cost_usd=0.5, service_name="a"),
            span_record(duration_ms=200.0, cost_usd=None, status="error", service_name="a"),
            span_record(duration_ms=300.0, service_name="b"),
            span_record(duration_ms=400.0, kind="tool", service_name="a"),
            span_record(start=END, duration_ms=500.0, service_name="a"),
        ]
        any_store.insert_batches([batch(*recs)])
        got = any_store.compare_values("p", T0, END, "a")
        assert sorted(got["latency_ms"]) == [100.0, 200.0]
        assert got["cost_usd"] == [0.5]
        assert sorted(got["error"]) == [0.0, 1.0]
        every = any_store.compare_values("p", T0, END, None)
        assert sorted(every["latency_ms"]) == [100.0, 200.0, 300.0]
        assert any_store.compare_values(
            "p", END + timedelta(hours=1), END + timedelta(hours=2), None
        ) == {
            "latency_ms": [],
            "cost_usd": [],
            "error": [],
        }

    def test_scores_of_the_interval_spans(self, any_store: TraceStore) -> None:
        _needs_scores(any_store)
        a, b = span_record(service_name="a"), span_record(service_name="b")
        a2 = span_record(service_name="a")
        any_store.insert_batches([batch(a, a2, b)])
        any_store.add_scores(
            [
                _score(a, "relevance", value=0.75),
                _score(a2, "relevance", value=0.25),
                _score(b, "relevance", value=0.5),
                _score(a, "faithfulness", value=None, label="x"),
                _score(a, "feedback", value=1.0, span_id=None, source="user"),
            ]
        )
        got = any_store.compare_values("p", T0, END, "a")
        assert sorted(got["score:relevance"]) == [0.25, 0.75]
        assert "score:faithfulness" not in got and "score:feedback" not in got


def _cost_spans() -> pa.Table:
    recs = []
    for i in range(30):
        recs.append(
            span_record(
                start=T0 + timedelta(minutes=3 * i),
                trace_id=f"{i % 10:032x}",
                kind=["llm", "llm", "embedding", "tool"][i % 4],
                cost_usd=None if i % 7 == 0 else round(0.001 * (i + 1) ** 1.5, 6),
                input_tokens=40 + i,
                output_tokens=None if i % 9 == 0 else 5 + i,
                user_id=None if i % 5 == 0 else f"u{i % 3}",
                feature=["search", "chat", None][i % 3],
                model=["gpt-4o", "claude"][i % 2],
                session_id=f"s{i % 4}",
                tenant_id=None if i % 4 == 3 else f"t{i % 2}",
                prompt_name=f"pr{i % 3}",
                prompt_version=f"{i % 5}",
                variant=["a", "b", None][i % 3],
                status="error" if i % 6 == 0 else "ok",
                duration_ms=100.0 + 13 * i,
                input="héllo " * (i % 5 + 1) if i % 8 else None,
            )
        )
    return batch(*recs)


def _cost_scores(spans: pa.Table) -> list[Score]:
    rows = spans.to_pylist()
    out = []
    for i, r in enumerate(rows):
        if i % 3 == 0:
            out.append(_score(r, "relevance", value=0.1 * (i % 10), passed=i % 2 == 0))
        if i % 4 == 1:
            out.append(_score(r, "correctness", value=None, passed=i % 8 == 1, source="human"))
        if i % 5 == 2:
            out.append(
                _score(
                    r,
                    "feedback",
                    value=[1.0, -1.0, 0.0][i % 3],
                    span_id=None,
                    source="user",
                    created_at=T0 + timedelta(hours=4, minutes=i),
                )
            )
        if i % 11 == 3:
            out.append(_score(r, "relevance", value=0.9, label="failed"))
    return out


@pytest.fixture(scope="class")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TraceStore]]:
    """One store of each backend with the same calls, scores and guardrail checks.

    Class-scoped: chdb opens one data directory per process at a time.
    """
    spans = _cost_spans()
    guards = _guardrail_spans()
    scores = [*_cost_scores(spans), *_guardrail_scores(guards)]
    stores: dict[str, TraceStore] = {}
    try:
        for b in BACKENDS:
            st = open_store(store_url(b, tmp_path_factory.mktemp(b)))
            st.migrate()
            stores[b] = st
            st.insert_batches([spans, guards])
            if hasattr(st, "add_scores"):
                st.add_scores(scores)
        yield stores
    finally:
        for st in stores.values():
            st.close()


def _guardrail_spans() -> pa.Table:
    recs = []
    for i in range(20):
        attrs: dict[str, Any] = {}
        if i % 5:
            attrs["sightline.guardrail.version"] = f"v{i % 3}"
        if i % 3 != 2:
            attrs["sightline.guardrail.blocked"] = i % 3 == 0
        attrs["sightline.guardrail.stage"] = ["input", "output"][i % 2]
        recs.append(
            span_record(
                start=T0 + timedelta(minutes=7 * i),
                kind="guardrail",
                name=["pii", "jailbreak"][i % 2],
                duration_ms=2.0 + i * 1.5,
                attributes=attrs,
            )
        )
    return batch(*recs)


def _guardrail_scores(spans: pa.Table) -> list[Score]:
    out = []
    for i, r in enumerate(spans.to_pylist()):
        if i % 2 == 0:
            out.append(
                _score(
                    r,
                    "review",
                    label=["legitimate", "harmful", "wrong", "correct"][i % 4],
                    source="human",
                    span_id=r["span_id"] if i % 4 else None,
                )
            )
        if i % 3 == 1:
            name = ["prompt_injection", "toxicity", "pii_leak"][i % 3]
            out.append(_score(r, name, passed=False, value=0.0, span_id=None))
    return out


class TestAgreeOnTheSameData:
    """Each analysis gives the same answer on both backends (scores included once ported)."""

    Q = CostQuery(project_id="p", start=T0, end=END)

    @pytest.mark.parametrize("by", list(COST_DIMENSIONS))
    def test_cost_breakdown(self, both: dict[str, TraceStore], by: str) -> None:
        want = both["duckdb"].cost_breakdown(self.Q, by, limit=5)
        got = both["clickhouse"].cost_breakdown(self.Q, by, limit=5)
        assert [(r.key, r.requests, r.unpriced, r.first_at, r.last_at) for r in got[0]] == [
            (r.key, r.requests, r.unpriced, r.first_at, r.last_at) for r in want[0]
        ]
        assert [r.cost_usd for r in got[0]] == pytest.approx([r.cost_usd for r in want[0]])
        assert got[1] == pytest.approx(want[1])
        assert want[1]["groups"] > 0

    @pytest.mark.parametrize("group_by", [(), ("feature",), ("model", "user_id")])
    def test_task_costs(self, both: dict[str, TraceStore], group_by: tuple[str, ...]) -> None:
        if not hasattr(both["clickhouse"], "add_scores"):
            pytest.skip(NO_SCORES)
        want = both["duckdb"].task_costs(self.Q, group_by)
        got = both["clickhouse"].task_costs(self.Q, group_by)
        key = lambda t: sorted((k, str(v)) for k, v in t.group.items())  # noqa: E731
        got, want = sorted(got, key=key), sorted(want, key=key)
        ints = lambda t: (t.group, t.tasks, t.successful, t.failed, t.unjudged)  # noqa: E731
        assert [ints(t) for t in got] == [ints(t) for t in want]
        assert [(t.cost_usd, t.cost_successful_usd) for t in got] == [
            (pytest.approx(t.cost_usd), pytest.approx(t.cost_successful_usd)) for t in want
        ]
        assert sum(t.successful for t in want) and sum(t.failed for t in want)

    def test_prompt_length(self, both: dict[str, TraceStore]) -> None:
        for step in (600, 3600):
            want = both["duckdb"].prompt_length(self.Q, step)
            got = both["clickhouse"].prompt_length(self.Q, step)
            assert [s.feature for s in got] == [s.feature for s in want]
            for g, w in zip(got, want, strict=True):
                assert [p[:2] for p in g.points] == [p[:2] for p in w.points]
                flat = [x for p in g.points for x in p[2:]]
                assert flat == pytest.approx([x for p in w.points for x in p[2:]])

    @pytest.mark.parametrize(("dimension", "value"), [("model", "gpt-4o"), ("feature", "chat")])
    def test_compare_sample(self, both: dict[str, TraceStore], dimension: str, value: str) -> None:
        want = both["duckdb"].compare_sample(self.Q, dimension, value)
        got = both["clickhouse"].compare_sample(self.Q, dimension, value)
        assert (got.num_spans, got.num_errors, got.num_traces) == (
            want.num_spans,
            want.num_errors,
            want.num_traces,
        )
        assert sorted(got.latency_ms) == sorted(want.latency_ms)
        assert sorted(got.cost_usd) == pytest.approx(sorted(want.cost_usd))
        assert sorted(got.output_tokens) == sorted(want.output_tokens)
        if hasattr(both["clickhouse"], "add_scores"):
            assert {k: sorted(v) for k, v in got.scores.items()} == {
                k: sorted(v) for k, v in want.scores.items()
            }
            assert {k: sorted(v) for k, v in got.passed.items()} == {
                k: sorted(v) for k, v in want.passed.items()
            }
            assert sorted(got.feedback) == sorted(want.feedback)
            assert want.passed and (dimension != "model" or (want.scores and want.feedback))

    def test_guardrail_stats(self, both: dict[str, TraceStore]) -> None:
        want = both["duckdb"].guardrail_stats("p", T0, END)
        got = both["clickhouse"].guardrail_stats("p", T0, END)
        assert [(g.name, g.version) for g in got] == [(g.name, g.version) for g in want]
        assert len(want) >= 6  # (name, version) pairs, a missing version first
        for g, w in zip(got, want, strict=True):
            assert (g.num_checks, g.num_blocked) == (w.num_checks, w.num_blocked)
            assert g.latency_ms_p50 == pytest.approx(w.latency_ms_p50)
            assert g.latency_ms_p95 == pytest.approx(w.latency_ms_p95)
            if hasattr(both["clickhouse"], "add_scores"):
                assert (
                    g.num_reviewed_blocked,
                    g.num_false_positives,
                    g.num_bypass_inputs,
                    g.num_bypass_outputs,
                ) == (
                    w.num_reviewed_blocked,
                    w.num_false_positives,
                    w.num_bypass_inputs,
                    w.num_bypass_outputs,
                )
        if hasattr(both["clickhouse"], "add_scores"):
            assert sum(w.num_reviewed_blocked + w.num_bypass_inputs for w in want)
            assert sum(w.num_false_positives + w.num_bypass_outputs for w in want)


class TestCosts:
    def test_cost_breakdown_groups_priced_calls_most_expensive_first(
        self, any_store: TraceStore
    ) -> None:
        any_store.insert_batches(
            [
                batch(
                    span_record(user_id="ann", cost_usd=0.5, input_tokens=10, output_tokens=1),
                    span_record(user_id="ann", cost_usd=None, kind="embedding"),
                    span_record(user_id="bob", cost_usd=0.75),
                    span_record(user_id=None, cost_usd=0.25, start=T0 + timedelta(minutes=5)),
                    span_record(user_id="cy", cost_usd=9.0, kind="tool"),
                    span_record(user_id="dee", cost_usd=9.0, project_id="other"),
                )
            ]
        )
        q = CostQuery(project_id="p", start=T0, end=END)
        rows, summary = any_store.cost_breakdown(q, "user", limit=10)
        assert [(r.key, r.cost_usd, r.requests, r.unpriced) for r in rows] == [
            ("bob", 0.75, 1, 0),
            ("ann", 0.5, 2, 1),
            (None, 0.25, 1, 0),
        ]
        assert rows[1].input_tokens == 110 and rows[2].first_at == T0 + timedelta(minutes=5)
        assert summary == {
            "groups": 2,
            "cost_usd": 1.25,
            "mean_cost_usd": 0.625,
            "median_cost_usd": 0.625,
            "p95_cost_usd": pytest.approx(0.7375),
            "max_cost_usd": 0.75,
            "unattributed_cost_usd": 0.25,
            "unattributed_calls": 1,
            "calls": 4,
        }
        rows, _ = any_store.cost_breakdown(q, "user", limit=1)
        assert [r.key for r in rows] == ["bob"]
        only = CostQuery(project_id="p", start=T0, end=END, filters={"kind": "embedding"})
        assert [r.key for r in any_store.cost_breakdown(only, "user", limit=10)[0]] == ["ann"]

    def test_an_empty_breakdown(self, any_store: TraceStore) -> None:
        rows, summary = any_store.cost_breakdown(
            CostQuery(project_id="p", start=T0, end=END), "model", limit=10
        )
        assert rows == []
        assert summary == {
            "groups": 0,
            "cost_usd": 0.0,
            "mean_cost_usd": None,
            "median_cost_usd": None,
            "p95_cost_usd": None,
            "max_cost_usd": None,
            "unattributed_cost_usd": 0.0,
            "unattributed_calls": 0,
            "calls": 0,
        }
        assert any_store.task_costs(CostQuery(project_id="p", start=T0, end=END), ()) == []
        assert any_store.prompt_length(CostQuery(project_id="p", start=T0, end=END), 60) == []

    def test_bad_input_is_a_config_error(self, any_store: TraceStore) -> None:
        q = CostQuery(project_id="p", start=T0, end=END)
        with pytest.raises(ConfigError):
            any_store.cost_breakdown(q, "trace_id", limit=10)
        with pytest.raises(ConfigError):
            any_store.task_costs(q, ("input",))
        with pytest.raises(ConfigError):
            any_store.compare_sample(q, "input", "x")
        bad = CostQuery(project_id="p", start=T0, end=END, filters={"input": "x"})
        with pytest.raises(ConfigError):
            any_store.prompt_length(bad, 60)

    def test_task_costs_without_judgements_are_unjudged(self, any_store: TraceStore) -> None:
        any_store.insert_batches(
            [
                batch(
                    span_record(trace_id="a" * 32, cost_usd=0.5, feature="chat"),
                    span_record(trace_id="a" * 32, cost_usd=0.25, feature=None),
                    span_record(trace_id="b" * 32, cost_usd=0.125, feature="search"),
                )
            ]
        )
        q = CostQuery(project_id="p", start=T0, end=END)
        [t] = any_store.task_costs(q, ())
        assert (t.tasks, t.unjudged, t.cost_usd, t.cost_successful_usd) == (2, 2, 0.875, 0.0)
        got = any_store.task_costs(q, ("feature",))
        assert [(t.group, t.tasks, t.cost_usd) for t in got] == [
            ({"feature": "chat"}, 1, 0.75),
            ({"feature": "search"}, 1, 0.125),
        ]

    def test_prompt_length_per_feature_and_bucket(self, any_store: TraceStore) -> None:
        any_store.insert_batches(
            [
                batch(
                    span_record(feature="chat", input="añb", input_tokens=10),
                    span_record(feature="chat", input="abcde", input_tokens=20),
                    span_record(
                        feature="chat", input=None, input_tokens=30, start=T0 + timedelta(hours=1)
                    ),
                    span_record(feature=None, input="x", input_tokens=None),
                )
            ]
        )
        start = T0 - timedelta(minutes=10)
        got = any_store.prompt_length(CostQuery(project_id="p", start=start, end=END), 3600)
        assert [(s.feature, s.points) for s in got] == [
            ("chat", [(start, 2, 15.0, 4.0), (start + timedelta(hours=1), 1, 30.0, None)]),
            (None, [(start, 1, None, 1.0)]),
        ]


class TestGuardrails:
    def test_checks_blocks_and_latency_per_guardrail_version(self, any_store: TraceStore) -> None:
        def check(name: str, version: str | None, blocked: Any, ms: float) -> dict[str, Any]:
            attrs: dict[str, Any] = {"sightline.guardrail.blocked": blocked}
            if version:
                attrs["sightline.guardrail.version"] = version
            return span_record(kind="guardrail", name=name, duration_ms=ms, attributes=attrs)

        any_store.insert_batches(
            [
                batch(
                    check("pii", "v1", True, 10.0),
                    check("pii", "v1", False, 20.0),
                    check("pii", "v1", "true", 30.0),
                    check("pii", None, False, 5.0),
                    check("jail", "v2", "no", 1.0),
                    span_record(),  # not a guardrail
                )
            ]
        )
        got = any_store.guardrail_stats("p", T0, END)
        assert [(g.name, g.version, g.num_checks, g.num_blocked) for g in got] == [
            ("jail", "v2", 1, 0),
            ("pii", None, 1, 0),
            ("pii", "v1", 3, 2),
        ]
        assert (got[2].latency_ms_p50, got[2].latency_ms_p95) == (20.0, pytest.approx(29.0))
        assert got[2].num_reviewed_blocked == 0 and got[2].num_bypass_inputs == 0
        assert any_store.guardrail_stats("p", END, END + timedelta(hours=1)) == []

    def test_a_rerun_that_passed_clears_the_bypass(self, any_store: TraceStore) -> None:
        """Only the newest verdict of a span counts (docs/evals.md): a toxicity failure that a
        re-run passed no longer makes the check that let the output through a bypass."""
        _needs_scores(any_store)
        rerun, still, failed_run = (os.urandom(16).hex() for _ in range(3))
        recs = []
        for tid in (rerun, still, failed_run):
            recs.append(span_record(trace_id=tid))  # the answer, scored
            stage = {"sightline.guardrail.stage": "output"}
            recs.append(span_record(trace_id=tid, kind="guardrail", name="tox", attributes=stage))
        any_store.insert_batches([batch(*recs)])
        first, later = T0 + timedelta(hours=4), T0 + timedelta(hours=5)
        llm = {r["trace_id"]: r for r in recs if r["kind"] == "llm"}
        any_store.add_scores(
            [_score(llm[t], "toxicity", value=0.1, passed=False, created_at=first)
             for t in (rerun, still, failed_run)]
            + [_score(llm[rerun], "toxicity", value=0.9, passed=True, created_at=later)]
            # a run that raised is no verdict: the failure before it stands
            + [_score(llm[failed_run], "toxicity", label="failed", created_at=later)]
        )  # fmt: skip
        [g] = any_store.guardrail_stats("p", T0, END)
        assert (g.num_checks, g.num_bypass_outputs) == (3, 2)
        q = MetricQuery(
            project_id="p", metric=METRICS["guardrail_bypass_rate"], agg="avg", start=T0, end=END
        )
        [series] = any_store.query_metric(q)
        assert series.points[0][1] == pytest.approx(2 / 3)


class TestReRunScoresCountOnce:
    """An evaluator re-run (or a relabel, a changed vote) appends rows: the A/B sample, the
    release values and task outcomes read each span's newest verdict of each name and source."""

    def _scored(self, st: TraceStore) -> list[dict[str, Any]]:
        _needs_scores(st)
        recs = [span_record(variant="A", service_name="a", start=T0 + timedelta(minutes=i))
                for i in range(4)]  # fmt: skip
        st.insert_batches([batch(*recs)])
        first, rerun = T0 + timedelta(hours=4), T0 + timedelta(hours=5)
        st.add_scores(
            [_score(r, "relevance", value=0.2, passed=False, created_at=first) for r in recs]
            + [_score(r, "relevance", value=0.9, passed=True, created_at=rerun) for r in recs]
            # an evaluator run that raised does not erase the verdict before it
            + [_score(recs[0], "relevance", label="failed", created_at=rerun + timedelta(1))]
            # a person's label of the same name is a verdict of its own (``human.relevance``)
            + [_score(recs[1], "relevance", value=0.0, passed=False, source="human",
                      created_at=first)]
            # a changed thumbs vote on one trace: the newest counts
            + [_score(recs[2], "feedback", value=v, span_id=None, source="user",
                      created_at=first + timedelta(minutes=i))
               for i, v in enumerate([-1.0, 1.0])]
        )  # fmt: skip
        return recs

    def test_compare_sample_counts_each_span_once_with_its_newest_score(
        self, any_store: TraceStore
    ) -> None:
        self._scored(any_store)
        got = any_store.compare_sample(CostQuery(project_id="p", start=T0, end=END), "variant", "A")
        assert got.num_spans == 4
        assert got.scores == {"relevance": [0.9] * 4, "human.relevance": [0.0]}
        assert got.passed == {"relevance": [True] * 4, "human.relevance": [False]}
        assert got.feedback == [1.0]

    def test_compare_values_count_each_span_once_with_its_newest_score(
        self, any_store: TraceStore
    ) -> None:
        self._scored(any_store)
        got = any_store.compare_values("p", T0, END, "a")
        # the human label is a score of the calls too (docs/releases.md), once, under its own
        # name: a person's 0/1 verdict is not mixed into the evaluator's distribution
        assert got["score:relevance"] == [0.9] * 4
        assert got["score:human.relevance"] == [0.0]

    def test_task_costs_read_the_newest_verdicts(self, any_store: TraceStore) -> None:
        recs = self._scored(any_store)
        # the re-run passed every span; only the person's fail (span 1) still fails its task,
        # and the changed vote (span 2's trace) is positive
        (got,) = any_store.task_costs(CostQuery(project_id="p", start=T0, end=END), ())
        assert (got.tasks, got.successful, got.failed, got.unjudged) == (len(recs), 3, 1, 0)
