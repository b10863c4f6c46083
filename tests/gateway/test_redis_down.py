"""A gateway whose Redis goes away while it runs."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from _gw import Gateway
from _helpers import free_port
from sightline.testing import FakeProvider


def _ask(g: Gateway, q: str) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": q}]}
    headers = {"authorization": "Bearer sk-a", "x-sightline-api-key": "sl-k1"}
    return httpx.post(g.url + "/v1/chat/completions", json=body, timeout=30, headers=headers)


def _start_redis(port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    r = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            r.ping()
            return p
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            r.close()


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(ttft_s=0.005) as f:
        yield f


def test_calls_go_on_limited_by_the_instance_while_redis_is_down(
    fake: FakeProvider, tmp_path: Path
) -> None:
    """Redis stopped under a running gateway: its callers got 500 (a plain-text 'Internal
    Server Error', a traceback per call in the log). Now each instance decides from its own
    memory (rate window, budgets, cache, stats) until Redis answers again."""
    port = free_port()
    p = _start_redis(port, tmp_path)
    args = ["--redis", f"redis://127.0.0.1:{port}/0", "--rate-limit", "4/min", "--cache", "exact"]
    g = Gateway(fake.openai_base_url, args).start(tmp_path)
    try:
        r = _ask(g, "one")
        assert r.status_code == 200 and r.headers["x-sightline-cache"] == "miss"
        p.kill()
        p.wait()
        codes = [_ask(g, q).status_code for q in ("two", "three", "four", "five", "six")]
        assert codes == [200, 200, 200, 200, 429]  # this instance's window: 4 a minute
        assert httpx.get(g.url + "/gateway/stats", timeout=10).status_code == 200
        assert g.log_path is not None
        log = g.log_path.read_text()
        assert log.count("gateway_redis_unavailable") == 1 and "Traceback" not in log

        p = _start_redis(port, tmp_path)  # back (empty): the shared window again
        time.sleep(5.5)
        assert _ask(g, "seven").status_code == 200
        r7 = redis.Redis(port=port)
        try:
            assert [k.decode() for k in r7.keys("*rate*")] != []
        finally:
            r7.close()
        assert "gateway_redis_available" in g.log_path.read_text()
    finally:
        g.stop()
        if p.poll() is None:
            p.kill()
            p.wait()


def test_a_redis_that_hangs_does_not_hang_the_calls(fake: FakeProvider, tmp_path: Path) -> None:
    """A frozen Redis (SIGSTOP: connections open, no answer) held every call forever (no
    socket timeout); now a call gives up on it after 2 s and the next ones skip it for 5 s."""
    port = free_port()
    p = _start_redis(port, tmp_path)
    args = ["--redis", f"redis://127.0.0.1:{port}/0", "--rate-limit", "100/min"]
    g = Gateway(fake.openai_base_url, args).start(tmp_path)
    try:
        assert _ask(g, "one").status_code == 200
        p.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        assert _ask(g, "two").status_code == 200
        assert time.monotonic() - t0 < 10
        t1 = time.monotonic()
        assert _ask(g, "three").status_code == 200
        assert time.monotonic() - t1 < 1.5  # Redis is not asked again at once
    finally:
        g.stop()
        p.send_signal(signal.SIGCONT)
        p.kill()
        p.wait()
