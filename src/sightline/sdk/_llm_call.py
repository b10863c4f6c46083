"""One instrumented LLM call, from request to the last streamed chunk.

The provider wrappers (sdk/_openai.py, sdk/_anthropic.py) fill an :class:`LlmCall` from the
request, the response or each streamed chunk; it writes OpenTelemetry GenAI attributes once, at
the end, in one ``set_attributes``:

- ``sightline.ttft_ms``: from the call's start to the first chunk carrying content (text, a tool
  call, a refusal or reasoning), measured with ``perf_counter``;
- the span ends when the stream ends, so the server's TPOT, (end − first token) / (output
  tokens − 1), is the time per output token after the first;
- ``http.request.resend_count``: retries the client made (counted in its ``_build_request``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from sightline.sdk._budget import release as _release
from sightline.sdk._errors import internal_error
from sightline.sdk._logprobs import TokenLogprob, summarise
from sightline.sdk._tracing import CURRENT_CALL, _Content, _dumps, _text, start_span

__all__ = ["CURRENT_CALL", "LlmCall"]


def message_text(content: Any) -> Any:
    """A message's content as text when it is text parts only; else as it is."""
    if isinstance(content, list):
        texts = []
        for p in content:
            if isinstance(p, Mapping) and p.get("type") in ("text", "input_text", "output_text"):
                texts.append(str(p.get("text", "")))
            else:
                return content
        return "\n".join(texts)
    return content


