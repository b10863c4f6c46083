"""The OpenAI-compatible gateway: forwarding, spans, budgets, rate limits and the cache.

It forwards to the upstream, records a span per call, enforces budgets and per-key rate limits,
and answers from an exact or semantic cache.

Hard budgets: before forwarding, the gateway takes a place against every hard budget that
applies (from ``GET /api/v1/budgets/check``, cached ``budget_cache_s``), atomically in the
backend (memory or Redis): a call is admitted while ``spent + in_flight * max_request <
limit``, where ``spent`` is the larger of the server's figure and the gateway's own count (it
adds each call's cost as the call ends) and ``max_request`` the dearest call seen. Otherwise it
waits for calls in flight, or answers 429 once ``spent`` reached the limit; so concurrent
callers, on one instance or many sharing Redis, overspend by at most one request.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
import numpy as np
import orjson
import structlog
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from sightline._bodyguard import BodyGuard
from sightline.errors import Overloaded, SightlineError
from sightline.gateway._backend import Backend, open_backend
from sightline.gateway._failover import Breaker, FailoverConfig, RetryBudget, Upstream
from sightline.gateway._record import SpanRecorder
from sightline.gateway._upstream import (
    FastClient,
    ResponseTooLarge,
    UpstreamResponse,
    proxy_configured,
    read_capped,
)
from sightline.pricing import PriceOverride, Pricer

__all__ = ["GatewayOptions", "ServerLink", "create_gateway_app"]

log = structlog.get_logger("sightline.gateway")

CacheMode = Literal["off", "exact", "semantic"]
_TAGS = {
    "x-sightline-user": "user_id",
    "x-sightline-session": "session_id",
    "x-sightline-tenant": "tenant_id",
    "x-sightline-feature": "feature",
    "x-sightline-variant": "variant",
}
_FORWARD_HEADERS = ("authorization", "openai-organization", "openai-project", "api-key")
_RESPONSE_HEADERS = ("x-request-id", "retry-after", "retry-after-ms", "openai-processing-ms")
_NOT_CACHE_PARAMS = frozenset(("stream", "stream_options", "user"))
_WAIT_S = 30.0  # the longest a call waits for calls in flight against a budget
MAX_SAMPLES = 10
"""Most extra samples one request may ask for (``x-sightline-samples``)."""


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    """How the gateway runs (``sightline gateway --help`` documents each)."""

    upstream: str
    """Base URL of the OpenAI-compatible provider, with its ``/v1`` (``https://api.openai.com/v1``)."""
    server: str | None = "http://127.0.0.1:7600"
    """The Sightline server that receives the spans and answers budget checks (None: neither)."""
    api_key: str | None = None
    """Sightline API key used when a request has no ``x-sightline-api-key`` header."""
    redis_url: str | None = None
    redis_prefix: str = "sightline:gw:"
    """Prefix of every Redis key (separates gateways of different servers on one Redis)."""
    cache: CacheMode = "off"
    cache_ttl_s: int = 3600
    semantic_threshold: float = 0.92
    rate_limit: int = 0
    """Requests per ``rate_window_s`` per Sightline key (``x-sightline-api-key``) (0: no limit)."""
    rate_window_s: int = 60
    budget_cache_s: float = 2.0
    timeout_s: float = 600.0
    max_body_bytes: int = 4 << 20
    max_response_bytes: int = 64 << 20
    """Most bytes the gateway reads of one upstream answer (502 past it), a stream's as a whole.

    An upstream's answer is held whole to be recorded (and cached); without a cap, one that
    never ends its body grows the gateway's memory without bound. 64 MiB: four times the
    server's largest request body, and room for a batch of 2,048 embeddings of 3,072
    dimensions in base64 (the OpenAI SDK's default encoding, ~34 MB)."""
    body_idle_timeout_s: float = 30.0
    """Standalone: seconds a request body may go without a byte arriving (408 past it)."""
    body_timeout_s: float = 120.0
    """Standalone: most seconds a whole request body may take to arrive (408 past it)."""
    max_buffered_body_bytes: int = 256 << 20
    """Standalone: bytes of request bodies held at once over all requests (503 past it).

    The three are the server's settings of the same names (``SIGHTLINE_BODY_IDLE_TIMEOUT_S``,
    ...); mounted in the server, the server's :class:`~sightline._bodyguard.BodyGuard` applies
    them to the gateway's routes as to its own, and these are unused."""
    failover: FailoverConfig | None = None
    """Routes with ordered fallback upstreams, the retry budget and circuit breakers (None: every
    call goes to ``upstream``, and its circuit, with the default thresholds)."""
    prices: tuple[PriceOverride, ...] = ()
    """Price overrides (``--prices-file``; mounted: the server's), winning over genai-prices."""


_RATE_WINDOWS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "": 60}


def parse_rate(value: str | None) -> tuple[int, int]:
    """A rate limit as (requests, window in seconds); empty or None: (0, 60), no limit.

    ``60/min`` -> (60, 60), ``10/s`` -> (10, 1), ``1000/h`` -> (1000, 3600).

    Raises:
        ValueError: anything else.
    """
    if not value:
        return 0, 60
    n, _, unit = value.strip().partition("/")
    try:
        count = int(n)
    except ValueError:
        count = -1
    if count < 0 or unit not in _RATE_WINDOWS:
        raise ValueError(f"{value!r}: expected N/s, N/min or N/h")
    return count, _RATE_WINDOWS[unit]


def check_cache(mode: str) -> None:
    """Raise ValueError when cache ``mode`` needs what is not installed (asked once at start).

    The semantic cache embeds questions with the ONNX model of ``sightline[ml]``; without it
    every call would fail, so ``sightline gateway`` and the mounted gateway refuse to start.
    """
    if mode == "semantic":
        try:
            import onnxruntime  # type: ignore[import-untyped]  # noqa: F401
        except ImportError:
            raise ValueError("the semantic cache needs sightline[ml]") from None


def _error(status: int, message: str, kind: str, code: str, **headers: str) -> JSONResponse:
    """An OpenAI-style error body."""
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}},
        status_code=status,
        headers=headers or None,
    )


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return _error(
        404,
        f"no route {request.url.path}: the gateway serves /v1/chat/completions, /v1/embeddings"
        " and /v1/models (an OpenAI client's base_url ends in /v1)",
        "invalid_request_error",
        "not_found",
    )


async def _not_allowed(request: Request, exc: Exception) -> JSONResponse:
    return _error(
        405,
        f"{request.method} is not allowed on {request.url.path}",
        "invalid_request_error",
        "method_not_allowed",
    )


