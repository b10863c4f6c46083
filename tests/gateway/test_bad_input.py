"""Bad requests and a hostile upstream against a real `sightline gateway` process.

The upstream here misbehaves on demand (the provider key the caller sends names how: the
gateway forwards ``Authorization`` as is): a stream cut in the middle, token counts that are
not numbers, choices that are not a list. The spans go to a collector standing in for the
server. Whatever the upstream does, the caller gets an answer or a clear error, never a bare
500, and the call is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest

from _gw import Gateway

MSGS = [{"role": "user", "content": "hi"}]


def _chunk(text: str) -> bytes:
    c = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
         "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}  # fmt: skip
    return b"data: " + json.dumps(c).encode() + b"\n\n"


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunked(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self.rfile.read(int(self.headers.get("content-length") or 0))
        mode = self.headers.get("authorization", "").removeprefix("Bearer ")
        if mode in ("stream-cut", "stream-cut-mid-event"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self._chunked(_chunk("one ") + _chunk("two "))
            if mode == "stream-cut-mid-event":
                self._chunked(b'data: {"choi')
            time.sleep(0.1)
            self.close_connection = True  # no last chunk: the body is cut
            return
        if mode == "hang":  # accepts the request and never answers
            time.sleep(30)
            return
        if mode == "odd-numbers":
            self._send(200, json.dumps({
                "id": "x", "model": 5,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"},
                             "finish_reason": ["stop"]}],
                "usage": {"prompt_tokens": "ten", "completion_tokens": None,
                          "prompt_tokens_details": {"cached_tokens": "all"}},
            }).encode())  # fmt: skip
            return
        if mode == "reasoning":
            self._send(200, json.dumps({
                "id": "x", "model": "o3-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "42"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 30,
                          "completion_tokens_details": {"reasoning_tokens": 28}},
            }).encode())  # fmt: skip
            return
        if mode == "not-json":  # a proxy in front of the provider, say
            self._send(200, b"<html><body>upstream busy</body></html>", "text/html")
            return
        if mode == "odd-choices":
            self._send(200, json.dumps({"id": "x", "model": "gpt-4o-mini", "choices": 5,
                                        "usage": {"prompt_tokens": 3}}).encode())  # fmt: skip
            return
        if mode == "odd-stream":
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for c in (_chunk("one "), b'data: {"choices": 7, "usage": {"prompt_tokens": "x"}}\n\n',
                      b"data: {not json\n\n", _chunk("two"), b"data: [DONE]\n\n"):  # fmt: skip
                self._chunked(c)
            self._chunked(b"")
            return
        self._send(200, json.dumps({
            "id": "x", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        }).encode())  # fmt: skip


class _Collector(BaseHTTPRequestHandler):
    """The server's two routes the gateway calls: budget checks (none) and span batches."""

    protocol_version = "HTTP/1.1"
    spans: list[dict[str, Any]] = []

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _ok(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._ok(b'{"project": "p", "budgets": []}')

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        n = int(self.headers["content-length"])
        self.spans.extend(json.loads(self.rfile.read(n)))
        self._ok(b"{}")


def _serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    s = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    s.daemon_threads = True
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    up, col = _serve(_Upstream), _serve(_Collector)
    server = f"http://127.0.0.1:{col.server_port}"
    g = Gateway(f"http://127.0.0.1:{up.server_port}/v1", ["--server", server, "--api-key", "sl_x"])
    g.start(tmp_path_factory.mktemp("gw-bad"))
    yield g
    g.stop()
    for s in (up, col):
        s.shutdown()
        s.server_close()


def _span(user: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [s for s in _Collector.spans if s.get("user_id") == user]
        if found:
            assert len(found) == 1
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no span of {user}")


def _client(gw: Gateway, mode: str, user: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=mode, max_retries=0,
                         default_headers={"x-sightline-user": user})  # fmt: skip


@pytest.mark.parametrize("mode", ["stream-cut", "stream-cut-mid-event"])
def test_a_stream_the_upstream_cuts_ends_with_an_error_event(gw: Gateway, mode: str) -> None:
    got: list[str] = []
    # the caller learns that the answer is cut (before, the stream just ended: a cut answer
    # passed for a whole one)
    with (
        _client(gw, mode, mode) as client,
        pytest.raises((openai.APIError, ValueError)) as e,
    ):
        for c in client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True):
            got.append(c.choices[0].delta.content or "")
    assert got == ["one ", "two "]
    if mode == "stream-cut":  # at an event's end: the SDK reads the error event
        assert isinstance(e.value, openai.APIError)
        assert "the upstream stream failed" in str(e.value)
    raw = httpx.post(gw.url + "/v1/chat/completions", timeout=10,
                     headers={"authorization": f"Bearer {mode}", "x-sightline-user": "raw-" + mode},
                     json={"model": "gpt-4o-mini", "messages": MSGS, "stream": True})  # fmt: skip
    assert raw.status_code == 200
    last = raw.content.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    assert last.startswith(b"data: ")
    err = json.loads(last[6:])["error"]
    assert err["code"] == "upstream_stream_failed" and err["type"] == "api_error"
    s = _span(mode)
    assert s["status"] == "error" and "upstream stream failed" in s["status_message"]
    assert s["output"] == "one two "


def test_token_counts_that_are_not_numbers_are_ignored(gw: Gateway) -> None:
    # before: 500 Internal Server Error (the cost compared "ten" with a number), no span
    with _client(gw, "odd-numbers", "odd-numbers") as client:
        r = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSGS)
    assert r.http_response.status_code == 200
    assert r.parse().choices[0].message.content == "fine"
    s = _span("odd-numbers")
    assert s["status"] == "ok" and s["output"] == "fine"
    assert "input_tokens" not in s and "cached_input_tokens" not in s
    assert "finish_reason" not in s and s["model"] == "gpt-4o-mini"


