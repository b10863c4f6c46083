"""DuckDB SQL of the evaluation stage: scores, the runner's cursors, datasets, score metrics.

Functions take the :class:`~sightline.store.DuckDBStore` whose methods call them, so the SQL of
this stage lives apart from the span hot path in ``_duckdb.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from sightline._cursor import decode_cursor, encode_cursor
from sightline.errors import ConfigError, StoreError
from sightline.model import SPAN_FIELDS, Score
from sightline.store._eval_records import (
    AgreementPair,
    Dataset,
    EvalCursor,
    ScorePage,
    ScoreQuery,
    SeqSpan,
    SeqSpanKey,
    SessionTurn,
    agreement_pairs,
)
from sightline.store.base import (
    DIMENSIONS,
    SCORE_BINS,
    MetricQuery,
    MetricSeries,
    ScoreDistribution,
)

if TYPE_CHECKING:
    from sightline.store._duckdb import DuckDBStore

__all__ = [
    "SCORE_FIELDS",
    "append_eval_scores",
    "create_dataset",
    "get_dataset",
    "get_dataset_rows",
    "get_eval_cursor",
    "get_traces",
    "insert_scores",
    "link_orphan_scores",
    "mark_superseded",
    "list_agreement_pairs",
    "list_datasets",
    "list_scores_created_after",
    "list_session_turns",
    "list_trace_scores",
    "list_span_keys_after",
    "list_spans_after",
    "query_score_metric",
    "query_scores",
    "row_to_score",
]

SCORE_FIELDS = (
    "project_id",
    "score_id",
    "trace_id",
    "span_id",
    "name",
    "value",
    "label",
    "passed",
    "explanation",
    "source",
    "evaluator",
    "evaluator_version",
    "user_id",
    "created_at",
    "details",
)
_SCORE_COLUMNS = ", ".join(SCORE_FIELDS)
_SCORE_SCHEMA = pa.schema(
    [
        ("project_id", pa.string()),
        ("score_id", pa.string()),
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("name", pa.string()),
        ("value", pa.float64()),
        ("label", pa.string()),
        ("passed", pa.bool_()),
        ("explanation", pa.string()),
        ("source", pa.string()),
        ("evaluator", pa.string()),
        ("evaluator_version", pa.string()),
        ("user_id", pa.string()),
        ("created_at", pa.timestamp("us")),
        ("details", pa.string()),
        ("span_start_time", pa.timestamp("us")),
    ]
)
_SPAN_OF_SCORE = (
    # the integer keys first: DuckDB prunes the spans' row groups by their ranges (~2 ms for
    # one score at 1M spans); the strings make a 64-bit hash collision harmless
    "s._key_trace = hash({b}.project_id, {b}.trace_id)"
    " AND s._key_span = TRY_CAST('0x' || {b}.span_id AS UBIGINT)"
    " AND s.project_id = {b}.project_id AND s.trace_id = {b}.trace_id"
    " AND s.span_id = {b}.span_id"
)
_SPAN_SELECT = ", ".join(f'"{c}"' for c in SPAN_FIELDS)


def _ts(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC)


def row_to_score(row: Sequence[Any]) -> Score:
    """A ``scores`` row (columns in :data:`SCORE_FIELDS` order) as a Score."""
    d = dict(zip(SCORE_FIELDS, row, strict=True))
    d["created_at"] = _utc(d["created_at"])
    d["details"] = orjson.loads(d["details"]) if d["details"] else None
    return Score(**d)


def _scores_table(scores: Sequence[Score]) -> pa.Table:
    cols: dict[str, list[Any]] = {f: [] for f in (*SCORE_FIELDS, "span_start_time")}
    for s in scores:
        for f in SCORE_FIELDS:
            v = getattr(s, f)
            if f == "created_at":
                v = _ts(v)
            elif f == "details":
                v = orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode() if v else None
            cols[f].append(v)
        start = s.span_start_time
        cols["span_start_time"].append(None if start is None or s.span_id is None else _ts(start))
    return pa.table(cols, schema=_SCORE_SCHEMA)


def _fill_span_starts(con: duckdb.DuckDBPyConnection, table: pa.Table) -> pa.Table:
    """``table`` with the stored spans' start times where the writer gave none."""
    col = table.column("span_start_time")
    missing = pc.and_(pc.is_null(col), pc.is_valid(table.column("span_id")))
    if not pc.any(missing).as_py():
        return table
    keys = table.filter(missing).select(["project_id", "trace_id", "span_id"])
    con.register("_score_spans", keys)
    try:
        rows = con.execute(
            "SELECT b.project_id, b.trace_id, b.span_id, min(s.start_time) FROM"  # noqa: S608
            " (SELECT DISTINCT project_id, trace_id, span_id FROM _score_spans) b"
            f" JOIN spans s ON {_SPAN_OF_SCORE.format(b='b')} GROUP BY ALL"
        ).fetchall()
    finally:
        con.unregister("_score_spans")
    if not rows:
        return table
    found = {(r[0], r[1], r[2]): r[3] for r in rows}
    starts = [
        t if t is not None else found.get((p, tr, sp))
        for p, tr, sp, t in zip(
            table.column("project_id").to_pylist(),
            table.column("trace_id").to_pylist(),
            table.column("span_id").to_pylist(),
            col.to_pylist(),
            strict=True,
        )
    ]
    i = table.schema.get_field_index("span_start_time")
    return table.set_column(i, "span_start_time", pa.array(starts, pa.timestamp("us")))