def _sha(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        if all(isinstance(p, str) for p in parts):
            return "\n".join(str(p) for p in parts)
    return None


@dataclass
class _Call:
    """One request through the gateway: what the span needs."""

    t0: float
    start_epoch: float
    body: dict[str, Any]
    tags: dict[str, str]
    sl_key: str
    operation: str = "chat"
    project: str | None = None
    """Whose statistics the call counts in (mounted: the key's project), else None."""
    status: str = "ok"
    status_message: str | None = None
    first_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    response_model: str | None = None
    finish_reason: str | None = None
    text: list[str] = field(default_factory=list)
    cache: str = "miss"
    saved_usd: float = 0.0
    replay_of: str | None = None
    trace_id: str = field(default_factory=lambda: secrets.token_hex(16))
    parent_span_id: str | None = None
    upstream: str | None = None
    upstream_model: str | None = None
    attempts: int = 0
    fallback: bool = False
    fallback_reason: str | None = None
    samples: list[str] | None = None
    samples_cost: float = 0.0
    refused: dict[str, Any] | None = None
    """Refused before forwarding: the ``sightline.gateway.refused*`` attributes of its span."""


class ServerLink(Protocol):
    """The Sightline server in the same process (the gateway mounted under ``/gateway``).

    Replaces the HTTP calls of a standalone gateway: the budget check and the span batches.
    """

    async def budget_check(self, sl_key: str, params: dict[str, str]) -> dict[str, Any] | int:
        """What ``GET /api/v1/budgets/check`` answers, or its error status (401, 403)."""
        ...

    async def send_spans(self, sl_key: str, spans: list[dict[str, Any]]) -> bool:
        """Store spans as ``POST /api/v1/spans`` does; False when they were refused."""
        ...


class Gateway:
    """The gateway's parts; one per app."""

    def __init__(self, opts: GatewayOptions, link: ServerLink | None = None) -> None:
        self.link = link
        self.opts = opts
        self.upstream = opts.upstream.rstrip("/")
        self.failover = opts.failover or FailoverConfig()
        self.default_upstream = Upstream(self.upstream, None, opts.timeout_s)
        self.breakers: dict[str, Breaker] = {}
        self.retry_budget = RetryBudget(
            self.failover.retry_ratio, self.failover.retry_min, self.failover.retry_window_s
        )
        self.backend: Backend = open_backend(opts.redis_url, prefix=opts.redis_prefix)
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(opts.timeout_s, connect=10),
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
        )
        self.fast = None if proxy_configured() else FastClient()
        """The client of the forwarded calls (``httpx``, ``client``, when a proxy is configured)."""
        self.server_client = httpx.AsyncClient(timeout=5)
        self.recorder: SpanRecorder | None = None
        if link is not None:
            self.recorder = SpanRecorder(sender=link.send_spans)
        elif opts.server:
            self.recorder = SpanRecorder(opts.server)
        self.pricer = Pricer(list(opts.prices))
        self._checks: dict[tuple[str, tuple[str | None, ...]], tuple[float, Any]] = {}
        self._embedder: Any = None
        self.overhead_ms: deque[float] = deque(maxlen=10_000)
        """Per non-streaming forwarded call: ms spent in the handler outside the upstream call."""
        self.forward_ms: deque[float] = deque(maxlen=10_000)
        """Per streamed chunk: ms from its arrival from upstream to its hand-off to the client."""

    async def count(self, call: _Call | None, values: dict[str, float]) -> None:
        """Add to the statistics: the gateway's, and the call's project's."""
        await self.backend.incr(values, call.project if call is not None else None)

    def breaker(self, url: str) -> Breaker:
        b = self.breakers.get(url)
        if b is None:
            fo = self.failover
            b = self.breakers[url] = Breaker(fo.circuit_failures, fo.circuit_cooldown_s)
        return b

    def upstreams_for(self, model: str) -> tuple[tuple[Upstream, ...], bool]:
        """The upstreams of the model's route, in order, and whether a route matched."""
        route = self.failover.route_for(model)
        if route is None:
            return (self.default_upstream,), False
        return route.upstreams, True

    # -- budgets -------------------------------------------------------------------------------

    async def check(self, sl_key: str, scope: tuple[str | None, ...]) -> dict[str, Any] | int:
        """The server's budget check (cached); an int is an HTTP status to refuse with."""
        ck = (sl_key, scope)
        hit = self._checks.get(ck)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.opts.budget_cache_s:
            out: dict[str, Any] | int = hit[1]
            return out
        data: dict[str, Any] | int = {"project": "key:" + _sha(sl_key)[:16], "budgets": []}
        params = {
            k: v for k, v in zip(("user", "tenant", "feature", "model"), scope, strict=True) if v
        }
        if self.link is not None:
            data = await self.link.budget_check(sl_key, params)
        elif self.opts.server:
            try:
                r = await self.server_client.get(
                    self.opts.server.rstrip("/") + "/api/v1/budgets/check",
                    params=params,
                    headers={"authorization": f"Bearer {sl_key}"},
                )
                if r.status_code in (401, 403):
                    data = r.status_code
                elif r.status_code == 200:
                    data = r.json()
                else:
                    log.warning("gateway_budget_check_failed", status=r.status_code)
            except (httpx.HTTPError, ValueError) as e:  # fail open
                log.warning("gateway_budget_check_failed", error=str(e))
        if len(self._checks) > 50_000:
            self._checks.clear()
        self._checks[ck] = (now, data)
        return data

    async def admit(
        self, project: str, budgets: list[dict[str, Any]]
    ) -> tuple[list[str], dict[str, Any] | None]:
        """Places taken against the hard budgets, or the budget that refuses the call."""
        held: list[str] = []
        for b in budgets:
            if not b.get("hard"):
                continue
            bid = _sha(project, str(b["name"]), str(b.get("scope_value")), str(b["period_start"]))
            deadline = time.monotonic() + _WAIT_S
            while True:
                v = await self.backend.budget_reserve(
                    bid, float(b["spent_usd"]), float(b["max_request_usd"]), float(b["limit_usd"])
                )
                if v == "ok":
                    held.append(bid)
                    break
                if v == "deny":
                    for h in held:
                        await self.backend.budget_commit(h, 0.0)
                    return [], b
                if time.monotonic() > deadline:
                    break  # a stuck call in flight (an instance died): go ahead
                await asyncio.sleep(0.005)
        return held, None

    # -- cache ---------------------------------------------------------------------------------

    def cache_keys(
        self, project: str, body: dict[str, Any], credentials: str = ""
    ) -> tuple[str, str, str] | None:
        """(exact key, semantic scope, question) of a cacheable request, else None.

        ``credentials`` (:func:`_credentials`, a hash of the provider credentials forwarded)
        is part of every key: a cached answer goes only to a caller who sends the credentials
        it was paid with, those a miss would have needed upstream.
        """
        if self.opts.cache == "off" or body.get("n", 1) != 1:
            return None
        project = _sha(project, credentials)
        params = {k: v for k, v in body.items() if k not in _NOT_CACHE_PARAMS}
        exact = _sha(project, orjson.dumps(params, option=orjson.OPT_SORT_KEYS))
        msgs = body.get("messages")
        question = ""
        scope = ""
        if isinstance(msgs, list) and msgs and isinstance(msgs[-1], dict):
            last = msgs[-1]
            q = _text_of(last.get("content"))
            if q is not None and last.get("role") == "user":
                question = q
                rest = {k: v for k, v in params.items() if k != "messages"}
                rest["_before"] = msgs[:-1]
                scope = _sha(project, orjson.dumps(rest, option=orjson.OPT_SORT_KEYS))
        return exact, scope, question

    def _embed(self, text: str) -> bytes:
        if self._embedder is None:
            from sightline.evals import default_embedder

            self._embedder = default_embedder()
        vec: Any = self._embedder.embed([text])[0]
        return bytes(np.asarray(vec, dtype=np.float32).tobytes())

    async def semantic_lookup(self, scope: str, question: str) -> tuple[str | None, bytes]:
        """The cache key of the closest cached question at or above the threshold."""
        vec = await asyncio.to_thread(self._embed, question)
        entries = await self.backend.semantic_entries(scope)
        if not entries:
            return None, vec
        q = np.frombuffer(vec, dtype=np.float32)
        m = np.frombuffer(b"".join(v for v, _ in entries), dtype=np.float32).reshape(
            len(entries), -1
        )
        sims = m @ q
        best = int(np.argmax(sims))
        if float(sims[best]) >= self.opts.semantic_threshold:
            return entries[best][1], vec
        return None, vec

    # -- spans ---------------------------------------------------------------------------------

    def cost(self, call: _Call) -> float | None:
        """The call's cost in USD; None for a model without a price.

        Its span then goes without ``cost_usd``: the server prices it with its own price file,
        or notes ``unknown_model``.
        """
        if call.input_tokens is None and call.output_tokens is None:
            return 0.0
        return self.pricer.cost_usd(
            model=call.response_model or str(call.body.get("model") or ""),
            provider="openai",
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cached_input_tokens=call.cached_tokens,
        )

    def record(self, call: _Call, cost_usd: float | None) -> None:
        end = time.perf_counter()
        duration_ms = (end - call.t0) * 1000
        model = str(call.body.get("model") or "")
        # a refused call was never looked up in the cache
        cache = {"sightline.cache": call.cache, "sightline.cache.saved_usd": call.saved_usd}
        span: dict[str, Any] = {
            "trace_id": call.trace_id,
            "span_id": secrets.token_hex(8),
            "parent_span_id": call.parent_span_id,
            "kind": "embedding" if call.operation == "embeddings" else "llm",
            "name": f"{call.operation} {model}",
            "operation": call.operation,
            "provider": "openai",
            "service_name": "sightline-gateway",
            "request_model": model,
            "response_model": call.response_model,
            "model": call.response_model or model,
            "start_time": call.start_epoch,
            "duration_ms": duration_ms,
            "status": call.status,
            "status_message": call.status_message,
            "input_tokens": call.input_tokens,
            "output_tokens": call.output_tokens,
            "cached_input_tokens": call.cached_tokens,
            "reasoning_tokens": call.reasoning_tokens,
            "cost_usd": cost_usd,
            "finish_reason": call.finish_reason,
            "is_streaming": bool(call.body.get("stream")),
            "attributes": {
                "sightline.gateway": True,
                **(call.refused if call.refused is not None else cache),
                **({"sightline.replay_of": call.replay_of} if call.replay_of else {}),
                **(
                    {
                        "sightline.gateway.upstream": call.upstream,
                        "sightline.gateway.attempts": call.attempts,
                        "sightline.gateway.fallback": call.fallback,
                    }
                    if call.upstream
                    else {}
                ),
                **(
                    {"sightline.gateway.upstream_model": call.upstream_model}
                    if call.upstream_model
                    else {}
                ),  # fmt: skip
                **(
                    {"sightline.gateway.fallback_reason": call.fallback_reason}
                    if call.fallback_reason
                    else {}
                ),  # fmt: skip
                **(
                    {
                        "sightline.samples": orjson.dumps(call.samples).decode(),
                        "sightline.samples.cost_usd": call.samples_cost,
                    }
                    if call.samples is not None
                    else {}
                ),
            },
            **call.tags,
        }
        if call.first_s is not None:
            ttft = (call.first_s - call.t0) * 1000
            span["ttft_ms"] = ttft
            if call.output_tokens and call.output_tokens > 1:
                span["tpot_ms"] = (duration_ms - ttft) / (call.output_tokens - 1)
        for k in ("temperature", "top_p", "max_tokens", "seed"):
            v = call.body.get(k)
            if isinstance(v, int | float) and not isinstance(v, bool):
                span[k] = v
        msgs = call.body.get("messages")
        if isinstance(msgs, list):
            span["input_messages"] = [m for m in msgs if isinstance(m, dict)]
        elif call.operation == "embeddings":
            span["input"] = orjson.dumps(call.body.get("input")).decode()[:10_000]
        if call.text:
            span["output"] = "".join(call.text)
        if self.recorder is not None:
            self.recorder.add(call.sl_key, {k: v for k, v in span.items() if v is not None})

    def start(self) -> None:
        """Start sending spans (on the running loop)."""
        if self.recorder is not None:
            self.recorder.start()
        log.info("gateway_started", upstream=self.upstream, redis=bool(self.opts.redis_url),
                 cache=self.opts.cache, mounted=self.link is not None)  # fmt: skip

    async def close(self) -> None:
        if self.recorder is not None:
            await self.recorder.stop()
        await self.client.aclose()
        if self.fast is not None:
            await self.fast.aclose()
        await self.server_client.aclose()
        await self.backend.close()


