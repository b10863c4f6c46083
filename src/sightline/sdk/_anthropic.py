"""Automatic instrumentation of the ``anthropic`` client: messages, streaming or not.

Imported only when the application has ``anthropic`` (the SDK does not depend on it).

Anthropic counts cached input tokens apart from ``input_tokens``; OpenTelemetry GenAI (and
Sightline) count them inside, so ``gen_ai.usage.input_tokens`` here is their sum.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sightline.sdk._llm_call import LlmCall, dumps, message_text, request_params
from sightline.sdk._tracing import _Content, _text
from sightline.sdk._wrap import Prepared

__all__ = ["MessagesApi", "instrument"]

BUILTIN_SCOPE_PREFIX = "com.anthropic"
"""Instrumentation scope of the spans anthropic >= 2 emits by itself."""

_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "max_tokens": "gen_ai.request.max_tokens",
    "stop_sequences": "gen_ai.request.stop_sequences",
    "stream": "gen_ai.request.stream",
}
_FIRST_TOKEN_DELTAS = frozenset(("text_delta", "input_json_delta", "thinking_delta"))


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _usage(call: LlmCall, usage: Any) -> None:
    if usage is None:
        return
    inp = _int(_get(usage, "input_tokens"))
    read = _int(_get(usage, "cache_read_input_tokens"))
    written = _int(_get(usage, "cache_creation_input_tokens"))
    if inp is not None:
        call.input_tokens = inp + (read or 0) + (written or 0)
    if read:
        call.cached_tokens = read
    if written:
        call.cache_write_tokens = written
    out = _int(_get(usage, "output_tokens"))
    if out is not None:
        call.output_tokens = out  # cumulative in message_delta events


class MessagesApi:
    """``messages.create``."""

    def __init__(self, stream_types: tuple[type, ...], response_types: tuple[type, ...]) -> None:
        self.stream_types = stream_types
        self.response_types = response_types

    def prepare(self, kwargs: dict[str, Any]) -> Prepared | None:
        model = kwargs.get("model")
        attrs = request_params(kwargs, _PARAMS)
        msgs = LlmCall.messages_attribute(kwargs.get("messages"))
        if msgs is not None:
            attrs["gen_ai.input.messages"] = msgs
        system = kwargs.get("system")
        if system is not None and _Content.capture and not isinstance(system, bool):
            text = message_text(system)
            t = _text(text if isinstance(text, str) else dumps(text))
            if t is not None:
                attrs["gen_ai.system_instructions"] = dumps([{"type": "text", "content": t}])
        call = LlmCall.start(
            provider="anthropic",
            model=model if isinstance(model, str) else None,
            operation="chat",
            attributes=attrs,
        )
        return None if call is None else Prepared(call, kwargs, kwargs)

    def response(self, call: LlmCall, result: Any) -> None:
        call.response_id = _get(result, "id")
        call.response_model = _get(result, "model")
        texts = []
        for block in _get(result, "content") or ():
            kind = _get(block, "type")
            if kind == "text":
                texts.append(str(_get(block, "text") or ""))
            elif kind == "tool_use":
                call.tool_calls.append(
                    {
                        "id": _get(block, "id"),
                        "name": _get(block, "name"),
                        "arguments": dumps(_get(block, "input")),
                    }
                )
        if texts:
            call.text_parts[:] = ["".join(texts)]
        stop = _get(result, "stop_reason")
        if stop:
            call.finish_reasons[:] = [str(stop)]
        _usage(call, _get(result, "usage"))

    def chunk(self, call: LlmCall, item: Any, state: dict[str, Any]) -> bool:
        kind = _get(item, "type")
        if kind == "content_block_delta":
            delta = _get(item, "delta")
            dkind = _get(delta, "type")
            if dkind in _FIRST_TOKEN_DELTAS:
                call.first_token()
            if dkind == "text_delta":
                text = _get(delta, "text")
                if text:
                    call.text_parts.append(text)
            elif dkind == "input_json_delta" and call.tool_calls:
                call.tool_calls[-1]["arguments"] += _get(delta, "partial_json") or ""
        elif kind == "content_block_start":
            block = _get(item, "content_block")
            if _get(block, "type") == "tool_use":
                call.tool_calls.append(
                    {"id": _get(block, "id"), "name": _get(block, "name"), "arguments": ""}
                )
        elif kind == "message_start":
            msg = _get(item, "message")
            call.response_id = _get(msg, "id")
            call.response_model = _get(msg, "model")
            _usage(call, _get(msg, "usage"))
        elif kind == "message_delta":
            stop = _get(_get(item, "delta"), "stop_reason")
            if stop:
                call.finish_reasons[:] = [str(stop)]
            usage = _get(item, "usage")
            out = _int(_get(usage, "output_tokens"))
            if out is not None:
                call.output_tokens = out
            # newer APIs also report the input side again at the end
            if _int(_get(usage, "input_tokens")) is not None:
                _usage(call, usage)
        return True


def instrument() -> list[tuple[Any, str, Any, str]]:
    """(class, attribute, api, kind) for each method to wrap.

    ``messages.stream()`` and ``messages.parse()`` post by themselves (not through
    ``create``): ``stream()`` returns a manager whose request is recorded when it is entered.
    """
    import anthropic
    from anthropic.resources.messages import AsyncMessages, Messages
    from anthropic.types import Message

    api = MessagesApi((anthropic.Stream, anthropic.AsyncStream), (Message,))
    targets = []
    for cls in (Messages, AsyncMessages):
        targets += [(cls, "create", api, "method"), (cls, "parse", api, "method")]
        targets.append((cls, "stream", api, "manager"))
    return targets
