"""The evaluation stage's store calls on DuckDB and on ClickHouse (chdb), same data, same run.

    python bench/ch_evals.py            # 50,000 LLM spans, two scores each
    python bench/ch_evals.py --quick    # 5,000 spans

Times the runner's write (``append_eval_scores``: 64 scores and the cursor; on ClickHouse a
look-up of the batch's keys first), the runner's read of a batch's scores (``list_trace_scores``
over 64 traces), the first page of ``GET /api/v1/scores`` (``query_scores``) and a score metric
(faithfulness by model by hour over the day). Each call runs 7 times, the two backends in
turn (the same load on a shared machine); the median is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from sightline.model import Score  # noqa: E402
from sightline.store import open_store  # noqa: E402
from sightline.store._eval_records import EvalCursor, ScoreQuery  # noqa: E402
from sightline.store.base import SCORE_METRICS, MetricQuery, TraceStore  # noqa: E402
from store._spans import batch, span_record  # noqa: E402

T0 = datetime(2026, 11, 1, tzinfo=UTC)
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "claude-3-5-haiku", "gemini-2.5-pro"]


def _medians_ms(fns: list[Callable[[], Any]], runs: int = 7) -> list[float]:
    """Median time of each function, the runs interleaved so that both backends see the same
    load on the shared machine."""
    for fn in fns:
        fn()  # warm
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            times[i].append((time.perf_counter() - t) * 1000)
    return [statistics.median(t) for t in times]


def _data(n: int) -> tuple[list[dict[str, Any]], list[Score]]:
    step = timedelta(days=1) / n
    spans = [
        span_record(project_id="bench", model=MODELS[i % 5], start=T0 + i * step) for i in range(n)
    ]
    scores = [
        Score(
            project_id="bench",
            score_id=os.urandom(8).hex(),
            trace_id=s["trace_id"],
            span_id=s["span_id"],
            name=name,
            value=(i % 10) / 10,
            label="faithful" if i % 3 else "hallucination",
            passed=bool(i % 3),
            source="evaluator",
            evaluator=name,
            evaluator_version="1",
            created_at=T0 + i * step + timedelta(seconds=5),
        )
        for i, s in enumerate(spans)
        for name in ("faithfulness", "relevance")
    ]
    return spans, scores


def _calls(store: TraceStore, spans: list[dict[str, Any]]) -> dict[str, Callable[[], Any]]:
    traces = [s["trace_id"] for s in spans[len(spans) // 2 : len(spans) // 2 + 64]]
    seq = [0]

    def append() -> None:
        seq[0] += 1
        new = [
            Score(
                project_id="bench",
                score_id=os.urandom(8).hex(),
                trace_id=t,
                span_id="00" * 8,
                name="toxicity",
                value=0.1,
                source="evaluator",
                created_at=datetime.now(UTC),
            )
            for t in traces
        ]
        store.append_eval_scores(new, cursor_name="bench", cursor=EvalCursor(seq[0]))

    q = MetricQuery(
        project_id="bench",
        metric=SCORE_METRICS["faithfulness"],
        agg="avg",
        start=T0,
        end=T0 + timedelta(days=1),
        step_s=3600,
        group_by=("model",),
    )
    score_metric = getattr(store, "_query_score_metric", None) or store.query_metric
    return {
        "append_eval_scores (64 scores + cursor)": append,
        "list_trace_scores (64 traces)": lambda: store.list_trace_scores("bench", traces),
        "query_scores (first page of 100)": lambda: store.query_scores(
            ScoreQuery(project_id="bench", name="relevance")
        ),
        "score metric (faithfulness by model by hour, 1 day)": lambda: score_metric(q),
    }


def _fill(url: str, spans: list[dict[str, Any]], scores: list[Score]) -> TraceStore:
    store: TraceStore = open_store(url)
    store.migrate()
    for i in range(0, len(spans), 10_000):
        store.insert_batches([batch(*spans[i : i + 10_000])])
    for i in range(0, len(scores), 20_000):
        store.add_scores(scores[i : i + 20_000])
    return store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    n = 5_000 if ap.parse_args().quick else 50_000
    spans, scores = _data(n)
    with tempfile.TemporaryDirectory() as d:
        duck = _fill(f"duckdb://{d}/db.duckdb", spans, scores)
        ch = _fill(f"chdb://{d}/ch", spans, scores)
        try:
            duck_calls, ch_calls = _calls(duck, spans), _calls(ch, spans)
            print(f"{n:,} spans, {len(scores):,} scores; median of 7 (ms)")
            print("| call | DuckDB | ClickHouse (chdb) |")
            print("|---|---|---|")
            for k in duck_calls:
                a, b = _medians_ms([duck_calls[k], ch_calls[k]])
                print(f"| {k} | {a:.1f} | {b:.1f} |")
        finally:
            duck.close()
            ch.close()


if __name__ == "__main__":
    main()
