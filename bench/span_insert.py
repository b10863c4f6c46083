"""CPU and DuckDB memory of one 512-span insert as the spans table grows, per dedupe design.

    python bench/span_insert.py            # stores of 0, 1M and 3M spans
    python bench/span_insert.py --quick    # 0 and 20k spans, a few inserts (make test)

Variants, measured in one process, interleaved (CPU by ``time.process_time``, medians):

- ``pk``: the table with ``PRIMARY KEY (_key_trace, _key_span)`` (an ART index DuckDB keeps
  in memory), a plain ``INSERT … SELECT`` from the registered Arrow batch (the store's path
  before the ``dedupe`` branch; ``INSERT OR IGNORE`` only after a key conflict);
- ``nokey``: the same table without any key, a plain insert (no dedupe at all: the floor);
- ``anti``: no key; rows whose ids are already stored with a start time inside the batch's
  start-time range are left out (``NOT EXISTS`` over the key columns, the range given as
  constants so that DuckDB's zone maps skip the row groups outside it): the store's path
  after the ``dedupe`` branch (``DuckDBStore.insert_batches``);
- ``anti_spread``: ``anti`` with each batch's start times spread over the whole stored range
  (the worst case for the zone maps: every row group is read);
- ``anti_full``: ``anti`` without the range (every stored key is read);
- with ``--all``, ``left`` (the same check as a ``LEFT JOIN … IS NULL``) and ``probe`` (a
  ``SELECT`` of the stored keys first, then the plain insert).

Batches are bench-like LLM spans (``bench/_payload.py``, decoded by the real OTLP decoder) with
fresh ids and start times moving forward at 5,000 spans/s, as a server receives them. Stores
are filled with big ``INSERT … SELECT`` statements of the same rows (5,000 spans/s of start
times), so a 3M-span store takes a minute, not ten. Memory is DuckDB's own
(``duckdb_memory()``: total, and its ``ART_INDEX`` part) per database, with a
``memory_limit`` of 1GB (the store's default until the fifth session).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import structlog

sys.path.insert(0, str(Path(__file__).parent))
from _payload import llm_request  # noqa: E402
from sightline.ingest._decode import Limits, decode_otlp_message  # noqa: E402
from sightline.model import SPAN_FIELDS  # noqa: E402
from sightline.store._arrow import records_to_table  # noqa: E402
from sightline.store._duckdb import DuckDBStore  # noqa: E402

RATE = 5000  # spans per second of start time
T0 = 1_790_000_000 * 10**9  # the stores' first start time, ns
COLS = ", ".join(f'"{c}"' for c in SPAN_FIELDS)
KEYS = "hash(project_id, trace_id), CAST('0x' || span_id AS UBIGINT)"
PLAIN = (
    f"INSERT INTO spans ({COLS}, _key_trace, _key_span, ingest_seq)"  # noqa: S608
    f" SELECT {COLS}, {KEYS}, ? FROM _incoming"
)
ANTI = (
    f"INSERT INTO spans ({COLS}, _key_trace, _key_span, ingest_seq)"  # noqa: S608
    f" SELECT {COLS}, kt, ks, ? FROM (SELECT *, {KEYS.replace(', CAST', ' AS kt, CAST')} AS ks"
    " FROM _incoming) b WHERE NOT EXISTS (SELECT 1 FROM spans s WHERE {range}"
    " s._key_trace = b.kt AND s._key_span = b.ks)"
)

LEFT = (
    f"INSERT INTO spans ({COLS}, _key_trace, _key_span, ingest_seq)"  # noqa: S608
    f" SELECT {', '.join('b.' + c for c in COLS.split(', '))}, b.kt, b.ks, ?"
    f" FROM (SELECT *, {KEYS.replace(', CAST', ' AS kt, CAST')} AS ks FROM _incoming) b"
    " LEFT JOIN (SELECT _key_trace, _key_span FROM spans s WHERE {range} true) s"
    " ON s._key_trace = b.kt AND s._key_span = b.ks WHERE s._key_span IS NULL"
)
PROBE = (
    "SELECT s._key_trace, s._key_span FROM spans s"  # noqa: S608
    f" JOIN (SELECT {KEYS.replace(', CAST', ' AS kt, CAST')} AS ks FROM _incoming) b"
    " ON s._key_trace = b.kt AND s._key_span = b.ks WHERE {range} true"
)


def template(n: int) -> pa.Table:
    req, _ = llm_request(n, start_ns=T0, rng=random.Random(0))
    res = decode_otlp_message(req, "bench", limits=Limits())
    return records_to_table(res.records)


def make_store(path: Path, *, key: bool) -> duckdb.DuckDBPyConnection:
    """A migrated store whose spans table has (or lacks) the primary key."""
    store = DuckDBStore(path)
    store.migrate()
    store.close()
    con = duckdb.connect(str(path), config={"memory_limit": "1GB"})
    ddl = con.execute("SELECT sql FROM duckdb_tables() WHERE table_name = 'spans'").fetchall()[0][0]
    ddl = re.sub(r",\s*PRIMARY KEY\s*\([^)]*\)", "", ddl)
    if key:
        ddl = ddl.rstrip().rstrip(";").rstrip()[:-1] + ", PRIMARY KEY (_key_trace, _key_span))"
    con.execute("DROP TABLE spans")
    con.execute(ddl)
    return con


def fill(con: duckdb.DuckDBPyConnection, tpl: pa.Table, start: int, count: int) -> None:
    """Rows ``start`` .. ``start + count`` of the store: the template's spans, new ids."""
    con.register("_tpl", tpl.append_column("_i", pa.array(range(tpl.num_rows), pa.int64())))
    others = [c for c in SPAN_FIELDS if c not in ("trace_id", "span_id", "start_time", "end_time")]
    step = 500_000
    cols = ", ".join(f'"{c}"' for c in [*others, "trace_id", "span_id", "start_time", "end_time"])
    trace = "lpad(to_hex(g.i), 32, '0')"
    span = "lpad(to_hex(hash(g.i) >> 1), 16, '0')"
    sql = (
        f"INSERT INTO spans ({cols}, _key_trace, _key_span, ingest_seq)"  # noqa: S608
        f" SELECT {', '.join(f't.{c}' for c in others)}, {trace}, {span},"
        " make_timestamp_ns(?::BIGINT + g.i * ?::BIGINT),"
        " make_timestamp_ns(?::BIGINT + g.i * ?::BIGINT + 1000000000),"
        f" hash(t.project_id, {trace}), CAST('0x' || {span} AS UBIGINT), 1"
        " FROM range(?, ?) g(i) JOIN _tpl t ON t._i = g.i % ?"
    )
    for lo in range(start, start + count, step):
        hi = min(lo + step, start + count)
        con.execute(sql, [T0, 10**9 // RATE, T0, 10**9 // RATE, lo, hi, tpl.num_rows])
    con.unregister("_tpl")
    con.execute("CHECKPOINT")


def batch(tpl: pa.Table, first_ns: int, spread_ns: int | None, rng: random.Random) -> pa.Table:
    """The template with fresh ids; start times from ``first_ns`` on at RATE (or spread)."""
    n = tpl.num_rows
    ids = os.urandom(24 * n)
    traces = [ids[24 * j : 24 * j + 16].hex() for j in range(n)]
    spans = [ids[24 * j + 16 : 24 * j + 24].hex() for j in range(n)]
    if spread_ns is None:
        starts = [first_ns + j * (10**9 // RATE) for j in range(n)]
    else:
        starts = [T0 + rng.randrange(spread_ns) for _ in range(n)]
    t = tpl.set_column(1, "trace_id", pa.array(traces, pa.string()))
    t = t.set_column(2, "span_id", pa.array(spans, pa.string()))
    t = t.set_column(6, "start_time", pa.array(starts, pa.timestamp("ns")))
    return t.set_column(7, "end_time", pa.array([s + 10**9 for s in starts], pa.timestamp("ns")))


def range_sql(t: pa.Table) -> str:
    mm = pc.min_max(t.column("start_time").cast(pa.timestamp("us"), safe=False))
    lo, hi = mm["min"].value, mm["max"].value
    return (
        f"s.start_time BETWEEN make_timestamp({int(lo)}::BIGINT)"
        f" AND make_timestamp({int(hi)}::BIGINT) AND"
    )


def insert(con: duckdb.DuckDBPyConnection, t: pa.Table, variant: str) -> float:
    c0 = time.process_time()
    con.register("_incoming", t)
    if variant in ("pk", "nokey"):
        con.execute(PLAIN, [2])
    elif variant == "left":
        con.execute(LEFT.replace("{range}", range_sql(t)), [2])
    elif variant == "probe":
        found = con.execute(PROBE.replace("{range}", range_sql(t))).fetchall()
        assert not found
        con.execute(PLAIN, [2])
    else:
        rng = "" if variant == "anti_full" else range_sql(t)
        con.execute(ANTI.replace("{range}", rng), [2])
    con.unregister("_incoming")
    return time.process_time() - c0


def memory(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    rows = con.execute(
        "SELECT tag, memory_usage_bytes FROM duckdb_memory() WHERE memory_usage_bytes > 0"
    ).fetchall()
    tags = dict(rows)
    return {
        "total_mib": sum(tags.values()) / 2**20,
        "index_mib": tags.get("ART_INDEX", 0) / 2**20,
    }


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def migration(size: int) -> None:
    """Time migration 15 (the spans table rebuilt without its key) on a store of ``size``."""
    from sightline.store import _duckdb
    from sightline.store._migrations import MIGRATIONS

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "old.db")
        _duckdb.MIGRATIONS = [m for m in MIGRATIONS if m[0] < 15]  # type: ignore[misc]
        store = DuckDBStore(path)
        store.migrate()
        store.close()
        _duckdb.MIGRATIONS = MIGRATIONS  # type: ignore[misc]
        con = duckdb.connect(str(path))
        fill(con, template(512), 0, size)
        con.close()
        before = path.stat().st_size
        store = DuckDBStore(path, memory_limit="1GB")
        w0, c0 = time.monotonic(), time.process_time()
        store.migrate()
        wall, cpu = time.monotonic() - w0, time.process_time() - c0
        with store._cursor() as cur:
            n = cur.execute("SELECT count(*) FROM spans").fetchall()[0][0]
            cur.execute("CHECKPOINT")
        store.close()
        print(
            f"span_insert migration15 spans={n} wall_s={wall:.1f} cpu_s={cpu:.1f}"
            f" file_mib_before={before / 2**20:.0f} after={path.stat().st_size / 2**20:.0f}"
        )


def forms(sizes: list[int], rounds: int) -> None:
    """CPU of one insert by statement form, interleaved on one store (twelfth session).

    ``lists``: the store's statement until the twelfth session (the batch registered as a view,
    then dropped; both 50-column lists spelled out); ``byname``: the same view, ``INSERT …
    BY NAME``; ``store``: ``DuckDBStore.insert_batches`` itself (``BY NAME``, the batch read
    from a local variable by DuckDB's replacement scan). All three keep the dedupe check.
    """
    from sightline.store import _duckdb

    by_name = _duckdb._INSERT.replace(_duckdb._INCOMING, "_incoming")
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp, "s.duckdb"))
        store.migrate()
        con = store._write
        first = T0
        for n in sizes:
            tpl = template(n)
            rng = random.Random(1)
            cpu: dict[str, list[float]] = {"lists": [], "byname": [], "store": []}
            for i in range(rounds):
                order = list(cpu) if i % 2 else list(reversed(cpu))
                for form in order:
                    t = batch(tpl, first, None, rng)
                    first += n * (10**9 // RATE)
                    store._ingest_seq += 1
                    c0 = time.process_time()
                    if form == "store":
                        store.insert_batches([t])
                    else:
                        # what insert_batches did before, but for the statement's form
                        rows = _duckdb._first_of_each_span(t)
                        where = _duckdb._start_filter(rows)
                        con.register("_incoming", rows)
                        sql = ANTI if form == "lists" else by_name
                        sql = sql.replace("{range}", where).replace("{where}", where)
                        con.execute(sql, [store._ingest_seq])
                        con.unregister("_incoming")
                    cpu[form].append(time.process_time() - c0)
            for form, xs in cpu.items():
                print(
                    f"span_insert forms rows={n} form={form}"
                    f" cpu_ms_median={statistics.median(xs) * 1000:.2f} (n={len(xs)})"
                )
        stored = con.execute("SELECT count(*), count(DISTINCT (_key_trace, _key_span)) FROM spans")
        total, distinct = stored.fetchone() or (0, 0)
        expected = sum(sizes) * rounds * 3
        if total != expected or distinct != expected:
            raise RuntimeError(f"{expected} spans inserted, {total} stored ({distinct} distinct)")
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="0 and 20k spans, 3 x 5 inserts")
    ap.add_argument("--sizes", default="0,1000000,3000000", help="store sizes (spans)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--inserts", type=int, default=15, help="inserts per variant per round")
    ap.add_argument("--all", action="store_true", help="also the LEFT JOIN and probe forms")
    ap.add_argument(
        "--migration", type=int, metavar="SPANS", help="only time migration 15 on SPANS spans"
    )
    ap.add_argument(
        "--forms",
        action="store_true",
        help="only the insert statement's forms, 1- and 512-span batches (--rounds x 3 each)",
    )
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.forms:
        forms([1, 512], 6 if args.quick else max(args.rounds, 100))
        return
    if args.migration:
        migration(args.migration)
        return
    sizes = [0, 20_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    rounds, per = (3, 5) if args.quick else (args.rounds, args.inserts)
    tpl = template(512)
    rng = random.Random(1)
    print(f"span_insert: 512-span batches, sizes {sizes}, {rounds} rounds x {per} inserts")
    with tempfile.TemporaryDirectory() as tmp:
        stores = {"pk": make_store(Path(tmp, "pk.db"), key=True)}
        stores["nokey"] = make_store(Path(tmp, "nokey.db"), key=False)
        variants = {"pk": "pk", "nokey": "nokey", "anti": "nokey", "anti_spread": "nokey"}
        variants["anti_full"] = "nokey"
        if args.all:
            variants.update(left="nokey", probe="nokey")
        size = 0
        clock = {"pk": 0, "nokey": 0}  # batches inserted past the filled rows, per store
        for target in sizes:
            if target > size:
                for name, con in stores.items():
                    c0 = time.monotonic()
                    fill(con, tpl, size, target - size)
                    print(f"  filled {name} to {target} in {time.monotonic() - c0:.0f} s")
                size = target
            cpu: dict[str, list[float]] = {v: [] for v in variants}
            for _ in range(rounds):
                for v, store in variants.items():
                    con = stores[store]
                    for _ in range(per):
                        first = T0 + (size + clock[store] * 512) * (10**9 // RATE)
                        spread = None if v != "anti_spread" else max(size, 1) * (10**9 // RATE)
                        cpu[v].append(insert(con, batch(tpl, first, spread, rng), v))
                        clock[store] += 1
            for v in variants:
                print(
                    f"span_insert size={size} variant={v}"
                    f" cpu_ms_median={statistics.median(cpu[v]) * 1000:.2f}"
                    f" mean={statistics.mean(cpu[v]) * 1000:.2f}"
                    f" (n={len(cpu[v])})"
                )
            for name, con in stores.items():
                m = memory(con)
                print(
                    f"span_insert size={size} store={name} duckdb_mib={m['total_mib']:.1f}"
                    f" art_index_mib={m['index_mib']:.1f}"
                )
            print(f"span_insert size={size} process_rss_mib={rss_mib():.0f} (both stores)")
        for con in stores.values():
            con.close()


if __name__ == "__main__":
    main()
