"""A worker process for the crash test: scores claimed batches until its third, where it
writes a marker and hangs, to be SIGKILLed mid-batch (no cleanup, lease left to run out).

usage: python _crash_worker.py DB BACKEND PREFIX LEASE_S MARKER_DIR
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sightline.coordination import Coordinator, RedisCoordinator, StoreCoordinator
from sightline.evals import EvalCase, EvalResult, EvalRunner, RunnerOptions
from sightline.store import DuckDBStore


class HangOnThird:
    name = "count"
    version = "1"

    def __init__(self, marker_dir: Path) -> None:
        self.marker_dir = marker_dir
        self.calls = 0

    def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
        if not cases[0].case_id:  # the runner's warm-up
            return [EvalResult(score=1.0) for _ in cases]
        self.calls += 1
        with (self.marker_dir / "evaluated.txt").open("a") as f:
            f.write("".join(f"{c.case_id}\n" for c in cases))
        if self.calls == 3:
            (self.marker_dir / "hanging").write_text("x")
            time.sleep(3600)
        return [EvalResult(score=1.0, label="ok", passed=True) for _ in cases]


def main() -> None:
    db, backend, prefix, lease_s, marker_dir = sys.argv[1:6]
    store = DuckDBStore(db)
    store.migrate()
    coord: Coordinator = (
        StoreCoordinator(store)
        if backend == "store"
        else RedisCoordinator("redis://127.0.0.1:6379/0", prefix=prefix)
    )
    runner = EvalRunner(
        store,
        [HangOnThird(Path(marker_dir))],
        coordinator=coord,
        owner="doomed",
        options=RunnerOptions(grace_s=0.0, batch_size=10, lease_s=float(lease_s)),
    )
    runner.run_once()


if __name__ == "__main__":
    main()
