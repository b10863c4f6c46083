"""Carry the trace context into threads and thread pools.

asyncio tasks copy the ``contextvars`` context by themselves; threads do not. Once installed, a
``threading.Thread`` runs in a copy of the context of the code that started it, and a
``ThreadPoolExecutor`` task in a copy of the context of the code that submitted it. Both the
OpenTelemetry context (the parent span) and the ``trace()`` attributes are context variables,
so spans started there join the trace with its attributes.
"""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["instrument_threads", "uninstrument_threads"]

_CTX_ATTR = "_sightline_context"
_originals: dict[str, Any] = {}


def instrument_threads() -> None:
    """Make threads and thread-pool tasks inherit the context of the code that started them."""
    if _originals:
        return
    start = threading.Thread.start
    # _bootstrap_inner runs the thread in the new OS thread, whatever run() a subclass defines;
    # fall back to run() on an interpreter without it.
    inner_name = "_bootstrap_inner" if hasattr(threading.Thread, "_bootstrap_inner") else "run"
    inner = getattr(threading.Thread, inner_name)
    submit = ThreadPoolExecutor.submit

    def patched_start(self: threading.Thread) -> None:
        try:
            setattr(self, _CTX_ATTR, contextvars.copy_context())
        except AttributeError:  # a Thread subclass with __slots__: it runs without the context
            pass
        start(self)

    def patched_inner(self: threading.Thread) -> None:
        ctx = getattr(self, _CTX_ATTR, None)
        if ctx is None:
            inner(self)
            return
        try:
            delattr(self, _CTX_ATTR)  # the thread must not keep the request's context alive
        except AttributeError:
            pass
        ctx.run(inner, self)

    def patched_submit(
        self: ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        return submit(self, contextvars.copy_context().run, fn, *args, **kwargs)

    _originals.update({"start": start, inner_name: inner, "submit": submit})
    threading.Thread.start = patched_start  # type: ignore[method-assign]
    setattr(threading.Thread, inner_name, patched_inner)
    ThreadPoolExecutor.submit = patched_submit  # type: ignore[method-assign,assignment]


def uninstrument_threads() -> None:
    """Undo :func:`instrument_threads`."""
    if not _originals:
        return
    threading.Thread.start = _originals.pop("start")  # type: ignore[method-assign]
    ThreadPoolExecutor.submit = _originals.pop("submit")  # type: ignore[method-assign]
    for name, fn in list(_originals.items()):
        setattr(threading.Thread, name, fn)
    _originals.clear()
