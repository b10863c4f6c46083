"""DuckDB against ClickHouse (chdb, in-process) on the same spans: ingest rate and read latency.

    python bench/store_compare.py            # 500,000 spans in 5,000-span batches (make bench)
    python bench/store_compare.py --quick    # 20,000 spans (make test)

The same synthetic LLM spans (7 days, 5 models, 4 spans a trace) go into each store through
``insert_batches`` in ingest-sized batches (what the group-commit writer hands the store), so the
ingest figure includes each backend's duplicate check. Then the same reads run on each: the
first page of spans, a filtered page, a trace, the span count, and p95 latency by model by hour
over the 7 days when the store has ``query_metric`` (skipped otherwise). Each read runs
``--runs`` times; the median is reported. Last, the spans' size on disk per span (DuckDB: the
file; ClickHouse: the active parts of ``spans``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sightline.store import open_store
from sightline.store._arrow import SPAN_SCHEMA
from sightline.store.base import METRICS, MetricQuery, SpanQuery

PROJECT = "bench"
END = datetime(2026, 1, 8, tzinfo=UTC)
START = END - timedelta(days=7)
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "claude-3-5-haiku", "gemini-2.5-pro"]


def make_batches(n: int, batch_size: int, seed: int = 7) -> list[pa.Table]:
    """``n`` spans as Arrow tables of ``batch_size`` rows, in start-time order."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    step_us = int((END - START).total_seconds() * 1e6) // n
    start_us = int(START.timestamp() * 1e6) + i * step_us
    duration_ms = 200 + rng.random(n) * 3000
    inp = (200 + rng.random(n) * 2000).astype(np.int64)
    out = (20 + rng.random(n) * 500).astype(np.int64)
    ttft = 50 + rng.random(n) * 500
    model = [MODELS[k % 5] for k in range(n)]
    trace = [f"{k // 4:032x}" for k in range(n)]
    span = [f"{k + 1:016x}" for k in range(n)]
    parent = [None if k % 4 == 0 else f"{k - k % 4 + 1:016x}" for k in range(n)]
    cols: dict[str, Any] = {f.name: pa.nulls(n, f.type) for f in SPAN_SCHEMA}
    cols.update(
        project_id=pa.array([PROJECT] * n),
        trace_id=pa.array(trace),
        span_id=pa.array(span),
        parent_span_id=pa.array(parent, pa.string()),
        name=pa.array([f"chat {m}" for m in model]),
        kind=pa.array(["llm"] * n),
        start_time=pa.array(start_us * 1000, pa.timestamp("ns")),
        end_time=pa.array(
            (start_us + (duration_ms * 1000).astype(np.int64)) * 1000, "timestamp[ns]"
        ),
        duration_ms=pa.array(duration_ms),
        status=pa.array(np.where(rng.random(n) < 0.02, "error", "ok").tolist()),
        service_name=pa.array(["support-bot"] * n),
        environment=pa.array(["prod"] * n),
        provider=pa.array(["openai"] * n),
        request_model=pa.array(model),
        response_model=pa.array(model),
        model=pa.array(model),
        input_tokens=pa.array(inp),
        output_tokens=pa.array(out),
        total_tokens=pa.array(inp + out),
        ttft_ms=pa.array(ttft),
        tpot_ms=pa.array((duration_ms - ttft) / np.maximum(out - 1, 1)),
        finish_reason=pa.array(["stop"] * n),
        user_id=pa.array([f"user-{k % 2000}" for k in range(n)]),
        session_id=pa.array([f"sess-{k % 20000}" for k in range(n)]),
        tenant_id=pa.array([f"tenant-{k % 50}" for k in range(n)]),
        input=pa.array([f"How do I reset my password? {k}" for k in range(n)]),
        output=pa.array([f"Open the sign-in page. {k}" for k in range(n)]),
        cost_usd=pa.array((inp * 2.5 + out * 10) / 1e6),
        attributes=pa.array(['{"gen_ai.request.model":"gpt-4o"}'] * n),
        resource_attributes=pa.array(['{"service.name":"support-bot"}'] * n),
        ingest_notes=pa.array([[]] * n, pa.list_(pa.string())),
    )
    table = pa.table(cols, schema=SPAN_SCHEMA)
    return [table.slice(o, batch_size) for o in range(0, n, batch_size)]


