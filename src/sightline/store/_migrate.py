"""Move an embedded DuckDB installation to ClickHouse (``sightline migrate``).

Spans go through the target's ``insert_batches`` in ingest order, so they are stored exactly as
ingest stores them (and a span already in the target is dropped there). Every other table that
exists on both sides is copied generically: the columns both have, read from DuckDB as Arrow in
chunks, and a row is skipped when its key (the DuckDB primary key, a known natural key, or all
its columns) is already in the target. So a second run, or a run resumed after an interruption,
adds nothing twice; a row already in the target (written there since) is never overwritten.

The evaluation runner's cursors (``eval_cursors``) name positions in the source's commit
sequence; the target numbers its commits differently, so each cursor is translated to the
target commit that holds the same spans (chunks are cut at the cursors for that).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from sightline.errors import ConfigError, StoreError
from sightline.model import SPAN_FIELDS
from sightline.store._arrow import SPAN_SCHEMA

__all__ = ["TableCopy", "migrate_store", "source_path"]

DEFAULT_CHUNK_ROWS = 10_000
"""Rows per read and insert. The span insert's duplicate check sends the chunk's ids as query
parameters (~0.6 MB for 10,000 spans), and each insert makes a part the server merges later."""

_SKIP_TABLES = frozenset({"spans", "schema_migrations", "eval_claims", "leader_leases"})
"""Spans are copied through ``insert_batches``; each store keeps its own migration ledger;
claims and leases of running workers and monitors are transient (taken again after the move)."""

_SEQ_TABLES: dict[str, bool] = {"eval_cursors": True, "eval_frontiers": False}
"""Tables whose ``seq`` column is a position in the commit order (True: with a ``pos``)."""

_NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    # Tables without a primary key in DuckDB whose rows still have an identity.
    "scores": ("project_id", "score_id"),
    "alert_events": ("project_id", "event_id"),
    "dataset_rows": ("project_id", "dataset_id", "row_num"),
}
_CHECK_ROWS = 5_000
"""Rows whose keys one query looks up in the target."""
_MAX_IN_BYTES = 256_000
"""A key column prefilters the lookup with ``IN`` when its distinct values fit in this."""


@dataclasses.dataclass(slots=True)
class TableCopy:
    """What one table's copy did."""

    table: str
    source_rows: int = 0
    added: int = 0

    @property
    def already_present(self) -> int:
        return self.source_rows - self.added


class _Target(Protocol):
    """What the migration needs of the ClickHouse store (CHBase + insert_batches)."""

    def insert_batches(self, batches: Sequence[pa.Table]) -> int: ...
    def _q(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]: ...
    def _insert_arrow(self, table: str, data: pa.Table) -> None: ...


def source_path(url: str) -> Path:
    """The DuckDB file a ``--from`` URL names (``duckdb:///abs/file`` or a plain path)."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme not in ("", "duckdb"):
        raise ConfigError(f"the source must be a DuckDB store (duckdb:///path/file), got {url!r}")
    path = url
    if scheme:
        parts = urlsplit(url)
        path = unquote(parts.netloc + parts.path) if parts.netloc else unquote(parts.path)
    if not path or path == ":memory:":
        raise ConfigError(f"the source URL needs a file: {url!r}")
    return Path(path)


def check_target_url(url: str) -> None:
    """ConfigError unless ``url`` names a ClickHouse store (a server or chdb)."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in ("", "duckdb"):
        raise ConfigError(
            f"the target must be ClickHouse (clickhouse://host:8123/db or chdb:///dir), got {url!r}"
        )
    if scheme not in ("clickhouse", "clickhouses", "chdb"):
        raise ConfigError(
            f"unknown target URL {url!r}: use clickhouse://user:pw@host:8123/db or chdb:///dir"
        )
    from sightline.store._clickhouse_base import parse_clickhouse_url

    parse_clickhouse_url(url)