# An inserted score supersedes the older ones of its key (SCORE_KEY), or is itself superseded
# by a newer one already stored (an event sent late): only the newest counts in the score
# metrics and distributions (docs/evals.md). Failed runs neither supersede nor count. The
# older scores of a span have its start time: {prune} bounds the scan to the batch's span
# times when every score has one, so DuckDB's zone maps skip the other row groups.
_SUPERSEDE = """
UPDATE scores SET superseded = true WHERE rowid IN (
    SELECT rid FROM (
        SELECT s.rowid AS rid, row_number() OVER (
            PARTITION BY s.project_id, s.trace_id, s.span_id, s.name, s.source
            ORDER BY s.created_at DESC, s.score_id DESC) AS rn
        FROM scores s JOIN (
            SELECT DISTINCT project_id, trace_id, span_id, name, source FROM _scores_in
            WHERE coalesce(label, '') <> 'failed') k
        ON s.project_id = k.project_id AND s.trace_id = k.trace_id
            AND s.span_id IS NOT DISTINCT FROM k.span_id AND s.name = k.name
            AND s.source = k.source
        WHERE coalesce(s.label, '') <> 'failed' AND NOT coalesce(s.superseded, false) {prune}
    ) WHERE rn > 1
)
"""


def mark_superseded(con: duckdb.DuckDBPyConnection, project_id: str) -> None:
    """Mark again which scores of ``project_id`` are superseded, all of them (after a delete)."""
    con.execute(
        "UPDATE scores SET superseded = false WHERE project_id = ? AND superseded", [project_id]
    )
    con.execute(
        "UPDATE scores SET superseded = true WHERE rowid IN (SELECT rid FROM"
        " (SELECT rowid AS rid, row_number() OVER (PARTITION BY trace_id, span_id, name, source"
        " ORDER BY created_at DESC, score_id DESC) AS rn FROM scores WHERE project_id = ?"
        " AND coalesce(label, '') <> 'failed') WHERE rn > 1)",
        [project_id],
    )


