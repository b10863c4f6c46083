"""The online runner: a daemon that scores spans committed after its durable cursor.

Each tick it notes the store's last commit (``spans.ingest_seq``), and reads the spans of
commits that are at least ``grace_s`` old, so the other spans of a trace (retrieval, the root
with the user's question) have time to arrive. It builds a case for each span of the evaluated
kinds from its whole trace, samples per evaluator, runs each evaluator on its batch in a worker
thread (never on the event loop, never on the ingest path) and appends the scores together with
the new cursor in one transaction, so a restart resumes where the last batch ended. Between
batches it gives way to ingestion: while the server's decode workers are all busy, for up to
``yield_s``, it waits, so bursts of traffic are not slowed by the evaluators.

Failures: an evaluator that raises on a batch gets one score per case of that batch with
``label = "failed"``, ``value``/``passed`` null and the error in ``explanation``; the other
evaluators' scores of the batch are stored as usual. Score metrics leave failed rows out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from sightline._daemon import DaemonTask
from sightline.evals._cases import case_from_span, is_guardrail_hit
from sightline.evals.base import EvalCase, EvalResult, Evaluator
from sightline.model import Score, Span

if TYPE_CHECKING:
    from sightline.coordination import Claim, Coordinator

    # Types only: importing the store package loads DuckDB (seconds), which evaluators and
    # `sightline eval run` do not need. The runner receives its store from the server.
    from sightline.store._eval_records import EvalCursor, SeqSpan, SeqSpanKey, SessionTurn
    from sightline.store.base import TraceStore

__all__ = ["EvalRunner", "RunnerOptions", "sampled", "score_id"]

log = structlog.get_logger("sightline.evals")

_FEEDBACK_CURSOR_SUFFIX = ".feedback"
_TRACE_WINDOW = timedelta(hours=1)
_CLOCK_MARGIN = timedelta(minutes=10)
_SESSION_WINDOW = timedelta(days=1)
"""How far back the previous turn of a session is looked for."""
_SHED_KEYS = 8192
"""While shedding, keys read at once (or ``batch_size`` if larger): few of them are scored, and
a read of the forced traces costs about the same for 10 ids as for 2,000. Each id list sent
to a ClickHouse server is then at most ~340 KB (its URI limit is 1 MiB)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunnerOptions:
    """How the online runner reads and samples."""

    interval_s: float = 1.0
    """Pause between ticks when there is nothing left to read."""
    grace_s: float = 2.0
    """How long a commit waits before its spans are evaluated (the rest of the trace arrives)."""
    batch_size: int = 64
    """Spans read and evaluated together (also bounds how long ``stop`` may wait)."""
    kinds: tuple[str, ...] = ("llm",)
    """Span kinds evaluated."""
    sample_rate: float = 1.0
    """Share of spans each evaluator scores, unless ``sample_rates`` names it."""
    sample_rates: Mapping[str, float] = dataclasses.field(default_factory=dict)
    """Per-evaluator sample rates."""
    cursor_name: str = "online"
    """The durable cursor's name in the store (with a coordinator: the evaluator set's name,
    shared by every worker that runs the same evaluators)."""
    lease_s: float = 30.0
    """With a coordinator: how long a claim stays a worker's without a renewal (renewed before
    and after each batch, so a batch must take less)."""
    max_lag_s: float | None = 600.0
    """Load shedding: while the oldest committed span not yet evaluated has waited longer than
    this, only forced spans (errors, thumbs-down, guardrail hits) are evaluated and the others
    are skipped (``num_shed``), so the lag stays near this bound when spans arrive faster than
    the evaluators score them and the forced spans alone fit (skipping reads keys, not spans:
    a few thousand a second on 2 cores). A skipped span is scored later if its trace gets a
    thumbs-down. None: never skip (the lag grows as long as the overload lasts)."""
    yield_s: float = 5.0
    """While ingestion is saturated (the runner's ``saturation``: as many requests as decode
    workers, being decoded or waiting for their commit) and spans wait to be scored, the runner
    waits before its next batch, so that a burst of traffic gets the CPU before the evaluators
    do. A saturation that has lasted this long is steady load, not a burst: the runner then
    scores alongside it as usual; and it waits at most this long per batch. The wait counts
    in the lag, and past ``max_lag_s`` the runner no longer waits. 0: never wait."""


