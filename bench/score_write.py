"""Writing scores into a large DuckDB store: what keeping each score's span start time and
marking the superseded ones costs (``DuckDBStore.add_scores``).

    python bench/score_write.py           # 1,000,000 spans and 2,000,000 scores (make bench)
    python bench/score_write.py --quick   # 50,000 spans (make test)

The store is bench/pages.py's (spans of 7 days, each scored by ``relevance`` and
``faithfulness``). Each case writes 10 batches and reports the median milliseconds per batch:

- ``recent_hinted_new``: 100 scores of the newest spans under a new name, with the span's start
  time as the evaluation runner gives it (nothing to supersede): online evaluation;
- ``recent_hinted_rerun``: the same, under ``relevance`` (each supersedes the span's score);
- ``random_hinted_rerun``: 100 spans from anywhere in the 7 days (a re-run over old spans);
- ``random_lookup_rerun``: the same without the start time (the store looks the spans up);
- ``one_label``: one score without the start time (a person's label through the API);
- ``one_thumbs_vote``: one end-user feedback score of a trace (no span), the same trace each
  time (each supersedes the one before);
- ``link_no_orphans`` / ``link_1000_orphans``: the writer's idle link of scores stored before
  their span (``DuckDBStore._link_orphan_scores``), with none such and with 1,000 whose span
  never came.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import pages  # noqa: E402
from sightline.model import Score  # noqa: E402
from sightline.store import DuckDBStore  # noqa: E402

BATCHES = 10


def _scores(rows: list[tuple[Any, ...]], name: str, hinted: bool) -> list[Score]:
    return [
        Score(project_id=p, score_id=os.urandom(8).hex(), trace_id=t, span_id=s, name=name,
              value=0.5, source="evaluator", evaluator=name, created_at=datetime.now(UTC),
              span_start_time=start.replace(tzinfo=UTC) if hinted else None)
        for p, t, s, start in rows
    ]  # fmt: skip


def _feedback(span: tuple[Any, ...], i: int) -> Score:
    """End-user feedback on the span's whole trace: the user changing their vote."""
    return Score(project_id=span[0], score_id=os.urandom(8).hex(), trace_id=span[1],
                 name="feedback", value=float(i % 2), source="user",
                 created_at=datetime.now(UTC))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="50,000 spans instead of 1,000,000")
    args = ap.parse_args()
    n = 50_000 if args.quick else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        pages.fill_lower(data, n)
        scores = pages.fill_scores(data, 1)
        store = DuckDBStore(data / "sightline.duckdb")
        store.migrate()
        cols = "SELECT project_id, trace_id, span_id, start_time FROM spans"
        recent = store._write.execute(f"{cols} ORDER BY start_time DESC LIMIT 2000").fetchall()
        anywhere = store._write.execute(f"{cols} USING SAMPLE 2100 ROWS").fetchall()
        cases = {
            "recent_hinted_new": [
                _scores(recent[i : i + 100], "new_evaluator", True) for i in range(0, 1000, 100)
            ],
            "recent_hinted_rerun": [
                _scores(recent[i : i + 100], "relevance", True) for i in range(1000, 2000, 100)
            ],
            "random_hinted_rerun": [
                _scores(anywhere[i : i + 100], "relevance", True) for i in range(0, 1000, 100)
            ],
            "random_lookup_rerun": [
                _scores(anywhere[i : i + 100], "relevance", False) for i in range(1000, 2000, 100)
            ],
            "one_label": [
                _scores(anywhere[2000 + i : 2001 + i], "relevance", False) for i in range(BATCHES)
            ],
            "one_thumbs_vote": [[_feedback(anywhere[2050], i)] for i in range(BATCHES)],
        }
        for case, batches in cases.items():
            times = []
            for batch in batches:
                t0 = time.perf_counter()
                store.add_scores(batch)
                times.append((time.perf_counter() - t0) * 1000)
            print(f"spans={n} scores={scores} case={case} median_ms={statistics.median(times):.1f}")
        # The writer's idle upkeep (at most every LINK_SCORES_INTERVAL_S): linking the scores
        # stored before their span. With none such, a scan of one column; with 1,000 whose
        # span never came, the join runs every time.
        for case, orphans in (("link_no_orphans", 0), ("link_1000_orphans", 1000)):
            if orphans:
                store.add_scores(
                    _scores([(p, os.urandom(16).hex(), os.urandom(8).hex(), None)
                             for p, *_ in anywhere[:orphans]], "relevance", False)
                )  # fmt: skip
            store.link_scores_interval_s = 0.0
            times = []
            for _ in range(BATCHES):
                t0 = time.perf_counter()
                store._link_orphan_scores()
                times.append((time.perf_counter() - t0) * 1000)
            print(f"spans={n} scores={scores} case={case} median_ms={statistics.median(times):.1f}")
        (superseded,) = store._write.execute(
            "SELECT count_if(superseded) FROM scores"
        ).fetchone() or (0,)
        want = 3 * BATCHES * 100 + BATCHES + BATCHES - 1
        print(f"spans={n} superseded={superseded} (the re-runs' and votes' {want})")
        store.close()


if __name__ == "__main__":
    main()
