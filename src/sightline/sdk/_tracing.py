"""Spans for each stage of an LLM application: ``trace``, ``span``, ``observe`` and helpers.

This is the hot path of every instrumented call, so it avoids what costs here (measured with
bench/sdk_overhead.py): generator-based context managers (~2 µs each), one ``set_attribute`` per
attribute (a lock and a validation each; one ``set_attributes`` takes the lock once),
``inspect.Signature.bind`` per call, and OpenTelemetry's proxy tracer once a provider is known.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
from collections.abc import AsyncIterator, Callable, Generator, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, Literal, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.trace import SpanKind, Status, StatusCode

from sightline.sdk._errors import handle_internal_errors, internal_error

__all__ = [
    "SightlineSpan",
    "TraceAttributesProcessor",
    "add_trace_attributes",
    "current_span",
    "observe",
    "span",
    "trace",
    "use_provider",
]

F = TypeVar("F", bound=Callable[..., Any])

TRACER_NAME = "sightline"
# Attributes of the enclosing `trace()`, copied onto every span started inside it: contextvars
# follow asyncio tasks, and threads once sdk/_threads.py is installed.
_TRACE_ATTRS: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "sightline_trace_attrs", default=MappingProxyType({})
)
_KIND = "sightline.span.kind"
_ERROR = StatusCode.ERROR
CURRENT_CALL: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "sightline_llm_call", default=None
)
"""The instrumented LLM call whose client request is being made (sdk/_llm_call.py)."""
DUPLICATE_ATTR = "sightline.duplicate"
"""Marks a client library's own span of a call that Sightline already records."""
DUPLICATE_SCOPES: tuple[str, ...] = ("com.anthropic",)
"""Instrumentation scopes of the spans client libraries emit by themselves (anthropic >= 2)."""


class _Content:
    """How much content to record; set by ``init``."""

    capture: bool = True
    max_chars: int = 65_536
    redact: Callable[[str], str] | None = None


# One encoder for the process: json.dumps with options builds a new encoder on every call.
_ENCODE = json.JSONEncoder(default=repr, ensure_ascii=False).encode
_JOIN = "".join


def _c_encoder() -> Callable[[Any, int], Any] | None:
    """The C encoder ``JSONEncoder.encode`` builds on every call, built once (None if absent).

    Same options, so the same text; without the circular-reference markers (a dict shared by
    every call and thread would not be safe), a cycle ends in ``RecursionError`` instead of
    ``ValueError``, and either gives the value's ``repr``.
    """
    try:
        from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]

        enc = c_make_encoder(None, repr, encode_basestring, None, ": ", ", ", False, False, True)
        if _JOIN(enc([{"a": 1.5, "b": [None, True]}, "é"], 0)) != _ENCODE(
            [{"a": 1.5, "b": [None, True]}, "é"]
        ):
            return None
        return cast(Callable[[Any, int], Any], enc)
    except Exception:  # another interpreter or version: JSONEncoder.encode, as before
        return None


_C_ENCODE = _c_encoder()


def _dumps(value: Any) -> str:
    try:
        if _C_ENCODE is not None:
            return _JOIN(_C_ENCODE(value, 0))
        return _ENCODE(value)
    except (TypeError, ValueError, RecursionError):
        return repr(value)


def _text(value: Any) -> str | None:
    if not _Content.capture:
        return None
    s = value if isinstance(value, str) else _dumps(value)
    if len(s) > _Content.max_chars:
        s = s[: _Content.max_chars]
    return _Content.redact(s) if _Content.redact is not None else s


_USAGE_KEYS = (
    ("input_tokens", "gen_ai.usage.input_tokens"),
    ("prompt_tokens", "gen_ai.usage.input_tokens"),
    ("output_tokens", "gen_ai.usage.output_tokens"),
    ("completion_tokens", "gen_ai.usage.output_tokens"),
    ("cached_input_tokens", "gen_ai.usage.cache_read.input_tokens"),
    ("cache_write_tokens", "gen_ai.usage.cache_creation.input_tokens"),
    ("reasoning_tokens", "gen_ai.usage.reasoning.output_tokens"),
)
_USAGE_ATTRS = dict(_USAGE_KEYS)
_SCALAR = (str, bool, int, float)


def _usage_attributes(a: dict[str, Any], usage: Mapping[str, int]) -> None:
    # One pass over what was given rather than a lookup per known key.
    for key, v in usage.items():
        attr = _USAGE_ATTRS.get(key)
        if attr is None or v is None:
            continue
        if attr in a:  # both spellings of one count: the later in _USAGE_KEYS wins, as always
            for key2, attr2 in _USAGE_KEYS:
                v2 = usage.get(key2)
                if v2 is not None:
                    a[attr2] = int(v2)
            return
        a[attr] = int(v)