def sampled(span_id: str, evaluator: str, rate: float) -> bool:
    """Deterministic sampling: the same span and evaluator always decide the same way."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    h = hashlib.blake2b(f"{evaluator}:{span_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64 < rate


_YIELD_POLL_S = 0.02
"""How often a runner waiting for an ingestion burst to pass looks again."""


class _Stopping(Exception):
    """The server is stopping: abandon the batch."""


@dataclasses.dataclass(slots=True)
class _Batch:
    """What one read of the commit order found."""

    num: int
    """Spans read (scored or skipped)."""
    full: bool
    """As many spans as asked for: more may follow in the range."""
    last: tuple[int, str] | None
    """The last span read: its commit and ``project_id/trace_id/span_id``."""
    targets: list[_Target]
    """The spans to score."""

    def cursor(self, upto_seq: int) -> EvalCursor:
        """Where the next read starts: after the last span, or past ``upto_seq`` if none left."""
        if self.full and self.last is not None:
            return _cursor(*self.last)
        return _cursor(upto_seq)


@dataclasses.dataclass(slots=True)
class _Target:
    project_id: str
    span: Span
    case: EvalCase
    forced: bool
    """Error span, thumbs-down trace or guardrail hit: evaluated whatever the sample rate."""


class EvalRunner(DaemonTask):
    """Scores committed spans in the background; see the module docstring.

    ``step`` evaluates one batch synchronously (tests call it); the daemon's thread calls
    ``run_once`` every ``interval_s``, which steps until it has caught up. ``stop`` waits for
    the batch in flight, so the store can be closed right after.
    """

    name = "evaluator"

    def __init__(
        self,
        store: TraceStore,
        evaluators: Sequence[Evaluator],
        *,
        options: RunnerOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_stop: Callable[[], None] | None = None,
        coordinator: Coordinator | None = None,
        owner: str | None = None,
        saturation: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(interval_s=(options or RunnerOptions()).interval_s)
        self._saturation = saturation
        """Seconds ingestion has been saturated without a break, 0.0 when it is not (the
        server's ingest service), or None."""
        self.yielded_s = 0.0
        """Seconds spent waiting for ingestion bursts to pass (``yield_s``)."""
        self.coordinator = coordinator
        """Claims ranges of commits from it (several workers), instead of moving the cursor."""
        self.owner = owner or f"evaluator:{secrets.token_hex(4)}"
        """This worker's name in claims."""
        self._on_stop = on_stop
        """Called once the loop has ended (stops the evaluator process of the server)."""
        self.store = store
        self.evaluators = list(evaluators)
        self.options = options or RunnerOptions()
        self._clock = clock
        self._seen: deque[tuple[int, float]] = deque()
        """(last ingest_seq, when first seen): commit times as observed by this runner."""
        self._consumed_seq = 0
        self._lock = threading.Lock()
        self.num_spans = 0
        """Spans evaluated since start."""
        self.num_scores: dict[str, int] = {}
        self.num_failed: dict[str, int] = {}
        self.num_shed = 0
        """Spans skipped (not evaluated) because the lag was over ``max_lag_s``."""
        self._shedding = False
        self._shed_read = _SHED_KEYS
        """Keys the next shedding read asks for: about what the last one used (see there)."""
        self._warm = False
        self.last_batch_delay_s: float | None = None
        """Seconds from commit to scores, for the last batch."""

    # -- the daemon ----------------------------------------------------------------------------

    def run_once(self) -> None:
        """The daemon's tick: evaluate batches until none is full (or the server stops)."""
        if not self._warm:
            self.warm_up()
        while not self.stopping:
            self._yield_to_ingest()
            if self.stopping or not self.step():
                return

    def _yield_to_ingest(self) -> None:
        """Wait while ingestion is saturated, at most ``yield_s`` (see :class:`RunnerOptions`)."""
        saturation, limit = self._saturation, self.options.yield_s
        if saturation is None or limit <= 0:
            return

        def burst() -> bool:
            # saturated, and not for so long that it is steady load rather than a burst
            return 0.0 < saturation() < limit

        if not burst():
            return
        # the commits waiting are noted, so the lag shows the wait
        _, eligible = self._eligible()
        with self._lock:
            if eligible <= self._consumed_seq:
                return  # nothing to score yet: the step only looks (and runs feedback passes)
        # real time, not self._clock: this is a wait, and tests' clocks stand still
        t0 = last = noted = time.monotonic()
        while (
            burst()
            and last - t0 < limit
            and not self._over_lag_bound()
            and not self._stop.wait(_YIELD_POLL_S)
        ):
            now = time.monotonic()
            self.yielded_s += now - last  # as it goes: /metrics shows a long wait
            last = now
            if now - noted >= 1.0:
                noted = now
                self._eligible()
        self.yielded_s += time.monotonic() - last

    def _over_lag_bound(self) -> bool:
        # Past max_lag_s the overload is not a burst: the forced spans get the evaluator
        # process's (niced) share of the CPU again instead of waiting.
        bound = self.options.max_lag_s
        return bound is not None and self.lag_s() > bound

    def warm_up(self) -> None:
        """Load every evaluator's models on a tiny case, once, before the first batch.

        Models load lazily (embedder, spaCy, classifiers: seconds each); loading them at start,
        while the first traces arrive and wait out the grace period, keeps that time out of the
        first spans' evaluation lag. An evaluator that fails here is logged; its batches will
        say why again.
        """
        case = EvalCase(
            question="How do I reset my password?",
            answer="Open the sign-in page and choose Forgot password.",
            contexts=("To reset your password, open the sign-in page.",),
            previous_answer="Open the settings page.",
        )
        for ev in self.evaluators:
            if self.stopping:
                return
            try:
                ev.evaluate([case])
            except Exception:  # logged; the evaluator's batches record their own failures
                log.exception("evaluator_warm_up_failed", evaluator=ev.name)
        self._warm = True

    def on_stop(self) -> None:
        """Release what the runner was given to release (e.g. the evaluator process)."""
        if self._on_stop is not None:
            self._on_stop()

    def lag_s(self) -> float:
        """Seconds the oldest committed span not yet evaluated has waited; 0 when caught up."""
        with self._lock:
            for seq, t in self._seen:
                if seq > self._consumed_seq:
                    return max(0.0, self._clock() - t)
        return 0.0

    # -- one pass ------------------------------------------------------------------------------

    def _eligible(self) -> tuple[float, int]:
        """(now, the last commit old enough to evaluate)."""
        now = self._clock()
        last = self.store.last_ingest_seq()
        with self._lock:
            if not self._seen or last > self._seen[-1][0]:
                self._seen.append((last, now))
        eligible = 0
        for seq, t in self._seen:
            if now - t >= self.options.grace_s:
                eligible = seq
        return now, eligible

    def step(self) -> bool:
        """Evaluate one batch of eligible spans; True if a full batch was read (more may wait).

        With a coordinator, one claimed range instead (True: more may wait).
        """
        if self.coordinator is not None:
            return self._step_claimed(self.coordinator)
        now, eligible = self._eligible()
        cursor = self.store.get_eval_cursor(self.options.cursor_name) or _cursor(0)
        self._set_consumed(cursor)
        if eligible <= cursor.seq and not cursor.pos:
            self._feedback_pass(cursor)
            return False
        batch = self._read(cursor, eligible)
        new = batch.cursor(eligible)
        try:
            scores = self._score(batch.targets) if batch.targets else []
        except _Stopping:
            # Abandoned, not half-stored: the cursor stays, the next start redoes this batch.
            return False
        self.store.append_eval_scores(scores, cursor_name=self.options.cursor_name, cursor=new)
        self._set_consumed(new)
        if batch.last is not None:
            self.num_spans += batch.num
            last_seq = batch.last[0]
            with self._lock:
                seen_t = next((t for seq, t in self._seen if seq >= last_seq), now)
            self.last_batch_delay_s = max(0.0, self._clock() - seen_t)
            log.debug("eval_batch", num_spans=batch.num, num_scores=len(scores))
        if not batch.full:
            self._feedback_pass(new)
        return batch.full

    # -- several workers: claimed ranges ------------------------------------------------------

    def _start_seq(self) -> int:
        """Where the first claim starts: after what the single-worker cursor already scored."""
        c = self.store.get_eval_cursor(self.options.cursor_name)
        if c is None:
            return 0
        return c.seq - 1 if c.pos else c.seq

    def _step_claimed(self, coord: Coordinator) -> bool:
        name, lease_s = self.options.cursor_name, self.options.lease_s
        _, eligible = self._eligible()
        claim = coord.take_over(name, owner=self.owner, lease_s=lease_s)
        if claim is not None:
            log.warning("eval_claim_taken_over", lo=claim.lo, hi=claim.hi, attempts=claim.attempts)
        else:
            state = coord.claims_state(name)
            start = self._start_seq() if state.frontier is None else state.frontier
            self._set_consumed(_cursor(state.done_upto(start)))
            if eligible <= start:
                self._claimed_feedback_pass(coord, state.done_upto(start))
                return False
            # the range: whole commits holding about one batch of spans of the evaluated kinds
            # (one read's worth of keys while shedding)
            size = self._shed_keys() if self._shedding_now() else self.options.batch_size
            keys = self.store.list_span_keys_after(
                _cursor(start), upto_seq=eligible, kinds=self.options.kinds, limit=size
            )
            hi = keys[-1].ingest_seq if len(keys) >= size else eligible
            claim = coord.claim_range(
                name, lo=start, hi=hi, owner=self.owner, lease_s=lease_s, start_seq=start
            )
            if claim is None:
                return True  # another worker moved the frontier first: look again
        self._run_claim(coord, claim)
        return True

    def _run_claim(self, coord: Coordinator, claim: Claim) -> None:
        """Score the spans of ``claim``'s commits batch by batch, then complete it.

        Scores have deterministic ids and are appended once (``append_scores_once``), so a
        range taken over after its worker died mid-way gets each score exactly once. The
        lease is renewed before each write (a worker whose range was taken over while it
        stalled writes nothing), and before a batch when a third of it has gone.
        """
        lease_s = self.options.lease_s
        cursor = _cursor(claim.lo)
        renewed = time.monotonic()
        while True:
            if self.stopping:
                coord.renew(claim, lease_s=0)  # hand the rest over at once
                return
            batch = self._read(cursor, claim.hi)
            if batch.last is not None:
                # before a batch: only once a third of the lease has gone (a renewal is a
                # transaction: ~15 ms on DuckDB)
                if time.monotonic() - renewed > lease_s / 3:
                    if coord.renew(claim, lease_s=lease_s) is None:
                        log.warning("eval_claim_lost", lo=claim.lo, hi=claim.hi)
                        return
                    renewed = time.monotonic()
                try:
                    scores = self._score(batch.targets) if batch.targets else []
                except _Stopping:
                    coord.renew(claim, lease_s=0)  # hand the range over at once
                    return
                if coord.renew(claim, lease_s=lease_s) is None:
                    log.warning("eval_claim_lost", lo=claim.lo, hi=claim.hi)
                    return  # taken over (this worker stalled): the new holder scores it
                renewed = time.monotonic()
                # an earlier holder's scores of this range are newer than its first claim (a
                # margin for the clocks of Redis and of this worker)
                since = datetime.fromtimestamp(claim.claimed_at, UTC) - _CLOCK_MARGIN
                self.store.append_scores_once(scores, since=since)
                self.num_spans += batch.num
            if not batch.full:
                break
            cursor = batch.cursor(claim.hi)
        if coord.complete(claim):
            log.debug("eval_claim_done", lo=claim.lo, hi=claim.hi)

    def _claimed_feedback_pass(self, coord: Coordinator, done: int) -> None:
        """The thumbs-down pass, by one worker at a time (a leader lease per evaluator set)."""
        lease = self.options.cursor_name + _FEEDBACK_CURSOR_SUFFIX
        if coord.acquire_leader(lease, owner=self.owner, lease_s=self.options.lease_s):
            self._feedback_pass(_cursor(done))

    def _set_consumed(self, cursor: EvalCursor) -> None:
        done = cursor.seq if not cursor.pos else cursor.seq - 1
        with self._lock:
            self._consumed_seq = done
            # keep the newest entry: it tells when the current last commit was first seen
            while len(self._seen) > 1 and self._seen[0][0] <= done:
                self._seen.popleft()

    def _read(self, cursor: EvalCursor, upto_seq: int) -> _Batch:
        """The next batch after ``cursor``: every span, or while shedding only forced ones."""
        if self._shedding_now():
            return self._read_shedding(cursor, upto_seq)
        limit = self.options.batch_size
        rows = self.store.list_spans_after(
            cursor, upto_seq=upto_seq, kinds=self.options.kinds, limit=limit
        )
        if not rows:
            return _Batch(0, False, None, [])
        s = rows[-1].span
        last = (rows[-1].ingest_seq, f"{s.project_id}/{s.trace_id}/{s.span_id}")
        return _Batch(len(rows), len(rows) >= limit, last, self._targets(rows))

    def _shed_keys(self) -> int:
        return max(self.options.batch_size, _SHED_KEYS)

    def _read_shedding(self, cursor: EvalCursor, upto_seq: int) -> _Batch:
        """Keys of many spans, and cases for the forced ones alone (the others are skipped).

        Whole spans and traces are read for the forced spans only: for the rest, their keys,
        their traces' feedback and their traces' guardrail spans decide. The batch ends at the
        ``batch_size``-th forced span, so an evaluator is never given more cases than usual.
        """
        # A read ends at the batch_size-th forced span: with 2 % errors, ~3,200 of 8,192 keys
        # were used, and the rest read (and checked for feedback and guardrails) again by the
        # next read. So a read asks for 1.5 times what the last one used, and twice as many
        # as the last one after a read that used them all (forced spans grew rarer).
        batch = self.options.batch_size
        limit = max(batch, min(self._shed_read, self._shed_keys()))
        keys = self.store.list_span_keys_after(
            cursor, upto_seq=upto_seq, kinds=self.options.kinds, limit=limit
        )
        if not keys:
            return _Batch(0, False, None, [])
        full = len(keys) >= limit
        forced: set[SeqSpanKey] = set()
        by_project: dict[str, list[SeqSpanKey]] = {}
        for k in keys:
            by_project.setdefault(k.project_id, []).append(k)
        for project_id, ks in by_project.items():
            trace_ids = sorted({k.trace_id for k in ks})
            flagged = _thumbs_down(self.store.list_trace_scores(project_id, trace_ids))
            guards = self.store.get_traces(
                project_id,
                trace_ids,
                start=min(k.start_time for k in ks) - _TRACE_WINDOW,
                end=max(k.start_time for k in ks) + _TRACE_WINDOW,
                kinds=("guardrail",),
            )
            hit = {t for t, rows in guards.items() if any(is_guardrail_hit(r.span) for r in rows)}
            forced.update(
                k for k in ks if k.status == "error" or k.trace_id in flagged or k.trace_id in hit
            )
        picked: list[SeqSpanKey] = []
        truncated = False
        for i, k in enumerate(keys):
            if k in forced:
                picked.append(k)
                if len(picked) >= batch and i < len(keys) - 1:
                    keys, full, truncated = keys[: i + 1], True, True  # the rest: next read's
                    break
        self._shed_read = len(keys) * 3 // 2 if truncated else limit * 2
        self.num_shed += len(keys) - len(picked)
        k = keys[-1]
        last = (k.ingest_seq, f"{k.project_id}/{k.trace_id}/{k.span_id}")
        return _Batch(len(keys), full, last, self._forced_targets(picked))

    def _targets(self, rows: Sequence[SeqSpan]) -> list[_Target]:
        """A case for each span, from its trace."""
        by_project: dict[str, list[Span]] = {}
        for r in rows:
            by_project.setdefault(r.span.project_id, []).append(r.span)
        targets: list[_Target] = []
        for project_id, spans in by_project.items():
            trace_ids = sorted({s.trace_id for s in spans})
            # A trace's spans start within a window of its LLM spans (an hour either side is
            # generous for one request), which keeps the read off the rest of the table.
            traces = self.store.get_traces(
                project_id,
                trace_ids,
                start=min(s.start_time for s in spans) - _TRACE_WINDOW,
                end=max(s.start_time for s in spans) + _TRACE_WINDOW,
            )
            flagged = _thumbs_down(self.store.list_trace_scores(project_id, trace_ids))
            for s in spans:
                trace = [x.span for x in traces.get(s.trace_id, ())] or [s]
                forced = (
                    s.status == "error"
                    or s.trace_id in flagged
                    or any(is_guardrail_hit(x) for x in trace)
                )
                targets.append(_Target(project_id, s, case_from_span(s, trace), forced))
        return targets

    def _forced_targets(self, keys: Sequence[SeqSpanKey]) -> list[_Target]:
        """Cases for these spans, read whole with their traces."""
        by_project: dict[str, list[SeqSpanKey]] = {}
        for k in keys:
            by_project.setdefault(k.project_id, []).append(k)
        targets: list[_Target] = []
        for project_id, ks in by_project.items():
            traces = self.store.get_traces(
                project_id,
                sorted({k.trace_id for k in ks}),
                start=min(k.start_time for k in ks) - _TRACE_WINDOW,
                end=max(k.start_time for k in ks) + _TRACE_WINDOW,
            )
            for k in ks:
                trace = [x.span for x in traces.get(k.trace_id, ())]
                s = next((x for x in trace if x.span_id == k.span_id), None)
                if s is None:
                    # listed a moment ago, not readable now (retention deleted it, or another
                    # replica answered): counted as skipped, and said
                    self.num_shed += 1
                    log.warning("eval_forced_span_unreadable", span_id=k.span_id)
                    continue
                targets.append(_Target(project_id, s, case_from_span(s, trace), True))
        return targets

    def _shedding_now(self) -> bool:
        """Whether the lag is over ``max_lag_s``: then only forced spans are evaluated."""
        limit = self.options.max_lag_s
        lag = self.lag_s()
        shedding = limit is not None and lag > limit
        if shedding != self._shedding:
            self._shedding = shedding
            if shedding:
                log.warning("eval_shedding_started", lag_s=round(lag, 1), max_lag_s=limit)
            else:
                log.info("eval_shedding_stopped", lag_s=round(lag, 1), shed=self.num_shed)
        return shedding

    def _score(
        self, targets: Sequence[_Target], only: set[tuple[str, str]] | None = None
    ) -> list[Score]:
        scores: list[Score] = []
        prev: dict[str, tuple[Span, EvalCase] | None] = {}
        previous: dict[tuple[str, str], Span | None] = {}
        for ev in self.evaluators:
            if self.stopping:
                raise _Stopping  # stop waits for one evaluator's batch at most, not all of them
            rate = self.options.sample_rates.get(ev.name, self.options.sample_rate)
            picked = [
                t
                for t in targets
                if (t.forced or sampled(t.span.span_id, ev.name, rate))
                and (only is None or (t.span.span_id, ev.name) in only)
            ]
            judges_previous = getattr(ev, "judges", "answer") == "previous_answer"
            if judges_previous:
                self._find_previous(picked, previous)
            anchors: list[Span] = []
            cases: list[EvalCase] = []
            for t in picked:
                if judges_previous:
                    p = self._previous_turn(t, prev, previous)
                    if p is None:
                        continue
                    anchors.append(p[0])
                    cases.append(p[1])
                else:
                    anchors.append(t.span)
                    cases.append(t.case)
            if not cases:
                continue
            scores.extend(self._run_evaluator(ev, cases, anchors))
        return scores

    def _find_previous(
        self, targets: Sequence[_Target], found: dict[tuple[str, str], Span | None]
    ) -> None:
        """Add to ``found`` the previous turn of each target's session (None: it has none).

        Keyed by (project, span id). The session's turns over the day before are read as keys
        and only the previous turns whole: a session can hold hundreds of turns.
        """
        by_project: dict[str, list[Span]] = {}
        for t in targets:
            if t.span.session_id and (t.project_id, t.span.span_id) not in found:
                by_project.setdefault(t.project_id, []).append(t.span)
        for project_id, spans in by_project.items():
            turns = self.store.list_session_turns(
                project_id,
                sorted({s.session_id for s in spans if s.session_id}),
                kinds=self.options.kinds,
                start=min(s.start_time for s in spans) - _SESSION_WINDOW,
                end=max(s.start_time for s in spans),
            )
            by_session: dict[str, list[SessionTurn]] = {}
            for x in turns:
                by_session.setdefault(x.session_id, []).append(x)
            wanted: dict[str, SessionTurn] = {}
            for s in spans:
                found[(project_id, s.span_id)] = None
                earlier = [
                    x
                    for x in by_session.get(s.session_id or "", ())
                    if x.start_time < s.start_time and x.kind == s.kind
                ]
                if earlier:
                    p = max(earlier, key=lambda x: (x.start_time, x.span_id))
                    if p.span_id != s.span_id:
                        wanted[s.span_id] = p
            if not wanted:
                continue
            traces = self.store.get_traces(
                project_id,
                sorted({p.trace_id for p in wanted.values()}),
                start=min(p.start_time for p in wanted.values()),
                end=max(p.start_time for p in wanted.values()),
                kinds=self.options.kinds,
            )
            whole = {x.span.span_id: x.span for rows in traces.values() for x in rows}
            for span_id, p in wanted.items():
                found[(project_id, span_id)] = whole.get(p.span_id)

    def _previous_turn(
        self,
        t: _Target,
        memo: dict[str, tuple[Span, EvalCase] | None],
        previous: dict[tuple[str, str], Span | None],
    ) -> tuple[Span, EvalCase] | None:
        """The previous LLM span of the session, and a case: this turn judging that answer."""
        s = t.span
        if not s.session_id:
            return None
        key = f"{t.project_id}/{s.span_id}"
        if key not in memo:
            p = previous.get((t.project_id, s.span_id))
            if p is None or not p.output:
                memo[key] = None
            else:
                case = dataclasses.replace(
                    t.case,
                    previous_answer=p.output,
                    metadata={**t.case.metadata, "judged_trace_id": p.trace_id},
                )
                memo[key] = (p, case)
        return memo[key]

    def _run_evaluator(
        self, ev: Evaluator, cases: list[EvalCase], anchors: list[Span]
    ) -> list[Score]:
        now = datetime.now(UTC)
        version = str(ev.version)
        try:
            results: Sequence[EvalResult | None] = ev.evaluate(cases)
            if len(results) != len(cases):
                raise ValueError(f"returned {len(results)} results for {len(cases)} cases")
        except Exception as e:  # an evaluator's bug must not stop the others (module docstring)
            log.exception("evaluator_failed", evaluator=ev.name, num_cases=len(cases))
            self.num_failed[ev.name] = self.num_failed.get(ev.name, 0) + len(cases)
            err = f"evaluator error: {type(e).__name__}: {e}"[:2000]
            return [
                _score(
                    a,
                    ev.name,
                    version,
                    now,
                    EvalResult(score=None, label="failed", explanation=err),
                    case_id=c.case_id,
                )
                for a, c in zip(anchors, cases, strict=True)
            ]
        out = []
        bad = 0
        for a, c, r in zip(anchors, cases, results, strict=True):
            if r is None:
                continue
            problem = _unstorable(r)
            if problem is not None:
                # A result the store cannot take (a plugin's NaN, a string score, NumPy values
                # in details) failed the whole write, so the batch was read again every tick
                # and no evaluator scored anything after it: that case is failed instead.
                bad += 1
                r = EvalResult(score=None, label="failed", explanation=f"evaluator {problem}")
                out.append(_score(a, ev.name, version, now, r, case_id=c.case_id))
                continue
            details = dict(r.details) if r.details else {}
            if c.case_id and a.span_id not in c.case_id:
                details["judged_by"] = c.case_id  # a later turn judged this span's answer
            out.append(_score(a, ev.name, version, now, r, details or None, case_id=c.case_id))
        if bad:
            log.error("evaluator_bad_results", evaluator=ev.name, num_cases=bad)
            self.num_failed[ev.name] = self.num_failed.get(ev.name, 0) + bad
        self.num_scores[ev.name] = self.num_scores.get(ev.name, 0) + len(out) - bad
        return out

    # -- thumbs-down feedback on traces already past the cursor --------------------------------

    def _feedback_pass(self, cursor: EvalCursor) -> None:
        """Evaluate spans of traces that got a thumbs-down since the last pass.

        Only (span, evaluator) pairs that sampling skipped: spans still ahead of the cursor are
        forced when the cursor reaches them.
        """
        name = self.options.cursor_name + _FEEDBACK_CURSOR_SUFFIX
        fc = self.store.get_eval_cursor(name)
        after = datetime.fromtimestamp(fc.seq / 1e6, UTC) if fc else datetime.now(UTC)
        if fc is None:
            # first run: start from now, and remember it
            self.store.append_eval_scores(
                [], cursor_name=name, cursor=_cursor(int(after.timestamp() * 1e6))
            )
            return
        feedback = self.store.list_scores_created_after(
            after, source="user", name="feedback", limit=500
        )
        if not feedback:
            return
        done = cursor.seq if not cursor.pos else cursor.seq - 1
        by_project: dict[str, set[str]] = {}
        for f in feedback:
            if f.value is not None and f.value < 0:
                by_project.setdefault(f.project_id, set()).add(f.trace_id)
        scores: list[Score] = []
        for project_id, trace_ids in by_project.items():
            ids = sorted(trace_ids)
            traces = self.store.get_traces(project_id, ids)
            have = {(s.span_id, s.name) for s in self.store.list_trace_scores(project_id, ids)}
            targets: list[_Target] = []
            only: set[tuple[str, str]] = set()
            for rows in traces.values():
                trace = [r.span for r in rows]
                for r in rows:
                    s = r.span
                    if s.kind not in self.options.kinds or r.ingest_seq > done:
                        continue
                    missing = {
                        (s.span_id, ev.name)
                        for ev in self.evaluators
                        if (s.span_id, ev.name) not in have
                    }
                    if missing:
                        only |= missing
                        targets.append(_Target(project_id, s, case_from_span(s, trace), True))
            if targets:
                try:
                    scores.extend(self._score(targets, only))
                except _Stopping:
                    return  # the feedback cursor stays: redone at the next start
        last = feedback[-1].created_at
        self.store.append_eval_scores(
            scores, cursor_name=name, cursor=_cursor(int(last.timestamp() * 1e6))
        )


def _cursor(seq: int, pos: str = "") -> EvalCursor:
    from sightline.store._eval_records import EvalCursor

    return EvalCursor(seq, pos)


def _unstorable(r: Any) -> str | None:
    """Why an evaluator's result cannot be stored as a score, or None when it can."""
    if not isinstance(r, EvalResult):
        return f"returned {type(r).__name__}, not an EvalResult"
    score = r.score
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score)
    ):
        return f"returned score {score!r}: not a finite number"
    if r.label is not None and not isinstance(r.label, str):
        return f"returned label {r.label!r}: not text"
    if r.explanation is not None and not isinstance(r.explanation, str):
        return f"returned explanation of type {type(r.explanation).__name__}: not text"
    if r.passed is not None and not isinstance(r.passed, bool):
        return f"returned passed {r.passed!r}: not a boolean"
    if r.details:
        import orjson  # as the store writes details (a server dependency, like the store)

        try:
            orjson.dumps(dict(r.details), option=orjson.OPT_NON_STR_KEYS)
        except (TypeError, ValueError) as e:
            return f"returned details that are not JSON: {e}"
    return None


