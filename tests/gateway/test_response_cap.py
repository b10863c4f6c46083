"""An upstream answer larger than ``--max-response-bytes``: a 502 (or an error event), not memory.

Against real `sightline gateway` processes, a real server receiving the spans, the `openai`
client, the fake provider (long replies past a small cap) and an upstream of raw sockets that
sends a body far larger than the cap (or one gzip bomb), counting what it got to send before
the gateway hung up.
"""

from __future__ import annotations

import gzip
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from _gw import Gateway
from _helpers import API_KEY, Server
from sightline.testing import FakeProvider

LONG = " ".join(f"word{i}" for i in range(3000))  # ~26 kB of content, 3000 stream chunks


def _reply(body: dict[str, Any]) -> str:
    last = body["messages"][-1]["content"]
    return LONG if "long" in last else "short answer"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(reply=_reply) as f:
        yield f


@pytest.fixture(scope="module")
def gw(
    fake: FakeProvider, server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    g = Gateway(fake.openai_base_url, ["--server", server.url, "--api-key", API_KEY,
                                       "--max-response-bytes", "8192"])  # fmt: skip
    g.start(tmp_path_factory.mktemp("gw"))
    yield g
    g.stop()


def _client(url: str, user: str, key: str = "sk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0,
                         default_headers={"x-sightline-user": user})  # fmt: skip


def _span(server: Server, user: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    with server.client() as c:
        while True:
            data: list[dict[str, Any]] = c.get("/api/v1/spans", params={"user_id": user}).json()[
                "data"
            ]
            if data or time.monotonic() > deadline:
                assert len(data) == 1, data
                return data[0]
            time.sleep(0.1)


def _msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


class TestWithTheFakeProvider:
    def test_an_answer_within_the_cap_passes(self, gw: Gateway) -> None:
        chat = _client(gw.url, "u-small").chat.completions.create(
            model="gpt-4o-mini", messages=_msgs("short please")
        )
        assert chat.choices[0].message.content == "short answer"

    def test_an_answer_past_the_cap_is_a_502_and_an_error_span(
        self, gw: Gateway, server: Server
    ) -> None:
        user = "u-" + secrets.token_hex(4)
        with pytest.raises(openai.InternalServerError) as ei:
            _client(gw.url, user).chat.completions.create(
                model="gpt-4o-mini", messages=_msgs("a long one")
            )
        assert ei.value.status_code == 502
        body: Any = ei.value.body
        assert body["code"] == "upstream_response_too_large"
        assert body["type"] == "api_error" and "8192 bytes" in body["message"]
        s = _span(server, user)
        assert s["status"] == "error"
        assert s["status_message"].startswith("upstream response too large")
        assert s["attributes"]["sightline.gateway.upstream"].startswith("http://127.0.0.1")

    def test_a_stream_past_the_cap_ends_with_an_error_event(
        self, gw: Gateway, server: Server
    ) -> None:
        user = "u-" + secrets.token_hex(4)
        stream = _client(gw.url, user).chat.completions.create(
            model="gpt-4o-mini", messages=_msgs("a long one"), stream=True
        )
        got = []
        with pytest.raises(openai.APIError) as ei:
            for ch in stream:
                got.append(ch.choices[0].delta.content or "" if ch.choices else "")
        assert "max_response_bytes" in ei.value.message
        text = "".join(got)
        assert text and LONG.startswith(text) and len(text) < len(LONG)
        s = _span(server, user)
        assert s["status"] == "error" and "too large" in s["status_message"]
        assert len(s["output"]) < 8192


class _Hostile:
    """An upstream that answers every request with a body of ``total`` bytes (or a gzip bomb).

    ``sent`` is how much of the body it got to send before the gateway closed the connection
    (or ``total``: it sent everything).
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent: list[int] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += conn.recv(65536)
            stream = json.loads(body).get("stream") is True
            if b"Bearer gzip-bomb" in head:
                bomb = gzip.compress(b"{" + b" " * (64 << 20) + b"}")  # 64 MiB in ~64 kB
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-encoding: gzip\r\ncontent-length: %d\r\n\r\n%s"
                             % (len(bomb), bomb))  # fmt: skip
                return
            if stream:
                ctype, piece = b"text/event-stream", _event(16 << 10)
            else:
                ctype, piece = b"application/json", b" " * (64 << 10)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n"
                         % (ctype, self.total))  # fmt: skip
            sent = 0
            try:
                while sent + len(piece) <= self.total:
                    conn.sendall(piece)
                    sent += len(piece)
            except OSError:  # the gateway hung up
                pass
            self.sent.append(sent)

    def close(self) -> None:
        self.sock.close()


def _event(size: int) -> bytes:
    text = "x" * (size - 200)
    c = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
         "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}  # fmt: skip
    return b"data: " + json.dumps(c).encode() + b"\n\n"


TOTAL = 128 << 20
"""What the hostile upstream would send: 128 MiB, 128 times the gateway's cap."""


@pytest.fixture(scope="module")
def hostile() -> Iterator[_Hostile]:
    h = _Hostile(TOTAL)
    yield h
    h.close()


@pytest.fixture(scope="module", params=["fast", "httpx"])
def gw_hostile(
    hostile: _Hostile,
    server: Server,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Gateway]:
    """The gateway's own HTTP client, or httpx (which it uses when a proxy is configured)."""
    env = {"SIGHTLINE_GATEWAY_MAX_RESPONSE_BYTES": str(1 << 20)}
    if request.param == "httpx":  # a proxy named, and bypassed for the loopback upstream
        env |= {"HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1"}
    g = Gateway(f"http://127.0.0.1:{hostile.port}/v1",
                ["--server", server.url, "--api-key", API_KEY, "--upstream-timeout", "20"],
                env=env)  # fmt: skip
    g.start(tmp_path_factory.mktemp("gw-hostile"))
    yield g
    g.stop()


def _sent_after(hostile: _Hostile, n: int) -> int:
    deadline = time.monotonic() + 20
    while len(hostile.sent) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return hostile.sent[n - 1]


class TestAHostileUpstream:
    def test_a_huge_body_is_cut_at_the_cap_and_its_connection_closed(
        self, gw_hostile: Gateway, hostile: _Hostile, server: Server
    ) -> None:
        user = "u-" + secrets.token_hex(4)
        n = len(hostile.sent) + 1
        t0 = time.monotonic()
        with pytest.raises(openai.InternalServerError) as ei:
            _client(gw_hostile.url, user).chat.completions.create(
                model="gpt-4o-mini", messages=_msgs("hi")
            )
        assert ei.value.status_code == 502
        body: Any = ei.value.body
        assert body["code"] == "upstream_response_too_large"
        assert time.monotonic() - t0 < 10
        # the cap (1 MiB, from the environment) plus what socket buffers held: not the 128 MiB
        assert _sent_after(hostile, n) < 32 << 20
        s = _span(server, user)
        assert s["status"] == "error" and "too large" in s["status_message"]
        assert gw_hostile.stats()["upstream_errors"] >= 1

    def test_a_gzip_bomb_is_cut_at_the_cap(self, gw_hostile: Gateway) -> None:
        r = httpx.post(gw_hostile.url + "/v1/chat/completions", timeout=30,
                       headers={"authorization": "Bearer gzip-bomb"},
                       json={"model": "gpt-4o-mini", "messages": _msgs("hi")})  # fmt: skip
        assert r.status_code == 502, r.status_code
        assert r.json()["error"]["code"] == "upstream_response_too_large"

    def test_an_endless_stream_is_cut_at_the_cap_and_its_connection_closed(
        self, gw_hostile: Gateway, hostile: _Hostile, server: Server
    ) -> None:
        user = "u-" + secrets.token_hex(4)
        n = len(hostile.sent) + 1
        stream = _client(gw_hostile.url, user).chat.completions.create(
            model="gpt-4o-mini", messages=_msgs("hi"), stream=True
        )
        with pytest.raises(openai.APIError) as ei:
            for _ in stream:
                pass
        assert "max_response_bytes" in ei.value.message
        assert _sent_after(hostile, n) < 32 << 20
        s = _span(server, user)
        assert s["status"] == "error" and "too large" in s["status_message"]