def _llm_attributes(
    model: str | None,
    provider: str | None,
    input_messages: Sequence[Mapping[str, Any]] | None,
    output: str | None,
    usage: Mapping[str, int] | None,
    finish_reason: str | None,
    ttft_ms: float | None,
    params: Mapping[str, Any] | None,
    kind: bool,
) -> dict[str, Any]:
    a: dict[str, Any] = (
        {_KIND: "llm", "gen_ai.operation.name": "chat"}
        if kind
        else {"gen_ai.operation.name": "chat"}
    )
    if model:
        a["gen_ai.request.model"] = model
    if provider:
        a["gen_ai.provider.name"] = provider
    if _Content.capture:
        if input_messages is not None:
            t = _text(input_messages if isinstance(input_messages, list) else list(input_messages))
            if t is not None:
                a["gen_ai.input.messages"] = t
        if output is not None:
            t = _text(output)
            if t is not None:
                a["sightline.output"] = t
    if usage:
        _usage_attributes(a, usage)
    if finish_reason:
        a["gen_ai.response.finish_reasons"] = (finish_reason,)
    if ttft_ms is not None:
        a["sightline.ttft_ms"] = float(ttft_ms)
    if params:
        for k, v in params.items():
            if isinstance(v, _SCALAR):
                a[f"gen_ai.request.{k}"] = v
    return a


def llm_attributes(
    *,
    model: str | None = None,
    provider: str | None = None,
    input_messages: Sequence[Mapping[str, Any]] | None = None,
    output: str | None = None,
    usage: Mapping[str, int] | None = None,
    finish_reason: str | None = None,
    ttft_ms: float | None = None,
    params: Mapping[str, Any] | None = None,
    kind: bool = True,
) -> dict[str, Any]:
    """The OpenTelemetry GenAI attributes of one LLM call (see ``SightlineSpan.set_llm``)."""
    return _llm_attributes(
        model, provider, input_messages, output, usage, finish_reason, ttft_ms, params, kind
    )


