"""Ingest: bytes in, durable spans out."""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal, TypeVar

import pyarrow as pa
import structlog

from sightline.errors import (
    IngestError,
    Overloaded,
    PayloadTooLarge,
    StoreUnavailable,
    UnsupportedMediaType,
)
from sightline.ingest._decode import (
    DecodeResult,
    Limits,
    decode_native,
    decode_otlp_json,
    decode_otlp_proto,
)
from sightline.ingest._evaluations import to_scores
from sightline.ingest._signals import Signal, SignalResult, decode_logs, decode_metrics
from sightline.ingest._writer import GroupCommitWriter
from sightline.pricing import PriceOverride, Pricer
from sightline.redact import Redactor
from sightline.store._arrow import records_to_table
from sightline.store.base import BATCH_KEY

__all__ = ["Format", "IngestResult", "IngestService", "decompress"]

log = structlog.get_logger("sightline.ingest")

Format = Literal["otlp_proto", "otlp_json", "native"]
_DECODERS = {
    "otlp_proto": decode_otlp_proto,
    "otlp_json": decode_otlp_json,
    "native": decode_native,
}
_PRICED_KINDS = frozenset(("llm", "embedding", "rerank"))
_SATURATION_HOLD_S = 0.05
"""How long ingestion still counts as saturated after its last saturated moment: the gap
between a request's answer and its client's next request, so that a burst reads as one."""


@dataclass(slots=True)
class IngestResult:
    """What happened to one request's spans."""

    accepted: int
    """Spans committed (a retried duplicate counts: it is stored, once)."""
    rejected: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def num_rejected(self) -> int:
        """Spans dropped."""
        return sum(self.rejected.values())

    def error_message(self) -> str:
        """OTLP partial-success message: why spans were rejected."""
        return "rejected spans: " + ", ".join(f"{k}={v}" for k, v in sorted(self.rejected.items()))


