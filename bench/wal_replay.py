"""How long a store takes to open after a crash left its write-ahead log unreplayed.

    python bench/wal_replay.py                 # logs of 16 and 60 MiB, 3 crashes each
    python bench/wal_replay.py --quick         # one 4 MiB log (make test)

A child process opens a fresh store (``DuckDBStore``, migrated) and takes 512-span inserts of
the bench's LLM spans (``span_insert.py``'s template, fresh ids, start times moving at 5,000
spans/s) through ``insert_batches`` until the log holds the size asked, then ends with
``os._exit``: no close, no checkpoint, what SIGKILL or the OOM killer leaves. This process
then opens the store as ``sightline serve`` does (``DuckDBStore`` + ``migrate``), which replays
the log, and prints the wall and CPU time of that open (median of ``--runs`` crashes) and of a
second open (the log folded in). The writer checkpoints in its pauses from 16 MiB of log and a
commit at 64 MiB, so 60 MiB is about the most a crash can leave (docs/reliability.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import span_insert as si  # noqa: E402 - bench helpers by path
from sightline.store import DuckDBStore  # noqa: E402


def fill_and_die(path: Path, wal_mib: float) -> None:
    """Insert batches until the log holds ``wal_mib``, then exit without closing the store."""
    import random

    store = DuckDBStore(path)
    store.migrate()
    tpl = si.template(512)
    rng = random.Random(0)
    first = si.T0
    wal = Path(f"{path}.wal")
    n = 0
    while not wal.exists() or wal.stat().st_size < wal_mib * (1 << 20):
        store.insert_batches([si.batch(tpl, first, None, rng)])
        first += 512 * (10**9 // si.RATE)
        n += 1
    print("filled", n * 512, wal.stat().st_size, flush=True)
    os._exit(0)


def open_once(path: Path) -> tuple[float, float, int]:
    w0, c0 = time.perf_counter(), time.process_time()
    store = DuckDBStore(path)
    store.migrate()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    (n,) = store._write.execute("SELECT count(*) FROM spans").fetchone() or (0,)
    store.close()
    return wall, cpu, int(n)


def run(wal_mib: float) -> tuple[int, float, list[tuple[float, float]], list[float]]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.duckdb"
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(path), "--wal-mib", str(wal_mib)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        _, spans_s, wal_s = next(x for x in out if x.startswith("filled ")).split()
        spans, wal_bytes = int(spans_s), int(wal_s)
        if not Path(f"{path}.wal").exists():
            raise RuntimeError("the child left no write-ahead log to replay")
        wall, cpu, stored = open_once(path)
        if stored != spans:
            raise RuntimeError(f"{spans} spans committed, {stored} after the replay")
        again, _, _ = open_once(path)
        return spans, wal_bytes / (1 << 20), [(wall, cpu)], [again]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="16,60", help="log sizes in MiB [16,60]")
    ap.add_argument("--runs", type=int, default=3, help="crashes per size [3]")
    ap.add_argument("--quick", action="store_true", help="one crash with a 4 MiB log")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--wal-mib", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        fill_and_die(args.child, args.wal_mib)
        return
    sizes, runs = (
        ([4.0], 1) if args.quick else ([float(s) for s in args.sizes.split(",")], args.runs)
    )
    for size in sizes:
        opens: list[tuple[float, float]] = []
        agains: list[float] = []
        for _ in range(runs):
            spans, mib, o, a = run(size)
            opens += o
            agains += a
        print(
            f"wal_replay wal_mib={mib:.1f} spans={spans}"
            f" open_s_median={statistics.median(w for w, _ in opens):.3f}"
            f" cpu_s_median={statistics.median(c for _, c in opens):.3f}"
            f" reopen_s_median={statistics.median(agains):.3f} runs={runs}"
        )


if __name__ == "__main__":
    main()
