"""Spans for each stage of an LLM application: ``trace``, ``span``, ``observe`` and helpers."""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.trace import Status, StatusCode

from sightline.sdk._errors import handle_internal_errors

__all__ = ["SightlineSpan", "current_span", "observe", "span", "trace"]

F = TypeVar("F", bound=Callable[..., Any])

_TRACER_NAME = "sightline"
# Attributes of the enclosing `trace()`, copied onto every span started inside it: contextvars
# follow asyncio tasks; threads get them through contextvars.copy_context().run.
_TRACE_ATTRS: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "sightline_trace_attrs", default=MappingProxyType({})
)


class _Content:
    """How much content to record; set by ``init``."""

    capture: bool = True
    max_chars: int = 65_536
    redact: Callable[[str], str] | None = None


def _text(value: Any) -> str | None:
    if not _Content.capture:
        return None
    if isinstance(value, str):
        s = value
    else:
        try:
            s = json.dumps(value, default=repr, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            s = repr(value)
    if len(s) > _Content.max_chars:
        s = s[: _Content.max_chars]
    return _Content.redact(s) if _Content.redact is not None else s


class SightlineSpan:
    """A span of one stage, with helpers for what Sightline reads. Never raises."""

    __slots__ = ("otel",)

    def __init__(self, otel_span: otel_trace.Span) -> None:
        self.otel = otel_span

    def set_attribute(self, key: str, value: Any) -> None:
        """Set one attribute (dropped if OpenTelemetry cannot hold the value)."""
        with handle_internal_errors("set_attribute"):
            self.otel.set_attribute(key, value)

    def set_input(self, value: Any) -> None:
        """Record the stage's input (text, or anything JSON-serialisable)."""
        with handle_internal_errors("set_input"):
            t = _text(value)
            if t is not None:
                self.otel.set_attribute("sightline.input", t)

    def set_output(self, value: Any) -> None:
        """Record the stage's output."""
        with handle_internal_errors("set_output"):
            t = _text(value)
            if t is not None:
                self.otel.set_attribute("sightline.output", t)

    def set_documents(self, documents: Sequence[Mapping[str, Any] | str]) -> None:
        """Record retrieved documents: dicts with ``id``, ``content``, ``score``, ``metadata``."""
        with handle_internal_errors("set_documents"):
            docs = [d if isinstance(d, Mapping) else {"content": d} for d in documents]
            if not _Content.capture:
                docs = [{k: v for k, v in d.items() if k != "content"} for d in docs]
            t = json.dumps(docs, default=repr, ensure_ascii=False)
            if _Content.redact is not None:
                t = _Content.redact(t)
            self.otel.set_attribute("sightline.documents", t)

    def set_llm(
        self,
        *,
        model: str | None = None,
        provider: str | None = None,
        input_messages: Sequence[Mapping[str, Any]] | None = None,
        output: str | None = None,
        usage: Mapping[str, int] | None = None,
        finish_reason: str | None = None,
        ttft_ms: float | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        """Record an LLM call with the OpenTelemetry GenAI attribute names.

        ``usage`` takes ``input_tokens``, ``output_tokens``, ``cached_input_tokens`` and
        ``reasoning_tokens`` (OpenAI's ``prompt_tokens``/``completion_tokens`` also work).
        """
        with handle_internal_errors("set_llm"):
            s = self.otel
            s.set_attribute("sightline.span.kind", "llm")
            s.set_attribute("gen_ai.operation.name", "chat")
            if model:
                s.set_attribute("gen_ai.request.model", model)
            if provider:
                s.set_attribute("gen_ai.provider.name", provider)
            if input_messages is not None:
                t = _text([dict(m) for m in input_messages])
                if t is not None:
                    s.set_attribute("gen_ai.input.messages", t)
            if output is not None:
                t = _text(output)
                if t is not None:
                    s.set_attribute("sightline.output", t)
            u = usage or {}
            for key, attr in (
                ("input_tokens", "gen_ai.usage.input_tokens"),
                ("prompt_tokens", "gen_ai.usage.input_tokens"),
                ("output_tokens", "gen_ai.usage.output_tokens"),
                ("completion_tokens", "gen_ai.usage.output_tokens"),
                ("cached_input_tokens", "gen_ai.usage.cache_read.input_tokens"),
                ("reasoning_tokens", "gen_ai.usage.reasoning.output_tokens"),
            ):
                if u.get(key) is not None:
                    s.set_attribute(attr, int(u[key]))
            if finish_reason:
                s.set_attribute("gen_ai.response.finish_reasons", [finish_reason])
            if ttft_ms is not None:
                s.set_attribute("sightline.ttft_ms", float(ttft_ms))
            for k, v in (params or {}).items():
                if isinstance(v, str | bool | int | float):
                    s.set_attribute(f"gen_ai.request.{k}", v)

    def set_guardrail(self, *, blocked: bool, reason: str | None = None) -> None:
        """Record a guardrail decision."""
        with handle_internal_errors("set_guardrail"):
            self.otel.set_attribute("sightline.span.kind", "guardrail")
            self.otel.set_attribute("sightline.guardrail.blocked", bool(blocked))
            if reason:
                self.otel.set_attribute("sightline.guardrail.reason", reason)


class _NoopSpan(SightlineSpan):
    def __init__(self) -> None:
        super().__init__(otel_trace.INVALID_SPAN)


def current_span() -> SightlineSpan:
    """The active span (a no-op span when none is active)."""
    return SightlineSpan(otel_trace.get_current_span())


class TraceAttributesProcessor(SpanProcessor):
    """Copies the enclosing ``trace()`` attributes onto spans of any instrumentation."""

    def on_start(self, span: SdkSpan, parent_context: otel_context.Context | None = None) -> None:
        attrs = _TRACE_ATTRS.get()
        if attrs:
            with handle_internal_errors("trace_attributes"):
                span.set_attributes(attrs)

    def on_end(self, span: ReadableSpan) -> None:
        pass


# One tracer for the process: get_tracer costs ~40 µs a call. Taken before init() it is
# OpenTelemetry's proxy, which starts delegating once a provider is set.
_TRACER = otel_trace.get_tracer(_TRACER_NAME)


def _tracer() -> otel_trace.Tracer:
    return _TRACER


@contextmanager
def span(
    name: str, *, kind: str = "chain", attributes: Mapping[str, Any] | None = None
) -> Iterator[SightlineSpan]:
    """A span for one stage; exceptions mark it as error and propagate unchanged.

    Example:
        ```python
        with sightline.span("retrieve", kind="retrieval") as s:
            docs = search(question)
            s.set_documents(docs)
        ```
    """
    started = _start(name, kind, attributes)
    if started is None:  # instrumentation failed: run the user's code without a span
        yield _NoopSpan()
        return
    otel_span, token = started
    try:
        yield SightlineSpan(otel_span)
    except BaseException as e:
        _end(otel_span, token, e)
        raise
    else:
        _end(otel_span, token, None)


# Start and end by hand rather than through start_as_current_span: its nested generator
# context managers cost ~20 µs a span, which every instrumented call pays.
def _start(
    name: str, kind: str, attributes: Mapping[str, Any] | None
) -> tuple[otel_trace.Span, object] | None:
    with handle_internal_errors("span_start"):
        attrs: dict[str, Any] = {**_TRACE_ATTRS.get(), "sightline.span.kind": kind}
        if attributes:
            attrs.update(attributes)
        otel_span = _TRACER.start_span(name, attributes=attrs)
        token = otel_context.attach(otel_trace.set_span_in_context(otel_span))
        return otel_span, token
    return None


def _end(otel_span: otel_trace.Span, token: object, exc: BaseException | None) -> None:
    with handle_internal_errors("span_end"):
        if exc is not None and isinstance(exc, Exception):
            otel_span.record_exception(exc)
            otel_span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        otel_context.detach(token)  # type: ignore[arg-type]
        otel_span.end()


@contextmanager
def trace(
    name: str,
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    tenant: str | None = None,
    feature: str | None = None,
    variant: str | None = None,
    prompt: tuple[str, str | int] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Iterator[SightlineSpan]:
    """The root span of one request; its attributes propagate to every span inside it.

    Example:
        ```python
        with sightline.trace("rag-request", user_id="u-42", session_id="s-9",
                             feature="support-answer", prompt=("support-answer", 3)):
            answer = pipeline(question)
        ```
    """
    attrs: dict[str, Any] = {}
    for key, value in (
        ("sightline.user_id", user_id),
        ("sightline.session_id", session_id),
        ("sightline.tenant_id", tenant),
        ("sightline.feature", feature),
        ("sightline.variant", variant),
    ):
        if value is not None:
            attrs[key] = str(value)
    if prompt is not None:
        attrs["sightline.prompt.name"] = str(prompt[0])
        attrs["sightline.prompt.version"] = str(prompt[1])
    for k, v in (metadata or {}).items():
        if isinstance(v, str | bool | int | float):
            attrs[f"metadata.{k}"] = v
    token = _TRACE_ATTRS.set({**_TRACE_ATTRS.get(), **attrs})
    try:
        with span(name, kind="chain") as s:
            yield s
    finally:
        _TRACE_ATTRS.reset(token)


def _call_input(
    sig: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if sig is None:
        return {"args": args, "kwargs": kwargs}
    try:
        bound = sig.bind_partial(*args, **kwargs)
    except TypeError:
        return {"args": args, "kwargs": kwargs}
    return {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}


def observe(
    kind: str = "chain",
    *,
    name: str | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
) -> Callable[[F], F]:
    """Trace every call of a function (sync, async, generator or async generator).

    Example:
        ```python
        @sightline.observe(kind="retrieval")
        def retrieve(question: str) -> list[str]: ...
        ```
    """

    def decorate(fn: F) -> F:
        span_name: str = name or str(getattr(fn, "__qualname__", getattr(fn, "__name__", "call")))
        try:
            sig: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            sig = None

        def start(s: SightlineSpan, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if capture_input:
                with handle_internal_errors("observe_input"):
                    s.set_input(_call_input(sig, args, kwargs))

        def finish(s: SightlineSpan, result: Any) -> None:
            if capture_output:
                s.set_output(result)

        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
                with span(span_name, kind=kind) as s:
                    start(s, args, kwargs)
                    n = 0
                    async for item in fn(*args, **kwargs):
                        n += 1
                        yield item
                    s.set_attribute("sightline.items", n)

            return cast(F, agen_wrapper)
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
                with span(span_name, kind=kind) as s:
                    start(s, args, kwargs)
                    n = 0
                    for item in fn(*args, **kwargs):
                        n += 1
                        yield item
                    s.set_attribute("sightline.items", n)

            return cast(F, gen_wrapper)
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with span(span_name, kind=kind) as s:
                    start(s, args, kwargs)
                    result = await fn(*args, **kwargs)
                    finish(s, result)
                    return result

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with span(span_name, kind=kind) as s:
                start(s, args, kwargs)
                result = fn(*args, **kwargs)
                finish(s, result)
                return result

        return cast(F, wrapper)

    return decorate