def _supersede(table: pa.Table) -> tuple[str, list[Any]]:
    """``_SUPERSEDE`` for the batch ``table``, its scan bounded where the batch allows it.

    A span's scores have its start time, or none (stored before it); a trace's (end-user
    feedback) have none: a batch whose span scores all have one bounds the scan to their range
    and to the scores without one (row groups of evaluator scores have none, so their zone maps
    skip them: a thumbs vote does not read every score).
    """
    span_level = table.filter(pc.is_valid(table.column("span_id")))
    starts = span_level.column("span_start_time")
    if starts.null_count:
        return _SUPERSEDE.format(prune=""), []  # a score of a span not stored (yet)
    if not len(starts):
        return _SUPERSEDE.format(prune="AND s.span_start_time IS NULL"), []
    bounds = pc.min_max(starts).as_py()
    prune = "AND (s.span_start_time BETWEEN ? AND ? OR s.span_start_time IS NULL)"
    return _SUPERSEDE.format(prune=prune), [bounds["min"], bounds["max"]]


# Scores stored before their span (an OTLP evaluation event ahead of its span, a label on a
# span still in a client's queue) have no span start time: every score metric of their (name,
# source) then joins the spans again (``_has_orphans``), ~250 ms at 1M spans instead of ~10.
# Once the span is stored, this gives them its start time (the earliest, as at insert).
_LINK_ORPHANS = f"""
UPDATE scores SET span_start_time = f.st FROM (
    SELECT sc.rowid AS rid, min(s.start_time) AS st FROM scores sc
    JOIN spans s ON {_SPAN_OF_SCORE.format(b="sc")}
    WHERE sc.span_start_time IS NULL AND sc.span_id IS NOT NULL AND sc.created_at >= ?
    GROUP BY sc.rowid
) f WHERE scores.rowid = f.rid
"""  # noqa: S608 - fixed fragments


def link_orphan_scores(con: duckdb.DuckDBPyConnection, since: datetime) -> int:
    """Give the scores stored before their span its start time, now that it is stored.

    Only scores created from ``since`` on: a span comes seconds or minutes after its score, if
    ever (a score of a span the SDK sampled out never gets one), and the join would otherwise
    run over every such score forever. In the caller's transaction; the number of scores
    linked. A cheap check first: a scan of two columns when no recent score lacks it.
    """
    bound = [_ts(since)]
    if not con.execute(
        "SELECT 1 FROM scores WHERE span_start_time IS NULL AND span_id IS NOT NULL"
        " AND created_at >= ? LIMIT 1",
        bound,
    ).fetchall():
        return 0
    row = con.execute(_LINK_ORPHANS, bound).fetchone()
    return int(row[0]) if row else 0


def insert_scores(con: duckdb.DuckDBPyConnection, scores: Sequence[Score]) -> None:
    """Insert scores through Arrow, in the caller's transaction; mark the ones they supersede.

    One statement, not one per row; the superseded ones: see ``_SUPERSEDE``. Each score keeps
    its span's start time: the writer's (``Score.span_start_time``), else the stored span's,
    looked up here for the scores that lack it (a human label, an OTLP evaluation event); NULL
    while the span is not stored.
    """
    if not scores:
        return
    table = _fill_span_starts(con, _scores_table(scores))
    con.register("_scores_in", table)
    try:
        con.execute(
            f"INSERT INTO scores ({_SCORE_COLUMNS}, span_start_time)"  # noqa: S608
            f" SELECT {_SCORE_COLUMNS}, span_start_time FROM _scores_in"
        )
        con.execute(*_supersede(table))
    finally:
        con.unregister("_scores_in")


# -- the runner's reads and cursors --------------------------------------------------------------


def _after(cursor: EvalCursor, upto_seq: int, kinds: Sequence[str] | None) -> tuple[str, list[Any]]:
    """The WHERE clause of the spans committed after ``cursor`` up to ``upto_seq``."""
    if cursor.pos:
        pid, tid, sid = (cursor.pos.split("/") + ["", "", ""])[:3]
        where = [
            "ingest_seq >= ?",
            "(ingest_seq, project_id, trace_id, span_id) > (?, ?, ?, ?)",
        ]
        params: list[Any] = [cursor.seq, cursor.seq, pid, tid, sid]
    else:
        where = ["ingest_seq > ?"]
        params = [cursor.seq]
    where.append("ingest_seq <= ?")
    params.append(upto_seq)
    if kinds is not None:
        where.append("list_contains(?, kind)")
        params.append(list(kinds))
    return " AND ".join(where), params


