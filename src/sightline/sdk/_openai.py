"""Automatic instrumentation of the ``openai`` client: chat completions and the responses API.

Imported only when the application has ``openai`` (the SDK does not depend on it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sightline.sdk._llm_call import LlmCall, dumps, message_text, request_params
from sightline.sdk._logprobs import tokens_of
from sightline.sdk._tracing import _Content, _text
from sightline.sdk._wrap import Prepared

__all__ = ["ChatApi", "EmbeddingsApi", "ResponsesApi", "instrument"]

_RAW_HEADER = "x-stainless-raw-response"
_CHAT_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "seed": "gen_ai.request.seed",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "stop": "gen_ai.request.stop_sequences",
    "n": "gen_ai.request.choice.count",
    "stream": "gen_ai.request.stream",
}
_RESPONSES_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_output_tokens": "gen_ai.request.max_tokens",
    "stream": "gen_ai.request.stream",
}
# Response stream events whose arrival is the first token
_FIRST_TOKEN_EVENTS = frozenset(
    (
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.delta",
        "response.audio.transcript.delta",
    )
)
_DONE_EVENTS = frozenset(("response.completed", "response.incomplete", "response.failed"))
_MAX_TOOL_CALLS = 128


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _reads_bytes(kwargs: Mapping[str, Any]) -> bool:
    """Whether the app will read the HTTP body itself (``with_streaming_response``).

    Such an app sees the bytes, so nothing may be added to the stream. ``with_raw_response``
    (header value ``true``) is read through ``parse()``, whose stream Sightline observes and
    hides its usage chunk from, as for a plain stream.
    """
    headers = kwargs.get("extra_headers")
    if not isinstance(headers, Mapping):
        return False
    return any(
        str(k).lower() == _RAW_HEADER and str(v).lower() != "true" for k, v in headers.items()
    )


def _given(v: Any) -> bool:
    """The openai client's NotGiven/Omit sentinels are falsy; None is a value."""
    return v is not None and (bool(v) or isinstance(v, int | float | str | list))


class ChatApi:
    """``chat.completions.create``."""

    def __init__(
        self, stream_types: tuple[type, ...], response_types: tuple[type, ...], stream_usage: bool
    ) -> None:
        self.stream_types = stream_types
        self.response_types = response_types
        self.stream_usage = stream_usage

    def prepare(self, kwargs: dict[str, Any]) -> Prepared | None:
        model = kwargs.get("model")
        attrs = request_params(kwargs, _CHAT_PARAMS)
        msgs = LlmCall.messages_attribute(kwargs.get("messages"))
        if msgs is not None:
            attrs["gen_ai.input.messages"] = msgs
        call = LlmCall.start(
            provider="openai",
            model=model if isinstance(model, str) else None,
            operation="chat",
            attributes=attrs,
        )
        if call is None:
            return None
        prep = Prepared(call, kwargs, kwargs)
        if kwargs.get("stream") is True and self.stream_usage and not _reads_bytes(kwargs):
            opts = kwargs.get("stream_options")
            opts = dict(opts) if isinstance(opts, Mapping) else {}
            if not opts.get("include_usage"):
                # ask for the final usage chunk; it is hidden from the app, which did not ask
                prep.kwargs = {**kwargs, "stream_options": {**opts, "include_usage": True}}
                prep.injected = True
                prep.state["strip_usage"] = True
        return prep

    def response(self, call: LlmCall, result: Any) -> None:
        call.response_id = _get(result, "id")
        call.response_model = _get(result, "model")
        for choice in _get(result, "choices") or ():
            fr = _get(choice, "finish_reason")
            if fr:
                call.finish_reasons.append(str(fr))
            if _get(choice, "index") in (0, None) and not call.logprobs:
                call.logprobs.extend(tokens_of(_get(choice, "logprobs")))
            msg = _get(choice, "message")
            if msg is not None and _get(choice, "index") in (0, None):
                content = _get(msg, "content") or _get(msg, "refusal")
                if content:
                    call.text_parts.append(str(content))
                for tc in _get(msg, "tool_calls") or ():
                    fn = _get(tc, "function")
                    call.tool_calls.append(
                        {
                            "id": _get(tc, "id"),
                            "name": _get(fn, "name"),
                            "arguments": _get(fn, "arguments"),
                        }
                    )
        _usage(call, _get(result, "usage"))

    def chunk(self, call: LlmCall, item: Any, state: dict[str, Any]) -> bool:
        if call.response_id is None:
            call.response_id = _get(item, "id")
            call.response_model = _get(item, "model")
        choices = _get(item, "choices")
        usage = _get(item, "usage")
        if usage is not None:
            _usage(call, usage)
        if state.get("strip_usage"):
            if not choices and usage is not None:
                return False  # the usage chunk Sightline asked for
            fields = getattr(item, "__pydantic_fields_set__", None)
            if isinstance(fields, set):
                fields.discard("usage")  # as if the app's request had not included usage
        for choice in choices or ():
            delta = _get(choice, "delta")
            if delta is not None:
                content = _get(delta, "content")
                if content:
                    call.first_token()
                    if _get(choice, "index") in (0, None):
                        call.text_parts.append(content)
                        call.logprobs.extend(tokens_of(_get(choice, "logprobs")))
                elif _get(delta, "tool_calls") or _get(delta, "refusal"):
                    call.first_token()
                    if _get(choice, "index") in (0, None):  # n > 1: the first choice's, as text
                        _tool_call_delta(call, _get(delta, "tool_calls"))
                        refusal = _get(delta, "refusal")
                        if isinstance(refusal, str):  # the text, as a call not streamed records
                            call.text_parts.append(refusal)
            fr = _get(choice, "finish_reason")
            if fr:
                call.finish_reasons.append(str(fr))
        return True


