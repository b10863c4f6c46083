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
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from sightline.sdk import _budget
from sightline.sdk._errors import internal_error
from sightline.sdk._llm_call import CURRENT_CALL, LlmCall

__all__ = ["Api", "Prepared", "wrap_async", "wrap_sync"]

WRAPPED = "__sightline_wrapped__"


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
    the app wrote it.
    """
    return prep.injected and getattr(exc, "status_code", None) in (400, 422)


def _finish_sync(api: Api, prep: Prepared, result: Any) -> Any:
    call = prep.call
    stream: Any = result
    try:
        if isinstance(result, api.stream_types):
            original = stream._iterator
            stream._iterator = _observe_sync(api, call, original, prep.state)
            close = stream.close

            def closing_close() -> None:
                try:
                    close()
                finally:
                    call.end()

            stream.close = closing_close
            call.detach()
            return result
        if isinstance(result, api.response_types):
            api.response(call, result)
    except Exception:
        internal_error("llm_response")
    call.end()
    return result


async def _finish_async(api: Api, prep: Prepared, result: Any) -> Any:
    call = prep.call
    stream: Any = result
    try:
        if isinstance(result, api.stream_types):
            original = stream._iterator
            stream._iterator = _observe_async(api, call, original, prep.state)
            close = stream.close

            async def closing_close() -> None:
                try:
                    await close()
                finally:
                    call.end()

            stream.close = closing_close
            call.detach()
            return result
        if isinstance(result, api.response_types):
            api.response(call, result)
    except Exception:
        internal_error("llm_response")
    call.end()
    return result


def _observe_sync(
    api: Api, call: LlmCall, items: Iterator[Any], state: dict[str, Any]
) -> Iterator[Any]:
    try:
        for item in items:
            try:
                show = api.chunk(call, item, state)
            except Exception:
                internal_error("llm_chunk")
                show = True
            if show:
                yield item
    except Exception as e:
        call.end(e)
        raise
    finally:
        call.end()  # read to the end, or closed early (GeneratorExit): no error


async def _observe_async(
    api: Api, call: LlmCall, items: AsyncIterator[Any], state: dict[str, Any]
) -> AsyncIterator[Any]:
    try:
        async for item in items:
            try:
                show = api.chunk(call, item, state)
            except Exception:
                internal_error("llm_chunk")
                show = True
            if show:
                yield item
    except Exception as e:
        call.end(e)
        raise
    finally:
        call.end()


def wrap_sync(original: Callable[..., Any], api: Api) -> Callable[..., Any]:
    """A replacement for a sync client method that records each call."""

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        ticket = _budget.admit(kwargs.get("model")) if _budget.guard() else None
        prep = _prepare(api, kwargs)
        if prep is None:
            try:
                return original(self, *args, **kwargs)
            finally:
                _budget.release(ticket)
        prep.call.budget_ticket = ticket
        token = CURRENT_CALL.set(prep.call)
        try:
            try:
                result = original(self, *args, **prep.kwargs)
            except Exception as e:
                if not _rejected_injection(prep, e):
                    raise
                prep.state.clear()
                result = original(self, *args, **prep.original_kwargs)
        except BaseException as e:
            CURRENT_CALL.reset(token)
            prep.call.end(e)
            raise
        CURRENT_CALL.reset(token)
        return _finish_sync(api, prep, result)

    setattr(wrapper, WRAPPED, original)
    return wrapper


def wrap_async(original: Callable[..., Any], api: Api) -> Callable[..., Any]:
    """A replacement for an async client method that records each call."""

    @functools.wraps(original)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        ticket = None
        if _budget.guard():
            # the check may wait on the network or on calls in flight: not on the event loop
            ticket = await asyncio.to_thread(_budget.admit, kwargs.get("model"))
        prep = _prepare(api, kwargs)
        if prep is None:
            try:
                return await original(self, *args, **kwargs)
            finally:
                _budget.release(ticket)
        prep.call.budget_ticket = ticket
        token = CURRENT_CALL.set(prep.call)
        try:
            try:
                result = await original(self, *args, **prep.kwargs)
            except Exception as e:
                if not _rejected_injection(prep, e):
                    raise
                prep.state.clear()
                result = await original(self, *args, **prep.original_kwargs)
        except BaseException as e:
            CURRENT_CALL.reset(token)
            prep.call.end(e)
            raise
        CURRENT_CALL.reset(token)
        return await _finish_async(api, prep, result)

    setattr(wrapper, WRAPPED, original)
    return wrapper