def test_choices_that_are_not_a_list_are_passed_on_and_recorded(gw: Gateway) -> None:
    r = httpx.post(gw.url + "/v1/chat/completions", timeout=10,
                   headers={"authorization": "Bearer odd-choices", "x-sightline-user": "oc"},
                   json={"model": "gpt-4o-mini", "messages": MSGS})  # fmt: skip
    assert r.status_code == 200 and r.json()["choices"] == 5
    s = _span("oc")
    assert s["status"] == "ok" and s["input_tokens"] == 3


def test_reasoning_tokens_are_recorded_within_the_output_tokens(gw: Gateway) -> None:
    # before: not read, the span had no reasoning_tokens
    with _client(gw, "reasoning", "rs") as client:
        client.chat.completions.create(model="o3-mini", messages=MSGS)
    s = _span("rs")
    assert (s["input_tokens"], s["output_tokens"], s["reasoning_tokens"]) == (10, 30, 28)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings"])
def test_a_200_that_is_not_json_is_passed_on_and_recorded_failed(gw: Gateway, path: str) -> None:
    # before: the span said "ok", an answer with no output and no tokens
    user = "nj" + path.rsplit("/", 1)[1]
    body = {"model": "gpt-4o-mini", "messages": MSGS, "input": "hi"}
    headers = {"authorization": "Bearer not-json", "x-sightline-user": user}
    r = httpx.post(gw.url + path, timeout=10, json=body, headers=headers)
    assert r.status_code == 200 and r.text == "<html><body>upstream busy</body></html>"
    s = _span(user)
    assert s["status"] == "error"
    assert s["status_message"] == "upstream answered 200 with a body that is not a JSON object"


def test_odd_stream_events_are_relayed_and_the_rest_recorded(gw: Gateway) -> None:
    r = httpx.post(gw.url + "/v1/chat/completions", timeout=10,
                   headers={"authorization": "Bearer odd-stream", "x-sightline-user": "os"},
                   json={"model": "gpt-4o-mini", "messages": MSGS, "stream": True})  # fmt: skip
    assert r.status_code == 200 and r.content.endswith(b"data: [DONE]\n\n")
    assert b'"choices": 7' in r.content  # relayed as sent
    s = _span("os")
    assert s["status"] == "ok" and s["output"] == "one two"


