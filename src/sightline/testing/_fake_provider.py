"""A local LLM provider that speaks the OpenAI and Anthropic wire formats, for tests.

Standard library only. Replies are deterministic; latency (time to first token, time per token)
and failures (429/500/503, a stream cut short) are under the test's control, globally or per
request through ``x-fake-*`` headers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["FakeProvider", "RecordedRequest"]

Reply = str | Callable[[dict[str, Any]], str]

_TOKEN_RE = re.compile(r"\S+\s*|\s+")
_ERROR_TYPES_OPENAI = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "service_unavailable",
}
_ERROR_TYPES_ANTHROPIC = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
_MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "claude-haiku-4-5")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the provider received."""

    method: str
    path: str
    headers: dict[str, str]
    """Header names in lowercase."""
    body: dict[str, Any] | None
    """The JSON body, or None when there was none (or it was not JSON)."""


@dataclass(slots=True)
class _Failure:
    status: int
    retry_after_s: float | None
    path_prefix: str | None


@dataclass(slots=True)
class _Plan:
    """What one request gets: reply text, timing, failure."""

    text: str
    ttft_s: float
    token_interval_s: float
    abort_after_tokens: int | None = None
    tokens: list[str] = field(default_factory=list)


def tokenize(text: str) -> list[str]:
    """The provider's tokens: each word with the whitespace after it."""
    return _TOKEN_RE.findall(text) or [""]


def _count_tokens(value: Any) -> int:
    """Deterministic input token count: the words of every string in the request's messages."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_count_tokens(v) for v in value)
    if isinstance(value, dict):
        return sum(_count_tokens(v) for k, v in value.items() if k in ("content", "text", "input"))
    return 0


def _last_user_text(messages: Any) -> str:
    if isinstance(messages, str):
        return messages
    if not isinstance(messages, list):
        return ""
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role", "user") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                return " ".join(
                    str(p.get("text", "")) for p in c if isinstance(p, dict) and "text" in p
                )
    return ""


def token_logprob(token: str, index: int) -> float:
    """The fake's log-probability of a token it chose: deterministic, in [-2.5, 0)."""
    h = hashlib.blake2b(f"{index}:{token}".encode(), digest_size=4).digest()
    return -(1 + int.from_bytes(h, "big") % 1000) / 400


def _logprobs(tokens: list[str], top_n: int, fixed: float | None, start: int) -> dict[str, Any]:
    """``choice.logprobs`` as the chat completions API sends it.

    Each chosen token is the first of its ``top_logprobs``; the ``top_n - 1`` alternatives
    share what is left of the probability mass equally with the tail not listed.
    """
    content = []
    for i, tok in enumerate(tokens):
        lp = fixed if fixed is not None else token_logprob(tok, start + i)
        top = [{"token": tok, "logprob": lp, "bytes": list(tok.encode())}] if top_n else []
        rest = 1.0 - math.exp(lp)
        for k in range(1, top_n):
            alt = f"<alt{k}>"
            alp = math.log(rest / top_n) if rest > 0 else -9999.0
            top.append({"token": alt, "logprob": alp, "bytes": list(alt.encode())})
        content.append(
            {"token": tok, "logprob": lp, "bytes": list(tok.encode()), "top_logprobs": top}
        )
    return {"content": content, "refusal": None}


def default_reply(body: dict[str, Any]) -> str:
    """The reply when none is configured: names the question, so tests can tell calls apart."""
    question = _last_user_text(body.get("messages", body.get("input")))
    return f"You asked: {question.strip()[:200]}. Here is a deterministic answer."


