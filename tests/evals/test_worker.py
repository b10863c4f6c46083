"""The evaluator process: same results as in-process, errors come back, a dead child restarts."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _evalspans import insert, rag_trace
from sightline.evals import (
    EvalCase,
    EvalRunner,
    EvaluatorWorkerError,
    EvalWorker,
    RunnerOptions,
    load_evaluators,
)
from sightline.store import DuckDBStore, ScoreQuery

NAMES = ["format"]
OPTIONS = {"format": {"regex": r"The API .*"}}
CASES = [
    EvalCase(answer="The API allows 600 requests per minute."),
    EvalCase(answer="Invoices are emailed monthly."),
]


@pytest.fixture
def worker() -> Iterator[EvalWorker]:
    w = EvalWorker(NAMES, OPTIONS, load_evaluators(NAMES, OPTIONS))
    yield w
    w.stop()


def _nice(pid: int) -> int:
    # field 19 of /proc/PID/stat, counted after the command name in parentheses
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


class TestEvalWorker:
    def test_stand_ins_carry_name_and_version(self, worker: EvalWorker) -> None:
        [ev] = worker.evaluators
        [local] = load_evaluators(NAMES, OPTIONS)
        assert (ev.name, ev.version) == (local.name, local.version)

    def test_results_equal_in_process_results(self, worker: EvalWorker) -> None:
        [local] = load_evaluators(NAMES, OPTIONS)
        remote = worker.evaluators[0].evaluate(CASES)
        assert remote == local.evaluate(CASES)
        assert [r.passed for r in remote if r is not None] == [True, False]

    def test_runs_in_a_niced_child_process(self, worker: EvalWorker) -> None:
        worker.evaluators[0].evaluate(CASES)
        pid = worker._proc.pid
        assert pid != os.getpid()
        assert _nice(pid) >= _nice(os.getpid()) + 1

    def test_an_evaluator_exception_is_raised_in_the_server(self, worker: EvalWorker) -> None:
        with pytest.raises(TypeError):
            worker.evaluators[0].evaluate([EvalCase(answer=123)])  # type: ignore[arg-type]
        assert worker.evaluators[0].evaluate(CASES)[0] is not None  # the child lives on

    def test_a_dead_child_fails_one_call_then_restarts(self, worker: EvalWorker) -> None:
        worker.evaluators[0].evaluate(CASES)
        pid = worker._proc.pid
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        with pytest.raises(EvaluatorWorkerError):
            worker.evaluators[0].evaluate(CASES)
        assert len(worker.evaluators[0].evaluate(CASES)) == 2
        assert worker._proc.pid != pid

    def test_stop_ends_the_child(self, worker: EvalWorker) -> None:
        worker.evaluators[0].evaluate(CASES)
        proc = worker._proc
        worker.stop()
        assert not proc.is_alive()


def test_runner_stores_scores_from_the_worker_and_stops_it(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "db.duckdb")
    store.migrate()
    try:
        insert(store, rag_trace("proj", "Limits?", ["600 per minute."], "The API allows 600."))
        worker = EvalWorker(NAMES, OPTIONS, load_evaluators(NAMES, OPTIONS))
        runner = EvalRunner(
            store,
            worker.evaluators,
            options=RunnerOptions(grace_s=0),
            on_stop=worker.stop,
        )
        runner.step()
        runner.step()
        scores = store.query_scores(ScoreQuery(project_id="proj", name="format")).scores
        assert [s.passed for s in scores] == [True]
        proc = worker._proc
        assert proc.is_alive()
        runner.stop()
        assert not proc.is_alive()
    finally:
        store.close()


def test_child_exits_quietly_when_the_server_is_gone() -> None:
    """A child whose server died while it judged a batch exits 0, with no traceback.

    Seen in the scale-out test: a worker node was stopped while its evaluator was answering, and
    the child printed two BrokenPipeError tracebacks into the node's log.
    """
    import subprocess
    import sys

    script = (
        "from multiprocessing import Pipe\n"
        "from sightline.evals._worker import _child_main\n"
        "server, child = Pipe()\n"
        "server.send((99, []))  # no evaluator 99: the child answers with an error\n"
        "server.close()  # ...to a server that is gone\n"
        "_child_main(child, ['format'], {'format': {'regex': 'x'}})\n"
        "print('exited')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout.strip() == "exited"


REDOS = {"format": {"regex": r"(a+)+$"}}
"""A catastrophic pattern: ``fullmatch`` on 40 a's and a "!" backtracks for ages."""
STUCK = EvalCase(answer="a" * 40 + "!")


def test_a_stuck_evaluator_is_stopped_after_the_timeout_and_the_next_call_works() -> None:
    w = EvalWorker(["format"], REDOS, load_evaluators(["format"], REDOS), timeout_s=2.0)
    try:
        [ev] = w.evaluators
        assert ev.evaluate([EvalCase(answer="aaa")])[0] is not None  # child up, models loaded
        pid = w._proc.pid
        t0 = time.monotonic()
        with pytest.raises(EvaluatorWorkerError, match="took more than 2 s on 1 cases"):
            ev.evaluate([STUCK])
        assert time.monotonic() - t0 < 10
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
        [r] = ev.evaluate([EvalCase(answer="aaaa")])  # a fresh child
        assert r is not None and r.passed and w._proc.pid != pid
    finally:
        w.stop()


def _zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_runner_marks_a_stuck_evaluators_batch_failed_and_scores_the_rest(
    tmp_path: Path,
) -> None:
    """Before, the runner waited on the child forever: no evaluator scored anything again."""
    names = ["format", "refusal"]
    store = DuckDBStore(tmp_path / "db.duckdb")
    store.migrate()
    try:
        insert(store, rag_trace("proj", "Say a's", ["a"], STUCK.answer or ""))
        worker = EvalWorker(names, REDOS, load_evaluators(names, REDOS), timeout_s=3.0)
        runner = EvalRunner(
            store, worker.evaluators, options=RunnerOptions(grace_s=0), on_stop=worker.stop
        )
        t0 = time.monotonic()
        runner.step()
        runner.step()
        assert time.monotonic() - t0 < 30
        by_name = {s.name: s for s in store.query_scores(ScoreQuery(project_id="proj")).scores}
        fmt = by_name["format"]
        assert fmt.label == "failed" and fmt.value is None
        assert "took more than 3 s" in (fmt.explanation or "")
        assert by_name["refusal"].label != "failed"
        assert runner.num_failed == {"format": 1}
        runner.stop()
    finally:
        store.close()
