"""Sample the memory of a ``sightline serve`` process from inside it, every 10 s.

    PYTHONPATH=bench/memprobe python bench/soak.py --env SIGHTLINE_DUCKDB_MEMORY_LIMIT=256MB

Python imports this file at start when its folder is on ``PYTHONPATH``; in a process whose
arguments include ``serve`` it starts a daemon thread that appends one JSON line per sample to
``MEMPROBE_OUT`` (default ``/tmp/memprobe.jsonl``): seconds since start, ``VmRSS``/``RssAnon``/
``RssFile`` (MiB), glibc's heap (``mallinfo2``: arena, in use, free, mmapped, releasable top),
pymalloc's live blocks, DuckDB's own memory by tag (``duckdb_memory()``) and
``pragma_database_size()`` (memory, limit, file, WAL); with ``MEMPROBE_TYPES=1``, every 60 s,
the most numerous live object types; with ``MEMPROBE_TRIM=1``, ``RssAnon`` again after a
``malloc_trim(0)`` of its own; with ``MEMPROBE_TRACEMALLOC=N`` (frames per trace), tracemalloc
runs from the start, a snapshot at ~180 s is the baseline, and every 120 s after it the 12
source lines whose live Python allocations grew most since then (``tm_growth``, KiB and
count; tracemalloc slows the server, so soak at a lower rate). Diagnostic only: it reads the
store's connection from another thread through a cursor of its own.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time


def _status() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "RssAnon", "RssFile")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) // 1024
    return out


def _duckdb(store: object) -> dict[str, object]:
    cur = store._con.cursor()  # type: ignore[attr-defined]
    try:
        tags = cur.execute(
            "SELECT tag, memory_usage_bytes FROM duckdb_memory() WHERE memory_usage_bytes > 0"
        ).fetchall()
        size = cur.execute(
            "SELECT memory_usage, memory_limit, database_size, wal_size FROM pragma_database_size()"
        ).fetchone()
    finally:
        cur.close()
    return {
        "duck": {t: b >> 20 for t, b in tags},
        "duck_total": sum(b for _, b in tags) >> 20,
        "dbsize": list(size or ()),
    }


def _types(top: int = 12) -> dict[str, int]:
    """Live objects by type, the most numerous first (with ``MEMPROBE_TYPES=1``, every 60 s)."""
    counts: dict[str, int] = {}
    for o in gc.get_objects():
        name = type(o).__name__
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:top])


def _tm_growth(base: object, frames: int) -> list[list[object]]:
    """The 12 tracebacks whose live allocations grew most since the ``base`` snapshot."""
    import tracemalloc

    snap = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    )
    key = "traceback" if frames > 1 else "lineno"
    stats = snap.compare_to(base, key)  # type: ignore[arg-type]
    out: list[list[object]] = []
    for st in stats[:12]:
        where = " <- ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in st.traceback)
        out.append([st.size_diff >> 10, st.count_diff, where])
    return out


def _probe() -> None:
    out = os.environ.get("MEMPROBE_OUT", "/tmp/memprobe.jsonl")  # noqa: S108 - a bench file
    from _mallinfo import LIBC as libc  # this folder is on PYTHONPATH
    from _mallinfo import mallinfo2

    store: object | None = None
    t0 = time.monotonic()
    types, n = bool(os.environ.get("MEMPROBE_TYPES")), 0
    trim = bool(os.environ.get("MEMPROBE_TRIM"))
    tm_frames = int(os.environ.get("MEMPROBE_TRACEMALLOC") or 0)
    tm_base: object | None = None
    tm_last = 0
    while True:
        time.sleep(10)
        if store is None:
            store = next((o for o in gc.get_objects() if type(o).__name__ == "DuckDBStore"), None)
        mi = mallinfo2()
        rec: dict[str, object] = {"t": round(time.monotonic() - t0), **_status()}
        rec.update(
            malloc_arena=mi.arena >> 20,
            malloc_used=mi.uordblks >> 20,
            malloc_free=mi.fordblks >> 20,
            malloc_mmap=mi.hblkhd >> 20,
            malloc_top=mi.keepcost >> 20,
        )
        rec["py_blocks"] = sys.getallocatedblocks()
        if trim:
            # what one malloc_trim(0) hands back at this moment (run the server with
            # SIGHTLINE_MALLOC_TRIM_INTERVAL_S=0 to see what its own trimmer would)
            rec["trim_released"] = bool(libc.malloc_trim(0))
            rec["RssAnon_after_trim"] = _status()["RssAnon"]
        n += 1
        if types and n % 6 == 0:
            rec["types"] = _types()
        if tm_frames:
            import tracemalloc

            if tm_base is None and rec["t"] >= 180:  # type: ignore[operator]
                tm_base = tracemalloc.take_snapshot()
                tm_last = rec["t"]
            elif tm_base is not None and rec["t"] - tm_last >= 120:  # type: ignore[operator]
                rec["tm_growth"] = _tm_growth(tm_base, tm_frames)
                tm_last = rec["t"]
        if store is not None:
            try:
                rec.update(_duckdb(store))
            except Exception as e:  # noqa: BLE001 - a sample lost, not the server
                rec["err"] = repr(e)[:300]
        with open(out, "a") as f:
            f.write(json.dumps(rec) + "\n")


if "serve" in sys.argv:
    if os.environ.get("MEMPROBE_TRACEMALLOC"):
        import tracemalloc

        tracemalloc.start(int(os.environ["MEMPROBE_TRACEMALLOC"]))
    threading.Thread(target=_probe, daemon=True, name="memprobe").start()