def _thumbs_down(scores: Sequence[Score]) -> set[str]:
    return {
        s.trace_id
        for s in scores
        if s.source == "user" and s.name == "feedback" and s.value is not None and s.value < 0
    }


def score_id(evaluator: str, span: Span, case_id: str | None = None) -> str:
    """The id of ``evaluator``'s online score of ``span``: the same every time it is evaluated.

    ``case_id`` names the case that judged it when that is not the span's own (a later turn of
    the session judging this answer). Deterministic ids make a range scored again after its
    worker died add nothing twice (``append_scores_once``).
    """
    key = f"{evaluator}\x00{span.project_id}/{span.trace_id}/{span.span_id}\x00{case_id or ''}"
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def _score(
    span: Span,
    name: str,
    version: str,
    now: datetime,
    r: EvalResult,
    details: dict[str, Any] | None = None,
    *,
    case_id: str | None = None,
) -> Score:
    value = None if r.score is None else float(min(max(r.score, 0.0), 1.0))
    return Score(
        project_id=span.project_id,
        score_id=score_id(name, span, case_id),
        trace_id=span.trace_id,
        span_id=span.span_id,
        name=name,
        value=value,
        label=r.label,
        passed=r.passed,
        explanation=r.explanation,
        source="evaluator",
        evaluator=name,
        evaluator_version=version,
        created_at=now,
        details=details if details is not None else (dict(r.details) if r.details else None),
        span_start_time=span.start_time,
    )