class FakeProvider:
    """An HTTP server speaking the OpenAI and Anthropic APIs, on a free loopback port.

    Serves ``POST /v1/chat/completions`` (streaming with a final usage chunk when
    ``stream_options.include_usage`` is set), ``POST /v1/responses`` (streaming events too),
    ``POST /v1/embeddings``, ``GET /v1/models`` and Anthropic's ``POST /v1/messages``
    (streaming events too). Token counts are words; every streamed chunk is one token.

    Per-request overrides, as headers (e.g. the clients' ``extra_headers``):
    ``x-fake-ttft-ms``, ``x-fake-token-ms``, ``x-fake-reply``, ``x-fake-status`` (fail with this
    status), ``x-fake-abort-after`` (cut the stream after this many tokens) and
    ``x-fake-logprob`` (every chosen token's log-probability, when the request asks for
    ``logprobs``; otherwise each token gets a deterministic one from :func:`token_logprob`).

    Example:
        ```python
        import openai
        from sightline.testing import FakeProvider

        with FakeProvider(reply="Refunds take 30 days.", ttft_s=0.05) as fake:
            client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test")
            chat = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Refunds?"}]
            )
            assert chat.choices[0].message.content == "Refunds take 30 days."
        ```
    """

    def __init__(
        self,
        *,
        reply: Reply | None = None,
        ttft_s: float = 0.0,
        token_interval_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.reply: Reply = reply if reply is not None else default_reply
        self.ttft_s = ttft_s
        self.token_interval_s = token_interval_s
        self.abort_after: int | None = None
        """Cut every stream after this many tokens (``x-fake-abort-after`` per request)."""
        self.api_keys: frozenset[str] | None = None
        """Accept only these ``Authorization: Bearer`` keys (401 otherwise); None: any."""
        self.requests: list[RecordedRequest] = []
        self._failures: deque[_Failure] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``: Anthropic clients take this as their ``base_url``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        """``http://HOST:PORT/v1``: OpenAI clients take this as their ``base_url``."""
        return f"{self.base_url}/v1"

    def start(self) -> FakeProvider:
        """Serve in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="fake-provider",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- control -----------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        retry_after_s: float | None = 0.0,
        path_prefix: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests (to ``path_prefix`` if given) with ``status``.

        ``retry_after_s`` is sent as ``retry-after-ms`` (and ``retry-after``), which the
        clients honour, so retries in tests are fast; None sends no such header.
        """
        with self._lock:
            for _ in range(times):
                self._failures.append(_Failure(status, retry_after_s, path_prefix))

    def _take_failure(self, path: str) -> _Failure | None:
        with self._lock:
            for f in self._failures:
                if f.path_prefix is None or path.startswith(f.path_prefix):
                    self._failures.remove(f)
                    return f
        return None

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def _plan(self, body: dict[str, Any], headers: dict[str, str]) -> _Plan:
        text = headers.get("x-fake-reply")
        if text is None:
            text = self.reply(body) if callable(self.reply) else self.reply
        abort = headers.get("x-fake-abort-after")
        plan = _Plan(
            text=text,
            ttft_s=float(headers["x-fake-ttft-ms"]) / 1000
            if "x-fake-ttft-ms" in headers
            else self.ttft_s,
            token_interval_s=float(headers["x-fake-token-ms"]) / 1000
            if "x-fake-token-ms" in headers
            else self.token_interval_s,
            abort_after_tokens=int(abort) if abort is not None else self.abort_after,
        )
        plan.tokens = tokenize(text)
        return plan


class _Abort(Exception):
    """The plan says to cut the stream here."""


def _handler_for(provider: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        fake = provider

    return Handler


class _Handler(BaseHTTPRequestHandler):
    fake: FakeProvider
    protocol_version = "HTTP/1.1"
    server_version = "FakeProvider/1"
    # Headers and body leave in two writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK (~40 ms on Linux), which made every kept-alive request ~44 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # tests do not want a line per request on stderr

    # -- plumbing ----------------------------------------------------------------------------

    def _headers_lower(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _read_json(self) -> dict[str, Any] | None:
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _send_json(
        self, status: int, payload: Any, extra_headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", f"req_{time.monotonic_ns()}")
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("x-request-id", f"req_{time.monotonic_ns()}")
        self.end_headers()

    def _sse(self, data: Any, event: str | None = None) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        chunk = (f"event: {event}\n" if event else "") + f"data: {text}\n\n"
        raw = chunk.encode()
        self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        self.wfile.flush()

    def _end_sse(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _tokens(self, plan: _Plan) -> Iterator[tuple[int, str]]:
        """The reply's tokens, paced by the plan: TTFT before the first, an interval after."""
        for i, tok in enumerate(plan.tokens):
            if plan.abort_after_tokens is not None and i >= plan.abort_after_tokens:
                raise _Abort
            time.sleep(plan.ttft_s if i == 0 else plan.token_interval_s)
            yield i, tok

    def _wait_whole(self, plan: _Plan) -> None:
        time.sleep(plan.ttft_s + plan.token_interval_s * max(len(plan.tokens) - 1, 0))

    def _fail(self, status: int, retry_after_s: float | None, anthropic: bool) -> None:
        headers: dict[str, str] = {}
        if retry_after_s is not None:
            headers["retry-after-ms"] = str(int(retry_after_s * 1000))
            headers["retry-after"] = str(max(int(retry_after_s), 0))
        if anthropic:
            etype = _ERROR_TYPES_ANTHROPIC.get(status, "api_error")
            payload: Any = {
                "type": "error",
                "error": {"type": etype, "message": f"fake provider: {status}"},
            }
        else:
            etype = _ERROR_TYPES_OPENAI.get(status, "server_error")
            payload = {
                "error": {
                    "message": f"fake provider: {status}",
                    "type": etype,
                    "param": None,
                    "code": etype,
                }
            }
        self._send_json(status, payload, headers)

    # -- routes ------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        headers = self._headers_lower()
        self.fake._record(RecordedRequest("GET", self.path, headers, None))
        if self.path.rstrip("/") == "/v1/models":
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
                        for m in _MODELS
                    ],
                },
            )
            return
        self._send_json(404, {"error": {"message": "not found", "type": "not_found_error"}})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        headers = self._headers_lower()
        body = self._read_json()
        path = self.path.split("?", 1)[0].rstrip("/")
        self.fake._record(RecordedRequest("POST", path, headers, body))
        anthropic = path == "/v1/messages"
        routes: dict[str, Callable[[dict[str, Any], dict[str, str]], None]] = {
            "/v1/chat/completions": self._chat,
            "/v1/responses": self._responses,
            "/v1/embeddings": self._embeddings,
            "/v1/messages": self._messages,
        }
        route = routes.get(path)
        if route is None:
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return
        if body is None:
            self._fail(400, None, anthropic)
            return
        if (
            self.fake.api_keys is not None
            and headers.get("authorization", "").removeprefix("Bearer ") not in self.fake.api_keys
        ):
            self._fail(401, None, anthropic)
            return
        if "x-fake-status" in headers:
            self._fail(int(headers["x-fake-status"]), 0.0, anthropic)
            return
        failure = self.fake._take_failure(path)
        if failure is not None:
            self._fail(failure.status, failure.retry_after_s, anthropic)
            return
        try:
            route(body, headers)
        except _Abort:
            # a stream cut short: the connection closes without the final chunk
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-stream

    # -- OpenAI: chat completions --------------------------------------------------------------

    def _chat(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        plan = self.fake._plan(body, headers)
        top_n = body.get("top_logprobs")
        top_n = min(max(top_n, 0), 20) if isinstance(top_n, int) else 0
        fixed = float(headers["x-fake-logprob"]) if "x-fake-logprob" in headers else None

        def lp(tokens: list[str], start: int) -> dict[str, Any] | None:
            if body.get("logprobs") is not True:
                return None
            # the same figures streamed or not: keyed by the token's position in the reply
            return _logprobs(tokens, top_n, fixed, start)

        model = str(body.get("model", "gpt-4o-mini"))
        cid = f"chatcmpl-{hashlib.sha256(plan.text.encode()).hexdigest()[:12]}"
        created = int(time.time())
        usage = {
            "prompt_tokens": _count_tokens(body.get("messages")),
            "completion_tokens": len(plan.tokens),
            "total_tokens": _count_tokens(body.get("messages")) + len(plan.tokens),
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }
        if not body.get("stream"):
            self._wait_whole(plan)
            self._send_json(
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": plan.text, "refusal": None},
                            "logprobs": lp(plan.tokens, 0),
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                    "system_fingerprint": "fp_fake",
                },
            )
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(
            delta: dict[str, Any], finish: str | None, logprobs: dict[str, Any] | None = None
        ) -> dict[str, Any]:
            c: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
                ],
            }
            if include_usage:
                c["usage"] = None  # as the API does: null on every chunk but the last
            return c

        self._start_sse()
        # The API sends the role-only chunk when generation starts, just before the first
        # content: instrumentors that time the first chunk (OpenInference) then see the TTFT.
        for i, tok in self._tokens(plan):
            if i == 0:
                self._sse(chunk({"role": "assistant", "content": "", "refusal": None}, None))
            self._sse(chunk({"content": tok}, None, lp([tok], i)))
        self._sse(chunk({}, "stop"))
        if include_usage:
            last = chunk({}, None)
            last["choices"] = []
            last["usage"] = usage
            self._sse(last)
        self._sse("[DONE]")
        self._end_sse()

    # -- OpenAI: responses -------------------------------------------------------------------

    def _responses(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        plan = self.fake._plan(body, headers)
        model = str(body.get("model", "gpt-4o-mini"))
        rid = f"resp_{hashlib.sha256(plan.text.encode()).hexdigest()[:12]}"
        mid = f"msg_{rid[5:]}"
        in_tokens = _count_tokens(body.get("input")) + _count_tokens(body.get("instructions"))
        usage = {
            "input_tokens": in_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": len(plan.tokens),
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": in_tokens + len(plan.tokens),
        }

        def response(status: str, text: str | None) -> dict[str, Any]:
            output = []
            if text is not None:
                output.append(
                    {
                        "id": mid,
                        "type": "message",
                        "status": "completed",
                        "role": "assistant",
                        "content": [
                            {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
                        ],
                    }
                )
            return {
                "id": rid,
                "object": "response",
                "created_at": int(time.time()),
                "status": status,
                "error": None,
                "incomplete_details": None,
                "instructions": body.get("instructions"),
                "model": model,
                "output": output,
                "parallel_tool_calls": True,
                "temperature": body.get("temperature", 1.0),
                "tool_choice": "auto",
                "tools": [],
                "top_p": body.get("top_p", 1.0),
                "usage": usage if status == "completed" else None,
            }

        if not body.get("stream"):
            self._wait_whole(plan)
            self._send_json(200, response("completed", plan.text))
            return
        seq = 0

        def event(kind: str, **data: Any) -> None:
            nonlocal seq
            self._sse({"type": kind, "sequence_number": seq, **data}, event=kind)
            seq += 1

        self._start_sse()
        event("response.created", response=response("in_progress", None))
        event("response.in_progress", response=response("in_progress", None))
        item = {"id": mid, "type": "message", "status": "in_progress", "role": "assistant"}
        event("response.output_item.added", output_index=0, item={**item, "content": []})
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        event(
            "response.content_part.added", item_id=mid, output_index=0, content_index=0, part=part
        )
        for _, tok in self._tokens(plan):
            event(
                "response.output_text.delta",
                item_id=mid,
                output_index=0,
                content_index=0,
                delta=tok,
                logprobs=[],
            )
        event(
            "response.output_text.done",
            item_id=mid,
            output_index=0,
            content_index=0,
            text=plan.text,
            logprobs=[],
        )
        done_part = {**part, "text": plan.text}
        event(
            "response.content_part.done",
            item_id=mid,
            output_index=0,
            content_index=0,
            part=done_part,
        )
        done_item = {**item, "status": "completed", "content": [done_part]}
        event("response.output_item.done", output_index=0, item=done_item)
        event("response.completed", response=response("completed", plan.text))
        self._end_sse()

    # -- OpenAI: embeddings ------------------------------------------------------------------

    def _embeddings(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        inputs = body.get("input")
        items = [inputs] if isinstance(inputs, str) else list(inputs or [])
        dims = int(body.get("dimensions") or 16)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(items):
            vec = embed(str(text), dims)
            emb: Any = (
                base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode() if as_base64 else vec
            )
            data.append({"object": "embedding", "index": i, "embedding": emb})
        n = sum(len(str(t).split()) for t in items)
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": str(body.get("model", "text-embedding-3-small")),
                "usage": {"prompt_tokens": n, "total_tokens": n},
            },
        )

    # -- Anthropic: messages -----------------------------------------------------------------

    def _messages(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        plan = self.fake._plan(body, headers)
        model = str(body.get("model", "claude-haiku-4-5"))
        mid = f"msg_{hashlib.sha256(plan.text.encode()).hexdigest()[:12]}"
        in_tokens = _count_tokens(body.get("messages")) + _count_tokens(body.get("system"))
        max_tokens = int(body.get("max_tokens") or 1024)
        tokens = plan.tokens[:max_tokens]
        plan.tokens = tokens
        stop_reason = "end_turn" if len(tokens) == len(tokenize(plan.text)) else "max_tokens"
        text = "".join(tokens)
        usage = {
            "input_tokens": in_tokens,
            "output_tokens": len(tokens),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        message: dict[str, Any] = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            self._wait_whole(plan)
            self._send_json(200, message)
            return
        self._start_sse()
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {**usage, "output_tokens": 1},
        }
        self._sse({"type": "message_start", "message": start}, event="message_start")
        self._sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            event="content_block_start",
        )
        self._sse({"type": "ping"}, event="ping")
        for _, tok in self._tokens(plan):
            self._sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": tok},
                },
                event="content_block_delta",
            )
        self._sse({"type": "content_block_stop", "index": 0}, event="content_block_stop")
        self._sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": len(tokens)},
            },
            event="message_delta",
        )
        self._sse({"type": "message_stop"}, event="message_stop")
        self._end_sse()


def embed(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for ``text`` (the same text always gets the same vector)."""
    out: list[float] = []
    counter = 0
    while len(out) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        out.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    vec = out[:dims]
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [v / norm for v in vec]