# -- response helpers ------------------------------------------------------------------------


def _count(value: Any, default: int | None) -> int | None:
    """A token count as the upstream sent it, if it is one (else ``default``)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return default


def _usage(call: _Call, usage: Any) -> None:
    """The call's tokens from an upstream's ``usage``; values of the wrong type are ignored.

    An upstream is not trusted to send numbers: a ``"ten"`` must not fail the call (the
    caller's answer and its span) when the cost is computed.
    """
    if not isinstance(usage, dict):
        return
    call.input_tokens = _count(usage.get("prompt_tokens"), call.input_tokens)
    call.output_tokens = _count(usage.get("completion_tokens"), call.output_tokens)
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict):
        call.cached_tokens = _count(details.get("cached_tokens"), call.cached_tokens)
    # part of completion_tokens (and priced as output): recorded to be seen, not priced again
    out = usage.get("completion_tokens_details")
    if isinstance(out, dict):
        call.reasoning_tokens = _count(out.get("reasoning_tokens"), call.reasoning_tokens)


def _choices(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The choices of an upstream's answer or chunk that are objects (none if not a list)."""
    choices = data.get("choices")
    return [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []


def _finish_reason(choice: dict[str, Any], default: str | None) -> str | None:
    reason = choice.get("finish_reason")
    return reason if isinstance(reason, str) and reason else default


def _not_json(call: _Call) -> None:
    """An upstream's 200 whose body is not a JSON object (a proxy's HTML page, a cut body).

    The caller gets it as it came; the call is recorded as failed, not as an answer.
    """
    call.status = "error"
    call.status_message = "upstream answered 200 with a body that is not a JSON object"


def _read_completion(call: _Call, data: Any) -> None:
    if not isinstance(data, dict):
        return
    call.response_model = data.get("model") if isinstance(data.get("model"), str) else None
    for ch in _choices(data):
        msg = ch.get("message")
        if isinstance(msg, dict) and isinstance(msg.get("content"), str):
            call.text.append(msg["content"])
        call.finish_reason = _finish_reason(ch, call.finish_reason)
    _usage(call, data.get("usage"))


def _sse_from_completion(data: dict[str, Any]) -> bytes:
    """A cached completion as the stream a streaming request expects."""
    base = {k: data.get(k) for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    out = []
    for ch in _choices(data):
        msg = ch.get("message")
        content = msg.get("content") if isinstance(msg, dict) else None
        delta = {"role": "assistant", "content": content if isinstance(content, str) else ""}
        out.append({**base, "choices": [{"index": ch.get("index", 0), "delta": delta,
                                         "finish_reason": None}]})  # fmt: skip
        out.append({**base, "choices": [{"index": ch.get("index", 0), "delta": {},
                                         "finish_reason": ch.get("finish_reason")}]})  # fmt: skip
    if data.get("usage"):
        out.append({**base, "choices": [], "usage": data["usage"]})
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in out) + b"data: [DONE]\n\n"


_MAX_SSE_EVENT_BYTES = 16 << 20
"""The longest stream event the gateway parses (to record it); a longer one is relayed only."""


class _SseParser:
    """Reads the events of an OpenAI chat stream as its bytes go by."""

    def __init__(self, call: _Call) -> None:
        self.call = call
        self.buf = b""
        self.first: dict[str, Any] | None = None
        """The stream's first chunk (its id and created, for the cache); later ones are not kept."""
        self.num_chunks = 0
        self.skipping = False
        """Past an event longer than ``_MAX_SSE_EVENT_BYTES``: its bytes are not kept."""

    def feed(self, data: bytes, now: float) -> None:
        # the caller gets every byte as it came (relayed apart); only what is parsed is bounded
        if self.skipping:
            i = data.find(b"\n\n")
            if i < 0:
                return
            data, self.skipping = data[i + 2 :], False
        self.buf += data
        if len(self.buf) > _MAX_SSE_EVENT_BYTES and b"\n\n" not in self.buf:
            # an upstream that never ends an event would grow this without bound
            self.buf, self.skipping = b"", True
            return
        while b"\n\n" in self.buf:
            event, self.buf = self.buf.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    continue
                try:
                    c = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(c, dict):
                    self._chunk(c, now)

    def mid_event(self) -> bool:
        """Whether the bytes fed so far end inside an event."""
        return bool(self.buf) or self.skipping

    def _chunk(self, c: dict[str, Any], now: float) -> None:
        call = self.call
        if isinstance(c.get("model"), str):
            call.response_model = c["model"]
        for ch in _choices(c):
            delta = ch.get("delta") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            if content:
                if call.first_s is None:
                    call.first_s = now
                call.text.append(str(content))
            elif isinstance(delta, dict) and delta.get("tool_calls") and call.first_s is None:
                call.first_s = now
            call.finish_reason = _finish_reason(ch, call.finish_reason)
        _usage(call, c.get("usage"))
        if self.first is None:
            self.first = c
        self.num_chunks += 1

    def completion(self) -> dict[str, Any]:
        """The stream as one chat.completion (what the cache keeps)."""
        first = self.first or {}
        call = self.call
        usage = None
        if call.input_tokens is not None:
            usage = {
                "prompt_tokens": call.input_tokens,
                "completion_tokens": call.output_tokens or 0,
                "total_tokens": call.input_tokens + (call.output_tokens or 0),
            }
        return {
            "id": first.get("id"),
            "object": "chat.completion",
            "created": first.get("created"),
            "model": call.response_model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(call.text)},
                    "finish_reason": call.finish_reason,
                }
            ],
            "usage": usage,
        }


