"""Spans kept in memory, for asserting what an instrumented test produced."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

__all__ = ["CapturedSpans", "capture_spans"]

_lock = threading.Lock()
_exporters: dict[int, InMemorySpanExporter] = {}


class CapturedSpans:
    """The spans finished while capturing, oldest first."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter

    @property
    def spans(self) -> list[ReadableSpan]:
        """Every finished span."""
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        """The finished spans called ``name``."""
        return [s for s in self.spans if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        """The only finished span called ``name`` (AssertionError if not exactly one)."""
        found = self.named(name)
        if len(found) != 1:
            names = [s.name for s in self.spans]
            raise AssertionError(f"{len(found)} spans named {name!r} among {names}")
        return found[0]

    def attributes(self, name: str) -> Mapping[str, Any]:
        """The attributes of the only span called ``name``."""
        return dict(self.one(name).attributes or {})

    def clear(self) -> None:
        """Forget the spans captured so far."""
        self.exporter.clear()


def _provider() -> TracerProvider:
    """The global SDK provider, set up (with Sightline's trace attributes) if there is none."""
    from sightline.sdk._tracing import TraceAttributesProcessor, use_provider

    provider = otel_trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        new = TracerProvider()
        new.add_span_processor(TraceAttributesProcessor())
        otel_trace.set_tracer_provider(new)
        provider = otel_trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):  # pragma: no cover - a proxy we cannot use
            raise RuntimeError("the global tracer provider is not an SDK TracerProvider")
        use_provider(provider)
    return provider


@contextmanager
def capture_spans() -> Iterator[CapturedSpans]:
    """Capture the spans finished inside the block, in memory, synchronously.

    Adds one in-memory exporter to the global ``TracerProvider`` (installing one, with
    Sightline's processors, when the process has none); spans are cleared on entry and exit.

    Example:
        ```python
        import sightline
        from sightline.testing import capture_spans

        with capture_spans() as captured:
            with sightline.span("retrieve", kind="retrieval"):
                pass
        assert captured.one("retrieve").attributes["sightline.span.kind"] == "retrieval"
        ```
    """
    provider = _provider()
    with _lock:
        exporter = _exporters.get(id(provider))
        if exporter is None:
            exporter = InMemorySpanExporter()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            _exporters[id(provider)] = exporter
    exporter.clear()
    try:
        yield CapturedSpans(exporter)
    finally:
        exporter.clear()
