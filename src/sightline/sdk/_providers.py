"""Turning provider instrumentation on and off, now or when the library is first imported.

``init(instrument=True)`` instruments ``openai`` and ``anthropic`` if they are installed,
without importing them itself (an import costs 1–2 s here): a library already imported is
instrumented at once, one imported later as soon as its import finishes (a post-import hook on
``sys.meta_path``).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from sightline.sdk._errors import internal_error
from sightline.sdk._tracing import CURRENT_CALL, DUPLICATE_ATTR, DUPLICATE_SCOPES
from sightline.sdk._wrap import WRAPPED, wrap_async, wrap_stream_manager, wrap_sync

__all__ = [
    "instrument_anthropic",
    "instrument_installed",
    "instrument_openai",
    "keep_span",
    "uninstrument_anthropic",
    "uninstrument_openai",
]

_lock = threading.RLock()
# library -> [(class, attribute, original)]
_patched: dict[str, list[tuple[Any, str, Any]]] = {}
_hooks: dict[str, Callable[[], bool]] = {}


def keep_span(span: ReadableSpan) -> bool:
    """Whether Sightline exports this span (a client's duplicate of a recorded call: no)."""
    scope = span.instrumentation_scope
    # the scope first: a string test, cheaper than an attribute lookup on every span
    if scope is None or not scope.name.startswith(DUPLICATE_SCOPES):
        return True
    attrs = span.attributes
    return not (attrs and attrs.get(DUPLICATE_ATTR))


def _patch(library: str, targets: list[tuple[Any, str, Any, str]], base_clients: list[Any]) -> None:
    done: list[tuple[Any, str, Any]] = []
    for cls, attr, api, kind in targets:
        original = cls.__dict__.get(attr)
        if original is None or getattr(original, WRAPPED, None) is not None:
            continue
        if kind == "manager":
            wrap = wrap_stream_manager
        else:
            wrap = wrap_async if _is_async(cls, original) else wrap_sync
        setattr(cls, attr, wrap(original, api))
        done.append((cls, attr, original))
    for base in base_clients:
        original = base.__dict__.get("_build_request")
        if original is not None and getattr(original, WRAPPED, None) is None:
            base._build_request = _counting_build_request(original)
            done.append((base, "_build_request", original))
    _patched[library] = done


def _is_async(cls: type, fn: Any) -> bool:
    # the clients' async methods may be sync decorators returning a coroutine
    # (openai's @required_args), so the class says it too
    return inspect.iscoroutinefunction(fn) or cls.__name__.startswith("Async")


def _counting_build_request(original: Callable[..., Any]) -> Callable[..., Any]:
    """The clients build one request per attempt, with ``retries_taken``: count retries."""

    def _build_request(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = CURRENT_CALL.get()
        if call is not None:
            retries = kwargs.get("retries_taken")
            if isinstance(retries, int) and retries > call.retries:
                call.retries = retries
        return original(self, *args, **kwargs)

    setattr(_build_request, WRAPPED, original)
    return _build_request


def instrument_openai(*, stream_usage: bool = True) -> bool:
    """Record every ``chat.completions.create`` and ``responses.create`` call of ``openai``.

    Sync and async clients, streaming or not, for clients created before or after this call.
    Each call gets an LLM span with the GenAI attributes (model, messages, response, tokens,
    finish reason, retries) and, when streaming, TTFT from the first content chunk.

    Args:
        stream_usage: Ask streamed chat completions for their token usage
            (``stream_options={"include_usage": True}``); the extra usage chunk is hidden from
            the application when it did not ask for it itself.

    Returns:
        False when ``openai`` is not installed (nothing to do), True otherwise.

    Example:
        ```python
        import sightline

        sightline.instrument_openai()
        ```
    """
    with _lock:
        if "openai" in _patched:
            return True
        try:
            from openai._base_client import BaseClient

            from sightline.sdk import _openai
        except ImportError:
            return False
        _patch("openai", _openai.instrument(stream_usage), [BaseClient])
        return True


def instrument_anthropic() -> bool:
    """Record every ``messages.create`` call of ``anthropic`` (sync, async, streaming or not).

    anthropic >= 2 also emits a span of its own per call; inside a call Sightline records, that
    span is marked ``sightline.duplicate`` and not exported to Sightline (other exporters of the
    application still get it).

    Returns:
        False when ``anthropic`` is not installed, True otherwise.
    """
    with _lock:
        if "anthropic" in _patched:
            return True
        try:
            from anthropic._base_client import BaseClient

            from sightline.sdk import _anthropic
        except ImportError:
            return False
        _patch("anthropic", _anthropic.instrument(), [BaseClient])
        return True


def _unpatch(library: str) -> None:
    with _lock:
        _hooks.pop(library, None)
        for cls, attr, original in _patched.pop(library, []):
            setattr(cls, attr, original)


def uninstrument_openai() -> None:
    """Undo :func:`instrument_openai`."""
    _unpatch("openai")


def uninstrument_anthropic() -> None:
    """Undo :func:`instrument_anthropic`."""
    _unpatch("anthropic")


_INSTRUMENTERS: dict[str, Callable[[], bool]] = {
    "openai": instrument_openai,
    "anthropic": instrument_anthropic,
}


def instrument_installed(libraries: Sequence[str]) -> None:
    """Instrument each library now if imported, else when it is imported (if installed)."""
    for lib in libraries:
        instrumenter = _INSTRUMENTERS[lib]
        if lib in sys.modules:
            instrumenter()
            continue
        try:
            installed = importlib.util.find_spec(lib) is not None
        except (ImportError, ValueError):
            installed = False
        if installed:
            with _lock:
                _hooks[lib] = instrumenter
                if not any(isinstance(f, _PostImportFinder) for f in sys.meta_path):
                    sys.meta_path.insert(0, _PostImportFinder())


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Runs a hook right after a watched top-level module has executed."""

    _busy = threading.local()

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _hooks or getattr(self._busy, "on", False):
            return None
        self._busy.on = True
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self:
                    continue
                find = getattr(finder, "find_spec", None)
                if find is not None:
                    spec = find(fullname, path, target)
                    if spec is not None:
                        break
        finally:
            self._busy.on = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_then_instrument(module: ModuleType) -> None:
            exec_module(module)
            # the loader serves this one module: restore it, then instrument once
            try:
                del loader.exec_module
            except AttributeError:
                pass
            with _lock:
                hook = _hooks.pop(fullname, None)
            if hook is not None:
                try:
                    hook()
                except Exception:
                    internal_error(f"instrument_{fullname}")

        loader.exec_module = exec_then_instrument
        found: importlib.machinery.ModuleSpec = spec
        return found
