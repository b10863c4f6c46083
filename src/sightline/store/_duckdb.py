"""The embedded DuckDB trace store: one file under the data directory."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import structlog

from sightline._cursor import decode_cursor, encode_cursor
from sightline.coordination._base import Claim, ClaimsState
from sightline.errors import ConfigError, StoreError, UnstorableBatch
from sightline.model import (
    SPAN_FIELDS,
    Alert,
    AlertEvent,
    Delivery,
    DriftResult,
    Outcome,
    PromptVersion,
    Release,
    RuleVersion,
    Score,
    Silence,
    Span,
)
from sightline.store import (
    _duckdb_alerts,
    _duckdb_budgets,
    _duckdb_costs,
    _duckdb_guardrails,
    _duckdb_outcomes,
    _duckdb_prompts,
    _duckdb_security,
    _duckdb_series,
    _duckdb_users,
    _duckdb_windows,
)
from sightline.store import _duckdb_coord as _co
from sightline.store import _duckdb_evals as _ev
from sightline.store import _duckdb_otel as _otel
from sightline.store._analysis_records import (
    CostQuery,
    CostRow,
    GroupSample,
    LengthSeries,
    PromptSummary,
    TaskCost,
)
from sightline.store._arrow import JSON_FIELDS as _JSON_FIELDS
from sightline.store._duckdb_evals import SCORE_FIELDS, row_to_score
from sightline.store._eval_records import (
    AgreementPair,
    Dataset,
    EvalCursor,
    ScorePage,
    ScoreQuery,
    SeqSpan,
    SeqSpanKey,
    SessionTurn,
)
from sightline.store._migrations import MIGRATIONS
from sightline.store._users import Membership, User, UserSession
from sightline.store.base import (
    DIMENSIONS,
    OUTCOME_FORMULA,
    AlertQuery,
    ApiKey,
    AuditEntry,
    BudgetRow,
    BudgetSpend,
    Deleted,
    DriftQuery,
    GuardrailStats,
    LogPage,
    LogQuery,
    MetricQuery,
    MetricSeries,
    OutcomeGroup,
    OutcomeQuery,
    PrivacySettings,
    Project,
    SampleQuery,
    ScoreDistribution,
    SpanPage,
    SpanQuery,
    SpanSample,
    TraceRollup,
    TraceSummary,
    WindowAgg,
    WindowValue,
)

__all__ = ["DuckDBStore"]

log = structlog.get_logger("sightline.store")

_COLUMNS = ", ".join(f'"{c}"' for c in SPAN_FIELDS)
# Spans have no key index (migration 15): DuckDB keeps an ART index in memory, ~50 MiB per
# million spans, which bounded a store by its memory limit. A span is identified by two
# integers computed by DuckDB (the span id exactly; the project and trace ids folded into a
# 64-bit hash), and the insert leaves out the rows whose key is already stored with a start time
# in the batch's start-time ranges ({where}, constants, so that DuckDB's zone maps skip every
# other row group): a re-sent span has its first copy's start time (as the ClickHouse store
# assumes too), so a retried batch adds nothing at the cost of reading the last row groups.
# Most of a 512-span insert's CPU is fixed, per statement and per column, not per row; two
# forms cut it by ~2.6 ms per commit (of ~8.5 for one row, ~15.5 for 512; python
# bench/span_insert.py --forms): BY NAME instead of two 50-column lists, and the batch read
# from a local variable of insert_batches (_INCOMING, DuckDB's replacement scan) instead of a
# view registered and dropped around each insert (two catalog changes).
_INCOMING = "_sightline_incoming_spans"
_INSERT = (  # {where} is built from integers
    "INSERT INTO spans BY NAME SELECT * FROM (SELECT *, hash(project_id, trace_id) AS _key_trace,"
    " CAST('0x' || span_id AS UBIGINT) AS _key_span, ?::BIGINT AS ingest_seq"
    " FROM _sightline_incoming_spans)"
    " b WHERE NOT EXISTS (SELECT 1 FROM spans s"
    " WHERE {where}s._key_trace = b._key_trace AND s._key_span = b._key_span)"
)
_DATA_ERRORS = (duckdb.ConstraintException, duckdb.ConversionException)
"""What an insert raises for the rows it was given, not for the state of the store."""
_REPAIRED_START = "missing_start_time"
"""The decoder's note on a span whose start time it made up (its end time, or the time it was
received): a re-sent copy may get another one, so such a batch is checked against every span."""
_RANGE_GAP_US = 60_000_000
"""Start times further apart than this split a batch's ranges (a long span ending now)."""
_MAX_RANGES = 8
ROW_GROUP_SIZE = 16_384
"""Rows per row group of what the store writes (DuckDB's default is 122,880). A checkpoint holds
the table's unfinished last row group uncompressed: with soak spans, 122,880 rows took all of a
256MB limit (241 MiB, readers then risk running out), 16,384 take ~107 MiB; and 512-span inserts
ran ~20 % faster, store alone (``python bench/checkpoint_memory.py``). DuckDB does not keep
the size in the file, so every open attaches the file with it."""
CHECKPOINT_THRESHOLD = 64 << 20
"""Write-ahead log size at which a commit checkpoints (DuckDB's ``checkpoint_threshold``; its
default is 16 MiB). A checkpoint blocks commits while it runs (40-250 ms under load), so the
writer checkpoints in the pauses between commits from ``IDLE_CHECKPOINT_BYTES`` on, and only a
burst with no pause (~45,000 spans of ``bench/ingest.py``) reaches this. Uncheckpointed rows
cost memory: ~80 MiB of DuckDB's at 64 MiB of log, ~20 MiB at 16."""
LINK_SCORES_INTERVAL_S = 30.0
"""How often, at most, the writer's idle upkeep links scores stored before their span."""
LINK_SCORES_MAX_AGE = timedelta(days=1)
"""Scores older than this whose span never came are no longer looked for (still joined)."""
IDLE_CHECKPOINT_BYTES = 16 << 20
"""Write-ahead log size from which the writer checkpoints while idle: DuckDB's own threshold.
Each checkpoint rewrites the table's unfinished last row group, so checkpointing smaller logs
costs more CPU in all (4 MiB: +11 µs/span in the server in a 4,000 spans/s soak)."""
_CATALOG = "sightline"
"""The store file's name inside the database instance (attached, then made the default)."""
_PER_US = {"s": 1e-6, "ms": 1e-3, "us": 1, "ns": 1000}
_SELECT = ", ".join(f'"{c}"' for c in SPAN_FIELDS)
_SELECT_SCORES = (
    f"SELECT {', '.join(SCORE_FIELDS)} FROM scores"  # noqa: S608
    " WHERE project_id = ? AND trace_id = ? ORDER BY created_at, score_id"
)
_AGG_SQL = {
    "count": "count({})",
    "sum": "sum({})",
    "avg": "avg({})",
    "min": "min({})",
    "max": "max({})",
    "p50": "quantile_cont({}, 0.5)",
    "p90": "quantile_cont({}, 0.9)",
    "p95": "quantile_cont({}, 0.95)",
    "p99": "quantile_cont({}, 0.99)",
}


