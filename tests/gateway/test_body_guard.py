"""Stalled, slow and too many request bodies against a real `sightline gateway` (raw sockets).

The standalone gateway runs with the server's body settings, set small through the
environment (``SIGHTLINE_BODY_IDLE_TIMEOUT_S`` 2 s, ``SIGHTLINE_BODY_TIMEOUT_S`` 6 s,
``SIGHTLINE_MAX_BUFFERED_BODY_BYTES`` 5 MiB): a client that stops sending its body gets 408
and its connection closed, one that trickles gets 408 at the whole-body deadline, a body past
the cap 503 with Retry-After, and nothing of those requests reaches the provider. Mounted in
the server, the gateway is guarded by the server's BodyGuard alone (not a second one).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from _gw import Gateway
from _helpers import API_KEY, Server, free_port, read_answer
from sightline._bodyguard import BodyGuard
from sightline.cli import main
from sightline.config import Settings
from sightline.gateway import GatewayOptions, create_gateway_app
from sightline.testing import FakeProvider

IDLE_S = 2.0
TOTAL_S = 6.0
MAX_BODY = 4 << 20  # GatewayOptions.max_body_bytes
MAX_HELD = 5 << 20
ENV = {
    "SIGHTLINE_BODY_IDLE_TIMEOUT_S": str(IDLE_S),
    "SIGHTLINE_BODY_TIMEOUT_S": str(TOTAL_S),
    "SIGHTLINE_MAX_BUFFERED_BODY_BYTES": str(MAX_HELD),
}
HEAD = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(reply="ok") as f:
        yield f


@pytest.fixture(scope="module")
def gw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(fake.openai_base_url, ["--server", "", "--api-key", "sl_unused"], env=ENV)
    g.start(tmp_path_factory.mktemp("gw-body"))
    yield g
    g.stop()


def _open(
    port: int,
    path: str = "/v1/chat/completions",
    *,
    length: int | None = MAX_BODY,
    headers: str = "",
) -> socket.socket:
    """A connection that has sent a request's headers (Content-Length or chunked)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    s.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-caller\r\n{headers}"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n".encode()
    )
    return s


def _upstream_calls(fake: FakeProvider) -> int:
    return sum(1 for r in fake.requests if r.path.startswith("/v1/"))


def _chat_ok(gw: Gateway) -> None:
    msgs = [{"role": "user", "content": "hi"}]
    r = httpx.post(gw.url + "/v1/chat/completions", timeout=30,
                   json={"model": "gpt-4o-mini", "messages": msgs})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "ok"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings"])
