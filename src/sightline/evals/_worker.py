"""Evaluators in a child process, so their Python work never holds the server's GIL.

The online runner stays in the server (it owns the store: DuckDB allows one writer process, and
the cursor on ``spans.ingest_seq`` moves in the same transaction as the scores). Only
``evaluate(cases)`` crosses to the child: cases go over a pipe, results (or the evaluator's
exception) come back. The child is niced, so under load ingestion gets the CPU first, and it is
started on the first batch and stopped with the runner.

Measured (bench/ingest.py on this 2-core machine, same load): evaluator threads inside the
server took ingestion from ~4.2k to ~2.2k spans/s; in the child, ingest runs as with evaluation
off while the scores still arrive.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

import structlog

from sightline.evals.base import EvalCase, EvalResult, Evaluator

__all__ = ["EvalWorker", "EvaluatorWorkerError"]

log = structlog.get_logger("sightline.evals")

_NICE = 5
"""How much lower the child's priority is than the server's (ingest comes first). 10 starved
it on a loaded 2-core machine (no score within 30 s of demo traffic while the test suite ran):
5 still gives ingestion about three times its share of a contended core."""


class EvaluatorWorkerError(RuntimeError):
    """The evaluator worker process died, or raised something that could not be sent back."""


def _child_main(conn: Connection, names: list[str], options: dict[str, dict[str, Any]]) -> None:
    """The child's loop: build the evaluators, then answer ``(index, cases)`` until EOF."""
    try:
        os.nice(_NICE)
    except OSError:  # not allowed here (some containers): run at the same priority
        pass
    from sightline.evals._registry import load_evaluators

    evaluators = load_evaluators(names, options)
    try:
        conn.send(("ready", None))  # the models are loaded: from here on calls are timed
    except (BrokenPipeError, ConnectionResetError):
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        index, cases = msg
        try:
            out: tuple[str, Any] = ("ok", evaluators[index].evaluate(cases))
        except Exception as e:  # sent back: the runner records the batch as failed
            out = ("error", e)
        try:
            try:
                conn.send(out)
            except (BrokenPipeError, ConnectionResetError):
                raise
            except Exception:  # the exception (or a result) does not pickle: say so instead
                kind, value = out
                conn.send(("error", EvaluatorWorkerError(f"{type(value).__name__}: {value}")))
        except (BrokenPipeError, ConnectionResetError):  # the server is gone: nobody to answer
            return


class _RemoteEvaluator:
    """Stands for an evaluator of the worker: same name, version and ``judges``."""

    def __init__(self, worker: EvalWorker, index: int, ev: Evaluator) -> None:
        self._worker = worker
        self._index = index
        self.name = ev.name
        self.version = ev.version
        self.judges = getattr(ev, "judges", "answer")

    def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
        """Judge ``cases`` in the worker process."""
        return self._worker.call(self._index, list(cases))


class EvalWorker:
    """One child process that runs the evaluators ``load_evaluators(names, options)`` builds.

    ``evaluators`` are stand-ins to give the runner; their ``evaluate`` blocks until the child
    answers. Calls are serialised (the runner has one thread). If the child dies, the call that
    saw it fails (the runner stores that batch's scores as failed) and the next one starts a
    fresh child.

    With ``timeout_s``, a call the child has not answered within that many seconds (a
    catastrophic regular expression, a huge text, a judge that never answers) kills the child
    and raises :class:`EvaluatorWorkerError`: the runner stores that evaluator's scores of the
    batch as failed and goes on, instead of waiting forever with every other evaluator. The
    time the child takes to load its models at start is not counted.
    """

    def __init__(
        self,
        names: Sequence[str],
        options: Mapping[str, Mapping[str, Any]],
        local: Sequence[Evaluator],
        *,
        timeout_s: float | None = None,
    ) -> None:
        self.timeout_s = timeout_s or None
        self._names = list(names)
        self._options = {k: dict(v) for k, v in options.items()}
        self.evaluators: list[Evaluator] = [
            _RemoteEvaluator(self, i, ev) for i, ev in enumerate(local)
        ]
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        # forkserver: the server has threads (writer, DuckDB), which fork would copy mid-lock.
        ctx = multiprocessing.get_context("forkserver")
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_child_main,
            args=(child, self._names, self._options),
            name="sightline-evaluators",
            daemon=True,
        )
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        # Wait for the models to load (untimed), so a call's time limit is the call's own.
        # The child dies instead of answering when an evaluator cannot be built: EOFError.
        parent.recv()
        log.info("eval_worker_started", pid=proc.pid, evaluators=self._names)
        return parent

    def call(self, index: int, cases: list[EvalCase]) -> list[EvalResult | None]:
        """Run evaluator ``index`` on ``cases`` in the child; re-raise what it raised."""
        with self._lock:
            try:
                conn = self._conn if self._conn is not None else self._start()
                conn.send((index, cases))
                if self.timeout_s is not None and not conn.poll(self.timeout_s):
                    self._reap(kill=True)
                    raise EvaluatorWorkerError(
                        f"evaluator {self.evaluators[index].name!r} took more than "
                        f"{self.timeout_s:g} s on {len(cases)} cases (eval_timeout_s): its "
                        "process was stopped"
                    )
                status, value = conn.recv()
            except (EOFError, OSError) as e:
                self._reap()
                raise EvaluatorWorkerError(f"evaluator process died: {e!r}") from None
        if status == "ok":
            return list(value)
        raise value

    def _reap(self, *, kill: bool = False) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            if kill:
                self._proc.kill()
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
            self._proc = None

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the child to exit after its current batch and wait for it (kill it past that)."""
        if not self._lock.acquire(timeout=timeout_s):
            if self._proc is not None:  # a batch is stuck: the runner abandons it anyway
                self._proc.kill()
            return
        try:
            if self._conn is not None:
                try:
                    self._conn.send(None)
                except OSError:
                    pass
            self._reap()
        finally:
            self._lock.release()