def _memory_hint(e: duckdb.Error) -> str:
    """What to do when DuckDB ran out of its memory limit."""
    if isinstance(e, duckdb.OutOfMemoryException) or "failed to allocate" in str(e):
        return " (DuckDB reached its memory limit: raise SIGHTLINE_DUCKDB_MEMORY_LIMIT)"
    return ""


def _ts(dt: datetime) -> datetime:
    """Naive UTC, as the TIMESTAMP columns hold."""
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def _first_of_each_span(table: pa.Table) -> pa.Table:
    """``table`` with each span once, its first row (a batch may hold a span twice)."""
    ids = pc.binary_join_element_wise(
        table.column("project_id"), table.column("trace_id"), table.column("span_id"), "\x00"
    )
    uniq = pc.unique(ids)
    if len(uniq) == table.num_rows:
        return table
    # the row of each id's first occurrence, in table order (unique keeps the order they
    # first occur in)
    return table.take(pc.index_in(uniq, value_set=ids))


def _start_filter(table: pa.Table) -> str:
    """The stored spans a batch is checked against: those in its start-time ranges.

    A condition on constants (integers computed here), ending in ``AND``, or nothing when a
    span's start time was made up by the decoder. Start times more than a minute apart are
    separate ranges, at most ``_MAX_RANGES`` (the largest gaps split), so that one long span
    in a batch of recent ones does not make it read every row group in between.
    """
    notes = pc.list_flatten(table.column("ingest_notes"))
    if len(notes) and pc.any(pc.equal(notes, _REPAIRED_START)).as_py():
        return ""
    col = table.column("start_time")
    per_us = _PER_US[col.type.unit]  # the decoder's batches are in ns; a copied store's in us
    ticks = pc.unique(col.cast(pa.int64())).to_pylist()
    # DuckDB keeps microseconds: the range is widened to whole ones either way
    us = sorted({t // per_us for t in ticks} | {-(-t // per_us) for t in ticks})
    gaps = sorted(
        (us[i + 1] - us[i], i) for i in range(len(us) - 1) if us[i + 1] - us[i] > _RANGE_GAP_US
    )
    cuts = sorted(i for _, i in gaps[-(_MAX_RANGES - 1) :]) if gaps else []
    ranges, lo = [], 0
    for i in [*cuts, len(us) - 1]:
        ranges.append(
            f"s.start_time BETWEEN make_timestamp({int(us[lo])}::BIGINT)"
            f" AND make_timestamp({int(us[i])}::BIGINT)"
        )
        lo = i + 1
    return "(" + " OR ".join(ranges) + ") AND "


_CLOCK_SKEW = timedelta(hours=1)
"""How much earlier than its trace's root a span may start (clock skew between services)."""


class DuckDBStore:
    """TraceStore on a DuckDB file.

    Follows Datasette's discipline: one writer (the group-commit thread) owns writes through
    its own connection; readers use short-lived cursors of the same database instance, which
    see every committed transaction.
    """

    shared = False
    """One process owns a DuckDB file: split roles (``--role``) need a shared store."""

    def __init__(
        self,
        path: Path | str,
        *,
        memory_limit: str | None = None,
        threads: int | None = None,
    ) -> None:
        self.path = str(path)
        self._config: dict[str, str | int] = {}
        """DuckDB settings of the database instance, given at every (re)open."""
        if memory_limit is not None:
            # Bounds DuckDB's buffer cache, indexes and query memory; its own default is 80 %
            # of RAM, so a long-running server's cache otherwise grows with its file.
            self._config["memory_limit"] = memory_limit
        if threads is not None:
            self._config["threads"] = threads
        self._config["checkpoint_threshold"] = f"{CHECKPOINT_THRESHOLD}B"
        self.idle_checkpoint_bytes = IDLE_CHECKPOINT_BYTES
        self.num_idle_checkpoints = 0
        self.link_scores_interval_s = LINK_SCORES_INTERVAL_S
        self.num_linked_scores = 0
        self._next_link = 0.0  # monotonic time of the next link of orphan scores
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # where DuckDB spills beyond the limit: its default for a file opened directly
            self._config.setdefault("temp_directory", self.path + ".tmp")
        self._con = self._connect()
        self._write = self._new_cursor()
        self._admin_lock = threading.Lock()
        self._closed = False
        self._invalid = False
        """A fatal error (e.g. a checkpoint on a full disk) invalidated the database instance:
        DuckDB refuses every statement until it is reopened, which the next write does."""
        self._ingest_seq = 0
        """The last commit's sequence number (``spans.ingest_seq``); the writer owns it."""
        self._signal_keys: dict[str, datetime] | None = None
        """Keys of the metrics and logs requests stored in the last day (their rows'
        ``batch_key``), loaded on the first signal insert; the writer owns it."""

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if self.path == ":memory:":
            try:
                return duckdb.connect(self.path, config=dict(self._config))
            except duckdb.Error as e:
                raise StoreError(f"cannot open DuckDB store at {self.path}: {e}") from None
        # ATTACH is the only way to give the file its row group size (see ROW_GROUP_SIZE). The
        # in-memory instance is named after the file: a second store on the same file in this
        # process shares it (as duckdb.connect(path) would), where a second instance could not
        # attach the file.
        key = hashlib.sha1(str(Path(self.path).resolve()).encode()).hexdigest()[:16]  # noqa: S324
        try:
            con = duckdb.connect(f":memory:sightline_{key}", config=dict(self._config))
        except duckdb.Error as e:
            raise StoreError(f"cannot open DuckDB store at {self.path}: {e}") from None
        try:
            con.execute(
                f"ATTACH IF NOT EXISTS ? AS {_CATALOG} (ROW_GROUP_SIZE {ROW_GROUP_SIZE})",
                [self.path],
            )
            con.execute(f"USE {_CATALOG}")
        except duckdb.Error as e:
            con.close()
            raise StoreError(f"cannot open DuckDB store at {self.path}: {e}") from None
        return con

    def _new_cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of the same database instance whose default is the store's file."""
        cur = self._con.cursor()
        if self.path != ":memory:":
            cur.execute(f"USE {_CATALOG}")  # a cursor starts in the instance's own catalog
        return cur

    # -- lifecycle -----------------------------------------------------------------------------

    def migrate(self) -> int:
        with self._admin_lock:
            con = self._write
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL)"
            )
            done = {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
            version = max(done, default=0)
            for v, sql in MIGRATIONS:
                if v in done:
                    continue
                con.execute("BEGIN")
                try:
                    for stmt in sql:
                        con.execute(stmt)
                    con.execute("INSERT INTO schema_migrations VALUES (?, now())", [v])
                    con.execute("COMMIT")
                except duckdb.Error:
                    con.execute("ROLLBACK")
                    raise
                log.info("migration_applied", version=v)
                version = max(version, v)
                # DuckDB 2.0.1 fails the next commit that appends to a table after an ALTER
                # TABLE ... ADD COLUMN in the same process ("Corrupted segment tree") when the
                # table's row groups are larger than ROW_GROUP_SIZE (a store made before it,
                # or filled by a parallel INSERT ... SELECT), unless the change is
                # checkpointed first
                con.execute("CHECKPOINT")
            # fetchall, not fetchone: DuckDB keeps a half-read result open on the connection
            # and refuses the writer's next statement.
            rows = con.execute("SELECT coalesce(max(ingest_seq), 0) FROM spans").fetchall()
            self._ingest_seq = int(rows[0][0])
            return version

    def ping(self) -> None:
        try:
            with self._cursor() as cur:
                cur.execute("SELECT 1").fetchone()
        except duckdb.Error as e:
            raise StoreError(f"store unreachable: {e}") from None

    def check_writable(self) -> None:
        self._reopen_if_invalid()
        con = self._write
        try:
            con.execute("BEGIN")
            con.execute("INSERT OR REPLACE INTO store_probe VALUES (1, now())")
            con.execute("COMMIT")
        except duckdb.Error as e:
            self._rollback_after(e)
            raise StoreError(f"store not writable: {e}") from e

    def checkpoint_when_idle(self) -> bool:
        """Checkpoint once the write-ahead log holds ``idle_checkpoint_bytes`` (writer only).

        See :data:`CHECKPOINT_THRESHOLD`. First, every ``link_scores_interval_s``, the scores
        stored before their span get its start time (``_duckdb_evals.link_orphan_scores``): the
        writer is idle after a commit, when a span such a score waited for may have come.
        """
        if self._invalid or self._closed:
            return False
        linked = self._link_orphan_scores()
        return self._checkpoint_when_idle() or linked

    def _checkpoint_when_idle(self) -> bool:
        if self.path == ":memory:" or self._invalid:
            return False
        try:
            wal = os.path.getsize(self.path + ".wal")
        except OSError:
            return False  # no log: nothing since the last checkpoint
        if wal < self.idle_checkpoint_bytes:
            return False
        try:
            self._write.execute("CHECKPOINT")
        except duckdb.TransactionException as e:
            # another checkpoint is running (erasure's, sightline compact): it does the work
            log.debug("idle_checkpoint_skipped", error=str(e))
            return False
        except duckdb.Error as e:
            self._rollback_after(e)  # a full disk invalidates it: the next write reopens
            raise StoreError(f"checkpoint failed: {e}{_memory_hint(e)}") from e
        self.num_idle_checkpoints += 1
        return True

    def _link_orphan_scores(self) -> bool:
        now = time.monotonic()
        if now < self._next_link:
            return False
        self._next_link = now + self.link_scores_interval_s
        # a score write holds the lock for milliseconds; the writer does not wait for it (it
        # would hold up the next span commit): the next idle moment tries again
        if not self._admin_lock.acquire(blocking=False):
            self._next_link = now
            return False
        try:
            with self._cursor() as cur:
                cur.execute("BEGIN")
                try:
                    n = _ev.link_orphan_scores(cur, datetime.now(UTC) - LINK_SCORES_MAX_AGE)
                    cur.execute("COMMIT")
                except duckdb.Error as e:
                    with suppress(duckdb.Error):  # an invalidated database: the probe reopens
                        cur.execute("ROLLBACK")
                    # upkeep: logged, not raised; the metrics still count these scores (joined)
                    log.warning("link_orphan_scores_failed", error=str(e))
                    return False
        finally:
            self._admin_lock.release()
        if n:
            self.num_linked_scores += n
            log.debug("orphan_scores_linked", scores=n)
        return n > 0

    def _rollback_after(self, e: duckdb.Error) -> None:
        """Roll the writer's transaction back after ``e``; remember a fatal error."""
        # an attached file invalidated by a failed checkpoint says so, as an ordinary error
        if isinstance(e, duckdb.FatalException) or "has been invalidated" in str(e):
            self._invalid = True
            return
        try:
            self._write.execute("ROLLBACK")
        except duckdb.Error:
            pass

    def _reopen_if_invalid(self) -> None:
        """Reopen the database after a fatal error (the writer thread only).

        Reopening replays the write-ahead log, so every committed transaction is kept; readers
        get errors while it happens and the new connection afterwards.
        """
        if not self._invalid or self._closed:
            return
        if self.path != ":memory:":
            # the instance outlives this store's connections while a reader holds a cursor:
            # detach the invalidated file so that the new connection attaches it afresh
            try:
                self._write.execute("USE memory")
                self._write.execute(f"DETACH {_CATALOG}")
            except duckdb.Error:
                pass
        for c in (self._write, self._con):
            try:
                c.close()
            except duckdb.Error:
                pass
        try:
            self._con = self._connect()
            self._write = self._new_cursor()
            rows = self._write.execute("SELECT coalesce(max(ingest_seq), 0) FROM spans").fetchall()
        except duckdb.Error as e:
            raise StoreError(f"cannot reopen DuckDB store: {e}") from None
        self._ingest_seq = int(rows[0][0])
        self._invalid = False
        log.warning("store_reopened", path=self.path)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._write.close()
        self._con.close()

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._closed:
            raise StoreError("store is closed")
        cur = self._new_cursor()
        try:
            yield cur
        finally:
            cur.close()

    # -- writes --------------------------------------------------------------------------------

    def insert_batches(self, batches: Sequence[pa.Table]) -> int:
        table = batches[0] if len(batches) == 1 else pa.concat_tables(batches)
        if table.num_rows == 0:
            return 0
        rows = _first_of_each_span(table)
        self._reopen_if_invalid()
        con = self._write
        seq = self._ingest_seq + 1
        _sightline_incoming_spans = rows  # noqa: F841 - the statement reads it by name
        try:
            # one statement, its own transaction: the check and the insert see the same spans
            # (this thread is the only writer of spans)
            con.execute(_INSERT.replace("{where}", _start_filter(rows), 1), [seq])
            self._ingest_seq = seq
        except duckdb.Error as e:
            self._rollback_after(e)
            if isinstance(e, _DATA_ERRORS):
                raise UnstorableBatch(f"span insert refused the batch: {e}") from e
            raise StoreError(f"span insert failed: {e}{_memory_hint(e)}") from e
        return int(table.num_rows)

    # -- span reads ----------------------------------------------------------------------------

    def list_spans(self, query: SpanQuery) -> SpanPage:
        where: list[str] = ["project_id = ?"]
        params: list[Any] = [query.project_id]
        for col in ("kind", "model", "user_id", "session_id", "trace_id", "status"):
            v = getattr(query, col)
            if v is not None:
                where.append(f"{col} = ?")
                params.append(v)
        if query.start is not None:
            where.append("start_time >= ?")
            params.append(_ts(query.start))
        if query.end is not None:
            where.append("start_time < ?")
            params.append(_ts(query.end))
        if query.root_only:
            where.append("parent_span_id IS NULL")
        if query.text and ("%" in query.text or "_" in query.text):
            where.append("(contains(lower(input), ?) OR contains(lower(output), ?))")
            params += [query.text.lower(), query.text.lower()]
        elif query.text:
            # ILIKE without ESCAPE costs ~20% less CPU than contains(lower(...)) (with ESCAPE
            # it costs more), with the same answers, Unicode case folding included; a text
            # with LIKE's own wildcards keeps contains.
            where.append("(input ILIKE ? OR output ILIKE ?)")
            params += [f"%{query.text}%", f"%{query.text}%"]
        if query.cursor:
            ts, tid, sid = _decode_cursor(query.cursor)
            where.append("(start_time, trace_id, span_id) < (?, ?, ?)")
            params += [ts, tid, sid]
        if query.trace_status is None:
            rows = self._span_page_rows(where, params, query.limit)
        else:
            rows = self._trace_status_rows(query, where, params)
        more = len(rows) > query.limit
        spans = [_row_to_span(r) for r in rows[: query.limit]]
        cursor = None
        if more and spans:
            last = spans[-1]
            cursor = _encode_cursor(last.start_time, last.trace_id, last.span_id)
        return SpanPage(spans, cursor)

    def _span_page_rows(self, where: list[str], params: list[Any], limit: int) -> list[Any]:
        order = " ORDER BY start_time DESC, trace_id DESC, span_id DESC"
        # The page's row ids first, then its rows: a filter on the texts otherwise makes the
        # scan read every column of every row (a search of 1M spans: 250 -> 170 ms of CPU).
        sql = (
            f"SELECT {_SELECT} FROM spans WHERE rowid IN ("  # noqa: S608
            f"SELECT rowid FROM spans WHERE {' AND '.join(where)}{order} LIMIT ?){order}"
        )
        with self._cursor() as cur:
            return cur.execute(sql, [*params, limit + 1]).fetchall()

    def _trace_status_rows(
        self, query: SpanQuery, where: list[str], params: list[Any]
    ) -> list[Any]:
        """The page of spans of traces with (``error``) or without (``ok``) an errored span.

        A semi- or anti-join keeps DuckDB from reading only the newest row groups for the
        page: it sorts every match (an ``ok`` page over 7 days of 1M spans: 340 ms). So the
        newest hour is asked first, then windows 8x wider down to the range's start: a window
        that holds a page holds the newest page. An errored span is looked for from an hour
        (of clock skew between services) before its window.
        """
        op = "IN" if query.trace_status == "error" else "NOT IN"
        if query.cursor:
            newest = _decode_cursor(query.cursor)[0].replace(tzinfo=UTC)
        else:
            newest = query.end or datetime.now(UTC)
        width = timedelta(hours=1)
        while True:
            low: datetime | None = newest - width
            if query.start is None or (low is not None and low <= query.start):
                low = None  # the range's own start bounds the last window
            w, p = list(where), list(params)
            if low is not None:
                w.append("start_time >= ?")
                p.append(_ts(low))
            sub = "SELECT _key_trace, trace_id FROM spans WHERE project_id = ? AND status = 'error'"
            p.append(query.project_id)
            since = low if low is not None else query.start
            if since is not None:
                sub += " AND start_time >= ?"
                p.append(_ts(since - _CLOCK_SKEW))
            w.append(f"(_key_trace, trace_id) {op} ({sub})")
            rows = self._span_page_rows(w, p, query.limit)
            if len(rows) > query.limit or low is None:
                return rows
            width *= 8

    def get_trace(
        self,
        project_id: str,
        trace_id: str,
        *,
        limit: int | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[Span]:
        # _key_trace (the key's hashed prefix) narrows a 1M-span scan ~6x before the string
        # compares (95 -> 15 ms here)
        sql = (
            f"SELECT {_SELECT} FROM spans WHERE _key_trace = hash(?, ?)"  # noqa: S608
            " AND project_id = ? AND trace_id = ?"
        )
        params: list[Any] = [project_id, trace_id, project_id, trace_id]
        if after is not None:
            sql += " AND (start_time, span_id) > (?, ?)"
            params += [_ts(after[0]), after[1]]
        sql += " ORDER BY start_time, span_id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._cursor() as cur:
            rows = cur.execute(sql, params).fetchall()
        return [_row_to_span(r) for r in rows]

    def summarize_trace(self, project_id: str, trace_id: str) -> TraceSummary | None:
        with self._cursor() as cur:
            row = cur.execute(
                "SELECT count(*), min(start_time), max(end_time), sum(coalesce(cost_usd, 0)),"
                " sum(CASE WHEN kind = 'llm' THEN coalesce(input_tokens, 0) ELSE 0 END),"
                " sum(CASE WHEN kind = 'llm' THEN coalesce(output_tokens, 0) ELSE 0 END)"
                " FROM spans WHERE _key_trace = hash(?, ?) AND project_id = ? AND trace_id = ?",
                [project_id, trace_id, project_id, trace_id],
            ).fetchone()
        if row is None or not row[0]:
            return None
        return TraceSummary(
            num_spans=int(row[0]),
            start_time=row[1].replace(tzinfo=UTC),
            end_time=row[2].replace(tzinfo=UTC),
            cost_usd=float(row[3] or 0.0),
            input_tokens=int(row[4] or 0),
            output_tokens=int(row[5] or 0),
        )

    def summarize_traces(
        self, project_id: str, trace_ids: Sequence[str], *, since: datetime | None = None
    ) -> list[TraceRollup]:
        ids = sorted(set(trace_ids))
        if not ids:
            return []
        # The time bound narrows the scan to the page's hours (zone maps); _key_trace would
        # not: 50 random hashes span every row group. list_distinct costs ~40% less than an
        # aggregate's DISTINCT ... ORDER BY (a sort per group).
        where = "project_id = ?"
        params: list[Any] = [project_id]
        if since is not None:
            where += " AND start_time >= ?"
            params.append(_ts(since))
        sql = (
            "SELECT trace_id, count(*), count(*) FILTER (WHERE status = 'error'),"  # noqa: S608
            " list_sort(list_distinct(list(model) FILTER (WHERE kind = 'llm'))),"
            " sum(coalesce(cost_usd, 0)),"
            " sum(CASE WHEN kind = 'llm' THEN coalesce(input_tokens, 0) ELSE 0 END),"
            " sum(CASE WHEN kind = 'llm' THEN coalesce(output_tokens, 0) ELSE 0 END)"
            f" FROM spans WHERE {where}"
            f" AND trace_id IN ({', '.join(['?'] * len(ids))}) GROUP BY trace_id"
        )
        with self._cursor() as cur:
            rows = cur.execute(sql, params + ids).fetchall()
        return [TraceRollup.from_row(r) for r in rows]

    def add_scores(self, scores: Sequence[Score]) -> None:
        with self._admin_lock, self._cursor() as cur:
            cur.execute("BEGIN")
            try:
                _ev.insert_scores(cur, scores)
                cur.execute("COMMIT")
            except duckdb.Error as e:
                cur.execute("ROLLBACK")
                raise StoreError(f"score insert failed: {e}") from e

    def list_scores(self, project_id: str, trace_id: str) -> list[Score]:
        with self._cursor() as cur:
            rows = cur.execute(_SELECT_SCORES, [project_id, trace_id]).fetchall()
        return [row_to_score(r) for r in rows]

    def find_span_trace(self, project_id: str, span_id: str) -> str | None:
        with self._cursor() as cur:
            row = cur.execute(
                "SELECT trace_id FROM spans WHERE project_id = ? AND span_id = ? LIMIT 1",
                [project_id, span_id],
            ).fetchone()
        return str(row[0]) if row else None

    def count_spans(self, project_id: str) -> int:
        with self._cursor() as cur:
            row = cur.execute(
                "SELECT count(*) FROM spans WHERE project_id = ?", [project_id]
            ).fetchone()
        return int(row[0]) if row else 0

    def first_span_time(self, project_id: str) -> datetime | None:
        with self._cursor() as cur:
            row = cur.execute(
                "SELECT min(start_time) FROM spans WHERE project_id = ?", [project_id]
            ).fetchone()
        return row[0].replace(tzinfo=UTC) if row and row[0] is not None else None

    # -- evaluation: SQL in _duckdb_evals.py -------------------------------------------------

    def last_ingest_seq(self) -> int:
        return self._ingest_seq

    def list_spans_after(
        self, cursor: EvalCursor, *, upto_seq: int, kinds: Sequence[str] | None, limit: int
    ) -> list[SeqSpan]:
        return _ev.list_spans_after(self, cursor, upto_seq=upto_seq, kinds=kinds, limit=limit)

    def list_span_keys_after(
        self, cursor: EvalCursor, *, upto_seq: int, kinds: Sequence[str] | None, limit: int
    ) -> list[SeqSpanKey]:
        return _ev.list_span_keys_after(self, cursor, upto_seq=upto_seq, kinds=kinds, limit=limit)

    def get_traces(
        self,
        project_id: str,
        trace_ids: Sequence[str],
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        kinds: Sequence[str] | None = None,
    ) -> dict[str, list[SeqSpan]]:
        return _ev.get_traces(self, project_id, trace_ids, start=start, end=end, kinds=kinds)

    def list_session_turns(
        self,
        project_id: str,
        session_ids: Sequence[str],
        *,
        kinds: Sequence[str],
        start: datetime,
        end: datetime,
    ) -> list[SessionTurn]:
        return _ev.list_session_turns(
            self, project_id, session_ids, kinds=kinds, start=start, end=end
        )

    def get_eval_cursor(self, name: str) -> EvalCursor | None:
        return _ev.get_eval_cursor(self, name)

    def append_eval_scores(
        self, scores: Sequence[Score], *, cursor_name: str, cursor: EvalCursor
    ) -> None:
        _ev.append_eval_scores(self, scores, cursor_name=cursor_name, cursor=cursor)

    def query_scores(self, query: ScoreQuery) -> ScorePage:
        return _ev.query_scores(self, query)

    def score_names(self, project_id: str) -> set[tuple[str, str]]:
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT DISTINCT name, source FROM scores WHERE project_id = ?", [project_id]
            ).fetchall()
        return {(str(r[0]), str(r[1])) for r in rows}

    def score_distributions(
        self, project_id: str, start: datetime, end: datetime, *, source: str
    ) -> list[ScoreDistribution]:
        return _ev.score_distributions(self, project_id, start, end, source)

    # -- scale-out coordination ------------------------------------------------------------------

    shared = False
    """One process only: DuckDB allows one writer process (split roles need a shared store)."""

    def append_scores_once(self, scores: Sequence[Score], *, since: datetime | None = None) -> int:
        return _co.append_scores_once(self, scores, since=since)

    def claims_state(self, name: str) -> ClaimsState:
        return _co.claims_state(self, name)

    def claim_range(
        self, name: str, *, lo: int, hi: int, owner: str, lease_s: float, start_seq: int = 0
    ) -> Claim | None:
        return _co.claim_range(
            self, name, lo=lo, hi=hi, owner=owner, lease_s=lease_s, start_seq=start_seq
        )

    def take_over_claim(self, name: str, *, owner: str, lease_s: float) -> Claim | None:
        return _co.take_over_claim(self, name, owner=owner, lease_s=lease_s)

    def renew_claim(self, claim: Claim, *, lease_s: float) -> Claim | None:
        return _co.renew_claim(self, claim, lease_s=lease_s)

    def complete_claim(self, claim: Claim) -> bool:
        return _co.complete_claim(self, claim)

    def acquire_leader(self, name: str, *, owner: str, lease_s: float) -> bool:
        return _co.acquire_leader(self, name, owner=owner, lease_s=lease_s)

    def release_leader(self, name: str, *, owner: str) -> None:
        _co.release_leader(self, name, owner=owner)

    def list_trace_scores(self, project_id: str, trace_ids: Sequence[str]) -> list[Score]:
        return _ev.list_trace_scores(self, project_id, trace_ids)

    def list_scores_created_after(
        self, after: datetime, *, source: str, name: str, limit: int
    ) -> list[Score]:
        return _ev.list_scores_created_after(self, after, source=source, name=name, limit=limit)

    def list_agreement_pairs(self, project_id: str) -> list[AgreementPair]:
        return _ev.list_agreement_pairs(self, project_id)

    def create_dataset(self, dataset: Dataset, rows: Sequence[dict[str, Any]]) -> None:
        _ev.create_dataset(self, dataset, rows)

    def list_datasets(self, project_id: str) -> list[Dataset]:
        return _ev.list_datasets(self, project_id)

    def get_dataset(self, project_id: str, dataset_id: str) -> Dataset | None:
        return _ev.get_dataset(self, project_id, dataset_id)

    def get_dataset_rows(self, project_id: str, dataset_id: str) -> list[dict[str, Any]]:
        return _ev.get_dataset_rows(self, project_id, dataset_id)

    # -- metrics -------------------------------------------------------------------------------

    def query_metric(self, query: MetricQuery) -> list[MetricSeries]:
        m = query.metric
        if m.otel_name is not None:
            return _otel.query_otel_metric(self, query)
        if m.score_name is not None:
            return _ev.query_score_metric(self, query)
        if m.formula == OUTCOME_FORMULA:
            return _duckdb_outcomes.query_outcome_metric(self, query)
        if m.formula is not None:
            value = m.formula
        elif m.column is not None:
            value = _AGG_SQL[query.agg].format(f'"{m.column}"')
        else:
            raise ConfigError(f"metric {m.name!r} has neither a column nor a formula")
        where, params = (
            ["project_id = ?", "start_time >= ?", "start_time < ?"],
            [query.project_id, _ts(query.start), _ts(query.end)],
        )
        kind = query.filters.get("kind", m.kind)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        for dim, v in query.filters.items():
            if dim == "kind":
                continue
            if dim not in DIMENSIONS:
                raise ConfigError(f"cannot filter by {dim!r}")
            where.append(f'"{dim}" = ?')
            params.append(v)
        for dim in query.group_by:
            if dim not in DIMENSIONS:
                raise ConfigError(f"cannot group by {dim!r}")
        groups = [f'"{d}"' for d in query.group_by]
        if query.step_s:
            bucket = f"time_bucket(INTERVAL '{int(query.step_s)} seconds', start_time, ?)"
            params.insert(0, _ts(query.start))
        else:
            bucket = "CAST(? AS TIMESTAMP)"
            params.insert(0, _ts(query.start))
        select = ", ".join([f"{bucket} AS _t", *groups, f"{value} AS _v"])
        group_clause = ", ".join(["_t", *groups])
        sql = (
            f"SELECT {select} FROM spans WHERE {' AND '.join(where)}"  # noqa: S608
            f" GROUP BY {group_clause} ORDER BY {', '.join(groups + ['_t'])}"
        )
        with self._cursor() as cur:
            rows = cur.execute(sql, params).fetchall()
        series: dict[tuple[Any, ...], MetricSeries] = {}
        for row in rows:
            key = tuple(row[1:-1])
            s = series.get(key)
            if s is None:
                s = series[key] = MetricSeries(dict(zip(query.group_by, key, strict=True)), [])
            v = row[-1]
            s.points.append((row[0].replace(tzinfo=UTC), None if v is None else float(v)))
        return list(series.values())

    def query_metrics(self, queries: Sequence[MetricQuery]) -> list[list[MetricSeries]]:
        return _duckdb_series.query_metrics(self, queries)

    # -- projects and keys ---------------------------------------------------------------------

    def create_project(self, project_id: str) -> Project:
        with self._admin_lock, self._cursor() as cur:
            try:
                cur.execute("INSERT INTO projects (id, created_at) VALUES (?, now())", [project_id])
            except duckdb.ConstraintException:
                raise ConfigError(f"project {project_id!r} already exists") from None
        p = self.get_project(project_id)
        if p is None:
            raise StoreError(f"project {project_id!r} vanished after creation")
        return p

    def get_project(self, project_id: str) -> Project | None:
        with self._cursor() as cur:
            row = cur.execute(
                "SELECT id, created_at FROM projects WHERE id = ?", [project_id]
            ).fetchone()
        return Project(row[0], row[1].replace(tzinfo=UTC)) if row else None

    def list_projects(self) -> list[Project]:
        with self._cursor() as cur:
            rows = cur.execute("SELECT id, created_at FROM projects ORDER BY id").fetchall()
        return [Project(r[0], r[1].replace(tzinfo=UTC)) for r in rows]

    def add_api_key(self, key: ApiKey) -> None:
        with self._admin_lock, self._cursor() as cur:
            cur.execute(
                "INSERT INTO api_keys (key_hash, prefix, project_id, role, created_at, name)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    key.key_hash,
                    key.prefix,
                    key.project_id,
                    key.role,
                    _ts(key.created_at),
                    key.name,
                ],  # fmt: skip
            )

    def find_api_key(self, key_hash: str) -> ApiKey | None:
        with self._cursor() as cur:
            row = cur.execute(
                "SELECT key_hash, prefix, project_id, role, created_at FROM api_keys"
                " WHERE key_hash = ? AND revoked_at IS NULL",
                [key_hash],
            ).fetchone()
        if row is None:
            return None
        return ApiKey(row[0], row[1], row[2], row[3], row[4].replace(tzinfo=UTC))

    # -- monitoring (SQL in _duckdb_windows and _duckdb_alerts) --------------------------------

    def query_windows(
        self, project_id: str, end: datetime, aggs: Sequence[WindowAgg]
    ) -> list[list[WindowValue]]:
        return _duckdb_windows.query_windows(self, project_id, end, aggs)

    def add_rule_version(self, rule: RuleVersion) -> RuleVersion:
        return _duckdb_alerts.add_rule_version(self, rule)

    def list_rules(self, project_id: str, *, include_deleted: bool = False) -> list[RuleVersion]:
        return _duckdb_alerts.list_rules(self, project_id, include_deleted=include_deleted)

    def list_rule_versions(self, project_id: str, name: str) -> list[RuleVersion]:
        return _duckdb_alerts.list_rule_versions(self, project_id, name)

    def save_alerts(
        self,
        alerts: Sequence[Alert],
        events: Sequence[AlertEvent],
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        _duckdb_alerts.save_alerts(self, alerts, events, deliveries)

    def list_alerts(self, query: AlertQuery) -> list[Alert]:
        return _duckdb_alerts.list_alerts(self, query)

    def get_alert(self, project_id: str, alert_id: str) -> Alert | None:
        return _duckdb_alerts.get_alert(self, project_id, alert_id)

    def list_active_alerts(self) -> list[Alert]:
        return _duckdb_alerts.list_active_alerts(self)

    def list_alert_events(self, project_id: str, alert_id: str) -> list[AlertEvent]:
        return _duckdb_alerts.list_alert_events(self, project_id, alert_id)

    def save_silence(self, silence: Silence) -> None:
        _duckdb_alerts.save_silence(self, silence)

    def list_silences(self, project_id: str) -> list[Silence]:
        return _duckdb_alerts.list_silences(self, project_id)

    def save_delivery(self, delivery: Delivery) -> None:
        _duckdb_alerts.save_delivery(self, delivery)

    def list_deliveries(
        self,
        project_id: str | None,
        *,
        alert_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        return _duckdb_alerts.list_deliveries(
            self, project_id, alert_id=alert_id, status=status, limit=limit
        )

    def add_drift_results(self, results: Sequence[DriftResult]) -> None:
        _duckdb_alerts.add_drift_results(self, results)

    def list_drift_results(self, query: DriftQuery) -> list[DriftResult]:
        return _duckdb_alerts.list_drift_results(self, query)

    def sample_spans(self, query: SampleQuery) -> list[SpanSample]:
        return _duckdb_alerts.sample_spans(self, query)

    # -- business outcomes (SQL in _duckdb_outcomes) ---------------------------------------------

    def add_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        _duckdb_outcomes.add_outcomes(self, outcomes)

    def list_outcomes(
        self,
        project_id: str,
        *,
        trace_id: str | None = None,
        session_id: str | None = None,
        name: str | None = None,
        limit: int = 100,
    ) -> list[Outcome]:
        return _duckdb_outcomes.list_outcomes(
            self, project_id, trace_id=trace_id, session_id=session_id, name=name, limit=limit
        )

    def query_outcomes(self, query: OutcomeQuery) -> list[OutcomeGroup]:
        return _duckdb_outcomes.query_outcomes(self, query)

    def guardrail_stats(
        self, project_id: str, start: datetime, end: datetime
    ) -> list[GuardrailStats]:
        return _duckdb_guardrails.guardrail_stats(self, project_id, start, end)

    # -- budgets (SQL in _duckdb_budgets) ------------------------------------------------------

    def list_budgets(self, project_id: str) -> list[BudgetRow]:
        return _duckdb_budgets.list_budgets(self, project_id)

    def put_budget(self, row: BudgetRow) -> None:
        _duckdb_budgets.put_budget(self, row)

    def delete_budget(self, project_id: str, name: str) -> bool:
        return _duckdb_budgets.delete_budget(self, project_id, name)

    def budget_spend(
        self,
        project_id: str,
        since: datetime,
        *,
        column: str | None = None,
        value: str | None = None,
        until: datetime | None = None,
    ) -> BudgetSpend:
        return _duckdb_budgets.budget_spend(self, project_id, since, column, value, until)

    def budget_spend_by(
        self, project_id: str, since: datetime, column: str, *, until: datetime | None = None
    ) -> dict[str, float]:
        return _duckdb_budgets.budget_spend_by(self, project_id, since, column, until)

    def budget_spend_each(
        self, project_id: str, since: datetime, column: str, *, until: datetime | None = None
    ) -> dict[str, BudgetSpend]:
        return _duckdb_budgets.budget_spend_each(self, project_id, since, column, until)

    def mark_budget_alert(
        self,
        project_id: str,
        budget: str,
        scope_value: str,
        period_start: datetime,
        threshold: float,
        spent_usd: float,
        at: datetime,
        deliveries: Sequence[Delivery] = (),
    ) -> bool:
        return _duckdb_budgets.mark_budget_alert(
            self, project_id, budget, scope_value, period_start, threshold, spent_usd, at,
            deliveries,
        )  # fmt: skip

    # -- OTLP metrics and logs, releases (SQL in _duckdb_otel) ---------------------------------

    def insert_signal_batches(self, signal: str, batches: Sequence[pa.Table]) -> int:
        return _otel.insert_signal_batches(self, signal, batches)

    def list_logs(self, query: LogQuery) -> LogPage:
        return _otel.list_logs(self, query)

    def list_otel_metrics(self, project_id: str) -> list[dict[str, Any]]:
        return _otel.list_otel_metrics(self, project_id)

    def has_otel_metric(self, project_id: str, name: str) -> bool:
        return _otel.has_otel_metric(self, project_id, name)

    def add_release(self, release: Release) -> None:
        _otel.add_release(self, release)

    def list_releases(
        self,
        project_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 200,
    ) -> list[Release]:
        return _otel.list_releases(self, project_id, start=start, end=end, limit=limit)

    def get_release(self, project_id: str, release_id: str) -> Release | None:
        return _otel.get_release(self, project_id, release_id)

    def detect_releases(
        self, project_id: str, now: datetime, *, after_seq: int = 0
    ) -> list[Release]:
        return _otel.detect_releases(self, project_id, now, after_seq=after_seq)

    def compare_values(
        self, project_id: str, start: datetime, end: datetime, service: str | None
    ) -> dict[str, list[float]]:
        return _otel.compare_values(self, project_id, start, end, service)

    # -- privacy and security (SQL in _duckdb_security) ----------------------------------------

    def list_api_keys(self, project_id: str) -> list[ApiKey]:
        return _duckdb_security.list_api_keys(self, project_id)

    def revoke_api_key(self, project_id: str, key_id: str) -> ApiKey | None:
        return _duckdb_security.revoke_api_key(self, project_id, key_id)

    def touch_api_keys(self, last_used: dict[str, datetime]) -> None:
        _duckdb_security.touch_api_keys(self, last_used)

    def get_privacy(self, project_id: str) -> PrivacySettings | None:
        return _duckdb_security.get_privacy(self, project_id)

    def set_privacy(self, settings: PrivacySettings) -> None:
        _duckdb_security.set_privacy(self, settings)

    def add_audit(self, entry: AuditEntry) -> None:
        _duckdb_security.add_audit(self, entry)

    def list_audit(
        self, project_id: str, *, limit: int = 100, before: datetime | None = None
    ) -> list[AuditEntry]:
        return _duckdb_security.list_audit(self, project_id, limit=limit, before=before)

    def purge_before(self, project_id: str, cutoff: datetime) -> Deleted:
        return _duckdb_security.purge_before(self, project_id, cutoff)

    def erase_user(self, project_id: str, user_id: str) -> Deleted:
        return _duckdb_security.erase_user(self, project_id, user_id)

    # -- prompt registry, A/B comparison and costs (SQL in _duckdb_prompts, _duckdb_costs) ------

    def add_prompt_version(
        self, pv: PromptVersion, *, labels: list[str], updated_by: str | None
    ) -> PromptVersion:
        return _duckdb_prompts.add_prompt_version(self, pv, labels=labels, updated_by=updated_by)

    def list_prompts(self, project_id: str, kind: str | None = None) -> list[PromptSummary]:
        return _duckdb_prompts.list_prompts(self, project_id, kind)

    def list_prompt_versions(self, project_id: str, name: str) -> list[PromptVersion]:
        return _duckdb_prompts.list_prompt_versions(self, project_id, name)

    def get_prompt_version(
        self, project_id: str, name: str, *, version: int | None = None, label: str | None = None
    ) -> PromptVersion | None:
        return _duckdb_prompts.get_prompt_version(
            self, project_id, name, version=version, label=label
        )

    def set_prompt_label(
        self,
        project_id: str,
        name: str,
        label: str,
        version: int,
        *,
        at: datetime,
        updated_by: str | None,
    ) -> int | None:
        return _duckdb_prompts.set_prompt_label(
            self, project_id, name, label, version, at=at, updated_by=updated_by
        )

    def delete_prompt_label(self, project_id: str, name: str, label: str) -> int | None:
        return _duckdb_prompts.delete_prompt_label(self, project_id, name, label)

    def compare_sample(self, query: CostQuery, dimension: str, value: str) -> GroupSample:
        return _duckdb_costs.compare_sample(self, query, dimension, value)

    def cost_breakdown(
        self, query: CostQuery, by: str, *, limit: int
    ) -> tuple[list[CostRow], dict[str, Any]]:
        return _duckdb_costs.cost_breakdown(self, query, by, limit=limit)

    def task_costs(self, query: CostQuery, group_by: tuple[str, ...]) -> list[TaskCost]:
        return _duckdb_costs.task_costs(self, query, group_by)

    def prompt_length(self, query: CostQuery, step_s: int) -> list[LengthSeries]:
        return _duckdb_costs.prompt_length(self, query, step_s)

    # -- dashboard users (SQL in _duckdb_users) --------------------------------------------------

    def create_user(self, user: User) -> None:
        _duckdb_users.create_user(self, user)

    def count_users(self) -> int:
        return _duckdb_users.count_users(self)

    def create_first_user(self, user: User) -> bool:
        return _duckdb_users.create_first_user(self, user)

    def get_user(self, user_id: str) -> User | None:
        return _duckdb_users.get_user(self, user_id)

    def get_user_by_email(self, email: str) -> User | None:
        return _duckdb_users.get_user_by_email(self, email)

    def create_session(self, session: UserSession) -> None:
        _duckdb_users.create_session(self, session)

    def get_session(self, session_hash: str, now: datetime) -> UserSession | None:
        return _duckdb_users.get_session(self, session_hash, now)

    def delete_session(self, session_hash: str) -> None:
        _duckdb_users.delete_session(self, session_hash)

    def add_membership(self, membership: Membership) -> None:
        _duckdb_users.add_membership(self, membership)

    def remove_membership(self, user_id: str, project_id: str) -> bool:
        return _duckdb_users.remove_membership(self, user_id, project_id)

    def list_memberships(self, user_id: str) -> list[Membership]:
        return _duckdb_users.list_memberships(self, user_id)

    def list_members(self, project_id: str) -> list[tuple[User, Membership]]:
        return _duckdb_users.list_members(self, project_id)


def _row_to_span(row: tuple[Any, ...]) -> Span:
    d = dict(zip(SPAN_FIELDS, row, strict=True))
    for f in _JSON_FIELDS:
        v = d[f]
        d[f] = orjson.loads(v) if v is not None else ({} if f.endswith("attributes") else None)
    d["start_time"] = d["start_time"].replace(tzinfo=UTC)
    d["end_time"] = d["end_time"].replace(tzinfo=UTC)
    d["ingest_notes"] = d["ingest_notes"] or []
    return Span(**d)


def _encode_cursor(ts: datetime, trace_id: str, span_id: str) -> str:
    return encode_cursor(ts, trace_id, span_id)


def _decode_cursor(cursor: str) -> tuple[datetime, str, str]:
    ts, (tid, sid) = decode_cursor(cursor, 2)
    try:
        bytes.fromhex(tid)
        bytes.fromhex(sid)
    except ValueError:
        raise ConfigError("invalid cursor") from None
    return ts.replace(tzinfo=None), tid, sid
