"""Gateway overhead: what a request pays for going through `sightline gateway`.

A fake upstream (sightline.testing.FakeProvider, its own process, no artificial latency), a real
`sightline serve` receiving the spans and answering budget checks, and a real `sightline
gateway` in front of the upstream (uvicorn, one process). One client in this process sends the
same chat completion alternately straight to the upstream and through the gateway, round by
round, on kept-alive connections:

- ``nonstream_added_ms``: median over rounds of (through the gateway − direct), non-streaming;
- ``stream_first_chunk_added_ms``: the same for the time to the first streamed chunk (this
  includes the request's own trip through the gateway);
- ``handler_overhead_ms``: inside the gateway, the median time a non-streaming request spends
  in the handler outside its upstream call (parsing, checks, span, stats);
- ``chunk_forward_ms``: inside the gateway, the median time from a streamed chunk's arrival
  from the upstream to its hand-off to the client's connection (the gateway's own figure,
  ``GET /gateway/stats``).

Prints ``name=value`` lines. ``--quick`` runs fewer rounds (tests/test_bench.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import _server  # noqa: E402

FAKE = """
import sys, time
from sightline.testing import FakeProvider
f = FakeProvider(reply="Annual plans are refundable within thirty days of purchase.").start()
print(f.openai_base_url, flush=True)
while True:
    time.sleep(3600)
"""
BODY = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "Answer from the documents only."},
        {"role": "user", "content": "Can I get a refund on an annual plan?"},
    ],
}


def _wait(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _first_chunk_ms(c: httpx.Client, url: str, headers: dict[str, str]) -> float:
    t0 = time.perf_counter()
    first = 0.0
    with c.stream("POST", url, json={**BODY, "stream": True}, headers=headers) as r:
        for _ in r.iter_raw():
            if not first:
                first = time.perf_counter()
    return (first - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=None)
    args = ap.parse_args()
    rounds = args.rounds or (40 if args.quick else 600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    with tempfile.TemporaryDirectory() as tmp:
        fake = subprocess.Popen([sys.executable, "-c", FAKE], stdout=subprocess.PIPE, env=env)
        assert fake.stdout is not None
        upstream = fake.stdout.readline().decode().strip()
        # The server only receives the spans and answers budget checks: its evaluators would
        # take the CPU the client, gateway and upstream share on this machine (in production
        # the server runs elsewhere), so they are off here.
        server, server_url = _server.start(
            Path(tmp) / "data", workers=0, env={"SIGHTLINE_EVAL_ENABLED": "false"}
        )
        port = _server.free_port()
        gw = subprocess.Popen(
            [sys.executable, "-m", "sightline", "gateway", "--port", str(port), "--upstream",
             upstream, "--server", server_url, "--api-key", _server.KEY],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        gw_url = f"http://127.0.0.1:{port}"
        try:
            _wait(gw_url + "/healthz")
            headers = {"authorization": "Bearer sk-bench", "x-sightline-user": "bench"}
            direct_url = upstream + "/chat/completions"
            via_url = gw_url + "/v1/chat/completions"
            with httpx.Client(timeout=30) as c:
                for _ in range(20):  # warm-up: connections, the gateway's budget check cache
                    c.post(direct_url, json=BODY, headers=headers)
                    c.post(via_url, json=BODY, headers=headers)
                diffs, direct, via = [], [], []
                for _ in range(rounds):
                    t0 = time.perf_counter()
                    assert c.post(direct_url, json=BODY, headers=headers).status_code == 200
                    t1 = time.perf_counter()
                    assert c.post(via_url, json=BODY, headers=headers).status_code == 200
                    t2 = time.perf_counter()
                    direct.append((t1 - t0) * 1000)
                    via.append((t2 - t1) * 1000)
                    diffs.append(via[-1] - direct[-1])
                sdiffs = []
                for _ in range(max(10, rounds // 3)):
                    d = _first_chunk_ms(c, direct_url, headers)
                    v = _first_chunk_ms(c, via_url, headers)
                    sdiffs.append(v - d)
                stats = c.get(gw_url + "/gateway/stats").json()
            print(f"rounds={rounds}")
            print(f"direct_median_ms={statistics.median(direct):.3f}")
            print(f"gateway_median_ms={statistics.median(via):.3f}")
            print(f"nonstream_added_ms={statistics.median(diffs):.3f}")
            print(f"stream_first_chunk_added_ms={statistics.median(sdiffs):.3f}")
            print(f"handler_overhead_ms={stats['handler_overhead_ms_p50']:.3f}")
            print(f"chunk_forward_ms={stats['chunk_forward_ms_p50']:.4f}")
            print(f"gateway_requests={stats['requests']}")
        finally:
            gw.terminate()
            gw.wait(30)
            _server.stop(server)
            fake.kill()
            fake.wait(10)


if __name__ == "__main__":
    main()