# -- routes ------------------------------------------------------------------------------------


async def _read_json(request: Request, gw: Gateway) -> dict[str, Any] | JSONResponse:
    size = 0
    parts = []
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > gw.opts.max_body_bytes:
                return _error(413, "request body too large", "invalid_request_error", "too_large")
            parts.append(chunk)
    except SightlineError as e:  # mounted in the server: its body read deadline or buffer cap
        headers = {"Retry-After": str(e.retry_after_s)} if isinstance(e, Overloaded) else {}
        kind = "server_error" if e.status >= 500 else "invalid_request_error"
        return _error(e.status, str(e), kind, e.code, **headers)
    try:
        body = orjson.loads(b"".join(parts))
    except orjson.JSONDecodeError:
        return _error(400, "the body is not valid JSON", "invalid_request_error", "invalid_json")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object", "invalid_request_error", "invalid")
    return body


def _forward_headers(request: Request) -> dict[str, str]:
    h = {"content-type": "application/json"}
    for k in _FORWARD_HEADERS:
        v = request.headers.get(k)
        if v is not None:
            h[k] = v
    return h


def _credentials(request: Request) -> str:
    """A hash of the provider credentials a call forwards (part of its cache keys)."""
    return _sha("credentials", *(f"{k}:{request.headers.get(k, '')}" for k in _FORWARD_HEADERS))


_HEX = frozenset("0123456789abcdef")


def _hex_id(value: str, n: int) -> bool:
    """Whether ``value`` is a W3C trace-context id of ``n`` hex digits (lower-case), not all 0.

    A ``traceparent`` with any other id is ignored (the call gets a trace of its own): the
    server would refuse a span with it, and the call would go unrecorded.
    """
    return len(value) == n and set(value) <= _HEX and value != "0" * n


def _caller(sl_key: str) -> str:
    """Whom the rate limit counts: the Sightline key the call was authenticated with.

    Not a header the gateway does not check (a provider key in ``Authorization`` is checked
    upstream only on a miss): changing it must not open a new window.
    """
    return _sha("rate", sl_key)[:32]


