"""Ingest throughput: 2 concurrent clients send OTLP protobuf batches of 512 LLM spans.

    python bench/ingest.py            # 2 clients x 40 batches x 512 spans, 3 runs (make bench)
    python bench/ingest.py --quick    # 2 clients x 4 batches, 1 run (make test)

Reports spans/s from the first request until every span is returned by the API (the metrics
API counts them), on a real server. For a baseline measured in the same process, it also
times protobuf parsing alone of the same batches: the ratio is steadier than the absolute
figure on a noisy machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)

import _server  # noqa: E402
from _payload import llm_request  # noqa: E402

BATCH = 512
CLIENTS = 2


def _client(url: str, bodies: list[bytes], errors: list[str]) -> None:
    with httpx.Client(
        base_url=url,
        timeout=120,
        headers={"x-api-key": _server.KEY, "content-type": "application/x-protobuf"},
    ) as c:
        for body in bodies:
            while True:
                r = c.post("/v1/traces", content=body)
                if r.status_code == 503:  # back-pressure: retry as OTLP exporters do
                    time.sleep(float(r.headers.get("retry-after", "1")))
                    continue
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                break


def _count(url: str) -> int:
    r = httpx.get(
        f"{url}/api/v1/metrics",
        params={"name": "requests", "from": 0},
        headers={"x-api-key": _server.KEY},
        timeout=60,
    )
    series = r.json()["series"]
    return int(series[0]["points"][0]["value"]) if series else 0


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of the server process itself, not of its children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(url: str, batches_per_client: int, pid: int, cpu: list[float]) -> float:
    bodies = [
        [llm_request(BATCH)[0].SerializeToString() for _ in range(batches_per_client)]
        for _ in range(CLIENTS)
    ]
    total = CLIENTS * batches_per_client * BATCH
    before = _count(url)
    cpu0 = _cpu_s(pid)
    errors: list[str] = []
    threads = [threading.Thread(target=_client, args=(url, b, errors)) for b in bodies]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    while _count(url) < before + total:
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    cpu.append((_cpu_s(pid) - cpu0) / total * 1e6)
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests: {errors[0]}")
    return total / elapsed


def parse_baseline(n: int = 20) -> float:
    bodies = [llm_request(BATCH)[0].SerializeToString() for _ in range(n)]
    t0 = time.perf_counter()
    for b in bodies:
        ExportTraceServiceRequest.FromString(b)
    return n * BATCH / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workers", type=int, default=None, help="SIGHTLINE_INGEST_WORKERS")
    ap.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE for the server (repeatable)"
    )
    args = ap.parse_args()
    batches, runs = (4, 1) if args.quick else (40, 3)
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in (e.split("=", 1) for e in args.env)}
        proc, url = _server.start(Path(tmp), workers=args.workers, env=env)
        try:
            cpu: list[float] = []
            run_once(url, 2, proc.pid, [])  # warm-up: worker processes, price cache
            rates = [run_once(url, batches, proc.pid, cpu) for _ in range(runs)]
        finally:
            _server.stop(proc)
    med = statistics.median(rates)
    base = parse_baseline()
    print(f"runs={[round(r) for r in rates]}")
    print(
        f"ingest_spans_per_s_median={med:.0f} (target >= 20000; {CLIENTS} clients, "
        f"{batches} x {BATCH}-span batches each)"
    )
    # CPU of the server process alone (its GIL): steadier than wall time on a loaded machine
    print(
        f"server_cpu_us_per_span_median={statistics.median(cpu):.1f} runs={[round(c) for c in cpu]}"
    )
    print(f"baseline_protobuf_parse_spans_per_s={base:.0f} ratio={med / base:.3f}")


if __name__ == "__main__":
    main()