@contextmanager
def _snapshot(cur: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One read-only transaction: the statements inside see the same spans."""
    cur.begin()
    try:
        yield
    finally:
        cur.rollback()


def _read_upto(
    cur: duckdb.DuckDBPyConnection,
    cursor: EvalCursor,
    upto_seq: int,
    kinds: Sequence[str] | None,
    limit: int,
) -> int | None:
    """The last commit the next ``limit`` spans after ``cursor`` reach (None: no span).

    The reads after a cursor sort by (commit, project, trace, span) and keep ``limit`` rows;
    over a backlog, DuckDB sorts every span of it by those strings first (470 commits of 512
    spans: 24 ms for a read of 8,192 keys). The commits the first ``limit`` spans belong to,
    found on the integer column alone (2 ms), bound that read to them. Both statements run
    in the caller's transaction: a span deleted between them (retention, erasure) must not
    shorten the read, which its caller would take for the end of the spans.
    """
    where, params = _after(cursor, upto_seq, kinds)
    row = cur.execute(
        f"SELECT max(ingest_seq) FROM (SELECT ingest_seq FROM spans WHERE {where}"  # noqa: S608
        " ORDER BY ingest_seq LIMIT ?)",
        [*params, limit],
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _rows_after(
    store: DuckDBStore,
    columns: str,
    cursor: EvalCursor,
    upto_seq: int,
    kinds: Sequence[str] | None,
    limit: int,
) -> list[tuple[Any, ...]]:
    """``ingest_seq`` and ``columns`` of the next ``limit`` spans after ``cursor``, in order."""
    with store._cursor() as cur, _snapshot(cur):
        upto = _read_upto(cur, cursor, upto_seq, kinds, limit)
        if upto is None:
            return []
        where, params = _after(cursor, upto, kinds)
        sql = (
            f"SELECT ingest_seq, {columns} FROM spans WHERE {where}"  # noqa: S608
            " ORDER BY ingest_seq, project_id, trace_id, span_id LIMIT ?"
        )
        return cur.execute(sql, [*params, limit]).fetchall()


def list_spans_after(
    store: DuckDBStore,
    cursor: EvalCursor,
    *,
    upto_seq: int,
    kinds: Sequence[str] | None,
    limit: int,
) -> list[SeqSpan]:
    from sightline.store._duckdb import _row_to_span

    rows = _rows_after(store, _SPAN_SELECT, cursor, upto_seq, kinds, limit)
    return [SeqSpan(int(r[0]), _row_to_span(r[1:])) for r in rows]


def list_span_keys_after(
    store: DuckDBStore,
    cursor: EvalCursor,
    *,
    upto_seq: int,
    kinds: Sequence[str] | None,
    limit: int,
) -> list[SeqSpanKey]:
    rows = _rows_after(
        store, "project_id, trace_id, span_id, status, start_time", cursor, upto_seq, kinds, limit
    )
    return [SeqSpanKey(int(r[0]), r[1], r[2], r[3], r[4], r[5].replace(tzinfo=UTC)) for r in rows]


def get_traces(
    store: DuckDBStore,
    project_id: str,
    trace_ids: Sequence[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    kinds: Sequence[str] | None = None,
) -> dict[str, list[SeqSpan]]:
    from sightline.store._duckdb import _row_to_span

    out: dict[str, list[SeqSpan]] = {t: [] for t in trace_ids}
    if not trace_ids:
        return out
    # Semi-joins (IN a subquery), not list_contains: DuckDB then reads the wide columns only of
    # matching rows; and first on the key's hashed prefix (an integer): 64 traces of 400k spans
    # 59 -> 35 -> 16 ms.
    where = [
        "_key_trace IN (SELECT hash(?, t) FROM unnest(?) AS u(t))",
        "project_id = ?",
        "trace_id IN (SELECT unnest(?))",
    ]
    params: list[Any] = [project_id, list(trace_ids), project_id, list(trace_ids)]
    # time bounds let DuckDB skip row groups by their start_time zone maps
    if start is not None:
        where.append("start_time >= ?")
        params.append(_ts(start))
    if end is not None:
        where.append("start_time <= ?")
        params.append(_ts(end))
    if kinds is not None:
        where.append("list_contains(?, kind)")
        params.append(list(kinds))
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT ingest_seq, {_SPAN_SELECT} FROM spans WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY trace_id, start_time, span_id",
            params,
        ).fetchall()
    for r in rows:
        s = _row_to_span(r[1:])
        out.setdefault(s.trace_id, []).append(SeqSpan(int(r[0]), s))
    return out


def list_session_turns(
    store: DuckDBStore,
    project_id: str,
    session_ids: Sequence[str],
    *,
    kinds: Sequence[str],
    start: datetime,
    end: datetime,
) -> list[SessionTurn]:
    if not session_ids:
        return []
    with store._cursor() as cur:
        rows = cur.execute(
            "SELECT session_id, kind, start_time, trace_id, span_id FROM spans"
            " WHERE project_id = ? AND session_id IN (SELECT unnest(?))"
            " AND list_contains(?, kind) AND start_time >= ? AND start_time <= ?"
            " ORDER BY start_time, span_id",
            [project_id, list(session_ids), list(kinds), _ts(start), _ts(end)],
        ).fetchall()
    return [SessionTurn(r[0], r[1], r[2].replace(tzinfo=UTC), r[3], r[4]) for r in rows]


def get_eval_cursor(store: DuckDBStore, name: str) -> EvalCursor | None:
    with store._cursor() as cur:
        rows = cur.execute("SELECT seq, pos FROM eval_cursors WHERE name = ?", [name]).fetchall()
    return EvalCursor(int(rows[0][0]), str(rows[0][1])) if rows else None


def append_eval_scores(
    store: DuckDBStore, scores: Sequence[Score], *, cursor_name: str, cursor: EvalCursor
) -> None:
    with store._admin_lock, store._cursor() as cur:
        cur.execute("BEGIN")
        try:
            insert_scores(cur, scores)
            cur.execute(
                "INSERT OR REPLACE INTO eval_cursors (name, seq, pos, updated_at)"
                " VALUES (?, ?, ?, now())",
                [cursor_name, cursor.seq, cursor.pos],
            )
            cur.execute("COMMIT")
        except duckdb.Error as e:
            cur.execute("ROLLBACK")
            raise StoreError(f"score insert failed: {e}") from e


# -- score reads -------------------------------------------------------------------------------


def _encode_cursor(ts: datetime, score_id: str) -> str:
    return encode_cursor(ts, score_id)


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    ts, (sid,) = decode_cursor(cursor, 1)
    return ts.replace(tzinfo=None), sid


def score_distributions(
    store: DuckDBStore, project_id: str, start: datetime, end: datetime, source: str
) -> list[ScoreDistribution]:
    sql = f"""
        SELECT name,
            CASE WHEN value IS NULL OR isnan(value) THEN NULL
                 ELSE CAST(least(greatest(floor(value * {SCORE_BINS}), 0), {SCORE_BINS - 1})
                           AS INTEGER) END AS bin,
            count(*), count(value), sum(value), count(passed), count(*) FILTER (WHERE passed)
        FROM scores
        WHERE project_id = ? AND source = ? AND created_at >= ? AND created_at < ?
            AND NOT coalesce(superseded, false)
        GROUP BY 1, 2
    """  # noqa: S608
    with store._cursor() as cur:
        rows = cur.execute(sql, [project_id, source, _ts(start), _ts(end)]).fetchall()
    return ScoreDistribution.fold(rows)


def query_scores(store: DuckDBStore, query: ScoreQuery) -> ScorePage:
    where = ["project_id = ?"]
    params: list[Any] = [query.project_id]
    for col in ("trace_id", "span_id", "name", "source", "label", "evaluator"):
        v = getattr(query, col)
        if v is not None:
            where.append(f"{col} = ?")
            params.append(v)
    if query.start is not None:
        where.append("created_at >= ?")
        params.append(_ts(query.start))
    if query.end is not None:
        where.append("created_at < ?")
        params.append(_ts(query.end))
    if query.cursor:
        ts, sid = _decode_cursor(query.cursor)
        where.append("(created_at, score_id) < (?, ?)")
        params += [ts, sid]
    sql = (
        f"SELECT {_SCORE_COLUMNS} FROM scores WHERE {' AND '.join(where)}"  # noqa: S608
        " ORDER BY created_at DESC, score_id DESC LIMIT ?"
    )
    params.append(query.limit + 1)
    with store._cursor() as cur:
        rows = cur.execute(sql, params).fetchall()
    scores = [row_to_score(r) for r in rows[: query.limit]]
    nxt = None
    if len(rows) > query.limit and scores:
        nxt = _encode_cursor(scores[-1].created_at, scores[-1].score_id)
    return ScorePage(scores, nxt)


def list_trace_scores(store: DuckDBStore, project_id: str, trace_ids: Sequence[str]) -> list[Score]:
    if not trace_ids:
        return []
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {_SCORE_COLUMNS} FROM scores WHERE project_id = ?"  # noqa: S608
            " AND trace_id IN (SELECT unnest(?)) ORDER BY created_at, score_id",
            [project_id, list(trace_ids)],
        ).fetchall()
    return [row_to_score(r) for r in rows]


def list_scores_created_after(
    store: DuckDBStore, after: datetime, *, source: str, name: str, limit: int
) -> list[Score]:
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {_SCORE_COLUMNS} FROM scores WHERE created_at > ?"  # noqa: S608
            " AND source = ? AND name = ? ORDER BY created_at, score_id LIMIT ?",
            [_ts(after), source, name, limit],
        ).fetchall()
    return [row_to_score(r) for r in rows]


# The evaluator scores are those of the labelled traces only: grouping every evaluator score
# of the project first took ~0.5 s at 2M scores (the Quality page's slowest part).
_AGREEMENT_SQL = """
WITH h AS (
    SELECT trace_id, span_id, name,
        arg_max(passed, created_at) AS passed, arg_max(label, created_at) AS label
    FROM scores
    WHERE project_id = ? AND source = 'human' AND passed IS NOT NULL
    GROUP BY trace_id, span_id, name
), e AS (
    SELECT trace_id, span_id, name,
        arg_max(passed, created_at) AS passed, arg_max(label, created_at) AS label
    FROM scores
    WHERE project_id = ? AND source = 'evaluator' AND span_id IS NOT NULL
        AND passed IS NOT NULL AND coalesce(label, '') <> 'failed'
        AND trace_id IN (SELECT trace_id FROM h)
    GROUP BY trace_id, span_id, name
)
SELECT e.name, e.trace_id, e.span_id, e.passed, e.label, h.passed, h.label, h.span_id
FROM e JOIN h ON e.trace_id = h.trace_id AND e.name = h.name
    AND (h.span_id IS NULL OR h.span_id = e.span_id)
ORDER BY e.name, e.trace_id, e.span_id
"""


def list_agreement_pairs(store: DuckDBStore, project_id: str) -> list[AgreementPair]:
    with store._cursor() as cur:
        rows = cur.execute(_AGREEMENT_SQL, [project_id, project_id]).fetchall()
    return agreement_pairs(rows)


# -- datasets ----------------------------------------------------------------------------------


def create_dataset(store: DuckDBStore, ds: Dataset, rows: Sequence[dict[str, Any]]) -> None:
    table = pa.table(
        {
            "project_id": [ds.project_id] * len(rows),
            "dataset_id": [ds.dataset_id] * len(rows),
            "row_num": pa.array(range(len(rows)), pa.int32()),
            "row_json": [orjson.dumps(r).decode() for r in rows],
        }
    )
    with store._admin_lock, store._cursor() as cur:
        cur.execute("BEGIN")
        try:
            cur.execute(
                "INSERT INTO datasets (project_id, dataset_id, name, filter, num_rows, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    ds.project_id,
                    ds.dataset_id,
                    ds.name,
                    orjson.dumps(ds.filter).decode(),
                    ds.num_rows,
                    _ts(ds.created_at),
                ],
            )
            cur.register("_rows_in", table)
            cur.execute("INSERT INTO dataset_rows SELECT * FROM _rows_in")
            cur.unregister("_rows_in")
            cur.execute("COMMIT")
        except duckdb.Error as e:
            cur.execute("ROLLBACK")
            raise StoreError(f"dataset insert failed: {e}") from e


def _row_to_dataset(r: Sequence[Any]) -> Dataset:
    return Dataset(
        project_id=r[0],
        dataset_id=r[1],
        name=r[2],
        filter=orjson.loads(r[3]),
        num_rows=int(r[4]),
        created_at=_utc(r[5]),
    )


_DATASET_COLUMNS = "project_id, dataset_id, name, filter, num_rows, created_at"


def list_datasets(store: DuckDBStore, project_id: str) -> list[Dataset]:
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE project_id = ?"  # noqa: S608
            " ORDER BY created_at DESC, dataset_id",
            [project_id],
        ).fetchall()
    return [_row_to_dataset(r) for r in rows]


def get_dataset(store: DuckDBStore, project_id: str, dataset_id: str) -> Dataset | None:
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {_DATASET_COLUMNS} FROM datasets"  # noqa: S608
            " WHERE project_id = ? AND dataset_id = ?",
            [project_id, dataset_id],
        ).fetchall()
    return _row_to_dataset(rows[0]) if rows else None


def get_dataset_rows(store: DuckDBStore, project_id: str, dataset_id: str) -> list[dict[str, Any]]:
    with store._cursor() as cur:
        rows = cur.execute(
            "SELECT row_json FROM dataset_rows WHERE project_id = ? AND dataset_id = ?"
            " ORDER BY row_num",
            [project_id, dataset_id],
        ).fetchall()
    out: list[dict[str, Any]] = [orjson.loads(r[0]) for r in rows]
    return out


# -- score metrics -----------------------------------------------------------------------------

# Trace-level scores (end-user feedback) have no span: they count on the span that produced the
# trace's answer, its last LLM span (else its root), so "feedback by model" groups by the model
# that answered, and each piece of feedback counts once.
_ANCHOR = """(
    SELECT project_id, trace_id,
        arg_max(span_id, (CASE WHEN kind = 'llm' THEN 1 ELSE 0 END, end_time)) AS span_id
    FROM spans WHERE project_id = ? AND start_time >= ? AND start_time < ?
    GROUP BY project_id, trace_id
)"""


def _has_orphans(store: DuckDBStore, params: list[Any]) -> bool:
    """Whether a score of (project, name, source) lacks its span's start time.

    One stored before its span, which only a join can range. A scan: ~3 ms at 2M scores.
    """
    with store._cursor() as cur:
        rows = cur.execute(
            "SELECT 1 FROM scores WHERE project_id = ? AND name = ? AND source = ?"
            " AND span_start_time IS NULL AND span_id IS NOT NULL LIMIT 1",
            params,
        ).fetchall()
    return bool(rows)


def query_score_metric(store: DuckDBStore, query: MetricQuery) -> list[MetricSeries]:
    from sightline.store._duckdb import _AGG_SQL

    m = query.metric
    if m.formula is not None:
        value = m.formula
    elif m.column is not None:
        value = _AGG_SQL[query.agg].format(m.column)
    else:
        raise ConfigError(f"metric {m.name!r} has neither a column nor a formula")
    start, end = _ts(query.start), _ts(query.end)
    where = [
        "sc.project_id = ?",
        "sc.name = ?",
        "sc.source = ?",
        "coalesce(sc.label, '') <> 'failed'",
        "NOT coalesce(sc.superseded, false)",  # the newest score of each span counts
        "s.start_time >= ?",
        "s.start_time < ?",
    ]
    params: list[Any] = [query.project_id, m.score_name, m.score_source, start, end]
    for dim, v in query.filters.items():
        if dim != "kind" and dim not in DIMENSIONS:
            raise ConfigError(f"cannot filter by {dim!r}")
        where.append(f's."{dim}" = ?')
        params.append(v)
    for dim in query.group_by:
        if dim not in DIMENSIONS:
            raise ConfigError(f"cannot group by {dim!r}")
    dims = sorted({*query.group_by})
    cols = ", ".join(["s.start_time", *(f's."{d}"' for d in dims)])
    picked = "sc.value, sc.label, sc.passed, sc.details"
    # Span-level scores join their span; trace-level ones (end-user feedback) join the trace's
    # anchor span, an aggregation over the window's spans that evaluator metrics skip.
    if m.score_source != "user" and not query.filters and not dims:
        # no span column asked: the span's start time kept on the score ranges it, and only
        # the scores stored before their span (if any) are joined
        base = where[:5]
        joined = f"""
            SELECT sc.span_start_time AS start_time, {picked} FROM scores sc
            WHERE {" AND ".join(base)} AND sc.span_start_time >= ? AND sc.span_start_time < ?
        """  # noqa: S608
        if _has_orphans(store, params[:3]):
            joined += f"""
                UNION ALL
                SELECT s.start_time, {picked} FROM scores sc
                JOIN spans s ON {_SPAN_OF_SCORE.format(b="sc")}
                WHERE {" AND ".join(where)}
                    AND sc.span_start_time IS NULL AND sc.span_id IS NOT NULL
            """  # noqa: S608
            params = [*params, *params]
    elif m.score_source == "user":
        joined = f"""
            SELECT {cols}, sc.value, sc.label, sc.passed, sc.details
            FROM scores sc
            LEFT JOIN {_ANCHOR} a ON sc.span_id IS NULL AND a.project_id = sc.project_id
                AND a.trace_id = sc.trace_id
            JOIN spans s ON s.project_id = sc.project_id AND s.trace_id = sc.trace_id
                AND s.span_id = coalesce(sc.span_id, a.span_id)
            WHERE {" AND ".join(where)}
        """  # noqa: S608
        params = [query.project_id, start, end, *params]
    else:
        # On the spans' integer keys (the store's identity of a span, see _duckdb._INSERT):
        # ~25 % faster than on the three strings. A score's kept span start time narrows the
        # scores joined to the range's.
        joined = f"""
            SELECT {cols}, {picked}
            FROM scores sc
            JOIN spans s ON s._key_trace = hash(sc.project_id, sc.trace_id)
                AND s._key_span = TRY_CAST('0x' || sc.span_id AS UBIGINT)
            WHERE {" AND ".join(where)} AND s.project_id = ? AND (sc.span_start_time IS NULL
                OR (sc.span_start_time >= ? AND sc.span_start_time < ?))
        """  # noqa: S608
        params = [*params, query.project_id, start, end]
    groups = [f'"{d}"' for d in query.group_by]
    if query.step_s:
        bucket = f"time_bucket(INTERVAL '{int(query.step_s)} seconds', start_time, ?)"
    else:
        bucket = "CAST(? AS TIMESTAMP)"
    select = ", ".join([f"{bucket} AS _t", *groups, f"{value} AS _v"])
    group_clause = ", ".join(["_t", *groups])
    sql = (
        f"SELECT {select} FROM ({joined}) j"  # noqa: S608
        f" GROUP BY {group_clause} ORDER BY {', '.join(groups + ['_t'])}"
    )
    with store._cursor() as cur:
        rows = cur.execute(sql, [start, *params]).fetchall()
    series: dict[tuple[Any, ...], MetricSeries] = {}
    for row in rows:
        key = tuple(row[1:-1])
        s = series.get(key)
        if s is None:
            s = series[key] = MetricSeries(dict(zip(query.group_by, key, strict=True)), [])
        v = row[-1]
        s.points.append((_utc(row[0]), None if v is None else float(v)))
    return list(series.values())