async def _prologue(
    request: Request,
    gw: Gateway,
    operation: str,
    *,
    invalid: JSONResponse | None = None,
    samples: int = 0,
) -> tuple[_Call, list[str], str] | Response:
    """Parse, authenticate, rate-limit and admit a call: (call, budget places, project).

    A call refused once its key is known (``invalid``, the caller's check of its headers; a
    bad model or stream_options; the rate limit; a hard budget) is recorded, see
    :func:`_refuse`.
    """
    t0 = time.perf_counter()
    start_epoch = time.time()
    sl_key = request.headers.get("x-sightline-api-key") or gw.opts.api_key
    if not sl_key:
        msg = "no Sightline API key: send x-sightline-api-key (or start the gateway with --api-key)"
        return _error(401, msg, "authentication_error", "missing_sightline_key")
    # A body that cannot be read or is not a JSON object is answered without a span: there is
    # no request to show (no model, no messages), and its key is not checked yet.
    body = await _read_json(request, gw)
    if isinstance(body, Response):
        return body
    model = body.get("model") if isinstance(body.get("model"), str) else None
    if invalid is None and not model:
        invalid = _error(400, "model: a model name is required", "invalid_request_error",
                         "model")  # fmt: skip
    # stream_options: the gateway adds to it
    elif invalid is None and not isinstance(body.get("stream_options", {}), dict | None):
        invalid = _error(400, "stream_options: expected an object", "invalid_request_error",
                         "stream_options")  # fmt: skip
    elif invalid is None and samples and (body.get("stream") or body.get("n", 1) != 1):
        invalid = _error(400, "x-sightline-samples: only for non-streaming requests with n = 1",
                         "invalid_request_error", "invalid_samples")  # fmt: skip
    tags = {}
    for h, f in _TAGS.items():
        v = request.headers.get(h)
        if v:
            tags[f] = v[:200]
    prompt = request.headers.get("x-sightline-prompt")
    if prompt:
        name, _, version = prompt.partition(":")
        tags["prompt_name"] = name[:200]
        if version:
            tags["prompt_version"] = version[:50]
    call = _Call(t0, start_epoch, body, tags, sl_key, operation)
    call.replay_of = request.headers.get("x-sightline-replay-of", "")[:32] or None
    tp = request.headers.get("traceparent", "").lower().split("-")
    if len(tp) == 4 and _hex_id(tp[1], 32) and _hex_id(tp[2], 16):
        call.trace_id, call.parent_span_id = tp[1], tp[2]
    scope = (tags.get("user_id"), tags.get("tenant_id"), tags.get("feature"), model)
    info = await gw.check(sl_key, scope)
    if isinstance(info, int):  # no span: the server would refuse it with the same key
        return _error(401, "the Sightline API key was refused by the server",
                      "authentication_error", "invalid_sightline_key")  # fmt: skip
    if gw.link is not None:  # mounted: the key's project, checked by the server
        call.project = str(info.get("project"))
    if invalid is not None:
        return _refuse(gw, call, "invalid_request", invalid)
    if gw.opts.rate_limit > 0:
        retry = await gw.backend.rate_hit(_caller(sl_key), gw.opts.rate_limit,
                                          gw.opts.rate_window_s)  # fmt: skip
        if retry:
            await gw.count(call, {"rate_limited": 1})
            return _refuse(gw, call, "rate_limit",
                           _error(429, f"rate limit of {gw.opts.rate_limit} requests per "
                                  f"{gw.opts.rate_window_s}s reached for this key",
                                  "rate_limit_exceeded", "rate_limit_exceeded",
                                  **{"retry-after": str(retry)}))  # fmt: skip
    held, refused = await gw.admit(str(info.get("project")), info.get("budgets") or [])
    if refused is not None:
        await gw.count(call, {"budget_denied": 1})
        return _refuse(gw, call, "budget",
                       _error(429, f"budget {refused['name']!r} is spent: "
                              f"${refused['spent_usd']:.6f} of ${refused['limit_usd']:g} this "
                              f"{refused['period']}", "insufficient_quota", "budget_exceeded"),
                       budget=str(refused["name"]))  # fmt: skip
    return call, held, str(info.get("project"))


def _refuse(
    gw: Gateway, call: _Call, reason: str, response: JSONResponse, *, budget: str | None = None
) -> JSONResponse:
    """Record a call the gateway refuses before forwarding, and answer it with ``response``.

    The span is an error with ``sightline.gateway.refused`` = ``reason`` and the answer's code;
    it has no cost (so it is no spend, nor a request in a budget's ``num_requests``, which
    count priced calls), no tokens and no upstream: its duration is the gateway's alone.
    """
    err = orjson.loads(response.body)["error"]
    call.status, call.status_message = "error", str(err["message"])
    call.refused = {
        "sightline.gateway.refused": reason,
        "sightline.gateway.refused_code": str(err["code"]),
        "sightline.gateway.refused_status": response.status_code,
        **({"sightline.gateway.refused_budget": budget} if budget is not None else {}),
    }
    gw.record(call, None)
    return response


async def _finish(gw: Gateway, call: _Call, held: list[str], cost_usd: float | None) -> None:
    spent = (cost_usd or 0.0) + call.samples_cost
    for bid in held:
        await gw.backend.budget_commit(bid, spent)
    gw.record(call, cost_usd)
    stats = {"requests": 1.0, "cost_usd": spent}
    if call.cache != "miss":
        stats.update({"cache_hits": 1.0, f"cache_hits_{call.cache}": 1.0,
                      "saved_usd": call.saved_usd})  # fmt: skip
    await gw.count(call, stats)


def _samples_wanted(request: Request) -> int | JSONResponse:
    raw = request.headers.get("x-sightline-samples")
    if raw is None:
        return 0
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if not 0 <= n <= MAX_SAMPLES:
        return _error(400, f"x-sightline-samples: expected an integer from 0 to {MAX_SAMPLES}",
                      "invalid_request_error", "invalid_samples")  # fmt: skip
    return n


async def _sample_and_finish(
    gw: Gateway, call: _Call, held: list[str], cost: float | None, fwd: dict[str, str], n: int
) -> None:
    """Sample the answered prompt ``n`` more times, then finish the call.

    Runs after the answer went out: asks the upstream that served it, records the other answers
    on the span (``sightline.samples``, for the ``self_consistency`` evaluator) and counts their
    cost against budgets.
    """
    try:
        url = (call.upstream or gw.upstream) + "/chat/completions"
        body = {**call.body, "stream": False}
        body.pop("stream_options", None)
        if call.upstream_model:
            body["model"] = call.upstream_model
        content = orjson.dumps(body)

        async def one() -> tuple[str | None, float]:
            try:
                req = gw.client.build_request("POST", url, content=content, headers=fwd)
                r = await gw.client.send(req, stream=True)
                raw = await read_capped(r, gw.opts.max_response_bytes)
                if r.status_code != 200:
                    return None, 0.0
                sc = _Call(call.t0, call.start_epoch, body, {}, call.sl_key)
                _read_completion(sc, orjson.loads(raw))
                return "".join(sc.text), gw.cost(sc) or 0.0
            except (httpx.HTTPError, orjson.JSONDecodeError, ResponseTooLarge) as e:
                log.warning("gateway_sample_failed", error=str(e))
                return None, 0.0

        got = await asyncio.gather(*(one() for _ in range(n)))
        call.samples = [t for t, _ in got if t is not None]
        call.samples_cost = sum(c for _, c in got)
        await gw.count(call, {"samples": float(len(call.samples))})
    finally:
        await _finish(gw, call, held, cost)