def median_ms(fn: Callable[[int], object], runs: int) -> float:
    times = []
    fn(0)  # warm caches and plans, as a running server has them
    for r in range(runs):
        t = time.perf_counter()
        fn(r + 1)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench_store(url: str, batches: list[pa.Table], runs: int) -> dict[str, float | None]:
    n = sum(b.num_rows for b in batches)
    st = open_store(url)
    res: dict[str, float | None] = {}
    try:
        st.migrate()
        t = time.perf_counter()
        for b in batches:
            st.insert_batches([b])
        ingest_s = time.perf_counter() - t
        assert st.count_spans(PROJECT) == n, "spans missing after ingest"
        num_traces = (n + 3) // 4
        res["ingest_spans_per_s"] = n / ingest_s
        res["list_spans_first_page_ms"] = median_ms(
            lambda _r: st.list_spans(SpanQuery(project_id=PROJECT, limit=100)), runs
        )
        res["list_spans_model_filter_ms"] = median_ms(
            lambda _r: st.list_spans(SpanQuery(project_id=PROJECT, model="gpt-4o", limit=100)),
            runs,
        )
        res["get_trace_ms"] = median_ms(
            lambda r: st.get_trace(PROJECT, f"{(r * 7919) % num_traces:032x}"), runs
        )
        res["count_spans_ms"] = median_ms(lambda _r: st.count_spans(PROJECT), runs)
        if hasattr(st, "query_metric"):
            q = MetricQuery(
                project_id=PROJECT,
                metric=METRICS["latency_ms"],
                agg="p95",
                start=START,
                end=END,
                step_s=3600,
                group_by=("model",),
            )
            res["p95_latency_by_model_by_hour_ms"] = median_ms(lambda _r: st.query_metric(q), runs)
        else:
            res["p95_latency_by_model_by_hour_ms"] = None
        if hasattr(st, "_q"):  # ClickHouse: the compressed size of the spans' active parts
            rows = st._q(
                "SELECT sum(bytes_on_disk) FROM system.parts WHERE active"
                " AND database = currentDatabase() AND table = 'spans'"
            )
            res["disk_bytes_per_span"] = int(rows[0][0]) / n
    finally:
        st.close()
    if "disk_bytes_per_span" not in res:  # DuckDB: the file, checkpointed on close
        res["disk_bytes_per_span"] = Path(url.removeprefix("duckdb://")).stat().st_size / n
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="20,000 spans instead of 500,000")
    ap.add_argument("--spans", type=int, default=None, help="number of spans [500,000]")
    ap.add_argument("--batch", type=int, default=5_000, help="spans per insert [5,000]")
    ap.add_argument("--runs", type=int, default=7, help="runs of each read [7]")
    args = ap.parse_args()
    n = args.spans or (20_000 if args.quick else 500_000)
    if n < 4 or args.batch < 1 or args.runs < 1:
        sys.exit("--spans must be >= 4, --batch and --runs >= 1")
    batches = make_batches(n, args.batch)
    print(f"{n} spans in {len(batches)} batches of {args.batch}; reads run {args.runs} times")
    results: dict[str, dict[str, float | None]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["duckdb"] = bench_store(
            f"duckdb://{Path(tmp) / 'bench.duckdb'}", batches, args.runs
        )
        results["clickhouse"] = bench_store(f"chdb://{Path(tmp) / 'ch'}", batches, args.runs)
    print(f"{'figure':<34} {'duckdb':>12} {'clickhouse':>12}")
    for key in results["duckdb"]:
        row = [results[b][key] for b in ("duckdb", "clickhouse")]
        cells = ["skipped" if v is None else f"{v:,.1f}" for v in row]
        print(f"{key:<34} {cells[0]:>12} {cells[1]:>12}")
    for backend, res in results.items():
        for key, v in res.items():
            if v is None:
                print(f"store_compare_{backend}_{key.removesuffix('_ms')}_median_ms=skipped")
            elif key.endswith(("_per_s", "_per_span")):
                print(f"store_compare_{backend}_{key}={v:.0f}")
            else:
                print(f"store_compare_{backend}_{key.removesuffix('_ms')}_median_ms={v:.2f}")


if __name__ == "__main__":
    main()
