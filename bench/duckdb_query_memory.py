"""glibc heap in use while one DuckDB instance runs the same small hash join again and again.

    python bench/duckdb_query_memory.py              # 80,000 joins, a line every 10,000
    python bench/duckdb_query_memory.py --quick      # 2,000 joins (make test)
    python bench/duckdb_query_memory.py --distinct-text   # constants differ in every query

The join is the shape of the store's span insert (a 512-row batch against a 600,000-row table
on two integer keys, as ``insert_batches``' ``NOT EXISTS``); nothing else runs. It prints the
heap in use (``mallinfo2().uordblks``) above the level before the first join, and at the end
what a second cursor adds and what closing the instance gives back. Found while reading a
20-minute soak's memory (docs/benchmarks.md, seventh session): the heap in use grows ~4 KB per
join at first, then less, and levels off at ~40 MiB after ~40,000 joins; it belongs to the
database instance (a second cursor adds nothing; closing the instance frees it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent / "memprobe"))
from _mallinfo import mallinfo2  # noqa: E402 - bench helper by path

_JOIN = "SELECT count(*) FROM inc b JOIN s ON s.k = b.k AND s.j = b.j"


def _used_mib() -> float:
    return float(mallinfo2().uordblks) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 joins")
    ap.add_argument("--joins", type=int, default=80_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--distinct-text",
        action="store_true",
        help="a different query text each time (constants vary, as the store's insert's do)",
    )
    args = ap.parse_args()
    joins = 2_000 if args.quick else args.joins
    step = max(1, joins // 8)
    db = duckdb.connect(":memory:")
    db.execute(f"SET threads = {int(args.threads)}")
    db.execute("CREATE TABLE s AS SELECT hash(range) AS k, range::UBIGINT AS j FROM range(600000)")
    db.execute(
        "CREATE TABLE inc AS SELECT range::UBIGINT AS k, range::UBIGINT AS j FROM range(512)"
    )
    cur = db.cursor()
    base = _used_mib()
    t0 = time.perf_counter()
    for i in range(1, joins + 1):
        sql = _JOIN + f" AND s.j >= {i % 7} AND s.k <> {i}" if args.distinct_text else _JOIN
        cur.execute(sql).fetchall()
        if i % step == 0 or i == joins:
            grown = _used_mib() - base
            print(
                f"duckdb_query_memory joins={i} heap_in_use_growth_mib={grown:.1f}"
                f" bytes_per_join={grown * 2**20 / i:.0f} t={time.perf_counter() - t0:.0f}s",
                flush=True,
            )
    cur.close()
    other = db.cursor()
    for _ in range(step):
        other.execute(_JOIN).fetchall()
    other.close()
    print(
        f"duckdb_query_memory second_cursor_growth_mib={_used_mib() - base:.1f} (after {step} more)"
    )
    db.close()
    print(f"duckdb_query_memory after_close_growth_mib={_used_mib() - base:.1f}")
    print(f"duckdb_version={duckdb.__version__}")


if __name__ == "__main__":
    main()