def migrate_store(
    source_url: str,
    target_url: str,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[str], None] | None = None,
    duckdb_memory_limit: str | None = None,
    duckdb_threads: int | None = None,
) -> list[TableCopy]:
    """Copy a DuckDB store into a ClickHouse store; returns what each table's copy did.

    The source is opened with ``duckdb_memory_limit`` and ``duckdb_threads`` when given (as
    ``serve`` opens it); ``progress`` is told the settings it runs with first.

    Raises ConfigError for a bad URL or a missing source file, StoreError when a store cannot
    be opened (a DuckDB file held by a running server) or a copy fails.
    """
    from sightline.store._duckdb import DuckDBStore
    from sightline.store._duckdb_security import duckdb_settings
    from sightline.store._open import open_store

    if chunk_rows < 1:
        raise ConfigError("chunk_rows must be at least 1")
    path = source_path(source_url)
    check_target_url(target_url)
    if not path.is_file():
        raise ConfigError(f"no DuckDB store at {path}")
    say = progress or (lambda _msg: None)
    try:
        source = DuckDBStore(path, memory_limit=duckdb_memory_limit, threads=duckdb_threads)
    except StoreError as e:
        raise StoreError(
            f"{e}\n(is `sightline serve` running on this store? stop it before migrating)"
        ) from None
    try:
        with source._cursor() as cur:
            say(f"source {path}: {duckdb_settings(cur)}")
        source.migrate()  # an older file gets the columns the target has
        target = open_store(target_url)
        try:
            target.migrate()
            return _copy_all(source, target, chunk_rows, say)  # type: ignore[arg-type]
        finally:
            target.close()
    finally:
        source.close()


def _copy_all(
    source: Any, target: _Target, chunk_rows: int, say: Callable[[str], None]
) -> list[TableCopy]:
    src_tables = _source_tables(source)
    dst_tables = _target_tables(target)
    cursors: list[tuple[str, int, str]] = []
    for table, with_pos in _SEQ_TABLES.items():
        if table in src_tables and table in dst_tables:
            pos = "pos" if with_pos else "''"
            cursors += [
                (str(r[0]), int(r[1]), str(r[2]))
                for r in _duck_rows(source, f"SELECT name, seq, {pos} FROM {table}")  # noqa: S608
            ]
    results = [_copy_spans(source, target, chunk_rows, cursors, say)]
    for table in sorted((set(src_tables) & set(dst_tables)) - _SKIP_TABLES):
        if table.startswith("_"):
            continue
        results.append(
            _copy_table(
                source,
                target,
                table,
                src_tables[table],
                dst_tables[table],
                chunk_rows,
                say,
                transform=_cursor_translator(source, target) if table in _SEQ_TABLES else None,
            )
        )
    return results


# -- spans -----------------------------------------------------------------------------------


def _copy_spans(
    source: Any,
    target: _Target,
    chunk_rows: int,
    cursors: Sequence[tuple[str, int, str]],
    say: Callable[[str], None],
) -> TableCopy:
    """Spans in ingest order, in chunks cut where an evaluation cursor needs a boundary."""
    total = int(_duck_rows(source, "SELECT count(*) FROM spans")[0][0])
    result = TableCopy("spans", source_rows=0)
    # A cursor (S, "") needs a cut after commit S; (S, pos) also one before it, so that the
    # target commit holding S's spans holds nothing else and ``pos`` keeps its meaning.
    cut_after = sorted({s for _, s, _ in cursors} | {s - 1 for _, s, pos in cursors if pos})
    cols = ", ".join(f'"{c}"' for c in SPAN_FIELDS)
    sql = (
        f"SELECT {cols}, ingest_seq FROM spans"  # noqa: S608 - constant column names
        " ORDER BY ingest_seq, project_id, trace_id, span_id"
    )
    say(f"spans: {total} rows to copy")
    for chunk in _chunks(source, sql, chunk_rows, cut_after):
        table = chunk.drop_columns(["ingest_seq"]).cast(SPAN_SCHEMA)
        result.source_rows += table.num_rows
        result.added += target.insert_batches([table])
        say(f"spans: {result.source_rows}/{total} read, {result.added} added")
    return result


