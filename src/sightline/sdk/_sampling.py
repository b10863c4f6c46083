"""Sample per trace, but keep every trace that ends in error.

A trace the ratio does not pick is still *recorded* (not exported): its spans wait in a bounded
buffer until its local root ends. If any of them ended in error, they are passed on to the
exporting processor as sampled; otherwise they are dropped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceFlags, TraceState
from opentelemetry.util.types import Attributes

from sightline.sdk._errors import handle_internal_errors

__all__ = ["ErrorKeepingProcessor", "RecordUnsampled", "sampler_for"]

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


def sampler_for(rate: float) -> Sampler:
    """Children follow their parent's decision; roots follow the ratio (recording the rest)."""
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
    return ReadableSpan(
        name=span.name,
        context=sampled,
        parent=span.parent,
        resource=span.resource,
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
    """Wraps the exporting processor; forwards unsampled traces that contain an error."""

    def __init__(self, inner: SpanProcessor) -> None:
        self._inner = inner
        self._pending: OrderedDict[int, tuple[list[ReadableSpan], bool]] = OrderedDict()
        self._lock = threading.Lock()

    def on_start(self, span: SdkSpan, parent_context: otel_context.Context | None = None) -> None:
        self._inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.get_span_context()
        if ctx is None or ctx.trace_flags.sampled:
            self._inner.on_end(span)
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
                    self._inner.on_end(_as_sampled(s))

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)
