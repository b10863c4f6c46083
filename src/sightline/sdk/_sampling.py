"""Sample per trace, but keep every trace that ends in error.

A trace the ratio does not pick is still *recorded* (not exported): its spans wait in a bounded
buffer until its local root ends. If any of them ended in error, they are passed on to the
exporting processor as sampled; otherwise they are dropped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence, Sized

from opentelemetry import context as otel_context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceFlags, TraceState
from opentelemetry.util.types import Attributes

from sightline.sdk._errors import handle_internal_errors, internal_error, logger

__all__ = ["ConfiguredSampler", "ErrorKeepingProcessor", "RecordUnsampled", "sampler_for"]

_MAX_TRACES = 1_000
_MAX_SPANS_PER_TRACE = 512


class RecordUnsampled(Sampler):
    """The ratio decides what is exported; what it leaves out is still recorded."""

    def __init__(self, rate: float) -> None:
        self._ratio = TraceIdRatioBased(rate)

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self._ratio.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        if result.decision == Decision.DROP:
            return SamplingResult(Decision.RECORD_ONLY, attributes, trace_state)
        return result

    def get_description(self) -> str:
        return f"RecordUnsampled({self._ratio.get_description()})"


class ConfiguredSampler(Sampler):
    """The sampler of the provider ``init`` creates: a later ``init`` can change its rate.

    Tracers copy their provider's sampler when they are made, so the provider's sampler cannot
    be replaced; this one delegates, and ``init`` called again swaps what it delegates to.
    """

    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return self.delegate.get_description()


def sampler_for(rate: float) -> Sampler:
    """Children follow their parent's decision; roots follow the ratio (recording the rest)."""
    if rate >= 1.0:
        return ParentBased(ALWAYS_ON)  # everything is sampled: nothing to record apart
    root = RecordUnsampled(rate)
    # a recorded-but-unsampled parent must keep its children recorded too
    return ParentBased(root, local_parent_not_sampled=root)


def _as_sampled(span: ReadableSpan) -> ReadableSpan:
    ctx = span.get_span_context()
    if ctx is None:
        return span
    sampled = SpanContext(
        ctx.trace_id,
        ctx.span_id,
        ctx.is_remote,
        TraceFlags(ctx.trace_flags | TraceFlags.SAMPLED),
        ctx.trace_state,
    )
    return copy_span(span, context=sampled)