def _chunks(source: Any, sql: str, chunk_rows: int, cut_after: Sequence[int]) -> Iterator[pa.Table]:
    """The query's rows in tables of at most ``chunk_rows``, never spanning a cut."""
    pending: list[pa.Table] = []
    pending_rows = 0

    def add(piece: pa.Table) -> Iterator[pa.Table]:
        nonlocal pending, pending_rows
        while piece.num_rows:
            take = min(chunk_rows - pending_rows, piece.num_rows)
            pending.append(piece.slice(0, take))
            pending_rows += take
            piece = piece.slice(take)
            if pending_rows >= chunk_rows:
                yield from flush()

    def flush() -> Iterator[pa.Table]:
        nonlocal pending, pending_rows
        if pending_rows:
            yield pa.concat_tables(pending)
        pending, pending_rows = [], 0

    prev_seq: int | None = None
    with source._cursor() as cur:
        for batch in cur.sql(sql).to_arrow_reader(chunk_rows):
            table = pa.Table.from_batches([batch])
            seqs = table.column("ingest_seq").to_pylist()
            start = 0
            for i, seq in enumerate(seqs):
                before = prev_seq if i == 0 else seqs[i - 1]
                if before is not None and before != seq and _crosses(cut_after, before, seq):
                    yield from add(table.slice(start, i - start))
                    yield from flush()
                    start = i
            prev_seq = seqs[-1] if seqs else prev_seq
            yield from add(table.slice(start))
    yield from flush()


def _crosses(cut_after: Sequence[int], before: int, after: int) -> bool:
    """True if some cut value c has before <= c < after."""
    return any(before <= c < after for c in cut_after)