class LlmCall:
    """The span of one LLM call and what is known of it so far. Its methods never raise."""

    __slots__ = (
        "__weakref__",
        "_t0",
        "_token",
        "budget_ticket",
        "ended",
        "finish_reasons",
        "first_ns",
        "input_tokens",
        "last_ns",
        "logprobs",
        "output_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "response_id",
        "response_model",
        "retries",
        "span",
        "text_parts",
        "tool_calls",
    )

    def __init__(self, span: otel_trace.Span, token: object) -> None:
        self.span = span
        self._token: object | None = token
        self._t0 = time.perf_counter_ns()
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        """When the last chunk with content arrived (``perf_counter_ns``)."""
        self.ended = False
        self.text_parts: list[str] = []
        self.tool_calls: list[dict[str, Any]] = []
        self.finish_reasons: list[str] = []
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cached_tokens: int | None = None
        self.cache_write_tokens: int | None = None
        self.reasoning_tokens: int | None = None
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.retries = 0
        self.logprobs: list[TokenLogprob] = []
        """Token log-probabilities of the first choice, when the provider returned them."""
        self.budget_ticket: tuple[str, ...] | None = None
        """This call's place in the budget guard's ledgers (sdk/_budget.py)."""

    @classmethod
    def start(
        cls,
        *,
        provider: str,
        model: str | None,
        operation: str,
        attributes: dict[str, Any],
    ) -> LlmCall | None:
        """Start the span (current until ``detach``); None when instrumentation failed."""
        # the server's kind for the operation (semconv.GEN_AI_OPERATION_KINDS), as the gateway
        attributes["sightline.span.kind"] = "embedding" if operation == "embeddings" else "llm"
        attributes["gen_ai.operation.name"] = operation
        attributes["gen_ai.provider.name"] = provider
        if model:
            attributes["gen_ai.request.model"] = model
        started = start_span(
            f"{operation} {model}" if model else operation, attributes, SpanKind.CLIENT
        )
        if started is None:
            return None
        return cls(started[0], started[1])

    @staticmethod
    def messages_attribute(messages: Any) -> str | None:
        """``gen_ai.input.messages``: the messages as JSON (None when content is off)."""
        if not _Content.capture or messages is None:
            return None
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        out = []
        for m in messages:
            if isinstance(m, Mapping):
                msg = dict(m)
                if "content" in msg:
                    msg["content"] = message_text(msg["content"])
                out.append(msg)
            else:
                out.append(m)
        return _text(out)

    def first_token(self) -> None:
        """A chunk with content arrived (the first one is the time to first token)."""
        self.last_ns = time.perf_counter_ns()
        if self.first_ns is None:
            self.first_ns = self.last_ns

    def detach(self) -> None:
        """Stop being the current span (the call returned a stream that is read later)."""
        token, self._token = self._token, None
        if token is not None:
            try:
                otel_context.detach(token)  # type: ignore[arg-type]
            except Exception:
                internal_error("llm_detach")

    def end(self, exc: BaseException | None = None) -> None:
        """Write what is known and end the span (once; later calls do nothing)."""
        if self.ended:
            return
        self.ended = True
        try:
            self._finish(exc)
        except Exception:
            internal_error("llm_end")
        self.detach()
        try:
            self.span.end()
        except Exception:
            internal_error("llm_end")
        _release(self.budget_ticket)

    def _finish(self, exc: BaseException | None) -> None:
        a: dict[str, Any] = {}
        if self.first_ns is not None:
            a["sightline.ttft_ms"] = (self.first_ns - self._t0) / 1e6
        if self.response_id:
            a["gen_ai.response.id"] = self.response_id
        if self.response_model:
            a["gen_ai.response.model"] = self.response_model
        for attr, v in (
            ("gen_ai.usage.input_tokens", self.input_tokens),
            ("gen_ai.usage.output_tokens", self.output_tokens),
            ("gen_ai.usage.cache_read.input_tokens", self.cached_tokens),
            ("gen_ai.usage.cache_creation.input_tokens", self.cache_write_tokens),
            ("gen_ai.usage.reasoning.output_tokens", self.reasoning_tokens),
        ):
            if v is not None:
                a[attr] = int(v)
        if self.finish_reasons:
            a["gen_ai.response.finish_reasons"] = tuple(self.finish_reasons)
        if self.retries:
            a["http.request.resend_count"] = self.retries
        if self.logprobs:
            a.update(summarise(self.logprobs))
        if _Content.capture and (self.text_parts or self.tool_calls):
            msg: dict[str, Any] = {"role": "assistant", "content": "".join(self.text_parts)}
            if self.tool_calls:
                msg["tool_calls"] = self.tool_calls
            if self.finish_reasons:
                msg["finish_reason"] = self.finish_reasons[0]
            t = _text([msg])
            if t is not None:
                a["gen_ai.output.messages"] = t
        span = self.span
        if a:
            span.set_attributes(a)
        if exc is not None and isinstance(exc, Exception):
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            span.set_attribute("error.type", _error_type(exc))

    def __del__(self) -> None:
        # A stream the app dropped without reading or closing it: end the span with what is
        # known rather than never.
        if not self.ended:
            self.ended = True
            try:
                self._finish(None)
                self.span.set_attribute("sightline.stream.abandoned", True)
                # the garbage collector may come much later (the openai client's streams sit
                # in reference cycles): the call ended, for the app, with its last chunk read
                end = None
                if self.last_ns is not None:
                    end = time.time_ns() - (time.perf_counter_ns() - self.last_ns)
                self.span.end(end_time=end)
                _release(self.budget_ticket)
            except Exception:  # noqa: S110 - nothing may escape a finaliser
                pass


def _error_type(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    return str(status) if isinstance(status, int) else type(exc).__qualname__


def request_params(kwargs: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """``gen_ai.request.*`` attributes from the call's keyword arguments."""
    a: dict[str, Any] = {}
    for arg, attr in names.items():
        v = kwargs.get(arg)
        if isinstance(v, bool | int | float | str):
            a[attr] = v
        elif isinstance(v, list | tuple) and v and all(isinstance(x, str) for x in v):
            a[attr] = tuple(v)
    return a


def dumps(value: Any) -> str:
    """JSON for an attribute value (repr of what JSON cannot hold)."""
    return _dumps(value)