class SightlineSpan:
    """A span of one stage, with helpers for what Sightline reads. Never raises."""

    __slots__ = ("_kind", "_kind_pending", "otel")

    def __init__(self, otel_span: otel_trace.Span, kind: str | None = None) -> None:
        self.otel = otel_span
        self._kind = kind  # the kind the span started with, to not set it twice
        # True while the kind is still to be written (``span()`` writes it with the first
        # attributes set through these helpers, or at the end): see _SpanScope.
        self._kind_pending = False

    def set_attribute(self, key: str, value: Any) -> None:
        """Set one attribute (dropped if OpenTelemetry cannot hold the value)."""
        try:
            self.otel.set_attribute(key, value)
        except Exception:  # rule 21: never raise into the app
            internal_error("set_attribute")

    def set_input(self, value: Any) -> None:
        """Record the stage's input (text, or anything JSON-serialisable)."""
        try:
            t = _text(value)
            if t is not None:
                self.otel.set_attribute("sightline.input", t)
        except Exception:
            internal_error("set_input")

    def set_output(self, value: Any) -> None:
        """Record the stage's output."""
        try:
            t = _text(value)
            if t is not None:
                self.otel.set_attribute("sightline.output", t)
        except Exception:
            internal_error("set_output")

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

    def set_samples(self, answers: Sequence[str]) -> None:
        """Record other answers sampled for the same prompt (the ``self_consistency`` signal)."""
        with handle_internal_errors("set_samples"):
            if not _Content.capture:
                return
            t = json.dumps([str(a) for a in answers], ensure_ascii=False)
            if _Content.redact is not None:
                t = _Content.redact(t)
            self.otel.set_attribute("sightline.samples", t)

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

        ``usage`` takes ``input_tokens``, ``output_tokens``, ``cached_input_tokens``,
        ``cache_write_tokens`` and ``reasoning_tokens`` (OpenAI's
        ``prompt_tokens``/``completion_tokens`` also work). Input tokens include cached ones.
        """
        try:
            self.otel.set_attributes(
                _llm_attributes(
                    model,
                    provider,
                    input_messages,
                    output,
                    usage,
                    finish_reason,
                    ttft_ms,
                    params,
                    self._kind_pending or self._kind != "llm",
                )
            )
            self._kind_pending = False  # the kind is "llm" now, whatever the span started as
        except Exception:
            internal_error("set_llm")

    def set_guardrail(
        self,
        *,
        blocked: bool,
        reason: str | None = None,
        version: str | None = None,
        stage: Literal["input", "output"] | None = None,
    ) -> None:
        """Record a guardrail decision; the span's name is the guardrail's.

        ``version`` tells versions of a guardrail apart in its effectiveness figures, ``stage``
        whether it checks the input (injections, jailbreaks) or the output (unsafe content).
        """
        with handle_internal_errors("set_guardrail"):
            a: dict[str, Any] = {_KIND: "guardrail", "sightline.guardrail.blocked": bool(blocked)}
            if reason:
                a["sightline.guardrail.reason"] = reason
            if version:
                a["sightline.guardrail.version"] = str(version)
            if stage:
                a["sightline.guardrail.stage"] = stage
            self.otel.set_attributes(a)
            self._kind_pending = False


_NOOP = SightlineSpan(otel_trace.INVALID_SPAN)


def current_span() -> SightlineSpan:
    """The active span (a no-op span when none is active)."""
    return SightlineSpan(otel_trace.get_current_span())


class TraceAttributesProcessor(SpanProcessor):
    """Copies the enclosing ``trace()`` attributes onto spans of any instrumentation.

    Sightline's own spans get them at start already (cheaper than setting them afterwards).
    It also marks the span a client library starts by itself inside a call Sightline's wrapper
    records (``sightline.duplicate``), which Sightline's exporter then leaves out: one call, one
    LLM span, not two with the cost counted twice.
    """

    def on_start(self, span: SdkSpan, parent_context: otel_context.Context | None = None) -> None:
        add_trace_attributes(span)

    def on_end(self, span: ReadableSpan) -> None:
        pass


def add_trace_attributes(span: SdkSpan) -> None:
    """``TraceAttributesProcessor.on_start`` (also done by the SDK's exporting processor)."""
    if CURRENT_CALL.get() is not None:
        try:
            scope = span.instrumentation_scope
            if scope is not None and scope.name.startswith(DUPLICATE_SCOPES):
                span.set_attribute(DUPLICATE_ATTR, True)
        except Exception:
            internal_error("duplicate_marker")
    attrs = _TRACE_ATTRS.get()
    if attrs:
        try:
            scope = span.instrumentation_scope
            if scope is None or scope.name != TRACER_NAME:
                span.set_attributes(attrs)
        except Exception:
            internal_error("trace_attributes")


# One tracer for the process: get_tracer costs ~40 µs a call. Taken before init() it is
# OpenTelemetry's proxy, which starts delegating once a provider is set; init() swaps in the
# provider's own tracer, which saves the proxy's indirection on every span.
_TRACER: otel_trace.Tracer = otel_trace.get_tracer(TRACER_NAME)


def use_provider(provider: otel_trace.TracerProvider) -> None:
    """Start Sightline's spans from ``provider`` directly (called by ``init``)."""
    global _TRACER
    _TRACER = provider.get_tracer(TRACER_NAME)


def start_span(
    name: str,
    attributes: dict[str, Any],
    kind: SpanKind = SpanKind.INTERNAL,
) -> tuple[otel_trace.Span, object] | None:
    """Start a span with the trace attributes and make it current; None if that failed.

    Started and ended by hand rather than through ``start_as_current_span``: its nested
    generator context managers cost ~20 µs a span, which every instrumented call pays.
    """
    try:
        trace_attrs = _TRACE_ATTRS.get()
        if trace_attrs:
            attributes.update(trace_attrs)
        otel_span = _TRACER.start_span(name, kind=kind, attributes=attributes)
        token = otel_context.attach(otel_trace.set_span_in_context(otel_span))
        return otel_span, token
    except Exception:
        internal_error("span_start")
        return None


def end_span(otel_span: otel_trace.Span, token: object, exc: BaseException | None) -> None:
    """Mark an exception (if any) as the span's error, detach its context and end it."""
    try:
        if exc is not None and isinstance(exc, Exception):
            otel_span.record_exception(exc)
            otel_span.set_status(Status(_ERROR, f"{type(exc).__name__}: {exc}"))
            otel_span.set_attribute("error.type", type(exc).__qualname__)
        otel_context.detach(token)  # type: ignore[arg-type]
        otel_span.end()
    except Exception:
        internal_error("span_end")


class _SpanScope(SightlineSpan):
    """What ``span()`` returns: the context manager and, once entered, the span itself.

    One object rather than a context manager and a span (measured by bench/sdk_overhead.py).
    When the span starts without other attributes (no ``trace()`` around it, none given), its
    kind is not passed at start but written with the first attributes the helpers set
    (``set_llm``...) or at the end: OpenTelemetry validates each batch of attributes as a whole,
    and a batch of one at start costs about as much as the ten of ``set_llm``. The exported
    span has the same attributes; only processors' ``on_start`` and samplers no longer see the
    kind of such a span.
    """

    __slots__ = ("_attributes", "_name", "_token")

    def __init__(self, name: str, kind: str, attributes: Mapping[str, Any] | None) -> None:
        self.otel = otel_trace.INVALID_SPAN
        self._kind = kind
        self._kind_pending = False
        self._name = name
        self._attributes = attributes
        self._token: object | None = None

    def __enter__(self) -> SightlineSpan:
        try:
            trace_attrs = _TRACE_ATTRS.get()
            given = self._attributes
            if trace_attrs or given:
                attrs: dict[str, Any] = {_KIND: self._kind}
                if given:
                    attrs.update(given)
                if trace_attrs:
                    attrs.update(trace_attrs)
                otel_span = _TRACER.start_span(self._name, attributes=attrs)
                self._kind_pending = False
            else:
                otel_span = _TRACER.start_span(self._name)
                self._kind_pending = True
            self._token = otel_context.attach(otel_trace.set_span_in_context(otel_span))
        except Exception:  # instrumentation failed: run the user's code without a span
            internal_error("span_start")
            return _NOOP
        self.otel = otel_span
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token = self._token
        if token is None:
            return
        self._token = None
        otel_span = self.otel
        if self._kind_pending:
            self._kind_pending = False
            try:
                attrs = getattr(otel_span, "attributes", None)
                # unless set by hand meanwhile (a kind given at start was overridden too)
                if attrs is None or _KIND not in attrs:
                    otel_span.set_attribute(_KIND, self._kind)
            except Exception:
                internal_error("span_kind")
        end_span(otel_span, token, exc)


def span(
    name: str, *, kind: str = "chain", attributes: Mapping[str, Any] | None = None
) -> _SpanScope:
    """A span for one stage; exceptions mark it as error and propagate unchanged.

    Example:
        ```python
        with sightline.span("retrieve", kind="retrieval") as s:
            docs = search(question)
            s.set_documents(docs)
        ```
    """
    return _SpanScope(name, kind, attributes)


class _TraceScope:
    __slots__ = ("_attrs", "_name", "_scope", "_token")

    def __init__(self, name: str, attrs: dict[str, Any]) -> None:
        self._name = name
        self._attrs = attrs
        self._scope = _SpanScope(name, "chain", None)
        self._token: contextvars.Token[Mapping[str, Any]] | None = None

    def __enter__(self) -> SightlineSpan:
        self._token = _TRACE_ATTRS.set({**_TRACE_ATTRS.get(), **self._attrs})
        return self._scope.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._scope.__exit__(exc_type, exc, tb)
        finally:
            if self._token is not None:
                _TRACE_ATTRS.reset(self._token)
                self._token = None


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
) -> _TraceScope:
    """The root span of one request; its attributes propagate to every span inside it.

    They follow asyncio tasks, and threads and thread pools started inside the block (see
    ``init(propagate_threads=...)``).

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
    return _TraceScope(name, attrs)


def _input_builder(fn: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any]], Any]:
    """A function mapping a call's (args, kwargs) to its named arguments, without ``bind``.

    ``Signature.bind_partial`` costs ~5 µs a call; for the usual signature (named parameters,
    no ``*args``) zipping names with the positional arguments gives the same mapping.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return lambda args, kwargs: {"args": args, "kwargs": kwargs}
    params = list(sig.parameters.values())
    simple = all(
        p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY, p.POSITIONAL_ONLY) for p in params
    )
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY)]
    skip = {"self", "cls"}
    if simple:
        names = tuple(positional)

        def fast(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if len(args) > len(names):
                return {"args": args, "kwargs": kwargs}
            d = dict(zip(names, args, strict=False))
            if kwargs:
                d.update(kwargs)
            if names and names[0] in skip:
                d.pop(names[0], None)
            return d

        return fast

    def slow(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            bound = sig.bind_partial(*args, **kwargs)
        except TypeError:
            return {"args": args, "kwargs": kwargs}
        return {k: v for k, v in bound.arguments.items() if k not in skip}

    return slow


class _GenSpan:
    """The span of an observed generator, current only while the generator's own code runs.

    A ``with span(...)`` around the ``yield`` would leave the span current in the consumer's
    code between items: whatever the consumer traced there would become the generator's child,
    and one left early would leave it current for good.
    """

    __slots__ = ("ctx", "items", "otel")

    def __init__(self, otel_span: otel_trace.Span) -> None:
        self.otel = otel_span
        self.ctx = otel_trace.set_span_in_context(otel_span)
        self.items = 0

    @classmethod
    def start(cls, name: str, attributes: dict[str, Any]) -> _GenSpan | None:
        try:
            trace_attrs = _TRACE_ATTRS.get()
            if trace_attrs:
                attributes.update(trace_attrs)
            return cls(_TRACER.start_span(name, attributes=attributes))
        except Exception:
            internal_error("span_start")
            return None

    def attach(self) -> object:
        return otel_context.attach(self.ctx)

    def detach(self, token: object) -> None:
        try:
            otel_context.detach(token)  # type: ignore[arg-type]
        except Exception:
            internal_error("span_detach")

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        token = self.attach()
        try:
            return fn(*args, **kwargs)
        finally:
            self.detach(token)

    def end(self, exc: BaseException | None, *, done: bool) -> None:
        try:
            if done:
                self.otel.set_attribute("sightline.items", self.items)
            if exc is not None and isinstance(exc, Exception):
                self.otel.record_exception(exc)
                self.otel.set_status(Status(_ERROR, f"{type(exc).__name__}: {exc}"))
                self.otel.set_attribute("error.type", type(exc).__qualname__)
            self.otel.end()
        except Exception:
            internal_error("span_end")


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
        build_input = _input_builder(fn)

        def start(s: SightlineSpan, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if capture_input and _Content.capture:
                try:
                    s.set_input(build_input(args, kwargs))
                except Exception:
                    internal_error("observe_input")

        def finish(s: SightlineSpan, result: Any) -> None:
            # a function that returns nothing has no output (it was stored as "null")
            if capture_output and result is not None:
                s.set_output(result)

        def start_attrs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            """The span's start attributes: its kind, and its input when captured."""
            attrs: dict[str, Any] = {_KIND: kind}
            if capture_input and _Content.capture:
                try:
                    t = _text(build_input(args, kwargs))
                    if t is not None:
                        attrs["sightline.input"] = t
                except Exception:
                    internal_error("observe_input")
            return attrs

        def start_detached(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            """A generator's span: current only while the generator runs (see _GenSpan)."""
            return _GenSpan.start(span_name, start_attrs(args, kwargs))

        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
                gs = start_detached(args, kwargs)
                if gs is None:
                    async for item in fn(*args, **kwargs):
                        yield item
                    return
                gen = gs.run(fn, *args, **kwargs)
                try:
                    while True:
                        token = gs.attach()
                        try:
                            item = await gen.__anext__()
                        except StopAsyncIteration:
                            break
                        finally:
                            gs.detach(token)
                        gs.items += 1
                        yield item
                except GeneratorExit:  # the consumer stopped early: not an error
                    token = gs.attach()
                    try:
                        await gen.aclose()
                    finally:
                        gs.detach(token)
                        gs.end(None, done=False)
                    raise
                except BaseException as e:
                    gs.end(e, done=False)
                    raise
                gs.end(None, done=True)

            return cast(F, agen_wrapper)
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
                gs = start_detached(args, kwargs)
                if gs is None:
                    return (yield from fn(*args, **kwargs))
                gen = gs.run(fn, *args, **kwargs)
                try:
                    while True:
                        token = gs.attach()
                        try:
                            item = next(gen)
                        except StopIteration as stop:
                            result = stop.value
                            break
                        finally:
                            gs.detach(token)
                        gs.items += 1
                        yield item
                except GeneratorExit:  # the consumer stopped early: not an error
                    token = gs.attach()
                    try:
                        gen.close()
                    finally:
                        gs.detach(token)
                        gs.end(None, done=False)
                    raise
                except BaseException as e:
                    gs.end(e, done=False)
                    raise
                gs.end(None, done=True)
                return result

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

        # The sync path, the most common, starts and ends its span inline with the input
        # among the start attributes: one validation pass and no extra lock (measured by
        # bench/sdk_overhead.py).
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = start_span(span_name, start_attrs(args, kwargs))
            if started is None:
                return fn(*args, **kwargs)
            otel_span, token = started
            try:
                result = fn(*args, **kwargs)
            except BaseException as e:
                end_span(otel_span, token, e)
                raise
            if capture_output and _Content.capture and result is not None:
                try:
                    t = _text(result)
                    if t is not None:
                        otel_span.set_attribute("sightline.output", t)
                except Exception:
                    internal_error("observe_output")
            end_span(otel_span, token, None)
            return result

        return cast(F, wrapper)

    return decorate