@pytest.mark.parametrize("opts", ["yes", [1], 3])
def test_stream_options_that_are_not_an_object_are_400(gw: Gateway, opts: object) -> None:
    # before: 500 Internal Server Error (the gateway adds include_usage to them)
    r = httpx.post(gw.url + "/v1/chat/completions", timeout=10,
                   json={"model": "gpt-4o-mini", "messages": MSGS, "stream": True,
                         "stream_options": opts})  # fmt: skip
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "stream_options"


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-yyyyyyyyyyyyyyyy-01",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
    ],
)
def test_a_traceparent_with_invalid_ids_is_ignored(gw: Gateway, traceparent: str) -> None:
    # before: its ids went into the span, which the server refuses (invalid_trace_id): the
    # call went unrecorded
    user = "tp-" + traceparent[3:8]
    r = httpx.post(gw.url + "/v1/chat/completions", timeout=10,
                   headers={"traceparent": traceparent, "x-sightline-user": user},
                   json={"model": "gpt-4o-mini", "messages": MSGS})  # fmt: skip
    assert r.status_code == 200
    s = _span(user)
    tid = s["trace_id"]
    assert len(tid) == 32 and set(tid) <= set("0123456789abcdef") and tid != "0" * 32
    assert tid == r.headers["x-sightline-trace-id"] and "parent_span_id" not in s


@pytest.mark.parametrize("upper", [False, True])
def test_a_valid_traceparent_is_kept(gw: Gateway, upper: bool) -> None:
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    tp = tp.upper() if upper else tp  # upper-case hex: read as the server reads ids
    r = httpx.post(gw.url + "/v1/chat/completions", timeout=10,
                   headers={"traceparent": tp, "x-sightline-user": f"tp-ok-{upper}"},
                   json={"model": "gpt-4o-mini", "messages": MSGS})  # fmt: skip
    assert r.status_code == 200
    s = _span(f"tp-ok-{upper}")
    assert s["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert s["parent_span_id"] == "b7ad6b7169203331"


def test_an_upstream_that_never_answers_is_a_504_after_the_upstream_timeout(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    up, col = _serve(_Upstream), _serve(_Collector)
    g = Gateway(f"http://127.0.0.1:{up.server_port}/v1",
                ["--server", f"http://127.0.0.1:{col.server_port}", "--api-key", "sl_x",
                 "--upstream-timeout", "1.5"])  # fmt: skip
    g.start(tmp_path_factory.mktemp("gw-timeout"))
    try:
        t0 = time.monotonic()
        r = httpx.post(g.url + "/v1/chat/completions", timeout=20,
                       headers={"authorization": "Bearer hang", "x-sightline-user": "hang"},
                       json={"model": "gpt-4o-mini", "messages": MSGS})  # fmt: skip
        took = time.monotonic() - t0
        assert r.status_code == 504, r.text
        assert r.json()["error"]["code"] == "upstream_timeout"
        assert 1.5 <= took < 10
        assert _span("hang")["status"] == "error"
    finally:
        g.stop()
        for s in (up, col):
            s.shutdown()
            s.server_close()


def test_a_stream_event_that_never_ends_is_not_held_whole() -> None:
    # the caller gets the bytes as they come; what the gateway keeps to record the call is
    # bounded (an upstream that never sent a blank line grew it without limit)
    from sightline.gateway._app import _MAX_SSE_EVENT_BYTES, _Call, _SseParser

    p = _SseParser(_Call(t0=0.0, start_epoch=0.0, body={}, tags={}, sl_key=""))
    mib = b"x" * (1 << 20)
    p.feed(b"data: " + mib, 0.0)
    for _ in range(40):
        p.feed(mib, 0.0)
        assert len(p.buf) <= _MAX_SSE_EVENT_BYTES + len(mib)
    p.feed(b"tail\n\n" + _chunk("after"), 1.0)  # the endless event ends: parsing resumes
    assert p.call.text == ["after"] and p.num_chunks == 1 and p.first is not None


def test_a_wrong_path_is_an_openai_style_json_error(gw: Gateway) -> None:
    """A base_url without /v1 got a plain-text "Not Found" that an OpenAI client shows as is."""
    r = httpx.post(gw.url + "/chat/completions", timeout=10, json={"model": "m"})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "not_found" and "/v1/chat/completions" in err["message"]
    with openai.OpenAI(base_url=gw.url, api_key="k", max_retries=0) as client:
        with pytest.raises(openai.NotFoundError, match="base_url ends in /v1"):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    r = httpx.get(gw.url + "/v1/chat/completions", timeout=10)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
