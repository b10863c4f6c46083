"""Soak: OTLP/HTTP protobuf at a steady rate into a real server on the DuckDB store.

    python bench/soak.py                    # 5,000 spans/s for 600 s (make bench)
    python bench/soak.py --duration 120     # the 2-minute form in docs/benchmarks.md
    python bench/soak.py --quick            # 1,000 spans/s for 12 s (make test)

Clients send pre-encoded ExportTraceServiceRequests of ``--batch`` LLM spans (~20 GenAI
attributes each) on a fixed schedule (open loop: a slow answer does not lower the offered rate
until every client is busy). Each request gets fresh trace and span ids, patched into a
pre-serialised template at known byte offsets, so the client costs a copy per request and the
server stores every span (no idempotent no-ops); start and end times move with the clock (a span
starts ~5 s before it is sent) unless ``--fixed-times``.

Reports:
- errors: answers other than 200 and transport errors (none is expected), and the lag
  sampler's reads answered other than 200;
- the achieved rate: acknowledged spans / seconds from the first send to the last answer;
- ingestion lag: for one request in ``--sample-every`` seconds, the time from its send until
  its first span is returned by ``GET /api/v1/spans?trace_id=...`` (p50, p95, max);
- server RSS (the server process, and with its decode/evaluation children; then each kind of
  child alone) before the load, at 10 %, 50 % and 100 % of the run, the series every 10 %, and
  a verdict: ``soak_rss_flat=yes`` when the median RSS of the 80/90/100 % samples is within
  10 % above the median of the 40/50/60 % ones, for the server and for the whole tree. The
  server's DuckDB memory limit (``SIGHTLINE_DUCKDB_MEMORY_LIMIT``, default 128MB; set another
  with ``--env``) is what bounds it.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _server  # noqa: E402 - bench helpers by path
from _payload import llm_request  # noqa: E402

MIB = 2**20


class Templates:
    """Serialised requests whose trace and span ids are rewritten for every send."""

    def __init__(self, num: int, spans: int, *, fixed_times: bool = False) -> None:
        rng = random.Random(0)
        self.fixed_times = fixed_times
        self.base_ns = time.time_ns()
        self.bodies: list[bytes] = []
        self.offsets: list[list[tuple[int, int]]] = []  # (trace id offset, span id offset)
        self.times: list[list[tuple[int, int]]] = []  # (offset, time ns): starts and ends
        for _ in range(num):
            req, _ids = llm_request(spans, rng=rng)
            spans_ = req.resource_spans[0].scope_spans[0].spans
            for j, s in enumerate(spans_):  # distinct times, so that each is found once
                s.start_time_unix_nano = self.base_ns - 5 * 10**9 + j * 997 + rng.randrange(997)
                s.end_time_unix_nano = s.start_time_unix_nano + rng.randrange(3 * 10**8, 4 * 10**9)
            body = req.SerializeToString()
            offs, times = [], []
            for s in spans_:
                # ids are random bytes: each occurs once in the body (checked)
                t, sid = body.index(s.trace_id), body.index(s.span_id)
                assert body.count(s.trace_id) == 1 and body.count(s.span_id) == 1
                offs.append((t, sid))
                # the start and end times: fixed64 fields, field number + 8 bytes (checked)
                for ns in (s.start_time_unix_nano, s.end_time_unix_nano):
                    raw = struct.pack("<Q", ns)
                    assert body.count(raw) == 1
                    times.append((body.index(raw), ns))
            self.bodies.append(body)
            self.offsets.append(offs)
            self.times.append(times)

    def fresh(self, i: int) -> tuple[bytes, str]:
        """Template ``i`` with new ids (and times moved to now); its first span's trace id.

        Start and end times move with the clock, as an exporter's spans do (a span is sent
        seconds after it ends), unless ``--fixed-times``: every send then has the template's
        times from the start of the run.
        """
        k = i % len(self.bodies)
        body = bytearray(self.bodies[k])
        offs = self.offsets[k]
        ids = os.urandom(24 * len(offs))
        for j, (t, s) in enumerate(offs):
            body[t : t + 16] = ids[24 * j : 24 * j + 16]
            body[s : s + 8] = ids[24 * j + 16 : 24 * j + 24]
        if not self.fixed_times:
            shift = time.time_ns() - self.base_ns
            for off, ns in self.times[k]:
                body[off : off + 8] = struct.pack("<Q", ns + shift)
        return bytes(body), ids[:16].hex()


def _proc_rss(p: int) -> int:
    try:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _proc_cpu_s(p: int) -> float:
    """CPU seconds (user + system) of process ``p`` alone, not its children."""
    with open(f"/proc/{p}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_nice(p: int) -> int:
    try:
        return int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[16])
    except (OSError, IndexError, ValueError):
        return 0


def rss_by_process(pid: int) -> dict[str, tuple[int, int]]:
    """RSS bytes and process count of ``pid``'s tree, by role (Linux /proc).

    Roles: ``server`` (``pid``), ``evaluator`` (the niced evaluation process), ``decode``
    (ingest decode workers), ``other`` (the forkserver and the resource tracker, which start
    the others).
    """
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out = {"server": (_proc_rss(pid), 1)}
    base_nice = _proc_nice(pid)
    todo = [(c, 1) for c in children.get(pid, [])]
    while todo:  # workers hang under a forkserver, itself a child of the server
        p, depth = todo.pop()
        kids = children.get(p, [])
        if depth == 1:  # the forkserver and the resource tracker
            role = "other"
        elif _proc_nice(p) > base_nice:  # the evaluator process nices itself
            role = "evaluator"
        else:
            role = "decode"
        size, n = out.get(role, (0, 0))
        out[role] = (size + _proc_rss(p), n + 1)
        todo += [(c, depth + 1) for c in kids]
    return out


def rss_bytes(pid: int) -> tuple[int, int]:
    """RSS of ``pid``, and of ``pid`` with all its descendants."""
    by = rss_by_process(pid)
    return by["server"][0], sum(v[0] for v in by.values())


FLAT_GROWTH = 0.10
"""The flat rule: the median RSS of the last three samples (80, 90, 100 % of the run) within
10 % above the median of the mid-run ones (40, 50, 60 %), for the server and the whole tree.
Medians of three, because one sample can land on a checkpoint (DuckDB's rows appended since
the last one: +100-150 MiB for a moment)."""
MID_MARKS = ("40%", "50%", "60%")
LATE_MARKS = ("80%", "90%", "end")


def warm_up(url: str, tpl: Templates) -> None:
    """A few requests first: decode workers and caches start before the clock does."""
    headers = {"content-type": "application/x-protobuf", "authorization": f"Bearer {_server.KEY}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
        for i in range(4):
            r = c.post("/v1/traces", content=tpl.fresh(-1 - i)[0])
            r.raise_for_status()


def eval_state(url: str) -> tuple[float, float] | None:
    """(evaluation lag in seconds, spans shed so far) from the server's /metrics, if exposed."""
    try:
        m = _server.metrics(url)
    except httpx.HTTPError:
        return None
    if "sightline_eval_lag_seconds" not in m:
        return None
    return m["sightline_eval_lag_seconds"], m.get("sightline_eval_shed_spans_total", 0.0)