def _tool_call_delta(call: LlmCall, deltas: Any) -> None:
    for d in deltas or ():
        idx = _get(d, "index") or 0
        if not isinstance(idx, int) or not 0 <= idx < _MAX_TOOL_CALLS:
            continue  # a bad index must not grow the list without bound
        while len(call.tool_calls) <= idx:
            call.tool_calls.append({"id": None, "name": None, "arguments": ""})
        tc = call.tool_calls[idx]
        if _get(d, "id"):
            tc["id"] = _get(d, "id")
        fn = _get(d, "function")
        if fn is not None:
            if _get(fn, "name"):
                tc["name"] = _get(fn, "name")
            if _get(fn, "arguments"):
                tc["arguments"] = (tc["arguments"] or "") + _get(fn, "arguments")


def _usage(call: LlmCall, usage: Any) -> None:
    if usage is None:
        return
    # chat completions name them prompt/completion, the responses API input/output
    inp = _get(usage, "prompt_tokens")
    if inp is None:
        inp = _get(usage, "input_tokens")
    out = _get(usage, "completion_tokens")
    if out is None:
        out = _get(usage, "output_tokens")
    call.input_tokens = inp if isinstance(inp, int) else call.input_tokens
    call.output_tokens = out if isinstance(out, int) else call.output_tokens
    details = _get(usage, "prompt_tokens_details") or _get(usage, "input_tokens_details")
    cached = _get(details, "cached_tokens") if details is not None else None
    if isinstance(cached, int) and cached:
        call.cached_tokens = cached
    odetails = _get(usage, "completion_tokens_details") or _get(usage, "output_tokens_details")
    reasoning = _get(odetails, "reasoning_tokens") if odetails is not None else None
    if isinstance(reasoning, int) and reasoning:
        call.reasoning_tokens = reasoning


def _responses_input(kwargs: Mapping[str, Any]) -> str | None:
    inp = kwargs.get("input")
    if inp is None or not _Content.capture:
        return None
    if isinstance(inp, str):
        return _text([{"role": "user", "content": inp}])
    if isinstance(inp, list):
        msgs = []
        for item in inp:
            if isinstance(item, Mapping) and "role" in item:
                msgs.append({"role": item["role"], "content": message_text(item.get("content"))})
            else:
                msgs.append(item)
        return _text(msgs)
    return None


class ResponsesApi:
    """``responses.create``."""

    def __init__(self, stream_types: tuple[type, ...], response_types: tuple[type, ...]) -> None:
        self.stream_types = stream_types
        self.response_types = response_types

    def prepare(self, kwargs: dict[str, Any]) -> Prepared | None:
        model = kwargs.get("model")
        attrs = request_params(kwargs, _RESPONSES_PARAMS)
        msgs = _responses_input(kwargs)
        if msgs is not None:
            attrs["gen_ai.input.messages"] = msgs
        instructions = kwargs.get("instructions")
        if isinstance(instructions, str) and _Content.capture:
            t = _text(instructions)
            if t is not None:
                attrs["gen_ai.system_instructions"] = dumps([{"type": "text", "content": t}])
        call = LlmCall.start(
            provider="openai",
            model=model if isinstance(model, str) else None,
            operation="chat",
            attributes=attrs,
        )
        return None if call is None else Prepared(call, kwargs, kwargs)

    def response(self, call: LlmCall, result: Any) -> None:
        call.response_id = _get(result, "id")
        call.response_model = _get(result, "model")
        tool = False
        texts: list[str] = []
        for item in _get(result, "output") or ():
            kind = _get(item, "type")
            if kind == "message":
                for part in _get(item, "content") or ():
                    if _get(part, "type") == "output_text":
                        texts.append(str(_get(part, "text") or ""))
                    elif _get(part, "type") == "refusal":
                        texts.append(str(_get(part, "refusal") or ""))
            elif kind == "function_call":
                tool = True
                call.tool_calls.append(
                    {
                        "id": _get(item, "call_id"),
                        "name": _get(item, "name"),
                        "arguments": _get(item, "arguments"),
                    }
                )
        if texts and not call.text_parts:
            call.text_parts.append("".join(texts))
        status = _get(result, "status")
        if status == "completed":
            call.finish_reasons[:] = ["tool_calls" if tool else "stop"]
        elif status == "incomplete":
            reason = _get(_get(result, "incomplete_details"), "reason")
            call.finish_reasons[:] = [str(reason or "incomplete")]
        elif status:
            call.finish_reasons[:] = [str(status)]
        _usage(call, _get(result, "usage"))

    def chunk(self, call: LlmCall, item: Any, state: dict[str, Any]) -> bool:
        kind = _get(item, "type")
        if kind in _FIRST_TOKEN_EVENTS:
            call.first_token()
            if kind == "response.output_text.delta":
                delta = _get(item, "delta")
                if delta:
                    state.setdefault("text", []).append(delta)
        elif kind in _DONE_EVENTS:
            resp = _get(item, "response")
            if resp is not None:
                self.response(call, resp)
        elif kind == "response.created":
            resp = _get(item, "response")
            call.response_id = _get(resp, "id")
            call.response_model = _get(resp, "model")
        if kind in _DONE_EVENTS and not call.text_parts and state.get("text"):
            call.text_parts.append("".join(state["text"]))
        return True


