"""One structured log line per LLM request, for teams that ship logs rather than traces.

Off by default (``init(log_requests=True)`` or ``SIGHTLINE_LOG_REQUESTS=1``). It is a span
processor, so it sees the LLM spans of any instrumentation (Sightline's wrappers, ``set_llm``,
OpenLLMetry, OpenInference...), read through the same mapping as the server
(``sightline.semconv``). The retrieval spans of a trace end before its LLM span: their document
ids are remembered per trace (a bounded map) and logged with the request.

Written through ``structlog`` when it is importable (event ``llm_request`` with key=values, on
the ``sightline.llm`` logger), else through the standard ``logging`` module as one JSON object.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan

from sightline import semconv
from sightline.sdk._errors import internal_error
from sightline.sdk._tracing import DUPLICATE_ATTR

__all__ = ["EVENT", "LOGGER_NAME", "RequestLogProcessor"]

LOGGER_NAME = "sightline.llm"
EVENT = "llm_request"
_MAX_TRACES = 1_000
_MAX_TEXT = 2_000


class _Emitter:
    def __init__(self) -> None:
        try:
            import structlog
        except ImportError:
            self._structlog: Any = None
        else:
            self._structlog = structlog.get_logger(LOGGER_NAME)
        self._logging = logging.getLogger(LOGGER_NAME)

    def emit(self, fields: dict[str, Any]) -> None:
        if self._structlog is not None:
            self._structlog.info(EVENT, **fields)
        else:
            self._logging.info(json.dumps({"event": EVENT, **fields}, default=str))


class _Cost:
    """Cost from Sightline's price table when it is installed (the ``server`` extra)."""

    def __init__(self) -> None:
        try:
            from sightline.pricing import Pricer
        except ImportError:
            self._pricer: Any = None
        else:
            self._pricer = Pricer()

    def usd(self, rec: dict[str, Any]) -> float | None:
        if self._pricer is None:
            return None
        cost: float | None = self._pricer.cost_usd(
            model=rec.get("model"),
            provider=rec.get("provider"),
            input_tokens=rec.get("input_tokens"),
            output_tokens=rec.get("output_tokens"),
            cached_input_tokens=rec.get("cached_input_tokens"),
            cache_write_tokens=rec.get("cache_write_tokens"),
            reasoning_tokens=rec.get("reasoning_tokens"),
        )
        return cost


def _cap(text: Any) -> Any:
    if isinstance(text, str) and len(text) > _MAX_TEXT:
        return text[:_MAX_TEXT] + "…"
    return text


class RequestLogProcessor(SpanProcessor):
    """Logs each LLM span as it ends, with the document ids retrieved earlier in its trace."""

    def __init__(self) -> None:
        self._docs: OrderedDict[int, list[str]] = OrderedDict()
        self._lock = threading.Lock()
        self._emitter: _Emitter | None = None
        self._cost: _Cost | None = None

    def on_start(self, span: SdkSpan, parent_context: otel_context.Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self._on_end(span)
        except Exception:
            internal_error("request_log")

    def _on_end(self, span: ReadableSpan) -> None:
        attrs = dict(span.attributes or {})
        if attrs.get(DUPLICATE_ATTR):
            return
        ctx = span.get_span_context()
        if ctx is None:
            return
        start, end = span.start_time or 0, span.end_time or 0
        rec: dict[str, Any] = {
            "start_ns": start,
            "end_ns": end,
            "duration_ms": (end - start) / 1e6,
            "status": "error" if not span.status.is_ok else "ok",
            "status_message": span.status.description,
        }
        events = [(e.name, e.timestamp, dict(e.attributes or {})) for e in span.events]
        resource = dict(span.resource.attributes) if span.resource else {}
        semconv.normalise(rec, attrs, events or None, resource)
        kind = rec.get("kind")
        if kind in ("retrieval", "rerank"):
            ids = [str(d["id"]) for d in rec.get("documents") or () if d.get("id") is not None]
            if ids:
                with self._lock:
                    self._docs.setdefault(ctx.trace_id, []).extend(ids)
                    self._docs.move_to_end(ctx.trace_id)
                    while len(self._docs) > _MAX_TRACES:
                        self._docs.popitem(last=False)
            return
        if kind != "llm":
            return
        with self._lock:
            docs = list(self._docs.get(ctx.trace_id, ()))
            if span.parent is None or span.parent.is_remote:
                self._docs.pop(ctx.trace_id, None)
        if self._emitter is None or self._cost is None:
            self._emitter = _Emitter()
            self._cost = _Cost()
        fields: dict[str, Any] = {
            "trace_id": format(ctx.trace_id, "032x"),
            "span_id": format(ctx.span_id, "016x"),
            "name": span.name,
            "provider": rec.get("provider"),
            "model": rec.get("model"),
            "query": _cap(rec.get("input")),
            "document_ids": docs,
            "response": _cap(rec.get("output")),
            "input_tokens": rec.get("input_tokens"),
            "output_tokens": rec.get("output_tokens"),
            "latency_ms": round(rec["duration_ms"], 3),
            "ttft_ms": rec.get("ttft_ms"),
            "tpot_ms": rec.get("tpot_ms"),
            "finish_reason": rec.get("finish_reason"),
            "cost_usd": self._cost.usd(rec),
            "status": rec["status"],
        }
        if rec["status"] == "error":
            fields["error"] = rec.get("status_message")
        for key in ("user_id", "session_id", "tenant_id", "feature", "service_name"):
            if rec.get(key) is not None:
                fields[key] = rec[key]
        self._emitter.emit(fields)
