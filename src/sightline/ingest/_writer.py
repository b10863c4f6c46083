"""Group commit: many requests share one transaction, each is acknowledged once it is durable."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from sightline.errors import Overloaded, StoreError, StoreUnavailable, UnstorableBatch
from sightline.store.base import TraceStore

__all__ = ["GroupCommitWriter"]

log = structlog.get_logger("sightline.ingest")


@dataclass(slots=True)
class _Pending:
    batch: Any
    num_spans: int
    future: Future[int]
    signal: str = "spans"


def _settle(p: _Pending, result: int = 0, *, error: BaseException | None = None) -> None:
    """Complete ``p``'s future, unless its request gave up on it (a cancelled await cancels it).

    Setting a cancelled future raises, and that must never end the writer's thread.
    """
    try:
        if error is not None:
            p.future.set_exception(error)
        else:
            p.future.set_result(result)
    except InvalidStateError:
        pass


def _unavailable() -> StoreUnavailable:
    return StoreUnavailable("the store cannot write right now; retry later", retry_after_s=2)


class GroupCommitWriter:
    """The one thread that writes spans.

    ``submit`` queues a prepared batch and returns a future that completes when the transaction
    holding it has committed (or fails with the store's error). While a transaction runs, new
    batches accumulate and the next transaction takes them all, up to ``max_batch_spans``: under
    load, commits grow instead of queueing up. The queue is bounded in spans; past the bound
    ``submit`` raises :class:`Overloaded` so clients retry later instead of memory growing.

    A failed commit fails its requests with :class:`StoreUnavailable` (503, retry later; none
    of them was acknowledged) and marks the writer unhealthy. Later commits keep trying; while
    the queue is idle the writer probes the store every ``probe_interval_s`` with
    ``check_writable``, so ``healthy`` (and ``/readyz``) turn back by themselves when the store
    returns, without a restart. ``ready`` (what ``/readyz`` answers) also waits until no write
    has failed for ``settle_s``: a nearly full disk takes a small commit between failed large
    ones, and a load balancer should not be sent back to a store that still refuses most writes.
    A batch the store refuses for its rows (:class:`UnstorableBatch`) fails only its own
    request (400), leaves the writer healthy, and the others of its commit are committed.

    Most of a DuckDB insert's CPU is a fixed cost per statement (~8 ms, whatever the rows), so
    a commit of two requests' batches costs much less than two commits. Requests announce
    themselves while they are still decoding (:meth:`expect`); when a commit would start
    while announced batches are on their way, the writer waits for them up to ``linger_s``
    (each request is still acknowledged only after the commit holding it). ``linger_s = 0``
    commits at once, as before.

    Once no batch has come for ``idle_s`` after a commit, the writer lets the store do its
    upkeep (``checkpoint_when_idle``: DuckDB folds its write-ahead log into the file), so
    that the next burst's commits do not wait for it.
    """

    def __init__(
        self,
        store: TraceStore,
        *,
        max_queue_spans: int = 200_000,
        max_batch_spans: int = 50_000,
        on_commit: Callable[[list[Any]], None] | None = None,
        probe_interval_s: float = 1.0,
        fault_file: Path | None = None,
        linger_s: float = 0.0,
        settle_s: float = 2.0,
        idle_s: float = 0.05,
    ) -> None:
        self._store = store
        self._max_queue = max_queue_spans
        self._max_batch = max_batch_spans
        self._on_commit = on_commit
        self._queue: deque[_Pending] = deque()
        self._queued_spans = 0
        self._expected = 0
        """Batches announced with :meth:`expect` and not yet submitted (nor given up)."""
        self._linger_s = linger_s
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sightline-writer", daemon=True)
        self._probe_interval_s = probe_interval_s
        self._fault_file = fault_file
        """Test only (``SIGHTLINE_TEST_STORE_FAULT_FILE``): while it exists, commits fail."""
        self.num_commits = 0
        self.num_lingers = 0
        """Commits that waited for announced batches."""
        self.num_spans_committed = 0
        self.num_failed_commits = 0
        self.num_unstorable = 0
        """Requests whose rows the store refused (answered 400, the others committed)."""
        self.last_error: str | None = None
        """Why the last commit or probe failed, while the writer is unhealthy."""
        self._idle_s = idle_s
        self._upkeep_due = False
        """A commit happened since the store's last upkeep."""
        self.num_upkeeps = 0
        """Idle upkeeps that did something (DuckDB: checkpoints)."""
        self._settle_s = settle_s
        self._failed_at = -math.inf
        """When a commit or probe last failed (``time.monotonic()``)."""

    @property
    def healthy(self) -> bool:
        """False from a failed commit until a commit or a probe succeeds again."""
        return self.last_error is None

    @property
    def ready(self) -> bool:
        """Healthy, and no commit or probe has failed for ``settle_s``."""
        return self.healthy and time.monotonic() - self._failed_at >= self._settle_s

    @property
    def queued_spans(self) -> int:
        """Spans accepted but not yet committed."""
        return self._queued_spans

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Commit what is queued, then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def expect(self) -> None:
        """Announce a batch being prepared: a commit may wait ``linger_s`` for it.

        Each call must be followed by exactly one ``submit(..., expected=True)`` or
        :meth:`unexpect` (the batch turned out empty, or its preparation failed).
        """
        if self._linger_s > 0:
            with self._cond:
                self._expected += 1

    def unexpect(self) -> None:
        """The announced batch will not come."""
        if self._linger_s > 0:
            with self._cond:
                self._expected -= 1
                self._cond.notify()

    def submit(
        self, batch: Any, num_spans: int, *, signal: str = "spans", expected: bool = False
    ) -> Future[int]:
        """Queue a prepared batch; the future resolves to its span count once committed.

        ``signal`` is ``spans``, or ``metrics``/``logs`` for OTLP metric points and log records
        (Arrow tables of ``otel_metric_points``/``otel_logs`` rows), which share the queue bound
        and the commit cadence but go to their own tables.
        """
        fut: Future[int] = Future()
        with self._cond:
            if expected and self._linger_s > 0:
                self._expected -= 1  # arrived (or refused below): no longer worth waiting for
            if self._stopping:
                raise Overloaded("server is shutting down", retry_after_s=5)
            if self._queued_spans and self._queued_spans + num_spans > self._max_queue:
                raise Overloaded(
                    f"ingest queue full ({self._queued_spans} spans waiting); retry later",
                    retry_after_s=1,
                )
            self._queue.append(_Pending(batch, num_spans, fut, signal))
            self._queued_spans += num_spans
            self._cond.notify()
        return fut

    def _take(self) -> list[_Pending] | str | None:
        """The next batches to commit; ``"probe"`` or ``"upkeep"`` while idle; None: stop."""
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                if not self.healthy:
                    if not self._cond.wait(self._probe_interval_s) and not self._queue:
                        return "probe"  # idle while unhealthy
                    continue
                if self._upkeep_due:
                    # not while an announced batch is on its way (linger_s)
                    if not self._cond.wait(self._idle_s) and not self._queue and not self._expected:
                        self._upkeep_due = False
                        return "upkeep"
                    continue
                self._cond.wait()
            if self._expected > 0 and not self._stopping:
                self._linger()
            taken = [self._queue.popleft()]
            n = taken[0].num_spans
            while self._queue and n + self._queue[0].num_spans <= self._max_batch:
                p = self._queue.popleft()
                n += p.num_spans
                taken.append(p)
            return taken

    def _linger(self) -> None:
        """Wait (holding the condition) up to ``linger_s`` for the announced batches."""
        self.num_lingers += 1
        deadline = time.monotonic() + self._linger_s
        while self._expected > 0 and not self._stopping and self._queued_spans < self._max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _run(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            if isinstance(taken, str):
                if taken == "probe":
                    self._probe()
                else:
                    self._upkeep()
                continue
            n = sum(p.num_spans for p in taken)
            try:
                self._commit(taken)
            finally:
                with self._cond:
                    self._queued_spans -= n

    def _commit(self, taken: list[_Pending]) -> bool:
        """Commit ``taken`` in one transaction and settle their futures.

        A request whose rows the store refuses (:class:`UnstorableBatch`) must not fail the
        others that share its commit, nor make the store look down: the commit is then retried
        in halves (log2 of the requests more commits, not one per request), and only the
        refused request fails (400). A store that cannot write fails them all (503), the parts
        not tried yet too, as they would fail the same way.

        Returns False when the store could not write.
        """
        n = sum(p.num_spans for p in taken)
        t0 = time.perf_counter()
        try:
            self._check_fault()
            spans = [p.batch for p in taken if p.signal == "spans"]
            if spans:
                self._store.insert_batches(spans)
            for signal in ("metrics", "logs"):
                other = [p.batch for p in taken if p.signal == signal]
                if other:
                    self._store.insert_signal_batches(signal, other)
        except UnstorableBatch as e:
            if len(taken) > 1:
                log.warning("commit_split", num_requests=len(taken), error=str(e))
                half = len(taken) // 2
                if not self._commit(taken[:half]):
                    for p in taken[half:]:  # not tried: they would fail the same way
                        _settle(p, error=_unavailable())
                    return False
                return self._commit(taken[half:])
            log.warning("batch_unstorable", num_spans=n, error=str(e))
            self.num_unstorable += 1
            _settle(
                taken[0],
                error=UnstorableBatch("the store refused this batch's rows; it was not stored"),
            )
            return True
        except StoreError as e:
            log.error("commit_failed", num_spans=n, error=str(e))
            self._fail(taken, str(e))
            return False
        except Exception as e:  # a daemon loop must survive anything; logged and failed
            log.exception("commit_crashed", num_spans=n)
            self._fail(taken, f"commit failed: {type(e).__name__}")
            return False
        self._recovered()
        self._upkeep_due = True
        self.num_commits += 1
        self.num_spans_committed += n
        log.debug(
            "batch_committed",
            num_spans=n,
            num_requests=len(taken),
            duration_ms=round((time.perf_counter() - t0) * 1000, 2),
        )
        if self._on_commit is not None and spans:
            try:
                self._on_commit(spans)
            except Exception:  # metrics must never fail a commit
                log.exception("on_commit_failed")
        for p in taken:
            _settle(p, p.num_spans)
        return True

    def _check_fault(self) -> None:
        if self._fault_file is not None and self._fault_file.exists():
            raise StoreError("injected store fault (test only)")

    def _fail(self, taken: list[_Pending], error: str) -> None:
        self.num_failed_commits += 1
        self._failed(error)
        # The details (paths, engine messages) stay in the log; clients learn to retry.
        for p in taken:
            _settle(p, error=_unavailable())

    def _failed(self, error: str) -> None:
        self.last_error = error
        self._failed_at = time.monotonic()

    def _recovered(self) -> None:
        if self.last_error is not None:
            log.warning("store_recovered", after_error=self.last_error)
            self.last_error = None

    def _upkeep(self) -> None:
        t0 = time.perf_counter()
        try:
            done = self._store.checkpoint_when_idle()
        except Exception as e:  # a daemon loop must survive anything
            # A failed checkpoint can leave the store unusable (DuckDB invalidates its database
            # on a full disk): unhealthy, so the probe reopens it even if no request comes.
            log.warning("store_upkeep_failed", error=str(e))
            self._failed(f"upkeep failed: {e}" if isinstance(e, StoreError) else type(e).__name__)
            return
        if done:
            self.num_upkeeps += 1
            log.debug("store_upkeep", duration_ms=round((time.perf_counter() - t0) * 1000, 2))

    def _probe(self) -> None:
        try:
            self._check_fault()
            self._store.check_writable()
        except StoreError as e:
            self._failed(str(e))
        except Exception as e:  # a daemon loop must survive anything; logged
            log.exception("store_probe_crashed")
            self._failed(f"probe failed: {type(e).__name__}")
        else:
            self._recovered()