class EmbeddingsApi:
    """``embeddings.create``: model, dimensions and input tokens (no content: vectors only)."""

    stream_types: tuple[type, ...] = ()

    def __init__(self, response_types: tuple[type, ...]) -> None:
        self.response_types = response_types

    def prepare(self, kwargs: dict[str, Any]) -> Prepared | None:
        model = kwargs.get("model")
        attrs: dict[str, Any] = {}
        dims = kwargs.get("dimensions")
        if isinstance(dims, int) and not isinstance(dims, bool):
            attrs["gen_ai.embeddings.dimension.count"] = dims
        fmt = kwargs.get("encoding_format")
        if isinstance(fmt, str):
            attrs["gen_ai.request.encoding_formats"] = (fmt,)
        inp = kwargs.get("input")
        if isinstance(inp, str):
            attrs["sightline.embeddings.input_count"] = 1
        elif isinstance(inp, list | tuple):
            attrs["sightline.embeddings.input_count"] = len(inp)
        call = LlmCall.start(
            provider="openai",
            model=model if isinstance(model, str) else None,
            operation="embeddings",
            attributes=attrs,
        )
        return None if call is None else Prepared(call, kwargs, kwargs)

    def response(self, call: LlmCall, result: Any) -> None:
        call.response_model = _get(result, "model")
        _usage(call, _get(result, "usage"))
        data = _get(result, "data") or ()
        vec = _get(data[0], "embedding") if data else None
        if isinstance(vec, list):  # the client decodes base64 vectors to lists
            call.span.set_attribute("gen_ai.embeddings.dimension.count", len(vec))

    def chunk(self, call: LlmCall, item: Any, state: dict[str, Any]) -> bool:
        return True


Target = tuple[Any, str, Any, str]
"""(class, attribute, api, kind): kind ``method`` or ``manager`` (returns a stream manager)."""


def instrument(stream_usage: bool) -> list[Target]:
    """The client methods to wrap, with what each one's calls look like.

    ``chat.completions.stream()`` and ``responses.stream()`` call ``create`` (recorded once, as
    a streamed call); ``parse()`` posts by itself, so it is wrapped too (``ParsedChatCompletion``
    and ``ParsedResponse`` are a ``ChatCompletion`` and a ``Response``). ``beta.chat.completions``
    is the same class as ``chat.completions``.
    """
    import openai
    from openai.resources.chat.completions import AsyncCompletions, Completions
    from openai.types.chat import ChatCompletion

    streams = (openai.Stream, openai.AsyncStream)
    chat = ChatApi(streams, (ChatCompletion,), stream_usage)
    targets: list[Target] = [
        (Completions, "create", chat, "method"),
        (AsyncCompletions, "create", chat, "method"),
        (Completions, "parse", chat, "method"),
        (AsyncCompletions, "parse", chat, "method"),
    ]
    try:
        from openai.resources.embeddings import AsyncEmbeddings, Embeddings
        from openai.types import CreateEmbeddingResponse

        embeddings = EmbeddingsApi((CreateEmbeddingResponse,))
        targets += [
            (Embeddings, "create", embeddings, "method"),
            (AsyncEmbeddings, "create", embeddings, "method"),
        ]
    except ImportError:  # pragma: no cover - every supported openai has embeddings
        pass
    try:
        from openai.resources.responses import AsyncResponses, Responses
        from openai.types.responses import Response
    except ImportError:  # an openai older than the responses API
        return targets
    responses = ResponsesApi(streams, (Response,))
    targets += [
        (Responses, "create", responses, "method"),
        (AsyncResponses, "create", responses, "method"),
        (Responses, "parse", responses, "method"),
        (AsyncResponses, "parse", responses, "method"),
    ]
    return targets
