"""What scale-out coordination costs per evaluated batch (docs/benchmarks.md).

- one claim cycle (claim_range, renew, complete: what a worker does per batch) on the store
  coordinator (DuckDB) and on Redis (127.0.0.1:6379);
- appending a batch of 64 online scores with ``append_scores_once`` (skips ids already stored)
  against ``append_eval_scores`` (the single worker's plain insert + cursor), with N scores
  already in the table.

usage: python bench/coordination.py [--scores 1000000] [--cycles 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sightline.coordination import Coordinator, RedisCoordinator, StoreCoordinator
from sightline.model import Score
from sightline.store import DuckDBStore
from sightline.store._duckdb_evals import insert_scores
from sightline.store._eval_records import EvalCursor


def _scores(n: int, start: int, *, total: int = 0) -> list[Score]:
    """Scores ``start..start+n``; with ``total``, spread over the 30 days before now."""
    now = datetime.now(UTC)
    span = timedelta(days=30)
    return [
        Score(
            project_id="p",
            score_id=f"{start + i:016x}",
            trace_id=f"{(start + i) // 3:032x}",
            span_id=f"{start + i:016x}",
            name="relevance",
            value=0.5,
            label="ok",
            passed=True,
            source="evaluator",
            evaluator="relevance",
            evaluator_version="1",
            created_at=now - span + span * (start + i) / total if total else now,
        )
        for i in range(n)
    ]


def cycle_ms(c: Coordinator, name: str, cycles: int) -> float:
    times = []
    lo = 0
    for _ in range(cycles):
        t = time.perf_counter()
        cl = c.claim_range(name, lo=lo, hi=lo + 1, owner="bench", lease_s=30)
        assert cl is not None
        c.renew(cl, lease_s=30)
        c.complete(cl)
        times.append((time.perf_counter() - t) * 1000)
        lo += 1
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scores", type=int, default=1_000_000)
    ap.add_argument("--cycles", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        store = DuckDBStore(Path(d) / "db.duckdb")
        store.migrate()
        redis = RedisCoordinator(
            "redis://127.0.0.1:6379/0", prefix=f"bench:{secrets.token_hex(4)}:"
        )
        for label, c in (("store (DuckDB)", StoreCoordinator(store)), ("redis", redis)):
            runs = [cycle_ms(c, f"b{r}", args.cycles) for r in range(args.repeats)]
            print(f"claim cycle, {label}: median {statistics.median(runs):.2f} ms ({runs})")
        redis._r.delete(*redis._r.keys(redis._p + "*"))
        redis.close()

        step = 200_000
        with store._cursor() as cur:
            for i in range(0, args.scores, step):
                insert_scores(cur, _scores(min(step, args.scores - i), i, total=args.scores))
        nxt = args.scores
        times: dict[str, list[float]] = {"plain": [], "once": [], "once_since": []}
        for r in range(args.repeats * 6):
            batch = _scores(64, nxt)
            nxt += 64
            kind = list(times)[r % 3]
            t = time.perf_counter()
            if kind == "plain":
                store.append_eval_scores(batch, cursor_name="bench", cursor=EvalCursor(r))
            elif kind == "once":
                store.append_scores_once(batch)
            else:  # what a worker does: no duplicate can predate its claim (minus a margin)
                store.append_scores_once(batch, since=datetime.now(UTC) - timedelta(minutes=10))
            times[kind].append((time.perf_counter() - t) * 1000)
        m = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"append 64 scores over {args.scores:,} (30 days): append_eval_scores "
            f"{m['plain']:.2f} ms, append_scores_once {m['once']:.2f} ms, with since "
            f"(10 min) {m['once_since']:.2f} ms (medians)"
        )
        store.close()


if __name__ == "__main__":
    main()