def copy_span(
    span: ReadableSpan, *, context: SpanContext | None = None, resource: Resource | None = None
) -> ReadableSpan:
    """``span`` with another context or resource (OpenTelemetry's spans are read-only).

    The copy loses OpenTelemetry's counts of dropped attributes, events and links.
    """
    return ReadableSpan(
        name=span.name,
        context=context if context is not None else span.get_span_context(),
        parent=span.parent,
        resource=resource if resource is not None else span.resource,
        attributes=span.attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class ErrorKeepingProcessor(SpanProcessor):
    """Wraps the exporting processor; forwards unsampled traces that contain an error.

    Also counts the spans the exporting processor drops because its queue is full (the
    collector is down or slow) and logs the first drop once.
    """

    def __init__(self, inner: SpanProcessor, *, max_queue_size: int | None = None) -> None:
        self._inner = inner
        self._pending: OrderedDict[int, tuple[list[ReadableSpan], bool]] = OrderedDict()
        self._lock = threading.Lock()
        # BatchSpanProcessor's queue, to see that a span is about to be dropped (private to
        # OpenTelemetry: when a version moves it, drops are simply not counted).
        queue = getattr(getattr(inner, "_batch_processor", None), "_queue", None)
        self._queue: Sized | None = queue if isinstance(queue, Sized) else None
        self._max_queue = max_queue_size or 0
        self.dropped = 0
        self._reported = False
        self._filter: Callable[[ReadableSpan], bool] | None = None
        self.retired = False
        """Replaced by a later ``init``: passes nothing on (see :meth:`retire`)."""
        self._retiring: threading.Thread | None = None
        # BatchSpanProcessor.on_start does nothing: not called for every span
        self._inner_on_start = type(inner).on_start not in (
            BatchSpanProcessor.on_start,
            SpanProcessor.on_start,
        )

    def set_filter(self, keep: Callable[[ReadableSpan], bool] | None) -> None:
        """Export only the spans ``keep`` accepts (set by the provider instrumentation)."""
        self._filter = keep

    def retire(
        self, *, shutdown: bool = True, successor: ErrorKeepingProcessor | None = None
    ) -> None:
        """Stop exporting (a later ``init`` replaced this processor); send what it still holds.

        OpenTelemetry cannot remove a processor from a provider: without this, every span
        would be exported once per ``init`` call. ``shutdown=False`` only flushes, for an
        exporter the new processor uses too (shutting the batch down would shut it down).
        The traces still open here (unsampled, waiting for their root to see whether one of
        their spans failed) go to ``successor``, which ends them: their spans that ended
        before are kept. The export runs aside; ``force_flush`` and ``shutdown_within`` wait
        for it (so at exit, the spans queued here are sent too).
        """
        self.retired = True
        if successor is not None:
            successor._adopt(self)
        inner = self._inner
        target: Callable[[], object] = (
            (lambda: self._shutdown_inner(5.0)) if shutdown else (lambda: inner.force_flush(5000))
        )
        self._retiring = threading.Thread(target=target, name="sightline-retire", daemon=True)
        self._retiring.start()

    def _adopt(self, old: ErrorKeepingProcessor) -> None:
        """Take over ``old``'s open unsampled traces (merged with what this one has of them)."""
        with old._lock:
            pending, old._pending = old._pending, OrderedDict()
        with self._lock:
            for trace_id, (spans, errored) in pending.items():
                mine, mine_errored = self._pending.pop(trace_id, ([], False))
                # a span that ended between the two processors' swap was seen by both
                seen = {id(s) for s in spans}
                merged = spans + [s for s in mine if id(s) not in seen]
                self._pending[trace_id] = (merged[:_MAX_SPANS_PER_TRACE], errored or mine_errored)
            while len(self._pending) > _MAX_TRACES:
                self._pending.popitem(last=False)

    def has_pending(self) -> bool:
        """Whether spans wait here to be exported (queued, being sent, or being retired)."""
        if self.retired:
            t = self._retiring
            return t is not None and t.is_alive()
        q = self._queue
        if q is None:
            return True  # an OpenTelemetry that moved its queue: assume there is something
        if len(q):
            return True
        lock = getattr(getattr(self._inner, "_batch_processor", None), "_export_lock", None)
        return lock is None or bool(lock.locked())

    def _wait_retired(self, timeout_s: float) -> bool:
        t = self._retiring
        if t is None:
            return True
        t.join(max(timeout_s, 0.0))
        return not t.is_alive()

    def on_start(self, span: SdkSpan, parent_context: otel_context.Context | None = None) -> None:
        if self._inner_on_start and not self.retired:
            self._inner.on_start(span, parent_context)

    def _forward(self, span: ReadableSpan) -> None:
        f = self._filter
        if f is not None and not f(span):
            return
        q = self._queue
        if q is not None and self._max_queue and len(q) >= self._max_queue:
            self.dropped += 1
            if self.dropped == 1:
                logger.warning(
                    "sightline export queue full (%d spans): the collector is down or slow; "
                    "spans are dropped (counted) until it catches up",
                    self._max_queue,
                )
        self._inner.on_end(span)

    def on_end(self, span: ReadableSpan) -> None:
        if self.retired:
            return
        ctx = span.get_span_context()
        if ctx is None or ctx.trace_flags.sampled:
            try:
                self._forward(span)
            except Exception:
                internal_error("export")
            return
        with handle_internal_errors("error_keeping_sampler"):
            is_root = span.parent is None or span.parent.is_remote
            with self._lock:
                spans, errored = self._pending.pop(ctx.trace_id, ([], False))
                if len(spans) < _MAX_SPANS_PER_TRACE:
                    spans.append(span)
                errored = errored or span.status.status_code == StatusCode.ERROR
                if not is_root:
                    self._pending[ctx.trace_id] = (spans, errored)
                    while len(self._pending) > _MAX_TRACES:
                        self._pending.popitem(last=False)  # the oldest open trace is dropped
                    return
            if errored:
                for s in spans:
                    self._forward(_as_sampled(s))

    def shutdown(self) -> None:
        self.shutdown_within(5.0)

    def shutdown_within(self, timeout_s: float) -> None:
        """Shut the exporting processor down, waiting at most about ``timeout_s``."""
        if self.retired:
            # its retirement flushes (or shuts down) the batch: a second shutdown would not
            # wait for that export, and would shut an exporter the successor shares
            self._wait_retired(timeout_s)
            return
        self._shutdown_inner(timeout_s)

    def _shutdown_inner(self, timeout_s: float) -> None:
        if self.dropped and not self._reported:
            self._reported = True
            logger.warning("sightline dropped %d spans: the export queue was full", self.dropped)
        batch = getattr(self._inner, "_batch_processor", None)
        if batch is not None and hasattr(batch, "shutdown"):
            # BatchSpanProcessor.shutdown() waits up to 30 s on a hanging collector
            batch.shutdown(timeout_millis=int(timeout_s * 1000))
        else:
            self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if self.retired:
            return self._wait_retired(timeout_millis / 1000)
        return self._inner.force_flush(timeout_millis)