async def chat_completions(request: Request) -> Response:
    """POST /v1/chat/completions, streaming or not."""
    gw: Gateway = request.app.state.gateway
    asked = _samples_wanted(request)
    want = asked if isinstance(asked, int) else 0
    # a bad header is refused (and recorded) in the prologue, once the key is known
    invalid = asked if isinstance(asked, JSONResponse) else None
    pro = await _prologue(request, gw, "chat", invalid=invalid, samples=want)
    if isinstance(pro, Response):
        return pro
    call, held, project = pro
    body = call.body
    stream = bool(body.get("stream"))
    keys = gw.cache_keys(project, body, _credentials(request))
    vec = b""
    if keys is not None:
        await gw.count(call, {"cache_lookups": 1})
        cached = await gw.backend.cache_get(keys[0])
        kind = "exact"
        if cached is None and gw.opts.cache == "semantic" and keys[2]:
            skey, vec = await gw.semantic_lookup(keys[1], keys[2])
            if skey is not None:
                cached = await gw.backend.cache_get(skey)
                kind = "semantic"
        if cached is not None:
            entry = orjson.loads(cached)
            data = entry["response"]
            call.cache = kind
            call.saved_usd = float(entry.get("cost_usd") or 0.0)
            _read_completion(call, data)
            if stream:  # a time to first token only where there is a stream (as the SDK does)
                call.first_s = time.perf_counter()
            await _finish(gw, call, held, 0.0)
            headers = {"x-sightline-cache": f"hit-{kind}", "x-sightline-trace-id": call.trace_id}
            if stream:
                return Response(_sse_from_completion(data), media_type="text/event-stream",
                                headers=headers)  # fmt: skip
            return Response(orjson.dumps(data), media_type="application/json", headers=headers)
    fwd = _forward_headers(request)
    if not stream:
        up0 = time.perf_counter()
        sent = await _send(gw, call, "/chat/completions", fwd, stream=False)
        if isinstance(sent, Response):
            await _finish(gw, call, held, 0.0)
            return sent
        r = sent.response
        up1 = time.perf_counter()
        data = None
        try:
            data = orjson.loads(sent.content)
        except orjson.JSONDecodeError:
            pass
        # no time to first token nor per output token: the whole answer came at once (it was
        # the whole latency, and the time per token a meaningless 0.01 ms)
        if r.status_code == 200 and not isinstance(data, dict):
            _not_json(call)
        elif r.status_code == 200:
            _read_completion(call, data)
        else:
            call.status, call.status_message = "error", f"upstream {r.status_code}"
        cost = gw.cost(call)
        task = None
        if want and r.status_code == 200:  # sampled off the caller's path, after the answer
            task = BackgroundTask(_sample_and_finish, gw, call, held, cost, fwd, want)
        else:
            await _finish(gw, call, held, cost)
        if r.status_code == 200 and keys is not None and isinstance(data, dict):
            await _cache_put(gw, keys, vec, data, cost)
        out = Response(sent.content, status_code=r.status_code,
                       headers=_response_headers(r, call), background=task)  # fmt: skip
        gw.overhead_ms.append((time.perf_counter() - call.t0 - (up1 - up0)) * 1000)
        return out
    sent = await _send(gw, call, "/chat/completions", fwd, stream=True)
    if isinstance(sent, Response):
        await _finish(gw, call, held, 0.0)
        return sent
    r = sent.response
    if r.status_code != 200:
        call.status, call.status_message = "error", f"upstream {r.status_code}"
        await _finish(gw, call, held, 0.0)
        return Response(sent.content, status_code=r.status_code,
                        headers=_response_headers(r, call))  # fmt: skip
    parser = _SseParser(call)
    chunks = sent.chunks or _no_chunks()
    first = sent.first

    cap = gw.opts.max_response_bytes

    async def relay() -> AsyncIterator[bytes]:
        cost: float | None = 0.0
        try:
            try:
                size = len(first)
                if size > cap:
                    raise ResponseTooLarge(cap)
                if first:
                    arrived = sent.first_at
                    yield first
                    parser.feed(first, arrived)
                prev = first
                async for chunk in chunks:
                    arrived = time.perf_counter()
                    # Relayed as it comes, but what is recorded of it (the output, and the
                    # cache entry) grows with the stream: bounded as a whole answer is.
                    size += len(chunk)
                    if size > cap:
                        # the event in progress ends first, if this chunk ends it: a cut
                        # event before the error event would be a JSON error in the SDKs
                        n = _event_end(prev, chunk) if parser.mid_event() else 0
                        if n:
                            yield chunk[:n]
                            parser.feed(chunk[:n], arrived)
                        raise ResponseTooLarge(cap)
                    prev = chunk
                    yield chunk
                    gw.forward_ms.append((time.perf_counter() - arrived) * 1000)
                    parser.feed(chunk, arrived)
            except ResponseTooLarge as e:
                call.status, call.status_message = "error", f"upstream response too large: {e}"
                await gw.count(call, {"upstream_errors": 1})
                log.warning("gateway_upstream_response_too_large", upstream=call.upstream,
                            max_bytes=e.max_bytes)  # fmt: skip
                yield _stream_error(parser, f"{e} (the gateway's max_response_bytes)",
                                    "upstream_response_too_large")  # fmt: skip
            except httpx.HTTPError as e:
                call.status, call.status_message = "error", f"upstream stream failed: {e}"
                # Said in the stream, as OpenAI does (its SDKs raise APIError): ended without
                # it, the cut answer would pass for a whole one.
                yield _stream_error(parser, f"the upstream stream failed: {e}")
        finally:
            await r.aclose()
            cost = gw.cost(call)
            await _finish(gw, call, held, cost)
            if call.status == "ok" and keys is not None and parser.first is not None:
                await _cache_put(gw, keys, vec, parser.completion(), cost)

    return StreamingResponse(relay(), media_type="text/event-stream",
                             headers=_response_headers(r, call))  # fmt: skip


def _stream_error(parser: _SseParser, message: str, code: str = "upstream_stream_failed") -> bytes:
    """An SSE error event, after the end of an event the upstream left unfinished."""
    err = {"error": {"message": message, "type": "api_error", "param": None,
                     "code": code}}  # fmt: skip
    return (b"\n\n" if parser.mid_event() else b"") + b"data: " + orjson.dumps(err) + b"\n\n"


def _event_end(prev: bytes, chunk: bytes) -> int:
    """How many bytes of ``chunk`` end the event in progress (after ``prev``); 0: none do."""
    if prev.endswith(b"\n") and chunk.startswith(b"\n"):
        return 1
    i = chunk.find(b"\n\n")
    return 0 if i < 0 else i + 2


async def _no_chunks() -> AsyncIterator[bytes]:
    return
    yield b""


@dataclass
class _Sent:
    """What an upstream answered: the response (read unless streaming) and the first chunk."""

    response: httpx.Response | UpstreamResponse
    content: bytes = b""
    """The body, read (at most ``max_response_bytes``) unless the answer is a 200 stream."""
    chunks: AsyncIterator[bytes] | None = None
    first: bytes = b""
    first_at: float = 0.0


async def _read_body(r: httpx.Response | UpstreamResponse, max_bytes: int) -> bytes:
    """A response's whole body, at most ``max_bytes`` (ResponseTooLarge past it)."""
    if isinstance(r, UpstreamResponse):
        return await r.aread(max_bytes)
    return await read_capped(r, max_bytes)


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


