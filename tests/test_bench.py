"""The benchmarks in their quick form: they run end to end and report their figures.

The figures are not asserted here (machines are noisy); `make bench` runs the full forms and
docs/benchmarks.md records them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _run(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_ingest_benchmark_quick() -> None:
    out = _run("ingest.py")
    assert re.search(r"ingest_spans_per_s_median=\d+", out), out


def test_decode_cpu_benchmark_quick() -> None:
    out = _run("decode_cpu.py")
    for stage in ("parse", "decode", "redact", "price_arrow", "prepare"):
        assert re.search(rf"decode_cpu_{stage}_us_per_span=-?[\d.]+", out), out


def test_ingest_metrics_benchmark_quick() -> None:
    out = _run("ingest.py", "--mode", "metrics")
    assert re.search(r"ingest_data_points_per_s_median=\d+", out), out


def test_ingest_logs_benchmark_quick() -> None:
    out = _run("ingest.py", "--mode", "logs")
    assert re.search(r"ingest_log_records_per_s_median=\d+", out), out


def test_query_benchmark_quick() -> None:
    out = _run("query.py")
    assert re.search(r"metrics_p95_by_model_by_hour_7d_median_ms=[\d.]+", out), out
    assert re.search(r"spans_first_page_model_filter_median_ms=[\d.]+", out), out


def test_evals_benchmark_quick() -> None:
    out = _run("evals.py")
    assert re.search(r"embedder_unique_texts_per_s_median=\d+", out), out
    assert re.search(r"relevance_spans_per_s_median=\d+", out), out
    assert re.search(r"context_relevance_spans_per_s_median=\d+", out), out
    assert re.search(r"faithfulness_spans_per_s_median=\d+", out), out
    assert re.search(r"runner_spans_per_s_median=\d+", out), out


def test_sdk_overhead_benchmark_quick() -> None:
    out = _run("sdk_overhead.py")
    assert re.search(r"sdk_median_us=[\d.]+", out), out
    assert re.search(r"bare_median_us=[\d.]+", out), out
    assert re.search(r"sdk_vs_bare_ratio=[\d.]+", out), out


def test_monitor_benchmark_quick() -> None:
    out = _run("monitor.py")
    assert re.search(r"monitor_tick_50_rules_median_ms=[\d.]+", out), out
    assert re.search(r"naive_one_query_per_aggregate_median_ms=[\d.]+", out), out


def test_redact_benchmark_quick() -> None:
    out = _run("redact.py")
    assert re.search(r"redaction_added_us_per_span=-?[\d.]+", out), out
    assert re.search(r"naive_added_us_per_span=-?[\d.]+", out), out


def test_signals_benchmark_quick() -> None:
    out = _run("signals.py")
    assert re.search(r"descriptors_texts_per_s_median=\d+", out), out
    assert re.search(r"self_consistency_sets_per_s_median=\d+", out), out
    assert re.search(r"outcome_metrics_by_model_7d_median_ms=[\d.]+", out), out


def test_gateway_benchmark_quick() -> None:
    out = _run("gateway.py")
    assert re.search(r"nonstream_added_ms=-?[\d.]+", out), out
    assert re.search(r"stream_first_chunk_added_ms=-?[\d.]+", out), out
    assert re.search(r"handler_overhead_ms=[\d.]+", out), out
    assert re.search(r"chunk_forward_ms=[\d.]+", out), out


def test_pages_benchmark_quick() -> None:
    out = _run("pages.py")
    assert re.search(r"range=24h page=/traces median_ms=[\d.]+", out), out
    assert re.search(r"range=7d page=/ median_ms=[\d.]+", out), out
    assert re.search(r"pages_worst_server_median_ms=[\d.]+", out), out


def test_never_hurt_benchmark_quick() -> None:
    out = _run("never_hurt.py")
    assert re.search(r"never_hurt_median_round_ratio=[\d.]+", out), out


def test_control_benchmark_quick() -> None:
    out = _run("control.py")
    for backend in ("duckdb", "clickhouse"):
        assert re.search(rf"{backend}_get_session_ms_median=[\d.]+", out), out


def test_clickhouse_evals_benchmark_quick() -> None:
    out = _run("ch_evals.py")
    rows = re.findall(r"^\| [a-z_].* \| ([\d.]+) \| ([\d.]+) \|$", out, re.M)
    assert len(rows) == 4, out


def test_store_compare_benchmark_quick() -> None:
    out = _run("store_compare.py")
    for backend in ("duckdb", "clickhouse"):
        assert re.search(rf"store_compare_{backend}_ingest_spans_per_s=\d+", out), out
        for read in ("list_spans_first_page", "get_trace", "count_spans"):
            assert re.search(rf"store_compare_{backend}_{read}_median_ms=[\d.]+", out), out
    assert re.search(r"store_compare_duckdb_p95_latency_by_model_by_hour_median_ms=[\d.]+", out)


def test_soak_benchmark_quick() -> None:
    out = _run("soak.py")
    assert re.search(r"soak_errors=\d+", out), out
    assert re.search(r"soak_spans_per_s=\d+", out), out
    assert re.search(r"soak_lag_ms_p50=\d+ p95=\d+ max=\d+", out), out
    assert re.search(r"soak_rss_mib start=\d+ 10%=\d+ 50%=\d+ end=\d+", out), out


def test_span_insert_benchmark_quick() -> None:
    out = _run("span_insert.py")
    for variant in ("pk", "nokey", "anti", "anti_spread", "anti_full"):
        assert re.search(rf"size=20000 variant={variant} cpu_ms_median=[\d.]+", out), out
    assert re.search(r"size=20000 store=pk duckdb_mib=[\d.]+ art_index_mib=[\d.]+", out), out


def test_duckdb_query_memory_benchmark_quick() -> None:
    out = _run("duckdb_query_memory.py")
    assert re.search(r"joins=2000 heap_in_use_growth_mib=-?[\d.]+ bytes_per_join=-?\d+", out), out
    assert re.search(r"after_close_growth_mib=-?[\d.]+", out), out


def test_wal_replay_benchmark_quick() -> None:
    out = _run("wal_replay.py")
    assert re.search(
        r"wal_replay wal_mib=[\d.]+ spans=\d+ open_s_median=[\d.]+ cpu_s_median=[\d.]+"
        r" reopen_s_median=[\d.]+ runs=1",
        out,
    ), out


def test_span_insert_forms_benchmark_quick() -> None:
    out = _run("span_insert.py", "--forms")
    for rows in (1, 512):
        for form in ("lists", "byname", "store"):
            assert re.search(
                rf"span_insert forms rows={rows} form={form} cpu_ms_median=[\d.]+ \(n=6\)", out
            ), out


def test_score_write_benchmark_quick() -> None:
    out = _run("score_write.py")
    for case in ("recent_hinted_new", "recent_hinted_rerun", "random_hinted_rerun",
                 "random_lookup_rerun", "one_label", "one_thumbs_vote"):  # fmt: skip
        assert re.search(rf"case={case} median_ms=[\d.]+", out), out
    assert re.search(r"superseded=3019 ", out), out
