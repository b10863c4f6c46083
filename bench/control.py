"""Latency of the control-plane reads on each store: what a request pays before its real work.

    python bench/control.py            # 1,000 keys and 5,000 sessions per store
    python bench/control.py --quick    # 100 keys and 300 sessions (make test)

A dashboard request looks its session up (``get_session``, never cached); an API request
resolves its key (``find_api_key``, cached by the server after the first hit); the settings
pages list keys and members. Each store (DuckDB, and ClickHouse embedded by chdb) is filled the
same way, every read runs ``--repeat`` times and the median is reported in milliseconds.
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

sys.path.insert(0, str(Path(__file__).parent))
from sightline.store import Membership, User, UserSession, open_store  # noqa: E402
from sightline.store.base import ApiKey, TraceStore  # noqa: E402

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def fill(store: TraceStore, num_keys: int, num_sessions: int) -> None:
    for p in range(10):
        store.create_project(f"p{p}")
    for i in range(0, num_keys, 100):  # a hundred keys per call: the fill is not measured
        for j in range(i, min(i + 100, num_keys)):
            store.add_api_key(ApiKey(f"{j:064x}", "sl_", f"p{j % 10}", "ingest", NOW))
    for i in range(50):
        store.create_user(User(f"u{i}", f"u{i}@example.com", "h", False, NOW))
        store.add_membership(Membership(f"u{i}", f"p{i % 10}", "viewer", NOW))
    for i in range(num_sessions):
        store.create_session(
            UserSession(f"s{i:063x}", f"u{i % 50}", "c", NOW, NOW + timedelta(days=14))
        )


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1000)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    # one login is one insert (one part on ClickHouse): the fill is what takes the time
    num_keys, num_sessions = (100, 300) if args.quick else (1000, 5000)
    with tempfile.TemporaryDirectory() as tmp:
        for backend, url in (
            ("duckdb", f"duckdb://{tmp}/db.duckdb"),
            ("clickhouse", f"chdb://{tmp}/ch"),
        ):
            store = open_store(url)
            try:
                store.migrate()
                fill(store, num_keys, num_sessions)
                reads: dict[str, Callable[[], object]] = {
                    "get_session": lambda s=store: s.get_session(f"s{7:063x}", NOW),
                    "find_api_key": lambda s=store: s.find_api_key(f"{7:064x}"),
                    "list_api_keys": lambda s=store: s.list_api_keys("p3"),
                    "list_members": lambda s=store: s.list_members("p3"),
                    "get_project": lambda s=store: s.get_project("p3"),
                }
                for name, fn in reads.items():
                    print(f"{backend}_{name}_ms_median={timed(fn, args.repeat):.2f}")
            finally:
                store.close()


if __name__ == "__main__":
    main()
