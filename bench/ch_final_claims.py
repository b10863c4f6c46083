"""What deduplicated score reads and uniqueness claims cost on ClickHouse (chdb), CPU time.

    python bench/ch_final_claims.py            # 100,000 scores in 20 inserts
    python bench/ch_final_claims.py --quick    # 10,000

Score reads: the first page of ``query_scores`` and an ``avg`` over the scores, each read
plain (what the store did before), with ``FINAL`` (what it does now) and deduplicated by
``LIMIT 1 BY`` the key (what the trace reads did before). Claims: ``create_project`` (a claim,
a read of the claims, the check, the insert, the withdrawal) against the check-then-insert it
replaced. CPU time of the process (chdb runs in it, its threads included), median of 7 runs
interleaved, so the shared machine's load weighs on each alike.
"""

# ruff: noqa: S608 - the SQL is made of this file's constants

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

T0 = datetime(2026, 11, 1, tzinfo=UTC)
_COLS = (
    "project_id, score_id, trace_id, span_id, `name`, `value`, label, passed, explanation,"
    " source, evaluator, evaluator_version, user_id, created_at, details"
)


def _cpu_ms(fns: dict[str, Callable[[], Any]], runs: int = 7) -> dict[str, float]:
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            t = time.process_time()
            fn()
            times[k].append((time.process_time() - t) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    n = 10_000 if ap.parse_args().quick else 100_000
    st: Any = open_store(f"chdb://{tempfile.mkdtemp()}")
    st.migrate()
    scores = [
        Score(project_id="bench", score_id=os.urandom(8).hex(), trace_id=os.urandom(16).hex(),
              span_id=os.urandom(8).hex(), name="faithfulness", value=0.5, passed=True,
              source="evaluator", created_at=T0 + i * timedelta(days=1) / n)
        for i in range(n)
    ]  # fmt: skip
    step = n // 20
    for i in range(0, n, step):
        st._write_scores(scores[i : i + step], [s.score_id for s in scores[i : i + step]])
    parts = st._q(
        "SELECT count() FROM system.parts WHERE table = 'scores' AND active"
        " AND database = currentDatabase()"
    )[0][0]
    where = "WHERE project_id = 'bench' AND `name` = 'faithfulness'"
    order = "ORDER BY created_at DESC, score_id DESC"
    reads = {
        "page plain": f"SELECT {_COLS} FROM scores {where} {order} LIMIT 51",
        "page FINAL": f"SELECT {_COLS} FROM scores FINAL {where} {order} LIMIT 51",
        "page LIMIT 1 BY": f"SELECT {_COLS} FROM scores {where} {order}"
        " LIMIT 1 BY trace_id, _key LIMIT 51",
        "avg plain": f"SELECT avg(value), count() FROM scores {where}",
        "avg FINAL": f"SELECT avg(value), count() FROM scores FINAL {where}",
    }
    got = _cpu_ms({k: (lambda q=q: st._q(q)) for k, q in reads.items()})  # type: ignore[misc]
    print(f"{n} scores, {parts} active parts: CPU ms, median of 7")
    for k, v in got.items():
        print(f"  {k:<16} {v:8.1f}")

    counter = iter(range(10**9))

    def claimed() -> None:
        st.create_project(f"c{next(counter)}")

    def unclaimed() -> None:  # the check-then-insert it replaced
        pid = f"u{next(counter)}"
        if st.get_project(pid) is None:
            now = datetime.now(UTC).replace(tzinfo=None)
            row = [pid, now, st._version()]
            st._insert_rows("projects", ["id", "created_at", "_version"], [row])
        st.get_project(pid)

    got = _cpu_ms({"create_project, claimed": claimed, "check-then-insert": unclaimed}, runs=21)
    print("project creates: CPU ms, median of 21")
    for k, v in got.items():
        print(f"  {k:<24} {v:8.2f}")
    st.close()


if __name__ == "__main__":
    main()