def decompress(body: bytes, encoding: str | None, *, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip or deflate) without ever holding more than ``max_bytes``.

    A gzip body may be several members one after the other (RFC 1952 section 2.2; what
    ``cat a.gz b.gz`` makes): each is decompressed and the results are concatenated, the limit
    counting all of them. Bytes after the last stream that are not another gzip member are an
    invalid body (400), not something to ignore.
    """
    enc = (encoding or "identity").strip().lower()
    if enc in ("identity", ""):
        return body
    if enc in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif enc == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        raise UnsupportedMediaType(f"unsupported Content-Encoding {encoding!r}; use gzip")
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, max_bytes + 1)
    except zlib.error as e:
        raise IngestError(f"invalid {enc} body: {e}") from None
    if len(out) > max_bytes or d.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body exceeds {max_bytes} bytes")
    if not d.eof:
        raise IngestError(f"truncated {enc} body")
    if not d.unused_data:  # the usual case: one stream, nothing after it
        return out
    if wbits == zlib.MAX_WBITS:
        raise IngestError(f"invalid {enc} body: {len(d.unused_data)} bytes after the stream")
    pos = len(body) - len(d.unused_data)
    return out + _more_members(body, pos, max_bytes - len(out), max_bytes)


_GZIP_MAGIC = b"\x1f\x8b"
MAX_GZIP_MEMBERS = 10_000
"""Most gzip members one body may hold (each costs a few microseconds even when empty)."""


def _more_members(body: bytes, pos: int, left: int, limit: int) -> bytes:
    """The gzip members of ``body`` from ``pos`` on, decompressed: at most ``left`` bytes.

    Each member is fed in slices that start small and double, so what zlib copies into
    ``unused_data`` at a member's end stays proportional to the member, and there are at most
    :data:`MAX_GZIP_MEMBERS`: the time taken stays linear in the body's size, and small.
    """
    view = memoryview(body)
    parts: list[bytes] = []
    members = 1
    while pos < len(body):
        if view[pos : pos + 2] != _GZIP_MAGIC:
            raise IngestError(f"invalid gzip body: {len(body) - pos} bytes after the stream")
        members += 1
        if members > MAX_GZIP_MEMBERS:
            raise IngestError(f"invalid gzip body: more than {MAX_GZIP_MEMBERS} gzip members")
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        step = 512
        while not d.eof:
            if pos >= len(body):
                raise IngestError("truncated gzip body")
            piece = view[pos : pos + step]
            pos += len(piece)
            step = min(step * 2, 1 << 20)
            try:
                out = d.decompress(piece, left + 1)
            except zlib.error as e:
                raise IngestError(f"invalid gzip body: {e}") from None
            left -= len(out)
            if left < 0 or d.unconsumed_tail:
                raise PayloadTooLarge(f"decompressed body exceeds {limit} bytes")
            parts.append(out)
        pos -= len(d.unused_data)
    return b"".join(parts)


# -- the work done off the event loop (in a worker process, or a thread) -------------------------

_LIMITS = Limits()
_PRICER = Pricer()


def _init_worker(limits: Limits, overrides: list[PriceOverride]) -> None:
    global _LIMITS, _PRICER
    _LIMITS = limits
    _PRICER = Pricer(overrides)


def _prepare(
    fmt: Format,
    body: bytes,
    encoding: str | None,
    project_id: str,
    max_bytes: int,
    redactor: Redactor | None = None,
    limits: Limits | None = None,
) -> tuple[pa.Table | None, DecodeResult]:
    """Decompress, decode, normalise, redact, price; return the Arrow batch and the outcome.

    ``limits``: the service's (``IngestService`` passes its own: several in one process, as
    in tests, must not use each other's); None: the decode process's, from ``_init_worker``.
    """
    raw = decompress(body, encoding, max_bytes=max_bytes)
    base = _LIMITS if limits is None else limits
    limits = base if redactor is None else replace(base, redaction=redactor)
    res = _DECODERS[fmt](raw, project_id, limits=limits)
    if len(res.records) + res.num_rejected > limits.max_spans:
        raise PayloadTooLarge(f"more than {limits.max_spans} spans in one request")
    pricer = _PRICER
    for rec in res.records:
        if (
            rec.get("cost_usd") is None
            and rec.get("kind") in _PRICED_KINDS
            and (rec.get("input_tokens") is not None or rec.get("output_tokens") is not None)
        ):
            cost = pricer.cost_usd(
                model=rec.get("model"),
                provider=rec.get("provider"),
                input_tokens=rec.get("input_tokens"),
                output_tokens=rec.get("output_tokens"),
                cached_input_tokens=rec.get("cached_input_tokens"),
                cache_write_tokens=rec.get("cache_write_tokens"),
                reasoning_tokens=rec.get("reasoning_tokens"),
            )
            if cost is None:
                rec["ingest_notes"].append("unknown_model")
                res.count("unknown_model")
            else:
                rec["cost_usd"] = cost
    table = _to_table(res) if res.records else None
    res.records = []  # the table carries them; don't ship them back across processes twice
    return table, res


def _prepare_signal(
    signal: Signal,
    fmt: Format,
    body: bytes,
    encoding: str | None,
    project_id: str,
    max_bytes: int,
    redactor: Redactor | None = None,
    limits: Limits | None = None,
) -> tuple[pa.Table | None, SignalResult]:
    """Decompress and decode an OTLP metrics or logs request into its table's rows.

    The table carries a key of the request (:data:`~sightline.store.base.BATCH_KEY`, a hash of
    the project, signal, format and decompressed body), so that an exporter's retry of a
    request already committed is acknowledged without being stored twice.
    """
    raw = decompress(body, encoding, max_bytes=max_bytes)
    if fmt not in ("otlp_proto", "otlp_json"):
        raise UnsupportedMediaType(f"{signal} are accepted as OTLP protobuf or JSON only")
    limits = _LIMITS if limits is None else limits
    # a request may carry ~8 data points or log records per span's worth of bytes
    max_items = limits.max_spans * 8
    if signal == "metrics":
        table, res = decode_metrics(raw, fmt, project_id, max_points=max_items)
    else:
        red = redactor if redactor is not None else limits.redaction
        table, res = decode_logs(
            raw,
            fmt,
            project_id,
            max_records=max_items,
            max_text_bytes=limits.max_text_bytes,
            redact=red,
            now_ns=time.time_ns(),
        )
    if table is not None:
        table = table.replace_schema_metadata({BATCH_KEY: _batch_key(signal, fmt, project_id, raw)})
    return table, res


def _batch_key(signal: str, fmt: str, project_id: str, raw: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for part in (signal.encode(), fmt.encode(), project_id.encode()):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    h.update(raw)
    return h.hexdigest().encode()


_R = TypeVar("_R", DecodeResult, SignalResult)


def _ipc(table: pa.Table | None) -> pa.Buffer | None:
    """``table`` as one Arrow IPC stream: what a decode process sends back.

    A pickled ``Table`` costs ~1.9 ms to pickle and 0.3 ms to unpickle for 512 spans (every
    column's type and buffers, one by one); the stream is written in 0.08 ms and read in 0.03,
    and pickles as one buffer.
    """
    if table is None:
        return None
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _from_ipc(buf: pa.Buffer | None) -> pa.Table | None:
    return None if buf is None else pa.ipc.open_stream(buf).read_all()


def _prepare_ipc(*args: Any) -> tuple[pa.Buffer | None, DecodeResult]:
    """:func:`_prepare` in a decode process, the table as an IPC stream."""
    table, res = _prepare(*args)
    return _ipc(table), res


def _prepare_signal_ipc(*args: Any) -> tuple[pa.Buffer | None, SignalResult]:
    """:func:`_prepare_signal` in a decode process, the table as an IPC stream."""
    table, res = _prepare_signal(*args)
    return _ipc(table), res


def _to_table(res: DecodeResult) -> pa.Table | None:
    """The batch as Arrow; a span Arrow cannot hold is rejected alone, not with its batch."""
    try:
        return records_to_table(res.records)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        keep = []
        for rec in res.records:
            try:
                records_to_table([rec])
            except (pa.ArrowException, OverflowError, TypeError, ValueError):
                res.reject("unstorable_span")
            else:
                keep.append(rec)
        return records_to_table(keep) if keep else None


class IngestService:
    """Turns request bodies into committed spans.

    Decoding and normalising cost ~50 µs of Python per span, more than one core can do at
    20k spans/s under the GIL, so with ``workers > 0`` that work runs in a process pool and
    only Arrow tables come back; the DuckDB insert releases the GIL and overlaps with it.
    """

    def __init__(
        self,
        writer: GroupCommitWriter,
        *,
        limits: Limits | None = None,
        price_overrides: list[PriceOverride] | None = None,
        workers: int = 0,
        max_body_bytes: int = 16 << 20,
        redaction: Callable[[str], Redactor | None] | None = None,
        scores: Callable[..., object] | None = None,
    ) -> None:
        self._writer = writer
        self._scores = scores
        """Stores the evaluation results found in requests: ``append_scores_once(scores,
        since=...)``, or None."""
        self._redaction = redaction
        """The redactor of a project (its privacy policy), looked up once per request."""
        self._limits = limits or Limits()
        self._overrides = list(price_overrides or [])
        self._workers = workers
        self.max_body_bytes = max_body_bytes
        self._pool: Executor | None = None
        # the price overrides for decoding in this process (workers=0); the limits travel with
        # each request, so that services of different limits in one process (tests) don't mix
        global _PRICER
        _PRICER = Pricer(self._overrides)
        self._capacity = max(1, workers)
        self._busy_lock = threading.Lock()  # the gRPC receiver's threads count requests too
        self._in_flight = 0
        self._saturated_at = float("-inf")
        """When the last saturated stretch ended (requests fell below the workers)."""
        self._saturated_since = float("-inf")
        """When the current (or last) saturated stretch began."""

    @property
    def in_flight(self) -> int:
        """Requests being decoded or waiting for their commit."""
        return self._in_flight

    def saturated(self) -> bool:
        """Whether as many requests as decode workers are in, now or within the last 50 ms.

        A request counts while it is decoded and while it waits for its commit.

        The online evaluation runner waits while this holds (``eval_yield_s``, see
        :meth:`saturated_for`): a burst of traffic then gets the CPU before the evaluators,
        which catch up once it has passed.
        """
        return (
            self._in_flight >= self._capacity
            or time.monotonic() - self._saturated_at < _SATURATION_HOLD_S
        )

    def saturated_for(self) -> float:
        """Seconds ingestion has been :meth:`saturated` without a break; 0.0 when it is not.

        Gaps under 50 ms (a client's next request after its answer) do not break it. The
        online evaluation waits only while this is under ``eval_yield_s``: a longer
        saturation is steady load, not a burst, and evaluation runs alongside it.
        """
        now = time.monotonic()
        if self._in_flight >= self._capacity or now - self._saturated_at < _SATURATION_HOLD_S:
            return max(now - self._saturated_since, 1e-9)
        return 0.0

    @contextmanager
    def _request(self) -> Iterator[None]:
        with self._busy_lock:
            self._in_flight += 1
            if self._in_flight == self._capacity:
                now = time.monotonic()
                if now - self._saturated_at >= _SATURATION_HOLD_S:
                    self._saturated_since = now  # a new stretch; a shorter gap continues one
        try:
            yield
        finally:
            with self._busy_lock:
                if self._in_flight == self._capacity:
                    self._saturated_at = time.monotonic()  # the stretch ends (for now)
                self._in_flight -= 1

    def start(self) -> None:
        """Start the worker pool (if any)."""
        if self._workers > 0 and self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers,
                # forkserver: the server process has threads (writer, DuckDB), unsafe to fork.
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=_init_worker,
                initargs=(self._limits, self._overrides),
            )

    def _redactor(self, project_id: str) -> Redactor | None:
        return self._redaction(project_id) if self._redaction is not None else None

    def stop(self) -> None:
        """Stop the worker pool."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def ingest(
        self, fmt: Format, body: bytes, *, encoding: str | None, project_id: str
    ) -> IngestResult:
        """Decode ``body`` and return once its spans are committed."""
        args = self._args(fmt, body, encoding, project_id=project_id)
        n, res = await self._commit(_prepare, _prepare_ipc, args, "spans")
        if res.scores:
            await asyncio.get_running_loop().run_in_executor(
                None, self._save_scores, project_id, res.scores
            )
        return IngestResult(n, res.rejected, res.repaired)

    def _args(self, *head: Any, project_id: str) -> tuple[Any, ...]:
        """The arguments of ``_prepare`` / ``_prepare_signal`` after ``head``."""
        return (*head, project_id, self.max_body_bytes, self._redactor(project_id), self._limits)

    def _save_scores(self, project_id: str, found: list[dict[str, Any]]) -> None:
        """Store the evaluation results of a committed request (each once, on a retry too).

        After the request's commit: a failure here answers 503 (``StoreUnavailable``, which
        exporters retry), and the retry stores nothing twice: spans are recognised by their
        ids, a logs request by its key (the hash of its body, remembered for a day), scores by
        theirs.
        """
        if not found or self._scores is None:
            return
        try:
            scores = to_scores(project_id, found, time.time_ns())
            # a retry's copies have their first send's times (the event's; for an event
            # without a usable time, its arrival, a day at most before a retry): the check for
            # them need not read older scores
            since = min(sc.created_at for sc in scores) - timedelta(days=1)
            self._scores(scores, since=since)
        except Exception as e:
            raise StoreUnavailable(
                f"the request is stored but not its evaluation results ({e}): retry"
            ) from e

    async def ingest_signal(
        self,
        signal: Signal,
        fmt: Format,
        body: bytes,
        *,
        encoding: str | None,
        project_id: str,
    ) -> IngestResult:
        """Decode an OTLP metrics or logs body and return once its rows are committed."""
        args = self._args(signal, fmt, body, encoding, project_id=project_id)
        n, res = await self._commit(_prepare_signal, _prepare_signal_ipc, args, signal)
        if res.scores:
            await asyncio.get_running_loop().run_in_executor(
                None, self._save_scores, project_id, res.scores
            )
        return IngestResult(n, res.rejected, res.repaired)

    def ingest_signal_sync(self, signal: Signal, body: bytes, *, project_id: str) -> IngestResult:
        """Blocking :meth:`ingest_signal` of a protobuf body, for the gRPC receiver's threads."""
        args = self._args(signal, "otlp_proto", body, None, project_id=project_id)
        n, res = self._commit_sync(_prepare_signal, _prepare_signal_ipc, args, signal)
        self._save_scores(project_id, res.scores)
        return IngestResult(n, res.rejected, res.repaired)

    def ingest_sync(
        self, fmt: Format, body: bytes, *, encoding: str | None, project_id: str
    ) -> IngestResult:
        """Blocking :meth:`ingest`, for the gRPC receiver's threads."""
        args = self._args(fmt, body, encoding, project_id=project_id)
        n, res = self._commit_sync(_prepare, _prepare_ipc, args, "spans")
        self._save_scores(project_id, res.scores)
        return IngestResult(n, res.rejected, res.repaired)

    async def _commit(
        self,
        fn: Callable[..., tuple[pa.Table | None, _R]],
        fn_ipc: Callable[..., tuple[pa.Buffer | None, _R]],
        args: tuple[Any, ...],
        signal: str,
    ) -> tuple[int, _R]:
        """``fn(*args)`` in a decode process (its table back as IPC) or a thread, then commit.

        Returns the rows committed and the decoder's outcome.
        """
        with self._request():
            loop = asyncio.get_running_loop()
            self._writer.expect()  # a commit starting meanwhile may wait for this batch
            try:
                if self._pool is None:
                    table, res = await loop.run_in_executor(None, fn, *args)
                else:
                    buf, res = await loop.run_in_executor(self._pool, fn_ipc, *args)
                    table = _from_ipc(buf)
            except BrokenProcessPool:
                self._writer.unexpect()
                log.error("ingest_pool_broken")
                self.stop()
                self.start()
                raise Overloaded("ingest worker crashed; retry", retry_after_s=1) from None
            except BaseException:
                self._writer.unexpect()
                raise
            if table is None:
                self._writer.unexpect()
                return 0, res
            fut = self._writer.submit(table, table.num_rows, signal=signal, expected=True)
            await asyncio.wrap_future(fut)
            return table.num_rows, res

    def _commit_sync(
        self,
        fn: Callable[..., tuple[pa.Table | None, _R]],
        fn_ipc: Callable[..., tuple[pa.Buffer | None, _R]],
        args: tuple[Any, ...],
        signal: str,
    ) -> tuple[int, _R]:
        """Blocking :meth:`_commit`, for the gRPC receiver's threads."""
        with self._request():
            if self._pool is not None:
                try:
                    buf, res = self._pool.submit(fn_ipc, *args).result()
                except BrokenProcessPool:
                    raise Overloaded("ingest worker crashed; retry", retry_after_s=1) from None
                table = _from_ipc(buf)
            else:
                table, res = fn(*args)
            if table is None:
                return 0, res
            self._writer.submit(table, table.num_rows, signal=signal).result()
            return table.num_rows, res