async def _send(
    gw: Gateway, call: _Call, path: str, fwd: dict[str, str], *, stream: bool
) -> _Sent | Response:
    """Send the call to its route's upstreams in order, failing over on 5xx, 429 and timeouts.

    Skips upstreams whose circuit is open; an extra attempt needs room in the retry budget. A
    stream fails over only until its first chunk arrived (nothing was sent to the caller yet).
    Fills the call's upstream, attempts, fallback and fallback reason. Returns the upstream's
    answer (its last failure when every attempt failed) or the gateway's own error response.
    """
    ups, routed = gw.upstreams_for(str(call.body.get("model")))
    cap = gw.opts.max_response_bytes
    gw.retry_budget.call()
    reasons: list[str] = []
    last: _Sent | None = None
    timed_out = False
    for i, up in enumerate(ups):
        label = up.url + (f" ({up.model})" if up.model else "")
        # no route: the --upstream alone, passed through as before, without a circuit
        br = gw.breaker(up.url) if routed else Breaker(1 << 30, 0.0)
        if not br.allow():
            reasons.append(f"{label}: circuit open")
            continue
        if call.attempts > 0 and not gw.retry_budget.try_retry():
            br.release()
            reasons.append("retry budget exhausted")
            await gw.count(call, {"retries_denied": 1})
            break
        if call.attempts > 0:
            await gw.count(call, {"extra_attempts": 1})
        call.attempts += 1
        call.upstream, call.upstream_model, call.fallback = up.url, up.model, i > 0
        body = call.body if up.model is None else {**call.body, "model": up.model}
        if stream:
            opts = body.get("stream_options")
            if not (isinstance(opts, dict) and opts.get("include_usage")):
                # tokens and cost need the final usage chunk
                body = {**body, "stream_options": {**(opts or {}), "include_usage": True}}
        r: httpx.Response | UpstreamResponse | None = None
        try:
            async with asyncio.timeout(up.timeout_s):
                if gw.fast is not None:
                    r = await gw.fast.post(up.url + path, orjson.dumps(body), fwd,
                                           timeout_s=up.timeout_s, stream=stream,
                                           connect_s=min(10.0, up.timeout_s),
                                           max_bytes=cap)  # fmt: skip
                else:  # read as a stream either way: a plain post reads a body of any size
                    timeout = httpx.Timeout(up.timeout_s, connect=min(10.0, up.timeout_s))
                    req = gw.client.build_request("POST", up.url + path, content=orjson.dumps(body),
                                                  headers=fwd, timeout=timeout)  # fmt: skip
                    r = await gw.client.send(req, stream=True)
                if not stream:
                    if isinstance(r, UpstreamResponse):  # read by post, within the cap
                        sent = _Sent(r, r.content)
                    else:
                        sent = _Sent(r, await read_capped(r, cap))
                else:
                    if r.status_code != 200:
                        content = await _read_body(r, cap)
                        await r.aclose()
                        sent = _Sent(r, content)
                    else:
                        it = r.aiter_raw()
                        first = b""
                        async for first in it:
                            if first:
                                break
                        sent = _Sent(r, b"", it, first, time.perf_counter())
        except ResponseTooLarge as e:
            # The answer is this call's, not a sign the upstream is down: no failover (it
            # would pay for the same answer again) and no mark against its circuit.
            if r is not None:
                await r.aclose()
            br.release()
            call.status = "error"
            call.status_message = f"upstream response too large: {e}"
            call.fallback_reason = "; ".join(reasons) or None
            await gw.count(call, {"upstream_errors": 1})
            log.warning("gateway_upstream_response_too_large", upstream=up.url,
                        max_bytes=e.max_bytes)  # fmt: skip
            return _error(502, f"{e} (the gateway's max_response_bytes); not passed on",
                          "api_error", "upstream_response_too_large")  # fmt: skip
        except (httpx.HTTPError, TimeoutError) as e:
            if r is not None:
                await r.aclose()
            br.failure()
            timeout_hit = isinstance(e, TimeoutError | httpx.TimeoutException)
            timed_out = timed_out or timeout_hit
            kind = f"timeout after {up.timeout_s:g}s" if timeout_hit else type(e).__name__
            reasons.append(f"{label}: {kind}")
            continue
        except BaseException:  # the caller went away: free a half-open probe
            br.release()
            if r is not None:
                await r.aclose()
            raise
        if _retryable(sent.response.status_code):
            if sent.response.status_code >= 500:
                br.failure()
            else:
                br.release()
            reasons.append(f"{label}: upstream {sent.response.status_code}")
            last = sent
            continue
        br.success()
        call.fallback_reason = "; ".join(reasons) or None
        if call.fallback:  # after a failure, or its circuit open, the first did not serve
            await gw.count(call, {"fallbacks": 1})
        return sent
    call.fallback_reason = "; ".join(reasons) or None
    if last is not None:
        return last
    call.status = "error"
    if call.attempts == 0:
        call.status_message = "every upstream's circuit is open"
        await gw.count(call, {"upstream_errors": 1})
        retry = str(max(1, int(gw.failover.circuit_cooldown_s)))
        return _error(503, f"no upstream available: {call.fallback_reason}", "api_error",
                      "circuit_open", **{"retry-after": retry})  # fmt: skip
    call.status_message = f"upstream unreachable: {call.fallback_reason}"
    await gw.count(call, {"upstream_errors": 1})
    if timed_out:
        return _error(504, f"the upstream timed out ({call.fallback_reason})", "api_error",
                      "upstream_timeout")  # fmt: skip
    return _error(502, f"the upstream could not be reached ({call.fallback_reason})", "api_error",
                  "upstream_unreachable")  # fmt: skip


def _response_headers(r: httpx.Response | UpstreamResponse, call: _Call) -> dict[str, str]:
    h = {k: r.headers[k] for k in _RESPONSE_HEADERS if k in r.headers}
    h["content-type"] = r.headers.get("content-type", "application/json")
    h["x-sightline-cache"] = "miss" if call.cache == "miss" else f"hit-{call.cache}"
    h["x-sightline-trace-id"] = call.trace_id
    return h


async def _cache_put(
    gw: Gateway,
    keys: tuple[str, str, str],
    vec: bytes,
    data: dict[str, Any],
    cost: float | None,
) -> None:
    entry = orjson.dumps({"response": data, "cost_usd": cost or 0.0})
    await gw.backend.cache_put(keys[0], entry, gw.opts.cache_ttl_s)
    if gw.opts.cache == "semantic" and keys[2]:
        if not vec:
            vec = await asyncio.to_thread(gw._embed, keys[2])
        await gw.backend.semantic_add(keys[1], vec, keys[0], gw.opts.cache_ttl_s)


