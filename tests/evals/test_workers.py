"""Several evaluation workers share one store through claims (both coordinator backends):
every span is scored exactly once, and a worker killed mid-batch has its range scored exactly
once by another after its lease runs out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from _coord import BACKENDS, MakeCoordinator, coordinators
from _evalspans import insert, rag_trace
from sightline.evals import EvalCase, EvalResult, EvalRunner, RunnerOptions
from sightline.model import Score
from sightline.store import DuckDBStore, ScoreQuery

P = "proj"
HERE = Path(__file__).parent


class Counting:
    """Counts every case it is asked to judge (shared by the workers of a test)."""

    version = "1"

    def __init__(self, name: str, seen: Counter[str], lock: threading.Lock) -> None:
        self.name = name
        self.seen = seen
        self.lock = lock

    def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
        time.sleep(0.002 * len(cases))  # long enough for the workers to interleave
        with self.lock:  # (the runner's warm-up case has no id)
            self.seen.update(f"{self.name}:{c.case_id}" for c in cases if c.case_id)
        return [EvalResult(score=1.0, label="ok", passed=True) for _ in cases]


@pytest.fixture(params=BACKENDS)
def coord(request: pytest.FixtureRequest) -> Iterator[tuple[MakeCoordinator, str, str]]:
    for make, prefix in coordinators(request.param):
        yield make, prefix, request.param


def _scores(store: DuckDBStore) -> list[Score]:
    out: list[Score] = []
    cursor = None
    while True:
        page = store.query_scores(ScoreQuery(project_id=P, limit=1000, cursor=cursor))
        out.extend(page.scores)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def _llm_span_ids(store: DuckDBStore) -> set[str]:
    with store._cursor() as cur:
        rows = cur.execute("SELECT span_id FROM spans WHERE kind = 'llm'").fetchall()
    return {str(r[0]) for r in rows}


def test_n_workers_score_every_span_exactly_once_while_spans_arrive(
    tmp_path: Path, coord: tuple[MakeCoordinator, str, str]
) -> None:
    make, _, _ = coord
    store = DuckDBStore(tmp_path / "db.duckdb")
    store.migrate()
    seen: Counter[str] = Counter()
    lock = threading.Lock()
    runners = [
        EvalRunner(
            store,
            [Counting("a", seen, lock), Counting("b", seen, lock)],
            coordinator=make(store),
            owner=f"w{i}",
            options=RunnerOptions(grace_s=0.0, batch_size=8, interval_s=0.05, lease_s=30),
        )
        for i in range(4)
    ]
    # some commits before the workers start, more while they run (one commit: 1-6 traces)
    for i in range(20):
        insert(store, [x for j in range(1 + i % 6) for x in rag_trace(P, "q?", ["d"], f"a{i}{j}")])
    for r in runners:
        r.start()
    try:
        for i in range(40):
            recs = [x for j in range(1 + i % 4) for x in rag_trace(P, "q?", ["d"], f"b{i}{j}")]
            insert(store, recs)
            time.sleep(0.01)
        spans = _llm_span_ids(store)
        deadline = time.monotonic() + 60
        while len(_scores(store)) < 2 * len(spans) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # anything extra would show now
    finally:
        for r in runners:
            r.stop()
    got = _scores(store)
    per = Counter((s.name, s.span_id) for s in got)
    assert set(per) == {(n, s) for n in ("a", "b") for s in spans}
    assert max(per.values()) == 1
    # and no span was even evaluated twice (claims are disjoint)
    assert len(seen) == 2 * len(spans) and max(seen.values()) == 1
    assert sum(1 for r in runners if r.num_spans > 0) >= 2  # the work was shared
    assert sum(r.num_spans for r in runners) == len(spans)
    assert make(store).claims_state("online").claims == ()
    store.close()


def test_a_worker_killed_mid_batch_has_its_range_scored_once_after_its_lease(
    tmp_path: Path, coord: tuple[MakeCoordinator, str, str]
) -> None:
    make, prefix, backend = coord
    db = tmp_path / "db.duckdb"
    store = DuckDBStore(db)
    store.migrate()
    # one commit of 50 LLM spans: one claim, read in batches of 10
    insert(store, [x for i in range(50) for x in rag_trace(P, "q?", ["d"], f"answer {i}")])
    spans = _llm_span_ids(store)
    store.close()  # DuckDB: one process at a time; the doomed worker opens it now

    lease_s = 2.0
    marker = tmp_path / "markers"
    marker.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1] / "src"), str(HERE)])}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "_crash_worker.py"),
            str(db),
            backend,
            prefix,
            str(lease_s),
            str(marker),
        ],  # fmt: skip
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not (marker / "hanging").exists():
            assert proc.poll() is None, "the worker exited early"
            assert time.monotonic() < deadline, "the worker never reached its third batch"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = time.monotonic()
    first = (marker / "evaluated.txt").read_text().split()
    assert len(first) == 30  # two batches scored and stored, the third in flight

    store = DuckDBStore(db)
    store.migrate()
    assert len(_scores(store)) == 20
    seen: Counter[str] = Counter()
    other = EvalRunner(
        store,
        [Counting("count", seen, threading.Lock())],
        coordinator=make(store),
        owner="survivor",
        options=RunnerOptions(grace_s=0.0, batch_size=10, lease_s=30),
    )
    [held] = make(store).claims_state("online").claims
    assert held.owner == "doomed"
    # while the lease runs, the range is not the survivor's
    assert other.step() is False
    assert len(_scores(store)) == 20
    while other.step() is False:
        assert time.monotonic() - killed_at < lease_s + 10
        time.sleep(0.1)
    while other.step():
        pass
    assert time.monotonic() - killed_at >= lease_s - 0.5  # (lease measured from a renewal)
    got = _scores(store)
    per = Counter(s.span_id for s in got)
    assert set(per) == spans and max(per.values()) == 1
    assert other.num_spans == 50  # the whole range again: the stored 20 were not added twice
    assert make(store).claims_state("online").claims == ()
    store.close()


def test_appending_the_same_online_scores_again_adds_nothing(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "db.duckdb")
    store.migrate()
    insert(store, rag_trace(P, "q?", ["d"], "a"))
    seen: Counter[str] = Counter()
    r = EvalRunner(
        store,
        [Counting("c", seen, threading.Lock())],
        options=RunnerOptions(grace_s=0.0),
    )
    r.step()
    [s] = _scores(store)
    again = r._score(  # the same span evaluated again, as after a take-over
        [
            __import__("sightline.evals._runner", fromlist=["_Target"])._Target(
                P,
                store.get_trace(P, s.trace_id)[2],
                EvalCase(case_id=f"{s.trace_id}:{s.span_id}"),
                False,
            )
        ]
    )
    assert [x.score_id for x in again] == [s.score_id]
    assert store.append_scores_once(again) == 0
    assert len(_scores(store)) == 1
    store.close()


def test_thumbs_down_pass_runs_on_one_worker_at_a_time(
    tmp_path: Path, coord: tuple[MakeCoordinator, str, str]
) -> None:
    """A thumbs-down after sampling skipped a span gets it scored once, not once per worker."""
    from datetime import UTC, datetime

    make, _, _ = coord
    store = DuckDBStore(tmp_path / "db.duckdb")
    store.migrate()
    recs = rag_trace(P, "q?", ["d"], "a")
    insert(store, recs)
    seen: Counter[str] = Counter()
    lock = threading.Lock()
    workers = [
        EvalRunner(
            store,
            [Counting("c", seen, lock)],
            coordinator=make(store),
            owner=f"w{i}",
            options=RunnerOptions(grace_s=0.0, sample_rate=0.0, lease_s=30),
        )
        for i in range(3)
    ]
    for w in workers:
        while w.step():
            pass
    assert _scores(store) == []  # sampled out
    store.add_scores(
        [
            Score(
                project_id=P,
                score_id="fb1",
                trace_id=recs[0]["trace_id"],
                name="feedback",
                value=-1.0,
                source="user",
                created_at=datetime.now(UTC),
            )
        ]
    )
    for _ in range(2):
        for w in workers:
            w.step()
    got = [s for s in _scores(store) if s.source == "evaluator"]
    assert [(s.name, s.span_id) for s in got] == [("c", recs[2]["span_id"])]
    assert seen == Counter({f"c:{recs[2]['trace_id']}:{recs[2]['span_id']}": 1})
    store.close()


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_workers_over_the_lag_bound_score_only_the_forced_spans_once(
    tmp_path: Path, coord: tuple[MakeCoordinator, str, str]
) -> None:
    make, _, _ = coord
    store = DuckDBStore(tmp_path / "db.duckdb")
    store.migrate()
    plain = [rag_trace(P, "q?", ["d"], f"a{i}") for i in range(30)]
    errors = [rag_trace(P, "q?", ["d"], f"e{i}", status="error") for i in range(3)]
    for i in range(0, 33, 3):  # 11 commits
        insert(store, [x for t in (plain + errors)[i : i + 3] for x in t])
    seen: Counter[str] = Counter()
    lock = threading.Lock()
    clock = _Clock()
    runners = [
        EvalRunner(
            store,
            [Counting("a", seen, lock)],
            coordinator=make(store),
            owner=f"w{i}",
            options=RunnerOptions(grace_s=2.0, batch_size=4, lease_s=30, max_lag_s=5.0),
            clock=clock,
        )
        for i in range(2)
    ]
    for r in runners:
        assert r.step() is False  # the commits are seen, inside the grace period
    clock.t += 8.0  # over the bound
    for _ in range(50):
        if not any([r.step() for r in runners]):  # a list: every worker steps
            break
    per = Counter(s.span_id for s in _scores(store))
    forced = {t[2]["span_id"] for t in errors}
    assert set(per) == forced and max(per.values()) == 1
    assert sum(r.num_shed for r in runners) == 30
    assert sum(r.num_spans for r in runners) == 33
    assert make(store).claims_state("online").claims == ()
    store.close()
