"""One monitor tick over 50 rules with 1,000,000 spans stored (target: < 1 s).

    python bench/monitor.py            # 1,000,000 spans (make bench)
    python bench/monitor.py --quick    # 50,000 spans (make test)

The spans are generated inside DuckDB (bench/query.py's fill), the rules are written through
the monitor, and ticks run in-process on a fake clock at the end of the data. Reported: the
first tick (rule sync, anomaly baselines computed), the median of later ticks, and as the
baseline measured in the same process, the same aggregates asked one ``query_metric`` each
(50 independent queries).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from query import END, fill  # noqa: E402
from sightline._clock import FakeClock  # noqa: E402
from sightline._logging import configure_logging  # noqa: E402
from sightline.alerts import Monitor, aggs_for, parse_rule  # noqa: E402
from sightline.store import DuckDBStore, MetricQuery  # noqa: E402

PROJECT = "bench"
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "claude-3-5-haiku", "gemini-2.5-pro"]


def rules() -> list[dict[str, Any]]:
    """50 rules of every type, windows from 5 minutes to 28 days, several filters and groups."""
    out: list[dict[str, Any]] = []
    base = [
        ("ttft_ms", "p95", 500),
        ("tpot_ms", "p95", 50),
        ("latency_ms", "p95", 2000),
        ("latency_ms", "p99", 4000),
        ("error_rate", None, 0.01),
        ("total_tokens", "avg", 5000),
        ("cost_per_request", None, 0.05),
        ("tokens_per_s", None, 5),
    ]
    for metric, agg, thr in base:  # 8 global, 8 per model, 8 per tenant over 15m
        out.append(
            {
                "name": f"{metric}-{agg}",
                "metric": metric,
                "agg": agg,
                "threshold": thr,
                "window": "5m",
                "min_requests": 20,
            }
        )
        out.append(
            {
                "name": f"{metric}-{agg}-by-model",
                "metric": metric,
                "agg": agg,
                "threshold": thr,
                "window": "5m",
                "group_by": ["model"],
                "min_requests": 20,
            }
        )
        out.append(
            {
                "name": f"{metric}-{agg}-by-tenant",
                "metric": metric,
                "agg": agg,
                "threshold": thr,
                "window": "15m",
                "group_by": ["tenant_id"],
                "min_requests": 5,
            }
        )
        out.append(
            {
                "name": f"{metric}-{agg}-by-provider",
                "metric": metric,
                "agg": agg,
                "threshold": thr,
                "window": "30m",
                "group_by": ["provider", "model"],
            }
        )
    out.append(
        {
            "name": "guardrail-blocks",
            "metric": "guardrail_block_rate",
            "threshold": 0.2,
            "window": "15m",
        }
    )
    out.append(
        {
            "name": "input-tokens-by-model",
            "metric": "input_tokens",
            "agg": "sum",
            "threshold": 5e6,
            "window": "1h",
            "group_by": ["model"],
        }
    )
    out.append(
        {"name": "hourly-cost", "metric": "cost_usd", "agg": "sum", "threshold": 50, "window": "1h"}
    )
    out.append(
        {"name": "low-traffic", "metric": "requests", "op": "<", "threshold": 10, "window": "5m"}
    )
    for m in MODELS:  # 5 filtered on a model, 1h
        out.append(
            {
                "name": f"latency-{m}",
                "metric": "latency_ms",
                "agg": "p95",
                "threshold": 2500,
                "window": "1h",
                "filter": {"model": m},
            }
        )
    for m in MODELS[:3]:  # 3 anomaly rules (hourly cost against 7 days)
        out.append(
            {
                "name": f"cost-anomaly-{m}",
                "type": "anomaly",
                "metric": "cost_usd",
                "agg": "sum",
                "window": "1h",
                "baseline": "7d",
                "filter": {"model": m},
            }
        )
    out.append(
        {
            "name": "cost-anomaly",
            "type": "anomaly",
            "metric": "cost_usd",
            "agg": "sum",
            "window": "1h",
            "baseline": "6d",
            "group_by": ["model"],
        }
    )
    out.append(
        {"name": "availability", "type": "slo", "sli": "availability", "objective": 0.995}
    )  # windows 28d, 1h, 5m, 6h, 30m
    out.append(
        {
            "name": "latency-slo",
            "type": "slo",
            "sli": "latency",
            "threshold_ms": 3000,
            "objective": 0.9,
        }
    )
    out.append(
        {
            "name": "degradation",
            "type": "composite",
            "k": 2,
            "window": "5m",
            "group_by": ["model"],
            "conditions": [
                {"metric": "latency_ms", "agg": "p95", "threshold": 2000},
                {"metric": "error_rate", "threshold": 0.05},
                {"metric": "ttft_ms", "agg": "p95", "threshold": 800},
            ],
        }
    )
    out.append(
        {
            "name": "model-down",
            "type": "no_traffic",
            "group_by": ["model"],
            "window": "10m",
            "lookback": "24h",
        }
    )
    out.append({"name": "drift", "type": "drift"})
    assert len(out) == 50, len(out)
    return out


def batched(store: DuckDBStore, specs: list[dict[str, Any]]) -> float:
    """The same aggregates in one query_windows call (the monitor's batched passes)."""
    aggs = [a for spec in specs for a in aggs_for(parse_rule(spec)) if a.agg != "share_above"]
    t0 = time.perf_counter()
    store.query_windows(PROJECT, END, aggs)
    return (time.perf_counter() - t0) * 1000


def naive(store: DuckDBStore, specs: list[dict[str, Any]]) -> float:
    """The same aggregates, one query_metric each: what 50 independent rule queries cost."""
    t0 = time.perf_counter()
    n = 0
    for spec in specs:
        for a in aggs_for(parse_rule(spec)):
            if a.agg == "share_above":
                continue  # not expressible through query_metric; the batched pass does it
            store.query_metric(
                MetricQuery(
                    project_id=PROJECT,
                    metric=a.metric,
                    agg=a.agg,  # type: ignore[arg-type]
                    start=END - timedelta(seconds=a.window_s),
                    end=END,
                    group_by=a.group_by,
                    filters=dict(a.filters),
                )
            )
            n += 1
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="50,000 spans instead of 1,000,000")
    args = ap.parse_args()
    n = 50_000 if args.quick else 1_000_000
    configure_logging("error", "console")  # alert_firing lines would flood the output
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        t0 = time.perf_counter()
        fill(data, n)
        print(f"generated {n:,} spans in {time.perf_counter() - t0:.1f}s")
        store = DuckDBStore(data / "sightline.duckdb")
        store.migrate()
        store.create_project(PROJECT)
        clock = FakeClock(END)
        monitor = Monitor(store, clock=clock, interval_s=0)
        specs = rules()
        for spec in specs:
            monitor.put_rule(PROJECT, spec)
        t0 = time.perf_counter()
        monitor.tick()
        first_ms = (time.perf_counter() - t0) * 1000
        states = {r.version.name: r.state for r in monitor.list_rules(PROJECT)}
        errors = {k: v for k, v in states.items() if v in ("error", "metric_unavailable")}
        assert not errors, errors
        assert len(states) == 50
        ticks = []
        for _ in range(7):
            clock.advance(seconds=30)
            t0 = time.perf_counter()
            monitor.tick()
            ticks.append((time.perf_counter() - t0) * 1000)
        naive_ms = statistics.median(naive(store, specs) for _ in range(5))
        batched_ms = statistics.median(batched(store, specs) for _ in range(5))
        firing = len(monitor.firing(PROJECT))
        store.close()
    tick_ms = statistics.median(ticks)
    print(f"spans={n} rules=50 firing={firing}")
    print(f"spans={n} monitor_first_tick_ms={first_ms:.1f} (anomaly baselines computed)")
    print(f"spans={n} monitor_tick_50_rules_median_ms={tick_ms:.1f} (target < 1000)")
    print(f"spans={n} batched_query_windows_median_ms={batched_ms:.1f} (the same aggregates)")
    print(f"spans={n} naive_one_query_per_aggregate_median_ms={naive_ms:.1f} (baseline)")


if __name__ == "__main__":
    main()
