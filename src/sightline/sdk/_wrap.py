"""Wrapping a client method: a span per call, streams observed in place, errors contained.

A wrapped method returns what the original returns, the same object: a stream keeps its type
(its ``_iterator`` is replaced by one that observes each chunk and hides none the app asked
for), so ``with``, ``close()``, ``.response`` and ``isinstance`` behave as before. Whatever
fails inside Sightline is logged once and the call goes on uninstrumented; the app's own
exceptions are re-raised unchanged.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from sightline.sdk import _budget
from sightline.sdk._errors import internal_error
from sightline.sdk._llm_call import CURRENT_CALL, LlmCall

__all__ = ["Api", "Prepared", "wrap_async", "wrap_stream_manager", "wrap_sync"]

WRAPPED = "__sightline_wrapped__"
# what Sightline may add to a request (see _rejected_injection)
_INJECTED_NAMES = ("stream_options", "include_usage")


@dataclass(slots=True)
class Prepared:
    """A call about to be made: its span, the arguments to send, per-call state."""

    call: LlmCall
    kwargs: dict[str, Any]
    original_kwargs: dict[str, Any]
    injected: bool = False
    """Whether Sightline added something to the request (e.g. ``stream_options``)."""
    state: dict[str, Any] = field(default_factory=dict)


class Api(Protocol):
    """What a provider module supplies for one method."""

    stream_types: tuple[type, ...]
    response_types: tuple[type, ...]

    def prepare(self, kwargs: dict[str, Any]) -> Prepared | None: ...

    def response(self, call: LlmCall, result: Any) -> None: ...

    def chunk(self, call: LlmCall, item: Any, state: dict[str, Any]) -> bool:
        """Observe one streamed item; False hides it from the app (an item Sightline asked for)."""
        ...


def _prepare(api: Api, kwargs: dict[str, Any]) -> Prepared | None:
    try:
        return api.prepare(kwargs)
    except Exception:
        internal_error("llm_prepare")
        return None


def _rejected_injection(prep: Prepared, exc: BaseException) -> bool:
    """Whether the provider refused what Sightline added to the request.

    Some OpenAI-compatible servers reject ``stream_options``: the call is then made again as
    the app wrote it. Only when the error names the option: any other 400 is the app's own
    request failing, and sending it twice would only double the wait for the same error.
    """
    if not prep.injected or getattr(exc, "status_code", None) not in (400, 422):
        return False
    try:
        text = f"{exc} {getattr(exc, 'body', '')}"
    except Exception:
        return False
    return any(name in text for name in _INJECTED_NAMES)


def _end_on_close(obj: Any, name: str, call: LlmCall, reading: list[bool]) -> None:
    """Make ``obj.<name>()`` (a close method, sync or async) also end the call.

    Hooked on the stream and on its HTTP response: the clients' stream helpers
    (``chat.completions.stream()``, ``responses.stream()``) close the response, not the stream
    they wrap. While the stream is being read (``reading``), a close comes from the client's own
    end of stream or error, and the observer ends the call itself (with the error, if any).
    """
    original = getattr(obj, name, None)
    if not callable(original):
        return
    if inspect.iscoroutinefunction(original):

        async def closing_aclose() -> Any:
            try:
                return await original()
            finally:
                if not reading[0]:
                    call.end()

        setattr(obj, name, closing_aclose)
        return

    def closing_close() -> Any:
        try:
            return original()
        finally:
            if not reading[0]:
                call.end()

    setattr(obj, name, closing_close)


def _hook_closes(stream: Any, call: LlmCall, reading: list[bool], names: tuple[str, ...]) -> None:
    _end_on_close(stream, "close", call, reading)
    response = getattr(stream, "response", None)
    if response is not None:
        for name in names:
            try:
                _end_on_close(response, name, call, reading)
            except Exception:  # a response that takes no new attributes: the stream's is enough
                internal_error("llm_response_close")


def _observe_stream(
    api: Api, call: LlmCall, stream: Any, state: dict[str, Any], reading: list[bool]
) -> None:
    """Observe ``stream`` in place: its iterator, and its closes (sync or async)."""
    original = stream._iterator
    if hasattr(original, "__anext__"):
        stream._iterator = _observe_async(api, call, original, state, reading)
        _hook_closes(stream, call, reading, ("aclose",))
    else:
        stream._iterator = _observe_sync(api, call, original, state, reading)
        _hook_closes(stream, call, reading, ("close",))


def _finish(api: Api, prep: Prepared, result: Any) -> Any:
    """Record ``result`` (response, stream or raw response); end the call unless read later."""
    call = prep.call
    try:
        if isinstance(result, api.stream_types):
            _observe_stream(api, call, result, prep.state, [False])
            call.detach()
            return result
        if isinstance(result, api.response_types):
            api.response(call, result)
        elif _is_raw_response(result) and _observe_raw(api, prep, result):
            call.detach()
            return result
    except Exception:
        internal_error("llm_response")
    call.end()
    return result


def _is_raw_response(result: Any) -> bool:
    """``with_raw_response`` / ``with_streaming_response`` results: an HTTP response to parse."""
    return callable(getattr(result, "parse", None)) and hasattr(result, "http_response")


def _observe_raw(api: Api, prep: Prepared, raw: Any) -> bool:
    """Record a raw response when the app parses it; True when the call stays open until then.

    The clients' ``with_raw_response`` (and ``with_streaming_response``) return the HTTP
    response, and the stream or completion only comes out of ``parse()``: that is where the
    stream is observed, as if ``create`` had returned it. A body already read (a call that did
    not stream) is recorded at once from its JSON, without parsing it for the app. A response
    never parsed ends the call when it is closed (or, at the latest, collected).
    """
    call = prep.call
    http = raw.http_response
    if prep.kwargs.get("stream") is not True:
        try:
            body = json.loads(http.content)
        except Exception:  # not read yet (with_streaming_response), or not JSON: parse() says
            body = None
        if isinstance(body, dict):
            api.response(call, body)
            return False
    reading = [False]
    original_parse = raw.parse
    seen: set[int] = set()

    def observe(parsed: Any) -> Any:
        try:
            if id(parsed) in seen:  # parse() caches: the same stream again
                return parsed
            seen.add(id(parsed))
            if isinstance(parsed, api.stream_types):
                _observe_stream(api, call, parsed, prep.state, reading)
            elif isinstance(parsed, api.response_types):
                api.response(call, parsed)
                call.end()
            elif isinstance(parsed, dict) and prep.kwargs.get("stream") is not True:
                api.response(call, parsed)  # json(): the body the app read itself
                call.end()
            elif getattr(http, "is_closed", False):  # parsed to a type of the app's own
                call.end()
        except Exception:
            internal_error("llm_raw_parse")
        return parsed

    def hook(original: Callable[..., Any]) -> Callable[..., Any]:
        """``original`` (parse, json), observed.

        With ``with_streaming_response`` the body is read inside it, and the read closes the
        response: that close must not end the call before the answer is recorded (``reading``
        marks it as the client's own).
        """
        if inspect.iscoroutinefunction(original):

            @functools.wraps(original)
            async def hooked_async(*args: Any, **kwargs: Any) -> Any:
                was, reading[0] = reading[0], True
                try:
                    parsed = await original(*args, **kwargs)
                finally:
                    reading[0] = was
                return observe(parsed)

            return hooked_async

        @functools.wraps(original)
        def hooked(*args: Any, **kwargs: Any) -> Any:
            was, reading[0] = reading[0], True
            try:
                parsed = original(*args, **kwargs)
            finally:
                reading[0] = was
            return observe(parsed)

        return hooked

    raw.parse = hook(original_parse)
    if callable(getattr(raw, "json", None)):
        raw.json = hook(raw.json)
    # the response closed without being parsed (its bytes read by the app, or not at all)
    _end_on_close(raw, "close", call, reading)
    for name in ("close", "aclose"):
        _end_on_close(http, name, call, reading)
    return True


def _observe_sync(
    api: Api, call: LlmCall, items: Iterator[Any], state: dict[str, Any], reading: list[bool]
) -> Iterator[Any]:
    try:
        reading[0] = True
        for item in items:
            try:
                show = api.chunk(call, item, state)
            except Exception:
                internal_error("llm_chunk")
                show = True
            if show:
                reading[0] = False
                yield item
                reading[0] = True
    except Exception as e:
        call.end(e)
        raise
    finally:
        reading[0] = False
        call.end()  # read to the end, or closed early (GeneratorExit): no error


async def _observe_async(
    api: Api,
    call: LlmCall,
    items: AsyncIterator[Any],
    state: dict[str, Any],
    reading: list[bool],
) -> AsyncIterator[Any]:
    try:
        reading[0] = True
        async for item in items:
            try:
                show = api.chunk(call, item, state)
            except Exception:
                internal_error("llm_chunk")
                show = True
            if show:
                reading[0] = False
                yield item
                reading[0] = True
    except Exception as e:
        call.end(e)
        raise
    finally:
        reading[0] = False
        call.end()


def _call_sync(api: Api, kwargs: dict[str, Any], send: Callable[[dict[str, Any]], Any]) -> Any:
    """One call through ``send(kwargs)``, recorded unless it runs inside a recorded call."""
    if CURRENT_CALL.get() is not None:
        # a client helper calling another instrumented method (``stream()`` calls
        # ``create()``): the outer call is the one recorded (and admitted by the budget), once
        return send(kwargs)
    ticket = _budget.admit(kwargs.get("model")) if _budget.guard() else None
    prep = _prepare(api, kwargs)
    if prep is None:
        try:
            return send(kwargs)
        finally:
            _budget.release(ticket)
    prep.call.budget_ticket = ticket
    token = CURRENT_CALL.set(prep.call)
    try:
        try:
            result = send(prep.kwargs)
        except Exception as e:
            if not _rejected_injection(prep, e):
                raise
            prep.state.clear()
            result = send(prep.original_kwargs)
    except BaseException as e:
        CURRENT_CALL.reset(token)
        prep.call.end(e)
        raise
    CURRENT_CALL.reset(token)
    return _finish(api, prep, result)


async def _call_async(
    api: Api, kwargs: dict[str, Any], send: Callable[[dict[str, Any]], Awaitable[Any]]
) -> Any:
    """The async :func:`_call_sync`."""
    if CURRENT_CALL.get() is not None:
        return await send(kwargs)
    ticket = None
    if _budget.guard():
        # the check may wait on the network or on calls in flight: not on the event loop
        ticket = await asyncio.to_thread(_budget.admit, kwargs.get("model"))
    prep = _prepare(api, kwargs)
    if prep is None:
        try:
            return await send(kwargs)
        finally:
            _budget.release(ticket)
    prep.call.budget_ticket = ticket
    token = CURRENT_CALL.set(prep.call)
    try:
        try:
            result = await send(prep.kwargs)
        except Exception as e:
            if not _rejected_injection(prep, e):
                raise
            prep.state.clear()
            result = await send(prep.original_kwargs)
    except BaseException as e:
        CURRENT_CALL.reset(token)
        prep.call.end(e)
        raise
    CURRENT_CALL.reset(token)
    return _finish(api, prep, result)


def wrap_sync(original: Callable[..., Any], api: Api) -> Callable[..., Any]:
    """A replacement for a sync client method that records each call."""

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _call_sync(api, kwargs, lambda kw: original(self, *args, **kw))

    setattr(wrapper, WRAPPED, original)
    return wrapper


def wrap_async(original: Callable[..., Any], api: Api) -> Callable[..., Any]:
    """A replacement for an async client method that records each call."""

    @functools.wraps(original)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await _call_async(api, kwargs, lambda kw: original(self, *args, **kw))

    setattr(wrapper, WRAPPED, original)
    return wrapper


_MANAGER_REQUEST = "__api_request"


def wrap_stream_manager(original: Callable[..., Any], api: Api) -> Callable[..., Any]:
    """A replacement for a helper that returns a stream manager (anthropic ``messages.stream``).

    The helper builds its request without calling an instrumented method; the manager sends it
    when entered (``with`` / ``async with``). The manager's request is replaced by one recorded
    like a ``create(stream=True)`` call, so the span starts when the request is sent and ends
    with the stream. The method itself is sync for both clients (the async manager holds an
    un-awaited coroutine).
    """

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        manager = original(self, *args, **kwargs)
        try:
            _record_manager(manager, api, {**kwargs, "stream": True})
        except Exception:
            internal_error("llm_stream_manager")
        return manager

    setattr(wrapper, WRAPPED, original)
    return wrapper


def _record_manager(manager: Any, api: Api, kwargs: dict[str, Any]) -> None:
    names = [n for n in vars(manager) if n.endswith(_MANAGER_REQUEST)]
    if len(names) != 1:
        internal_error("llm_stream_manager_shape")
        return
    name = names[0]
    request = getattr(manager, name)
    if inspect.isawaitable(request):
        pending = request

        def send_async(_: dict[str, Any]) -> Awaitable[Any]:
            return pending

        setattr(manager, name, _call_async(api, kwargs, send_async))
    elif callable(request):
        send = request

        setattr(manager, name, lambda: _call_sync(api, kwargs, lambda _: send()))