def test_a_stalled_body_is_answered_408_and_its_connection_closed(
    gw: Gateway, fake: FakeProvider, path: str
) -> None:
    before = _upstream_calls(fake)
    s = _open(gw.port, path)
    try:
        s.sendall(HEAD + b"x" * (MAX_BODY // 2))  # half of the declared body, then nothing
        t0 = time.monotonic()
        status, headers, body, closed = read_answer(s)
        waited = time.monotonic() - t0
    finally:
        s.close()
    assert status == 408, body
    assert headers["content-type"].startswith("application/json")
    err = json.loads(body)["error"]
    assert err["code"] == "request_timeout" and err["type"] == "invalid_request_error"
    assert f"{IDLE_S:g} s" in err["message"]
    assert headers["connection"] == "close" and closed
    assert IDLE_S - 0.2 <= waited < IDLE_S + 5
    assert _upstream_calls(fake) == before
    _chat_ok(gw)


def test_a_stalled_chunked_body_is_answered_408(gw: Gateway) -> None:
    s = _open(gw.port, length=None)
    try:
        s.sendall(f"{len(HEAD):x}\r\n".encode() + HEAD + b"\r\n")  # one chunk, then nothing
        status, _headers, body, closed = read_answer(s)
    finally:
        s.close()
    assert status == 408 and json.loads(body)["error"]["code"] == "request_timeout"
    assert closed


def test_a_trickling_body_is_answered_408_at_the_whole_body_deadline(gw: Gateway) -> None:
    s = _open(gw.port)
    stop = threading.Event()

    def trickle() -> None:  # a byte every 0.5 s: never idle for IDLE_S, never done
        s.sendall(HEAD)
        while not stop.wait(0.5):
            try:
                s.sendall(b"x")
            except OSError:
                return

    t0 = time.monotonic()
    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        status, _headers, body, closed = read_answer(s)
        waited = time.monotonic() - t0
    finally:
        stop.set()
        sender.join()
        s.close()
    assert status == 408, body
    err = json.loads(body)["error"]
    assert err["code"] == "request_timeout" and f"within {TOTAL_S:g} s" in err["message"]
    assert TOTAL_S - 0.2 <= waited < TOTAL_S + 5
    assert closed


def test_bodies_past_the_buffer_cap_get_503_and_the_bytes_are_released(
    gw: Gateway, fake: FakeProvider
) -> None:
    # Two uploads hold 4.8 of the 5 MiB cap and stop sending.
    stalled = [_open(gw.port) for _ in range(2)]
    try:
        for s in stalled:
            s.sendall(HEAD + b"x" * (MAX_HELD * 48 // 100 - len(HEAD)))
        time.sleep(0.5)  # the gateway has read what they sent
        before = _upstream_calls(fake)
        # A complete request of 0.4 MiB does not fit in what is left: 503, retry later.
        probe = HEAD + b"y" * (400 << 10) + b'"}]}'
        p = _open(gw.port, length=len(probe))
        try:
            p.sendall(probe)
            status, headers, body, closed = read_answer(p)
        finally:
            p.close()
        assert status == 503, body
        err = json.loads(body)["error"]
        assert err["code"] == "overloaded" and err["type"] == "server_error"
        assert int(headers["retry-after"]) >= 1
        assert headers["connection"] == "close" and closed
        assert _upstream_calls(fake) == before
        # The stalled uploads end with 408 (not dropped for the cap)...
        for s in stalled:
            status, _h, body, closed = read_answer(s)
            assert status == 408 and closed, body
    finally:
        for s in stalled:
            s.close()
    # ...and their bytes are released: a request as large as the probe goes through.
    r = httpx.post(gw.url + "/v1/chat/completions", content=probe, timeout=30,
                   headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 200, r.text


def test_the_body_options_are_the_servers_settings() -> None:
    opts = GatewayOptions(upstream="http://127.0.0.1:9/v1")
    s = Settings()
    assert (opts.body_idle_timeout_s, opts.body_timeout_s, opts.max_buffered_body_bytes) == (
        s.body_idle_timeout_s,
        s.body_timeout_s,
        s.max_buffered_body_bytes,
    )
    # the flags: a cap below the largest body is refused at start, as by the server
    r = CliRunner().invoke(main, ["gateway", "--upstream", "http://127.0.0.1:9/v1",
                                  "--max-buffered-body-bytes", str(1 << 20)])  # fmt: skip
    assert r.exit_code == 2 and "--max-buffered-body-bytes" in r.output, r.output
    r = CliRunner().invoke(main, ["gateway", "--help"])
    for flag in ("--body-idle-timeout", "--body-timeout", "--max-buffered-body-bytes"):
        assert flag in r.output


class _Link:
    async def budget_check(self, sl_key: str, params: dict[str, str]) -> int:
        return 401

    async def send_spans(self, sl_key: str, spans: list[dict[str, object]]) -> bool:
        return False


def test_the_standalone_app_has_its_guard_and_the_mounted_one_none() -> None:
    opts = GatewayOptions(upstream="http://127.0.0.1:9/v1", server=None, body_idle_timeout_s=3,
                          body_timeout_s=9, max_buffered_body_bytes=MAX_HELD)  # fmt: skip
    guards = [m for m in create_gateway_app(opts).user_middleware if m.cls is BodyGuard]
    assert [g.kwargs for g in guards] == [
        {"idle_timeout_s": 3, "total_timeout_s": 9, "max_held_bytes": MAX_HELD}
    ]
    # mounted (a link to the server), the server's own guard covers it: no second one
    mounted = create_gateway_app(opts, link=_Link())
    assert not any(m.cls is BodyGuard for m in mounted.user_middleware)


def test_the_mounted_gateway_is_guarded_by_the_servers_settings(
    fake: FakeProvider, tmp_path: Path
) -> None:
    env = {**ENV, "SIGHTLINE_MAX_BODY_BYTES": str(MAX_BODY)}  # the server's cap is above
    srv = Server(data_dir=tmp_path / "data", port=free_port(), env=env,
                 args=["--gateway-upstream", fake.openai_base_url]).start()  # fmt: skip
    try:
        before = _upstream_calls(fake)
        s = _open(srv.port, "/gateway/v1/chat/completions",
                  headers=f"x-sightline-api-key: {API_KEY}\r\n")  # fmt: skip
        try:
            s.sendall(HEAD)
            t0 = time.monotonic()
            status, headers, body, closed = read_answer(s)
            waited = time.monotonic() - t0
        finally:
            s.close()
        assert status == 408, body
        err = json.loads(body)["error"]
        assert err["code"] == "request_timeout" and f"{IDLE_S:g} s" in err["message"]
        assert headers["connection"] == "close" and closed
        assert IDLE_S - 0.2 <= waited < IDLE_S + 5
        assert _upstream_calls(fake) == before
    finally:
        srv.stop()
