"""A collector that hangs, or answers 500/503, must not slow the application, grow its memory
without bound, or keep it from exiting."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from _helpers import API_KEY

# 1,000 instrumented calls against as many uninstrumented calls of the same function, in 40
# rounds of 25 + 25: within a round the two blocks run back to back (which goes first
# alternates), so both see the same moment of this shared, noisy 2-core machine. Each round
# gives one ratio, instrumented block time / uninstrumented block time; their median must be
# within 10%. A load spike hits a round or two and does not move the median, while an SDK that
# waits on the collector slows every round and fails (checked by making the export
# synchronous in a scratch copy: every round then waits on the collector).
#
# Each call spends 20 ms in the app's own work (waiting, as on a model; real LLM calls take
# 5-50x that). The SDK's cost is CPU, and CPU stretches with the machine's load: an
# instrumented call costs 40-50 us of CPU on a quiet machine (bench/sdk_overhead.py), but
# ~250 us of thread CPU and 0.6-0.85 ms of wall time at load average 10-12 on these 2 shared
# cores (measured 2026-11-23: median round ratio 1.12-1.17 with 5 ms of work and 1.06-1.08
# with 10 ms, every run). At 20 ms the 10% bound holds up to about twice that load; the noise
# is handled by the rounds.
ROUNDS, PER_ROUND = 40, 25
WORK_S = 0.020
APP = textwrap.dedent("""
    import json, sys, time
    import sightline

    work_s = float(sys.argv[6])

    def work(i):
        time.sleep(work_s)  # the app's own work: waiting on a model, a database...
        return i

    sightline.init(endpoint=sys.argv[1], api_key=sys.argv[2], service_name="never-hurt")

    @sightline.observe(kind="llm", name="call")
    def traced(i):
        sightline.current_span().set_llm(
            model="gpt-4o-mini", provider="openai",
            input_messages=[{"role": "user", "content": "question %d" % i}],
            output="answer", usage={"input_tokens": 12, "output_tokens": 3},
            finish_reason="stop")
        return work(i)

    rounds, per_round = int(sys.argv[4]), int(sys.argv[5])
    clock = time.perf_counter

    def block(fn, r):
        t = clock()
        for i in range(r * per_round, (r + 1) * per_round):
            fn(i)
        return clock() - t

    bare, inst = [], []
    for r in range(rounds):
        if r % 2:
            bare.append(block(work, r)); inst.append(block(traced, r))
        else:
            inst.append(block(traced, r)); bare.append(block(work, r))
    # a burst far beyond the export queue: dropped and counted, memory bounded
    for i in range(int(sys.argv[3])):
        with sightline.span("burst"):
            pass
    print(json.dumps({"bare": bare, "inst": inst, "dropped": sightline.dropped_spans(),
                      "done_at": time.time()}), flush=True)
    # exiting flushes what it can within a short timeout, then goes
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


@pytest.fixture(params=[500, 503])
def failing_collector(request: pytest.FixtureRequest) -> Iterator[str]:
    """Answers every export with 500 or 503."""
    status: int = request.param

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _run(
    endpoint: str, burst: int = 0, rounds: int = ROUNDS
) -> tuple[dict[str, object], float, str]:
    """Run the app; returns its figures, the seconds from its last line to its exit, stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            APP,
            endpoint,
            API_KEY,
            str(burst),
            str(rounds),
            str(PER_ROUND),
            str(WORK_S),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    exited_at = time.time()
    result = json.loads(proc.stdout)
    done_at = result["done_at"]
    assert isinstance(done_at, float)
    return result, exited_at - done_at, proc.stderr


def _assert_same_time(result: dict[str, object]) -> None:
    bare, inst = result["bare"], result["inst"]
    assert isinstance(bare, list) and isinstance(inst, list)
    assert len(bare) == len(inst) == ROUNDS  # ROUNDS * PER_ROUND = 1,000 instrumented calls
    ratios = [i / b for i, b in zip(inst, bare, strict=True)]
    # the instrumented calls take within 10% of the uninstrumented time
    assert statistics.median(ratios) <= 1.10, sorted(ratios)


def test_hanging_collector_does_not_slow_or_hold_the_app(hanging_collector: str) -> None:
    result, exit_s, _ = _run(hanging_collector)
    _assert_same_time(result)
    # exit flushes within the SDK's 3 s limit instead of waiting on the collector
    # (OpenTelemetry alone waits up to 30 s)
    assert exit_s < 6, exit_s


def test_failing_collector_does_not_slow_the_app(failing_collector: str) -> None:
    result, exit_s, _ = _run(failing_collector)
    _assert_same_time(result)
    assert exit_s < 6, exit_s


def test_queue_is_bounded_and_drops_are_counted_and_logged_once(hanging_collector: str) -> None:
    # the burst is what this test is about: two timed rounds (1 s) instead of forty (40 s)
    result, _, stderr = _run(hanging_collector, burst=20_000, rounds=2)
    dropped = result["dropped"]
    # 20,050 spans; the export queue holds 4,096, and the export thread takes a batch of 512
    # each time the hanging export times out (5 s; at most twice in this run): the rest is
    # dropped
    total = 20_000 + 2 * PER_ROUND
    assert isinstance(dropped, int) and total - 4_096 - 2 * 512 <= dropped <= total - 4_096
    assert stderr.count("sightline export queue full") == 1, stderr


BUDGET_APP = textwrap.dedent("""
    import json, sys, time
    import openai
    import sightline

    endpoint, key, base_url, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    # budget checks on (the default with an endpoint): the same server answers them
    sightline.init(endpoint=endpoint, api_key=key, service_name="never-hurt-budget")
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    took = []
    for i in range(n):
        t = time.perf_counter()
        with sightline.trace("req", user_id="user-%d" % i):  # a new user each call
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        took.append(time.perf_counter() - t)
    print(json.dumps({"took": took}), flush=True)
    sightline.shutdown(timeout_s=0.5)
""")


def test_hanging_server_costs_one_budget_check_timeout_not_one_per_new_user(
    hanging_collector: str,
) -> None:
    # the budget check's failure was remembered per (user, tenant, feature, model): each new
    # user paid the check's whole 2 s timeout again
    from sightline.testing import FakeProvider

    n = 8
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    with FakeProvider(reply="ok") as fake:
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                BUDGET_APP,
                hanging_collector,
                API_KEY,
                fake.openai_base_url,
                str(n),
            ],  # fmt: skip
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert len([r for r in fake.requests if r.path == "/v1/chat/completions"]) == n
    took = json.loads(proc.stdout.strip().splitlines()[-1])["took"]
    assert len(took) == n
    # the first call waits for the check's timeout (2 s); every later one goes ahead unchecked
    assert sum(1 for t in took if t > 1.0) <= 1, took
    assert sum(took) < 2.0 + 2.0, took
    assert proc.stderr.count("sightline budget check failed") == 1, proc.stderr
