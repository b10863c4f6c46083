"""The monitor's and dashboard's metric queries on DuckDB and on ClickHouse (chdb), same data.

    python bench/ch_monitor.py            # 1,000,000 LLM spans over 7 days
    python bench/ch_monitor.py --quick    # 50,000 spans

The spans are generated inside DuckDB (bench/query.py's fill) and copied to a chdb store as
Arrow, so both backends hold the same rows. Timed on each, in the same process: the aggregates
of bench/monitor.py's 50 rules in one ``query_windows`` call (the monitor's batched passes), the
same aggregates one ``query_metric`` each, and the dashboard's p95 latency by model by hour over
the 7 days. Each runs 5 times after a warm-up; the median is reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
from monitor import PROJECT, rules  # noqa: E402
from query import END, START, fill  # noqa: E402
from sightline.alerts import aggs_for, parse_rule  # noqa: E402
from sightline.model import SPAN_FIELDS  # noqa: E402
from sightline.store import METRICS, DuckDBStore, MetricQuery, open_store  # noqa: E402
from sightline.store._arrow import SPAN_SCHEMA  # noqa: E402
from sightline.store.base import TraceStore, WindowAgg  # noqa: E402


def _median_ms(fn: Callable[[], Any], runs: int = 5) -> float:
    fn()  # warm
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _aggs() -> list[WindowAgg]:
    return [a for spec in rules() for a in aggs_for(parse_rule(spec)) if a.agg != "share_above"]


def _naive(store: TraceStore, aggs: list[WindowAgg]) -> None:
    for a in aggs:
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


def _dashboard(store: TraceStore) -> None:
    store.query_metric(
        MetricQuery(
            project_id=PROJECT,
            metric=METRICS["latency_ms"],
            agg="p95",
            start=START,
            end=END,
            step_s=3600,
            group_by=("model",),
        )
    )


def measure(store: TraceStore) -> dict[str, float]:
    aggs = _aggs()
    return {
        "query_windows_50_rules_ms": _median_ms(lambda: store.query_windows(PROJECT, END, aggs)),
        "query_metric_each_ms": _median_ms(lambda: _naive(store, aggs)),
        "p95_by_model_by_hour_7d_ms": _median_ms(lambda: _dashboard(store)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="50,000 spans instead of 1,000,000")
    args = ap.parse_args()
    n = 50_000 if args.quick else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        fill(data, n)
        duck = DuckDBStore(data / "sightline.duckdb")
        duck.migrate()
        ch: Any = open_store(f"chdb://{data / 'ch'}")
        ch.migrate()
        try:
            cols = ", ".join(f'"{c}"' for c in SPAN_FIELDS)
            reader = duck._con.sql(
                f"SELECT {cols} FROM spans ORDER BY start_time"  # noqa: S608
            ).to_arrow_reader(100_000)
            t0 = time.perf_counter()
            for rb in reader:
                # straight into the table: insert_batches' re-send check reads the stored ids
                # of every batch, a cost of ingest (bench/ingest.py), not of these queries
                t = rb_to_table(rb)
                seq = pa.array([1] * t.num_rows, pa.int64())
                ch._insert_arrow("spans", t.append_column("ingest_seq", seq))
            copy_s = time.perf_counter() - t0
            assert ch.count_spans(PROJECT) == duck.count_spans(PROJECT) == n
            print(f"spans={n} copied to chdb in {copy_s:.1f}s ({n / copy_s:,.0f} spans/s)")
            results = {"duckdb": measure(duck), "clickhouse": measure(ch)}
        finally:
            ch.close()
            duck.close()
    for name in results["duckdb"]:
        d, c = results["duckdb"][name], results["clickhouse"][name]
        print(f"spans={n} {name} duckdb={d:.1f} clickhouse_chdb={c:.1f} ratio={c / d:.2f}")


def rb_to_table(rb: Any) -> pa.Table:
    """A DuckDB record batch as the Arrow span batch ingest hands the store."""
    t = pa.Table.from_batches([rb])
    return t.cast(SPAN_SCHEMA) if t.schema != SPAN_SCHEMA else t


if __name__ == "__main__":
    main()