def run(url: str, pid: int, args: argparse.Namespace, tpl: Templates) -> dict[str, object]:
    interval_s = args.batch * args.clients / args.rate  # per client
    statuses: Counter[str] = Counter()
    acked = [0]
    lock = threading.Lock()
    samples: queue.Queue[tuple[float, str] | None] = queue.Queue()
    lags_ms: list[float] = []
    read_statuses: Counter[str] = Counter()  # the lag sampler's answers other than 200
    ack_ms: list[float] = []
    t_start = time.monotonic()
    t_end = t_start + args.duration
    last_answer = [t_start]
    next_sample = [t_start]
    counter = [0]

    def client(n: int) -> None:
        headers = {
            "content-type": "application/x-protobuf",
            "authorization": f"Bearer {_server.KEY}",
        }
        due = t_start + interval_s * n / args.clients  # spread the clients over one interval
        with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
            while True:
                now = time.monotonic()
                if due >= t_end or now >= t_end:  # behind schedule: the run still ends on time
                    return
                if due > now:
                    time.sleep(due - now)
                due += interval_s
                with lock:
                    counter[0] += 1
                    i = counter[0]
                body, trace_id = tpl.fresh(i)
                sent = time.monotonic()
                try:
                    r = c.post("/v1/traces", content=body)
                    status = str(r.status_code)
                except httpx.HTTPError as e:
                    status = type(e).__name__
                answered = time.monotonic()
                with lock:
                    statuses[status] += 1
                    last_answer[0] = max(last_answer[0], answered)
                    if status == "200":
                        acked[0] += args.batch
                        ack_ms.append((answered - sent) * 1000)
                        if sent >= next_sample[0]:
                            next_sample[0] = sent + args.sample_every
                            samples.put((sent, trace_id))

    def sampler() -> None:
        with httpx.Client(
            base_url=url, headers={"authorization": f"Bearer {_server.KEY}"}, timeout=60
        ) as c:
            while (item := samples.get()) is not None:
                sent, trace_id = item
                while True:
                    try:
                        r = c.get("/api/v1/spans", params={"trace_id": trace_id, "limit": 1})
                    except httpx.TransportError:
                        # the server closed an idle keep-alive connection as this request
                        # went out (its 5 s timeout): ask again on a new one
                        time.sleep(0.05)
                        continue
                    if r.status_code != 200:
                        read_statuses[str(r.status_code)] += 1
                    elif r.json()["data"]:
                        lags_ms.append((time.monotonic() - sent) * 1000)
                        break
                    time.sleep(0.005)

    rss: dict[str, dict[str, tuple[int, int]]] = {"start": rss_by_process(pid)}
    cpu0 = _proc_cpu_s(pid)
    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    sampling = threading.Thread(target=sampler)
    sampling.start()
    for t in threads:
        t.start()
    evals: list[tuple[float, float]] = []
    for k in range(1, 11):
        mark = "end" if k == 10 else f"{10 * k}%"
        time.sleep(max(0.0, t_start + args.duration * k / 10 - time.monotonic()))
        rss[mark] = rss_by_process(pid)
        state = eval_state(url)
        if state is not None:
            evals.append(state)
        if mark != "end":
            mib = sum(v[0] for v in rss[mark].values()) / MIB
            ev = f" eval_lag={state[0]:.0f}s shed={state[1]:.0f}" if state else ""
            print(
                f"  t={time.monotonic() - t_start:.0f}s acked={acked[0]}"
                f" server_rss={rss[mark]['server'][0] / MIB:.0f} MiB tree_rss={mib:.0f} MiB{ev}",
                flush=True,
            )
    for t in threads:
        t.join()
    samples.put(None)
    sampling.join()
    elapsed = last_answer[0] - t_start
    cpu_s = _proc_cpu_s(pid) - cpu0
    lags = sorted(lags_ms)
    acks = sorted(ack_ms)

    def pct(xs: list[float], q: float) -> float:
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    return {
        "statuses": dict(statuses),
        "errors": sum(n for s, n in statuses.items() if s != "200"),
        "read_errors": dict(read_statuses),
        "acked": acked[0],
        "rate": acked[0] / elapsed,
        "cpu_us_per_span": cpu_s * 1e6 / max(acked[0], 1),
        "elapsed": elapsed,
        "lag": (
            statistics.median(lags) if lags else float("nan"),
            pct(lags, 0.95),
            max(lags, default=float("nan")),
        ),
        "num_lag_samples": len(lags),
        "ack": (
            statistics.median(acks) if acks else float("nan"),
            pct(acks, 0.95),
            pct(acks, 0.99),
        ),
        "rss": rss,
        "evals": evals,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000 spans/s for 12 s (make test)")
    ap.add_argument("--rate", type=float, default=5000.0, help="target spans/s [5000]")
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of load [600]")
    ap.add_argument(
        "--batch", type=int, default=512, help="spans per request [512, the OTel SDK's batch]"
    )
    ap.add_argument(
        "--fixed-times",
        action="store_true",
        help="send every span with the template's start time from the start of the run"
        " (the behaviour before the dedupe branch) instead of moving it with the clock",
    )
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients [16]")
    ap.add_argument("--sample-every", type=float, default=2.0, help="lag sample period, s [2]")
    ap.add_argument("--workers", type=int, default=None, help="SIGHTLINE_INGEST_WORKERS")
    ap.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE for the server (repeatable)"
    )
    args = ap.parse_args()
    if args.quick:
        args.rate, args.duration, args.sample_every = 1000.0, 12.0, 1.0
    tpl = Templates(8, args.batch, fixed_times=args.fixed_times)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(e.split("=", 1) for e in args.env)
        proc, url = _server.start(Path(tmp), workers=args.workers, env=env)
        try:
            warm_up(url, tpl)
            res = run(url, proc.pid, args, tpl)
        finally:
            _server.stop(proc)
    rss = res["rss"]
    assert isinstance(rss, dict)
    lag, ack = res["lag"], res["ack"]
    assert isinstance(lag, tuple) and isinstance(ack, tuple)
    print(
        f"soak: target {args.rate:.0f} spans/s for {args.duration:.0f} s, {args.clients} clients,"
        f" {args.batch}-span batches"
    )
    print(f"soak_errors={res['errors']} statuses={res['statuses']}")
    print(
        f"soak_read_errors={res['read_errors'] or 0} (lag sampler's reads answered other than 200)"
    )
    print(
        f"soak_spans_per_s={res['rate']:.0f} acked_spans={res['acked']} over {res['elapsed']:.1f} s"
    )
    print(f"soak_server_cpu_us_per_span={res['cpu_us_per_span']:.1f} (the server process alone)")
    print(
        f"soak_lag_ms_p50={lag[0]:.0f} p95={lag[1]:.0f} max={lag[2]:.0f}"
        f" (samples={res['num_lag_samples']})"
    )
    print(f"soak_ack_ms_p50={ack[0]:.0f} p95={ack[1]:.0f} p99={ack[2]:.0f}")
    evals = res["evals"]
    assert isinstance(evals, list)
    if evals:
        print(
            "soak_eval_lag_s_series "
            + " ".join(f"{lag:.0f}" for lag, _ in evals)
            + f" (max {max(lag for lag, _ in evals):.0f}) soak_eval_shed_spans={evals[-1][1]:.0f}"
        )
    marks = ("start", "10%", "50%", "end")
    server = {m: rss[m]["server"][0] for m in rss}
    tree = {m: sum(v[0] for v in rss[m].values()) for m in rss}
    print(
        "soak_rss_mib "
        + " ".join(f"{m}={server[m] / MIB:.0f}" for m in marks)
        + " | with children "
        + " ".join(f"{m}={tree[m] / MIB:.0f}" for m in marks)
    )
    roles = sorted({r for by in rss.values() for r in by if r != "server"})
    for role in roles:
        n = max(rss[m].get(role, (0, 0))[1] for m in rss)
        print(
            f"soak_rss_mib_{role} processes={n} "
            + " ".join(f"{m}={rss[m].get(role, (0, 0))[0] / MIB:.0f}" for m in marks)
        )
    print(
        "soak_rss_series_mib server "
        + " ".join(f"{server[m] / MIB:.0f}" for m in rss)
        + " | tree "
        + " ".join(f"{tree[m] / MIB:.0f}" for m in rss)
        + "  (start, then every 10 % of the run)"
    )

    def growth(xs: dict[str, int]) -> float:
        late = statistics.median(xs[m] for m in LATE_MARKS)
        return late / statistics.median(xs[m] for m in MID_MARKS) - 1

    grow_server, grow_tree = growth(server), growth(tree)
    flat = grow_server < FLAT_GROWTH and grow_tree < FLAT_GROWTH
    print(
        f"soak_rss_flat={'yes' if flat else 'no'}"
        f" (rule: median of the 80/90/100 % samples within {FLAT_GROWTH:.0%} above the median"
        f" of the 40/50/60 % ones; server {grow_server:+.1%},"
        f" with children {grow_tree:+.1%}; a run too short to fill DuckDB's memory limit can"
        " read flat while its cache still grows)"
    )


if __name__ == "__main__":
    main()
