"""DuckDB's peak memory while the store takes 512-span inserts, by ``memory_limit``.

    python bench/checkpoint_memory.py                   # 600 inserts under 128MB ... 1GB
    python bench/checkpoint_memory.py --inserts 100     # shorter

Each limit gets a fresh store (``DuckDBStore``, migrated) and ``--inserts`` batches of the
bench's LLM spans (``span_insert.py``'s template, fresh ids, start times moving at 5,000
spans/s) through ``insert_batches``, the server's write path. A thread samples
``duckdb_memory()`` every 50 ms through its own cursor and keeps each tag's peak. Automatic
checkpoints (every 16 MiB of WAL) are where ``IN_MEMORY_TABLE`` peaks: the rows appended since
the last checkpoint are ~18 MiB when it starts, yet the checkpoint takes what the limit allows
(soak spans: ~370 MiB with 512MB or 1GB, ~240 MiB with 256MB, ~120 MiB with 128MB, the inserts
succeeding under each).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import span_insert as si  # noqa: E402 - bench helpers by path
from sightline.store import DuckDBStore  # noqa: E402


def run(limit: str, inserts: int) -> tuple[dict[str, int], float]:
    with tempfile.TemporaryDirectory() as d:
        store = DuckDBStore(Path(d) / "s.duckdb", memory_limit=limit)
        store.migrate()
        tpl = si.template(512)
        peak: dict[str, int] = {}
        done = threading.Event()

        def sample() -> None:
            cur = store._con.cursor()
            while not done.is_set():
                for tag, used in cur.execute(
                    "SELECT tag, memory_usage_bytes FROM duckdb_memory()"
                ).fetchall():
                    peak[tag] = max(peak.get(tag, 0), used)
                time.sleep(0.05)
            cur.close()

        t = threading.Thread(target=sample)
        t.start()
        rng = random.Random(0)
        first = si.T0
        t0 = time.perf_counter()
        for _ in range(inserts):
            store.insert_batches([si.batch(tpl, first, None, rng)])
            first += 512 * (10**9 // si.RATE)
        elapsed = time.perf_counter() - t0
        done.set()
        t.join()
        store.close()
    return peak, inserts * 512 / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inserts", type=int, default=600, help="512-span inserts per limit [600]")
    ap.add_argument("--limits", default="128MB,256MB,512MB,1GB", help="DuckDB memory limits")
    args = ap.parse_args()
    for limit in args.limits.split(","):
        peak, rate = run(limit, args.inserts)
        tags = " ".join(f"{k}={v >> 20}" for k, v in sorted(peak.items()) if v >> 20)
        print(
            f"checkpoint_memory limit={limit} spans={args.inserts * 512}"
            f" {rate:.0f}/s peak_mib {tags}"
        )


if __name__ == "__main__":
    main()
