"""A collector that hangs must not slow the application, nor keep it from exiting."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest

from _helpers import API_KEY, Server

APP = textwrap.dedent("""
    import sys, time
    import sightline

    def work(i):
        time.sleep(0.001)  # the app's own work, e.g. waiting on a model
        return i

    def run(fn):
        t = time.perf_counter()
        for i in range(1000):
            fn(i)
        return time.perf_counter() - t

    bare = run(work)
    sightline.init(endpoint=sys.argv[1], api_key=sys.argv[2], service_name="hang-test")
    traced = sightline.observe(kind="tool", name="work")(work)
    inst = run(traced)
    print(bare, inst, flush=True)
    # exiting flushes what it can within the exporter's timeout, then goes
""")


@pytest.fixture
def hanging_collector() -> Iterator[str]:
    """Accepts connections and reads requests, but never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                conns.append(c)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join(2)
    for c in conns:
        c.close()
    srv.close()


def _run(endpoint: str) -> tuple[float, float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", APP, endpoint, API_KEY],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    bare_s, inst_s = map(float, proc.stdout.split())
    return bare_s, inst_s, time.monotonic() - t0


def test_hanging_collector_does_not_block_the_app(hanging_collector: str, server: Server) -> None:
    _, live_s, _ = _run(server.url)
    _, hung_s, total_s = _run(hanging_collector)
    # the same instrumented calls take the same time whether the collector answers or hangs
    assert hung_s <= live_s * 1.10 + 0.05, (live_s, hung_s)
    # and exit flushes within the exporter's timeout instead of waiting on the collector
    assert total_s < 30, total_s