def _cursor_translator(source: Any, target: _Target) -> Callable[[pa.Table], pa.Table]:
    """Cursor rows' ``seq`` (and ``pos``) moved to the target commit holding the same spans."""

    def target_seq(project_id: str, trace_id: str, span_id: str) -> int | None:
        rows = target._q(
            "SELECT max(ingest_seq) FROM spans WHERE project_id = {p:String}"
            " AND trace_id = {t:String} AND span_id = {s:String}",
            {"p": project_id, "t": trace_id, "s": span_id},
        )
        return int(rows[0][0]) if rows and rows[0][0] else None

    def last_at_or_before(seq: int) -> int:
        """The target commit of the source's last span at or before commit ``seq`` (0: none)."""
        rows = _duck_rows(
            source,
            "SELECT project_id, trace_id, span_id FROM spans WHERE ingest_seq <= ?"
            " ORDER BY ingest_seq DESC, project_id DESC, trace_id DESC, span_id DESC LIMIT 1",
            [seq],
        )
        mapped = target_seq(str(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None
        return mapped or 0

    def translate(table: pa.Table) -> pa.Table:
        seqs: list[int] = []
        poss: list[str] = []
        seq_col = table.column("seq").to_pylist()
        pos_col = table.column("pos").to_pylist() if "pos" in table.column_names else None
        for seq, pos in zip(seq_col, pos_col or [""] * len(seq_col), strict=True):
            if pos:
                pid, tid, sid = ([*str(pos).split("/"), "", "", ""])[:3]  # as the runner reads it
                mapped = target_seq(pid, tid, sid)
                if mapped is not None:
                    seqs.append(mapped)
                    poss.append(str(pos))
                    continue
                # the span is gone (retention, erasure): resume at the start of its commit,
                # scoring a part of it again rather than skipping any of it
                seq = seq - 1
            seqs.append(last_at_or_before(seq))
            poss.append("")
        i = table.schema.get_field_index("seq")
        table = table.set_column(i, "seq", pa.array(seqs, table.schema.field("seq").type))
        if pos_col is not None:
            i = table.schema.get_field_index("pos")
            table = table.set_column(i, "pos", pa.array(poss, table.schema.field("pos").type))
        return table

    return translate


# -- every other table -----------------------------------------------------------------------


def _copy_table(
    source: Any,
    target: _Target,
    table: str,
    src_cols: dict[str, str],
    dst_cols: dict[str, str],
    chunk_rows: int,
    say: Callable[[str], None],
    *,
    transform: Callable[[pa.Table], pa.Table] | None = None,
) -> TableCopy:
    cols = [c for c in src_cols if c in dst_cols]
    key = _key_columns(source, table, cols)
    total = int(_duck_rows(source, f'SELECT count(*) FROM "{table}"')[0][0])  # noqa: S608
    result = TableCopy(table)
    say(f"{table}: {total} rows to copy")
    select = ", ".join(f'"{c}"' for c in cols)
    # In key order, so that the copies of a row (a table without a key can hold identical
    # rows) are read together: each chunk then adds as many copies as the target lacks.
    order = ", ".join(f'"{c}"' for c in key)
    sql = f'SELECT {select} FROM "{table}" ORDER BY {order}'  # noqa: S608 - catalog names

    def copy(chunk: pa.Table) -> None:
        result.source_rows += chunk.num_rows
        fresh = _new_rows(target, table, chunk, key, dst_cols)
        if fresh.num_rows:
            try:
                target._insert_arrow(table, fresh)
            except StoreError as e:
                raise StoreError(f"copying {table} failed: {e}") from None
        result.added += fresh.num_rows
        say(f"{table}: {result.source_rows}/{total} read, {result.added} added")

    carry: pa.Table | None = None
    with source._cursor() as cur:
        for batch in cur.sql(sql).to_arrow_reader(chunk_rows):
            chunk = pa.Table.from_batches([batch])
            if transform is not None:
                chunk = transform(chunk)
            if carry is not None:
                chunk = pa.concat_tables([carry, chunk.cast(carry.schema)])
            cut = _run_start(_keys(chunk, key, dst_cols), chunk.num_rows)
            carry = chunk.slice(cut)  # the last key's rows may go on in the next batch
            if cut:
                copy(chunk.slice(0, cut))
    if carry is not None and carry.num_rows:
        copy(carry)
    return result


def _keys(chunk: pa.Table, key: list[str], types: dict[str, str]) -> list[tuple[Any, ...]]:
    columns = [chunk.column(c).to_pylist() for c in key]
    return [_norm_row(r, key, types) for r in zip(*columns, strict=True)]


def _run_start(keys: Sequence[tuple[Any, ...]], end: int) -> int:
    """The first index of the run of equal keys that ends at ``end - 1``."""
    i = end - 1
    while i > 0 and keys[i - 1] == keys[end - 1]:
        i -= 1
    return max(i, 0)


def _key_columns(source: Any, table: str, cols: list[str]) -> list[str]:
    """The primary key, else the first unique constraint, else a natural key, else all."""
    rows = _duck_rows(
        source,
        "SELECT constraint_type, constraint_column_names FROM duckdb_constraints()"
        " WHERE schema_name = 'main' AND table_name = ?"
        " AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
        " ORDER BY constraint_type = 'PRIMARY KEY' DESC, constraint_index",
        [table],
    )
    for _, names in rows:
        if all(n in cols for n in names):
            return list(names)
    natural = _NATURAL_KEYS.get(table)
    if natural and all(n in cols for n in natural):
        return list(natural)
    return list(cols)


def _new_rows(
    target: _Target, table: str, chunk: pa.Table, key: list[str], dst_cols: dict[str, str]
) -> pa.Table:
    """The rows of ``chunk`` whose key the target does not hold yet (as many times).

    ``chunk`` is in key order; it is looked up ``_CHECK_ROWS`` rows at a time, never splitting
    the copies of one key.
    """
    keys = _keys(chunk, key, dst_cols)
    parts: list[pa.Table] = []
    start = 0
    while start < chunk.num_rows:
        end = min(start + _CHECK_ROWS, chunk.num_rows)
        if end < chunk.num_rows and keys[end - 1] == keys[end]:  # a run crosses the cut
            run = _run_start(keys, end)
            if run > start:
                end = run  # stop before it
            else:  # one key's copies fill the slice: take them all
                while end < chunk.num_rows and keys[end] == keys[start]:
                    end += 1
        parts.append(
            _absent(target, table, chunk.slice(start, end - start), keys[start:end], key, dst_cols)
        )
        start = end
    return pa.concat_tables(parts) if parts else chunk


def _absent(
    target: _Target,
    table: str,
    chunk: pa.Table,
    keys: list[tuple[Any, ...]],
    key: list[str],
    dst_cols: dict[str, str],
) -> pa.Table:
    where: list[str] = []
    params: dict[str, Any] = {}
    for i, col in enumerate(key):
        base = _base_type(dst_cols[col])
        values = chunk.column(col)
        if values.null_count:
            continue
        if base == "String":
            distinct = pc.unique(values).to_pylist()
            if sum(len(v) for v in distinct) <= _MAX_IN_BYTES:
                where.append(f"`{col}` IN {{k{i}:Array(String)}}")
                params[f"k{i}"] = distinct
        elif base.startswith("DateTime64"):
            lo, hi = pc.min_max(values).values()
            where.append(f"`{col}` BETWEEN {{lo{i}:DateTime64(6)}} AND {{hi{i}:DateTime64(6)}}")
            params[f"lo{i}"], params[f"hi{i}"] = _naive(lo.as_py()), _naive(hi.as_py())
    select = ", ".join(f"`{c}`" for c in key)
    sql = f"SELECT {select} FROM `{table}`"  # noqa: S608 - names from the catalog
    if where:
        sql += " WHERE " + " AND ".join(where)
    have = Counter(_norm_row(r, key, dst_cols) for r in target._q(sql, params or None))
    if not have:
        return chunk
    keep: list[bool] = []
    for k in keys:
        if have[k] > 0:
            have[k] -= 1
            keep.append(False)
        else:
            keep.append(True)
    return chunk.filter(pa.array(keep))


def _base_type(ch_type: str) -> str:
    """``LowCardinality(Nullable(String))`` -> ``String``."""
    t = ch_type
    for wrapper in ("LowCardinality(", "Nullable("):
        if t.startswith(wrapper):
            t = t[len(wrapper) : -1]
    return t


_DEFAULTS = {"String": "", "Bool": False}


def _norm_row(row: Sequence[Any], cols: list[str], types: dict[str, str]) -> tuple[Any, ...]:
    """A key comparable across DuckDB's and ClickHouse's Python values."""
    out: list[Any] = []
    for v, c in zip(row, cols, strict=True):
        t = types[c]
        if v is None and "Nullable(" not in t:  # ClickHouse stored the type's default
            base = _base_type(t)
            v = _DEFAULTS.get(base, () if base.startswith("Array") else 0)
        out.append(_norm(v))
    return tuple(out)


def _norm(v: Any) -> Any:
    if isinstance(v, datetime):
        return _naive(v)
    if isinstance(v, list | tuple):
        return tuple(_norm(x) for x in v)
    return v


def _naive(dt: Any) -> Any:
    if isinstance(dt, datetime) and dt.tzinfo is not None:
        return dt.astimezone(UTC).replace(tzinfo=None)
    return dt


# -- catalogs --------------------------------------------------------------------------------


def _duck_rows(source: Any, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with source._cursor() as cur:
        return list(cur.execute(sql, params or []).fetchall())


def _source_tables(source: Any) -> dict[str, dict[str, str]]:
    tables: dict[str, dict[str, str]] = {}
    for table, col, typ in _duck_rows(
        source,
        "SELECT table_name, column_name, data_type FROM duckdb_columns()"
        " WHERE schema_name = 'main' AND NOT internal ORDER BY table_name, column_index",
    ):
        tables.setdefault(str(table), {})[str(col)] = str(typ)
    return tables


def _target_tables(target: _Target) -> dict[str, dict[str, str]]:
    tables: dict[str, dict[str, str]] = {}
    for table, col, typ in target._q(
        # A cluster's tables are Distributed ones over Replicated*MergeTree (docs/deploy.md)
        "SELECT table, name, type FROM system.columns WHERE database = currentDatabase()"
        " AND table IN (SELECT name FROM system.tables WHERE database = currentDatabase()"
        " AND (endsWith(engine, 'MergeTree') OR engine = 'Distributed'))"
        " ORDER BY table, position"
    ):
        if not _IDENT.fullmatch(str(col)) or not _IDENT.fullmatch(str(table)):
            continue  # never put a name that needs escaping into SQL
        tables.setdefault(str(table), {})[str(col)] = str(typ)
    return tables


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
