"""Where the `sightline serve` process spends its CPU while ingesting: per thread, µs per span.

    python bench/server_threads.py                # 3 runs x 2 clients x 40 batches x 512 spans
    python bench/server_threads.py --batches 10 --runs 1
    python bench/server_threads.py --env SIGHTLINE_MONITOR_INTERVAL_S=5

The load is `bench/ingest.py`'s (2 concurrent clients sending OTLP protobuf batches of 512 LLM
spans, each answered once committed). Before and after each run it reads the CPU time (user +
system) of every thread of the server process from ``/proc/PID/task/TID/stat``; the server is
started through ``_threadnames.py`` so each Python thread is named (its ``threading`` name and
target). The decode worker processes are other processes and not counted; the main thread is the
event loop; threads the file does not name are native (DuckDB's task scheduler). ``exited`` is
CPU of threads that ended during the run (the process total minus the live threads). Medians
over the runs, per thread label.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _server  # noqa: E402
import ingest as ingest_bench  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(stat: str) -> float:
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def threads(pid: int) -> dict[int, float]:
    """CPU seconds of each live thread of ``pid``."""
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = _cpu((task / "stat").read_text())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def names(pid: int, map_file: Path) -> dict[int, str]:
    """TID -> label: the event loop, a Python thread's name and target, or native."""
    out = {pid: "event loop (main thread)"}
    if map_file.exists():
        for line in map_file.read_text().splitlines():
            tid, name, target = line.split("\t")
            out[int(tid)] = f"{name} [{target}]"
    return out


def commits(url: str) -> float:
    """``sightline_store_commits`` of the server's /metrics."""
    return _server.metrics(url).get("sightline_store_commits_total", 0.0)


def measure(url: str, pid: int, map_file: Path, batches: int) -> tuple[dict[str, float], int]:
    """One run: CPU µs per span of each thread label (and requests per commit), spans sent."""
    n0 = commits(url)
    proc0 = ingest_bench._cpu_s(pid)
    t0 = threads(pid)
    ingest_bench.run_once(url, batches, pid, [])
    t1 = threads(pid)
    proc1 = ingest_bench._cpu_s(pid)
    n1 = commits(url)
    spans = ingest_bench.CLIENTS * batches * ingest_bench.BATCH
    label = names(pid, map_file)
    per: dict[str, float] = defaultdict(float)
    live = 0.0
    for tid, c1 in t1.items():
        d = c1 - t0.get(tid, 0.0)
        live += d
        per[label.get(tid, "native threads (DuckDB)")] += d
    per["exited threads"] = max(0.0, (proc1 - proc0) - live)
    per["TOTAL server process"] = proc1 - proc0
    out = {k: v / spans * 1e6 for k, v in per.items()}
    out["(requests per commit, not us)"] = spans / ingest_bench.BATCH / max(1.0, n1 - n0)
    return out, spans


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=40, help="per client, per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None, help="SIGHTLINE_INGEST_WORKERS")
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    args = ap.parse_args()
    env = dict(e.split("=", 1) for e in args.env)
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        map_file = Path(tmp) / "threads.tsv"
        env["BENCH_THREAD_MAP"] = str(map_file)
        proc, url = _server.start(
            Path(tmp) / "data", workers=args.workers, env=env, named_threads=True
        )
        try:
            ingest_bench.run_once(url, 2, proc.pid, [])  # warm-up: worker processes, caches
            waited = _server.wait_idle(proc.pid)
            for _ in range(args.runs):
                per, spans = measure(url, proc.pid, map_file, args.batches)
                runs.append(per)
        finally:
            _server.stop(proc)
    keys = sorted({k for r in runs for k in r}, key=lambda k: -statistics.median(
        r.get(k, 0.0) for r in runs))  # fmt: skip
    print(
        f"# server CPU per span by thread, us (user+system), {args.runs} runs x {spans} spans "
        f"(2 clients x {args.batches} x 512), after waiting {waited:.0f} s for an idle server; "
        f"load {os.getloadavg()[0]:.1f}"
    )
    for k in keys:
        vals = [r.get(k, 0.0) for r in runs]
        if max(vals) < 0.05:
            continue
        print(f"{statistics.median(vals):8.1f}  {k}  runs={[round(v, 1) for v in vals]}")


if __name__ == "__main__":
    main()
