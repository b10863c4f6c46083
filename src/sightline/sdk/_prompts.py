"""``sightline.get_prompt``: a registered prompt version, cached, with a fallback offline."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sightline.errors import PromptUnavailable
from sightline.prompts import render, template_type, validate_template
from sightline.sdk._errors import failure_reason, logger

__all__ = ["Prompt", "clear_prompt_cache", "get_prompt"]


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt version as the application uses it.

    ``version`` is None for a ``fallback=`` template that never came from the registry;
    ``is_fallback`` is True when the server could not be reached (stale cache or fallback).
    """

    name: str
    version: int | None
    template: str | list[dict[str, Any]]
    type: str = "text"
    model: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    kind: str = "prompt"
    is_fallback: bool = False

    def render(self, /, **variables: object) -> Any:
        """The template filled in: a string for text prompts, a list of messages for chat ones.

        ``self`` is positional-only, so a template may name a ``{{self}}`` variable.

        Raises:
            sightline.prompts.MissingVariables: a ``{{variable}}`` was not given (a ValueError).
        """
        return render(self.template, variables)

    def messages(self, /, **variables: object) -> list[dict[str, Any]]:
        """The filled-in prompt as chat messages (a text prompt becomes one user message)."""
        out = render(self.template, variables)
        if isinstance(out, str):
            return [{"role": "user", "content": out}]
        return out

    @property
    def ref(self) -> tuple[str, str | int]:
        """``(name, version)`` for ``sightline.trace(prompt=...)``; spans then carry both."""
        return (self.name, self.version if self.version is not None else "fallback")


_cache: dict[tuple[str, str, str, str], tuple[float, Prompt]] = {}
_lock = threading.Lock()
_now: Callable[[], float] = time.monotonic


def clear_prompt_cache() -> None:
    """Forget every cached prompt (tests; after rotating keys)."""
    with _lock:
        _cache.clear()


def _fetch(url: str, api_key: str | None, timeout_s: float) -> dict[str, Any]:
    req = urllib.request.Request(  # noqa: S310 - the URL is the configured endpoint
        url, headers={"authorization": f"Bearer {api_key}"} if api_key else {}
    )
    with urllib.request.urlopen(req, timeout=timeout_s) as r:  # noqa: S310
        data: dict[str, Any] = json.loads(r.read())
    return data


def get_prompt(
    name: str,
    *,
    label: str | None = None,
    version: int | None = None,
    fallback: str | list[dict[str, Any]] | None = None,
    cache_ttl_s: float = 60.0,
    timeout_s: float = 2.0,
) -> Prompt:
    """A version of a registered prompt: by ``label``, by ``version``, or (neither) the latest.

    Answers come from a process-wide cache for ``cache_ttl_s`` seconds, so a request path may
    call this every time. When the server cannot answer (unreachable, an error, no such
    prompt) the last cached version is returned, else ``fallback`` (a template, version None),
    both marked ``is_fallback`` and kept for ``cache_ttl_s`` before the server is asked again;
    only when there is neither does it raise.

    Raises:
        sightline.PromptUnavailable: the server could not give the prompt and there is no
            cached version nor fallback.
        ValueError: both ``label`` and ``version``, or an invalid ``fallback``.

    Example:
        ```python
        prompt = sightline.get_prompt("support-answer", label="production",
                                      fallback="Answer briefly: {{question}}")
        with sightline.trace("answer", prompt=prompt.ref):
            text = prompt.render(question="How do refunds work?")
        ```
    """
    from sightline.sdk._init import current_options

    if label is not None and version is not None:
        raise ValueError("give label or version, not both")
    if fallback is not None:
        fallback = validate_template(fallback)
    opts = current_options()
    selector = f"v{version}" if version is not None else f"l{label or ''}"
    key = (opts.endpoint, opts.api_key or "", name, selector)
    with _lock:
        hit = _cache.get(key)
    if hit is not None and _now() - hit[0] < cache_ttl_s:
        return hit[1]
    params = {"name": name}
    if label is not None:
        params["label"] = label
    if version is not None:
        params["version"] = str(version)
    url = f"{opts.endpoint}/api/v1/prompts/resolve?{urllib.parse.urlencode(params)}"
    try:
        d = _fetch(url, opts.api_key, timeout_s)
        prompt = Prompt(
            name=d["name"],
            version=int(d["version"]),
            template=d["template"],
            type=d.get("type", "text"),
            model=d.get("model"),
            parameters=d.get("parameters") or {},
            labels=tuple(d.get("labels") or ()),
            kind=d.get("kind", "prompt"),
        )
    except (
        urllib.error.URLError,
        OSError,
        http.client.HTTPException,  # a connection cut mid-answer, a garbled status line
        ValueError,
        KeyError,
        TypeError,
    ) as e:
        reason = failure_reason(e)
        if hit is not None:
            logger.warning("sightline prompt %r: %s; using the cached version", name, reason)
            stale = _replace_fallback(hit[1])
        elif fallback is not None:
            logger.warning("sightline prompt %r: %s; using the fallback", name, reason)
            stale = Prompt(name=name, version=None, template=fallback,
                           type=template_type(fallback), is_fallback=True)  # fmt: skip
        else:
            raise PromptUnavailable(f"prompt {name!r}: {reason}") from None
        # Served until the TTL ends like a fresh answer: while the server is down, requests
        # wait for it once per TTL rather than each for up to timeout_s.
        with _lock:
            _cache[key] = (_now(), stale)
        return stale
    with _lock:
        _cache[key] = (_now(), prompt)
    return prompt


def _replace_fallback(p: Prompt) -> Prompt:
    return Prompt(p.name, p.version, p.template, p.type, p.model, p.parameters, p.labels,
                  p.kind, is_fallback=True)  # fmt: skip