async def embeddings(request: Request) -> Response:
    """POST /v1/embeddings."""
    gw: Gateway = request.app.state.gateway
    pro = await _prologue(request, gw, "embeddings")
    if isinstance(pro, Response):
        return pro
    call, held, _ = pro
    sent = await _send(gw, call, "/embeddings", _forward_headers(request), stream=False)
    if isinstance(sent, Response):
        await _finish(gw, call, held, 0.0)
        return sent
    r = sent.response
    if r.status_code == 200:
        try:
            data = orjson.loads(sent.content)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            model = data.get("model")
            call.response_model = model if isinstance(model, str) else None
            _usage(call, data.get("usage"))
        else:
            _not_json(call)
    else:
        call.status, call.status_message = "error", f"upstream {r.status_code}"
    call.output_tokens = None
    await _finish(gw, call, held, gw.cost(call))
    return Response(sent.content, status_code=r.status_code, headers=_response_headers(r, call))


async def models(request: Request) -> Response:
    """GET /v1/models: the upstream's list."""
    gw: Gateway = request.app.state.gateway
    try:
        req = gw.client.build_request("GET", gw.upstream + "/models",
                                      headers=_forward_headers(request))  # fmt: skip
        r = await gw.client.send(req, stream=True)
        content = await read_capped(r, gw.opts.max_response_bytes)
    except httpx.HTTPError as e:
        return _error(502, f"the upstream could not be reached ({type(e).__name__})",
                      "api_error", "upstream_unreachable")  # fmt: skip
    except ResponseTooLarge as e:
        return _error(502, f"{e} (the gateway's max_response_bytes); not passed on",
                      "api_error", "upstream_response_too_large")  # fmt: skip
    return Response(content, status_code=r.status_code,
                    media_type=r.headers.get("content-type", "application/json"))  # fmt: skip


async def _stats(gw: Gateway, project: str | None = None) -> dict[str, Any]:
    """The statistics: of ``project``'s calls when given (the mounted gateway), else of all.

    ``circuits``, ``spans_dropped`` and the two latency medians are the gateway's own (the
    upstreams' health and the instance's speed): the same for every caller.
    """
    s = await gw.backend.stats(project)
    lookups = s.get("cache_lookups", 0.0)
    fwd = sorted(gw.forward_ms)
    ovh = sorted(gw.overhead_ms)
    return {
        "requests": int(s.get("requests", 0)),
        "cost_usd": s.get("cost_usd", 0.0),
        "cache_lookups": int(lookups),
        "cache_hits": int(s.get("cache_hits", 0)),
        "cache_hits_exact": int(s.get("cache_hits_exact", 0)),
        "cache_hits_semantic": int(s.get("cache_hits_semantic", 0)),
        "cache_hit_rate": s.get("cache_hits", 0.0) / lookups if lookups else 0.0,
        "saved_usd": s.get("saved_usd", 0.0),
        "budget_denied": int(s.get("budget_denied", 0)),
        "rate_limited": int(s.get("rate_limited", 0)),
        "upstream_errors": int(s.get("upstream_errors", 0)),
        "fallbacks": int(s.get("fallbacks", 0)),
        "extra_attempts": int(s.get("extra_attempts", 0)),
        "retries_denied": int(s.get("retries_denied", 0)),
        "samples": int(s.get("samples", 0)),
        "circuits": {url: b.current() for url, b in gw.breakers.items()},
        "spans_dropped": gw.recorder.num_dropped if gw.recorder else 0,
        "chunk_forward_ms_p50": fwd[len(fwd) // 2] if fwd else None,
        "handler_overhead_ms_p50": ovh[len(ovh) // 2] if ovh else None,
    }


PROJECT_SCOPE = "sightline.project"
"""ASGI scope key the server sets in front of the mounted gateway: the caller key's project."""


def _scope_project(request: Request) -> str | None:
    project = request.scope.get(PROJECT_SCOPE)
    return project if isinstance(project, str) else None


async def stats(request: Request) -> Response:
    """GET /gateway/stats: requests, cache hit rate, money saved (shared through Redis).

    Mounted, of the caller key's project only.
    """
    return JSONResponse(await _stats(request.app.state.gateway, _scope_project(request)))


async def metrics(request: Request) -> Response:
    """GET /metrics: the same figures for Prometheus."""
    s = await _stats(request.app.state.gateway, _scope_project(request))
    lines = []
    for name in ("requests", "cache_lookups", "cache_hits", "budget_denied", "rate_limited",
                 "upstream_errors", "fallbacks", "extra_attempts", "retries_denied"):  # fmt: skip
        lines += [f"# TYPE sightline_gateway_{name}_total counter",
                  f"sightline_gateway_{name}_total {s[name]}"]  # fmt: skip
    lines += ["# TYPE sightline_gateway_cost_usd_total counter",
              f"sightline_gateway_cost_usd_total {s['cost_usd']}",
              "# TYPE sightline_gateway_cache_saved_usd_total counter",
              f"sightline_gateway_cache_saved_usd_total {s['saved_usd']}",
              "# TYPE sightline_gateway_cache_hit_ratio gauge",
              f"sightline_gateway_cache_hit_ratio {s['cache_hit_rate']}",
              "# TYPE sightline_gateway_circuit_open gauge"]  # fmt: skip
    for url, state in s["circuits"].items():
        v = {"closed": 0, "half_open": 0.5, "open": 1}[state]
        lines.append(f'sightline_gateway_circuit_open{{upstream="{url}"}} {v}')
    return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


async def healthz(request: Request) -> Response:
    """GET /healthz."""
    return JSONResponse({"status": "ok"})


def create_gateway_app(opts: GatewayOptions, *, link: ServerLink | None = None) -> Starlette:
    """The gateway as an ASGI app (``sightline gateway`` serves it with uvicorn).

    With ``link`` it talks to the server in its own process (budget checks, spans) instead of
    ``opts.server``; the server mounts it then, and runs ``app.state.gateway.start()`` and
    ``close()`` in its own lifespan (a mounted app's lifespan does not run). Without, the app
    is wrapped in :class:`~sightline._bodyguard.BodyGuard` (``opts.body_*``): a body that
    stalls or trickles is answered 408 and its connection closed.

    Example:
        ```python
        from sightline.gateway import GatewayOptions, create_gateway_app

        app = create_gateway_app(GatewayOptions(upstream="https://api.openai.com/v1"))
        ```
    """
    gw = Gateway(opts, link)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gw.start()
        try:
            yield
        finally:
            await gw.close()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/gateway/stats", stats, methods=["GET"]),
            Route("/stats", stats, methods=["GET"]),  # mounted: /gateway/stats
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
        # an OpenAI client shows the error's message: "Not Found" as text said nothing
        exception_handlers={404: _not_found, 405: _not_allowed},
    )
    if link is None:  # mounted, the server's BodyGuard is around every route already
        app.add_middleware(
            BodyGuard,
            idle_timeout_s=opts.body_idle_timeout_s,
            total_timeout_s=opts.body_timeout_s,
            max_held_bytes=opts.max_buffered_body_bytes,
        )
    app.state.gateway = gw
    return app
