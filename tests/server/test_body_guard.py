"""Stalled, slow and too many request bodies against a real `sightline serve` (raw sockets).

The server runs with short deadlines (``body_idle_timeout_s`` 2 s, ``body_timeout_s`` 6 s), a
1 MiB ``max_body_bytes`` and a 3 MiB ``max_buffered_body_bytes``. A client that stops sending
gets 408 and its connection closed; a client that trickles gets 408 at the whole-body
deadline; a body that would take the bytes held past the cap gets 503 with Retry-After; and
the bytes are released when those requests end, so ingest works again afterwards.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _helpers import API_KEY, Server, read_answer, start_server
from _payload import llm_request
from sightline.config import Settings

IDLE_S = 2.0
TOTAL_S = 6.0
MAX_BODY = 1 << 20
MAX_HELD = 3 << 20


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(
        tmp_path_factory.mktemp("body"),
        env={
            "SIGHTLINE_BODY_IDLE_TIMEOUT_S": str(IDLE_S),
            "SIGHTLINE_BODY_TIMEOUT_S": str(TOTAL_S),
            "SIGHTLINE_MAX_BODY_BYTES": str(MAX_BODY),
            "SIGHTLINE_MAX_BUFFERED_BODY_BYTES": str(MAX_HELD),
        },
    )
    yield s
    s.stop()


def _open(
    srv: Server,
    path: str = "/v1/traces",
    *,
    length: int | None = MAX_BODY,
    content_type: str = "application/x-protobuf",
) -> socket.socket:
    """A connection that has sent a request's headers (Content-Length or chunked)."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    s.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: {content_type}\r\n{framing}\r\n\r\n".encode()
    )
    return s


def _post_ok(srv: Server) -> None:
    req, _ = llm_request(5)
    with srv.client() as c:
        r = c.post(
            "/v1/traces",
            content=req.SerializeToString(),
            headers={"content-type": "application/x-protobuf"},
        )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/traces", "application/x-protobuf"),
        ("/v1/metrics", "application/x-protobuf"),
        ("/v1/logs", "application/json"),
        ("/api/v1/spans", "application/json"),
        ("/api/v1/feedback", "application/json"),  # a FastAPI body model, not read_body
    ],
)
def test_a_stalled_body_is_answered_408_and_its_connection_closed(
    srv: Server, path: str, content_type: str
) -> None:
    s = _open(srv, path, content_type=content_type)
    try:
        s.sendall(b"[" + b" " * (MAX_BODY // 2))  # half of the declared body, then nothing
        t0 = time.monotonic()
        status, headers, body, closed = read_answer(s)
        waited = time.monotonic() - t0
    finally:
        s.close()
    assert status == 408, body
    assert headers["content-type"].startswith("application/json")
    err = json.loads(body)["error"]
    assert err["code"] == "request_timeout"
    assert f"{IDLE_S:g} s" in err["message"]
    assert headers["connection"] == "close" and closed
    assert IDLE_S - 0.2 <= waited < IDLE_S + 5
    _post_ok(srv)


def test_a_stalled_chunked_body_is_answered_408(srv: Server) -> None:
    s = _open(srv, length=None)
    try:
        s.sendall(b"1000\r\n" + b"\0" * 0x1000 + b"\r\n")  # one chunk, then nothing
        status, _headers, body, closed = read_answer(s)
    finally:
        s.close()
    assert status == 408 and json.loads(body)["error"]["code"] == "request_timeout"
    assert closed


def test_a_trickling_body_is_answered_408_at_the_whole_body_deadline(srv: Server) -> None:
    s = _open(srv)
    stop = threading.Event()

    def trickle() -> None:  # a byte every 0.5 s: never idle for IDLE_S, never done
        while not stop.wait(0.5):
            try:
                s.sendall(b"\0")
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


def test_bodies_past_the_buffer_cap_get_503_and_the_bytes_are_released(srv: Server) -> None:
    # Three uploads hold all but a few bytes of the 3 MiB cap and stop sending.
    sent = MAX_BODY - 1
    stalled = [_open(srv) for _ in range(3)]
    try:
        for s in stalled:
            s.sendall(b"\0" * sent)
        time.sleep(0.5)  # the server has read what they sent
        # A small complete request does not fit in what is left: 503, retry later.
        req, _ = llm_request(3)
        probe = req.SerializeToString()
        p = _open(srv, length=len(probe))
        try:
            p.sendall(probe)
            status, headers, body, closed = read_answer(p)
        finally:
            p.close()
        assert status == 503, body
        assert json.loads(body)["error"]["code"] == "overloaded"
        assert int(headers["retry-after"]) >= 1
        assert headers["connection"] == "close" and closed
        # The stalled uploads end with 408 (the server did not drop them for the cap)...
        for s in stalled:
            status, _h, body, closed = read_answer(s)
            assert status == 408 and closed, body
    finally:
        for s in stalled:
            s.close()
    # ...and their bytes are released: the same request now goes through.
    _post_ok(srv)


def test_a_client_that_leaves_mid_body_releases_its_bytes(srv: Server) -> None:
    for _ in range(5):  # 5 x ~1 MiB > the 3 MiB cap if nothing were released
        s = _open(srv)
        s.sendall(b"\0" * (MAX_BODY - 1))
        time.sleep(0.2)
        s.close()
    time.sleep(0.5)
    _post_ok(srv)


def test_the_buffer_cap_cannot_be_below_the_largest_body(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_buffered_body_bytes"):
        Settings(max_body_bytes=32 << 20, max_buffered_body_bytes=16 << 20)
    s = Settings(max_body_bytes=32 << 20, max_buffered_body_bytes=32 << 20)
    assert s.body_idle_timeout_s == 30 and s.body_timeout_s == 120
