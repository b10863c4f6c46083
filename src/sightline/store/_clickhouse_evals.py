"""The evaluation stage of the ClickHouse store: scores, cursors, datasets, score metrics.

``_duckdb_evals.py`` is the specification; what differs, and why:

- No transactions. ``append_eval_scores`` writes the scores first and the cursor after them. A
  crash between the two leaves the cursor behind, so the runner re-reads the batch and appends
  its scores again: each such score carries a key derived from the cursor it was read from
  (name and position before the write), the span, the score name and its rank among equal ones,
  and scores whose key is already stored are not written again. ``scores`` is a
  ``ReplacingMergeTree`` on that key (``_key``; the score id for ``add_scores``), so copies that
  two writers racing on the same batch (or the same score id) could leave are merged away in
  the background. Every read of scores (lists, pages, metrics, comparisons) says ``FINAL``, so
  such a copy is never seen twice, before the merge as after it, and the copy a read keeps is
  the one the merge will keep (the last written). Existence checks by key read without it.
- ``create_dataset`` writes the rows first and the dataset last (the dataset row makes it
  visible); a dataset id already taken is refused, and of two servers creating the same id at
  once one writes it (a uniqueness claim, ``CHBase._create_unique``).
- Metric formulas are DuckDB SQL in ``base.py``; the two that read ``details`` through DuckDB's
  JSON functions have ClickHouse spellings in :data:`CH_SCORE_FORMULAS`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson

from sightline.errors import ConfigError, StoreError
from sightline.model import SPAN_FIELDS, Score
from sightline.store._clickhouse_base import CHBase, KeyTaken, ch_newest_score, ch_ts
from sightline.store._duckdb_evals import (
    SCORE_FIELDS,
    _decode_cursor,
    _encode_cursor,
    row_to_score,
)
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

__all__ = ["CH_AGG_SQL", "CH_SCORE_FORMULAS", "EvalsMixin"]

_SCORE_SELECT = ", ".join(f"`{c}`" for c in SCORE_FIELDS)
_SPAN_SELECT = ", ".join(f"`{c}`" for c in SPAN_FIELDS)
_DATASET_COLUMNS = "project_id, dataset_id, `name`, `filter`, num_rows, created_at"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_GATHER = {"async_insert": 1, "wait_for_async_insert": 1}
"""Insert settings for small, frequent inserts (ClickHouse wants few parts per second)."""

CH_AGG_SQL: dict[str, str] = {
    "count": "count({})",
    "sum": "sum({})",
    "avg": "avg({})",
    "min": "min({})",
    "max": "max({})",
    # DuckDB's quantile_cont interpolates between the closest ranks (R7), as these do
    "p50": "quantileExactInclusive(0.5)({})",
    "p90": "quantileExactInclusive(0.9)({})",
    "p95": "quantileExactInclusive(0.95)({})",
    "p99": "quantileExactInclusive(0.99)({})",
}
"""Aggregations of a column metric in ClickHouse SQL (``_duckdb._AGG_SQL``'s counterparts)."""

CH_SCORE_FORMULAS: dict[str, str] = {
    "reading_level": "avg(toFloat64OrNull(JSONExtractRaw(details, 'reading_level')))",
    "json_share": "avg(CASE WHEN JSONExtractRaw(details, 'json') = 'true' THEN 1.0 ELSE 0.0 END)",
}
"""ClickHouse formulas of the score metrics whose DuckDB formula is not ClickHouse SQL (by name);
the others (avg, CASE, IN over ``value``, ``label``, ``passed``) read the same in both."""


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _score_row(s: Score, key: str) -> list[Any]:
    row: list[Any] = []
    for f in SCORE_FIELDS:
        v = getattr(s, f)
        if f == "created_at":
            v = ch_ts(v)
        elif f == "details":
            v = orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode() if v else None
        row.append(v)
    row.append(key)
    return row


def _replay_keys(cursor_name: str, before: EvalCursor | None, scores: Sequence[Score]) -> list[str]:
    """Keys that a replay of the same batch (same cursor before it) gives its scores again.

    No cursor yet reads as ``EvalCursor(0)``, as the runner reads it.
    """
    before = before or EvalCursor(0)
    base = f"{cursor_name}\x00{before.seq}\x00{before.pos}"
    rank: dict[tuple[str, ...], int] = {}
    keys: list[str] = []
    for s in scores:
        k = (s.project_id, s.trace_id, s.span_id or "", s.name, s.source)
        n = rank[k] = rank.get(k, -1) + 1
        raw = "\x00".join((base, *k, str(n))).encode()
        keys.append("r" + hashlib.sha256(raw).hexdigest()[:31])
    return keys


class EvalsMixin(CHBase):
    """Scores, evaluation cursors, datasets and score metrics on ClickHouse."""

    DDL: ClassVar[list[str]] = [
        # Scores by trace (the trace view and the runner read them so); ``_key`` makes a
        # replayed or re-sent score replace itself instead of adding a copy. A writer that does
        # not know it (a copy from DuckDB) gets the score id.
        """CREATE TABLE IF NOT EXISTS scores (
            project_id String,
            score_id String,
            trace_id String,
            span_id Nullable(String),
            `name` LowCardinality(String),
            `value` Nullable(Float64),
            label LowCardinality(Nullable(String)),
            passed Nullable(Bool),
            explanation Nullable(String),
            source LowCardinality(String),
            evaluator LowCardinality(Nullable(String)),
            evaluator_version LowCardinality(Nullable(String)),
            user_id Nullable(String),
            created_at DateTime64(6, 'UTC'),
            details Nullable(String),
            _key String DEFAULT score_id,
            INDEX idx_created created_at TYPE minmax GRANULARITY 1
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMMDD(created_at)
        ORDER BY (project_id, trace_id, _key)""",
        """CREATE TABLE IF NOT EXISTS eval_cursors (
            `name` String,
            seq Int64,
            pos String,
            updated_at DateTime64(6, 'UTC'),
            _version UInt64
        ) ENGINE = ReplacingMergeTree(_version) ORDER BY `name`""",
        """CREATE TABLE IF NOT EXISTS datasets (
            project_id String,
            dataset_id String,
            `name` String,
            `filter` String,
            num_rows Int32,
            created_at DateTime64(6, 'UTC')
        ) ENGINE = ReplacingMergeTree ORDER BY (project_id, dataset_id)""",
        # Replacing on the row number: a create retried after a crash rewrites the same rows.
        """CREATE TABLE IF NOT EXISTS dataset_rows (
            project_id String,
            dataset_id String,
            row_num Int32,
            row_json String
        ) ENGINE = ReplacingMergeTree ORDER BY (project_id, dataset_id, row_num)""",
    ]

    # -- score writes --------------------------------------------------------------------------

    def _write_scores(
        self, scores: Sequence[Score], keys: Sequence[str], *, gather: bool = False
    ) -> None:
        if not scores:
            return
        rows = [_score_row(s, k) for s, k in zip(scores, keys, strict=True)]
        try:
            if gather:
                # ClickHouse gathers small inserts from many requests into one part; the call
                # returns once the part is written (durable and visible)
                self._run(
                    "insert",
                    "scores",
                    rows,
                    column_names=[*SCORE_FIELDS, "_key"],
                    settings=_GATHER,
                )
            else:
                self._insert_rows("scores", [*SCORE_FIELDS, "_key"], rows)
        except StoreError as e:
            raise StoreError(f"score insert failed: {e}") from e

    def add_scores(self, scores: Sequence[Score]) -> None:
        # one request's feedback or label: a row or a few, from many requests at once
        self._write_scores(scores, [s.score_id for s in scores], gather=True)

    def list_scores(self, project_id: str, trace_id: str) -> list[Score]:
        rows = self._q(
            f"SELECT {_SCORE_SELECT} FROM scores FINAL"  # noqa: S608
            " WHERE project_id = {p:String} AND trace_id = {t:String}"
            " ORDER BY created_at, score_id",
            {"p": project_id, "t": trace_id},
        )
        return [row_to_score(r) for r in rows]

    # -- the runner's cursors ------------------------------------------------------------------

    def get_eval_cursor(self, name: str) -> EvalCursor | None:
        found = self._eval_cursor_row(name)
        return found[0] if found else None

    def _eval_cursor_row(self, name: str) -> tuple[EvalCursor, int] | None:
        """The cursor and its row version."""
        rows = self._q(
            "SELECT seq, pos, _version FROM eval_cursors FINAL WHERE `name` = {n:String}",
            {"n": name},
        )
        return (EvalCursor(int(rows[0][0]), str(rows[0][1])), int(rows[0][2])) if rows else None

    def append_eval_scores(
        self, scores: Sequence[Score], *, cursor_name: str, cursor: EvalCursor
    ) -> None:
        # Scores first, cursor last: a crash in between replays the batch, whose scores get the
        # same keys (derived from the cursor they were read from) and are skipped if stored.
        found = self._eval_cursor_row(cursor_name)
        if scores:
            keys = _replay_keys(cursor_name, found[0] if found else None, scores)
            stored = {
                str(r[0])
                for r in self._q(
                    "SELECT _key FROM scores WHERE project_id IN {p:Array(String)}"
                    " AND trace_id IN {t:Array(String)} AND _key IN {k:Array(String)}",
                    {
                        "p": sorted({s.project_id for s in scores}),
                        "t": sorted({s.trace_id for s in scores}),
                        "k": keys,
                    },
                )
            }
            new = [(s, k) for s, k in zip(scores, keys, strict=True) if k not in stored]
            self._write_scores([s for s, _ in new], [k for _, k in new])
        version = max(self._version(), found[1] + 1 if found else 0)
        try:
            self._insert_rows(
                "eval_cursors",
                ["name", "seq", "pos", "updated_at", "_version"],
                # past the stored version even when this server's clock is behind the last
                # writer's (the runner's work moved to another server)
                [[cursor_name, cursor.seq, cursor.pos, ch_ts(datetime.now(UTC)), version]],
            )
        except StoreError as e:
            raise StoreError(f"eval cursor update failed: {e}") from e

    # -- the runner's span reads ---------------------------------------------------------------

    @staticmethod
    def _after(
        cursor: EvalCursor, upto_seq: int, kinds: Sequence[str] | None, limit: int
    ) -> tuple[str, dict[str, Any]]:
        """The WHERE clause of the spans committed after ``cursor`` up to ``upto_seq``."""
        params: dict[str, Any] = {"seq": cursor.seq, "upto": upto_seq, "limit": limit}
        if cursor.pos:
            pid, tid, sid = (cursor.pos.split("/") + ["", "", ""])[:3]
            where = [
                "ingest_seq >= {seq:Int64}",
                "(ingest_seq, project_id, trace_id, span_id)"
                " > ({seq:Int64}, {pid:String}, {tid:String}, {sid:String})",
            ]
            params.update(pid=pid, tid=tid, sid=sid)
        else:
            where = ["ingest_seq > {seq:Int64}"]
        where.append("ingest_seq <= {upto:Int64}")
        if kinds is not None:
            where.append("has({kinds:Array(String)}, kind)")
            params["kinds"] = list(kinds)
        return " AND ".join(where), params

    def list_spans_after(
        self, cursor: EvalCursor, *, upto_seq: int, kinds: Sequence[str] | None, limit: int
    ) -> list[SeqSpan]:
        from sightline.store._clickhouse import row_to_span

        where, params = self._after(cursor, upto_seq, kinds, limit)
        rows = self._q(
            f"SELECT ingest_seq, {_SPAN_SELECT} FROM spans WHERE {where}"  # noqa: S608
            # no LIMIT BY: it would sort every span after the cursor, not the first `limit`
            " ORDER BY ingest_seq, project_id, trace_id, span_id LIMIT {limit:UInt32}",
            params,
        )
        return [SeqSpan(int(r[0]), row_to_span(r[1:])) for r in rows]

    def list_span_keys_after(
        self, cursor: EvalCursor, *, upto_seq: int, kinds: Sequence[str] | None, limit: int
    ) -> list[SeqSpanKey]:
        where, params = self._after(cursor, upto_seq, kinds, limit)
        rows = self._q(
            "SELECT ingest_seq, project_id, trace_id, span_id, status, start_time"  # noqa: S608
            f" FROM spans WHERE {where}"
            " ORDER BY ingest_seq, project_id, trace_id, span_id LIMIT {limit:UInt32}",
            params,
        )
        return [SeqSpanKey(int(r[0]), r[1], r[2], r[3], r[4], _utc(r[5])) for r in rows]

    def get_traces(
        self,
        project_id: str,
        trace_ids: Sequence[str],
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        kinds: Sequence[str] | None = None,
    ) -> dict[str, list[SeqSpan]]:
        from sightline.store._clickhouse import row_to_span

        out: dict[str, list[SeqSpan]] = {t: [] for t in trace_ids}
        if not trace_ids:
            return out
        where = ["project_id = {p:String}", "trace_id IN {t:Array(String)}"]
        params: dict[str, Any] = {"p": project_id, "t": list(trace_ids)}
        if start is not None:
            where.append("start_time >= {start:DateTime64(6, 'UTC')}")
            params["start"] = ch_ts(start)
        if end is not None:
            where.append("start_time <= {end:DateTime64(6, 'UTC')}")
            params["end"] = ch_ts(end)
        if kinds is not None:
            where.append("has({kinds:Array(String)}, kind)")
            params["kinds"] = list(kinds)
        rows = self._q(
            f"SELECT ingest_seq, {_SPAN_SELECT} FROM spans WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY trace_id, start_time, span_id LIMIT 1 BY trace_id, span_id",
            params,
        )
        for r in rows:
            s = row_to_span(r[1:])
            out.setdefault(s.trace_id, []).append(SeqSpan(int(r[0]), s))
        return out

    def list_session_turns(
        self,
        project_id: str,
        session_ids: Sequence[str],
        *,
        kinds: Sequence[str],
        start: datetime,
        end: datetime,
    ) -> list[SessionTurn]:
        if not session_ids:
            return []
        rows = self._q(
            "SELECT session_id, kind, start_time, trace_id, span_id FROM spans"
            " WHERE project_id = {p:String}"
            " AND session_id IN {s:Array(String)} AND has({k:Array(String)}, kind)"
            " AND start_time >= {start:DateTime64(6, 'UTC')}"
            " AND start_time <= {end:DateTime64(6, 'UTC')}"
            " ORDER BY start_time, span_id LIMIT 1 BY trace_id, span_id",
            {
                "p": project_id,
                "s": list(session_ids),
                "k": list(kinds),
                "start": ch_ts(start),
                "end": ch_ts(end),
            },
        )
        return [SessionTurn(r[0], r[1], _utc(r[2]), r[3], r[4]) for r in rows]

    # -- score reads ---------------------------------------------------------------------------

    def score_names(self, project_id: str) -> set[tuple[str, str]]:
        # no FINAL: a name stored at all is what is asked, whichever row version says it
        rows = self._q(
            "SELECT DISTINCT `name`, source FROM scores WHERE project_id = {p:String}",
            {"p": project_id},
        )
        return {(str(r[0]), str(r[1])) for r in rows}

    def query_scores(self, query: ScoreQuery) -> ScorePage:
        where = ["project_id = {project_id:String}"]
        params: dict[str, Any] = {"project_id": query.project_id}
        for col in ("trace_id", "span_id", "name", "source", "label", "evaluator"):
            v = getattr(query, col)
            if v is not None:
                where.append(f"`{col}` = {{{col}:String}}")
                params[col] = v
        if query.start is not None:
            where.append("created_at >= {start:DateTime64(6, 'UTC')}")
            params["start"] = ch_ts(query.start)
        if query.end is not None:
            where.append("created_at < {end:DateTime64(6, 'UTC')}")
            params["end"] = ch_ts(query.end)
        if query.cursor:
            ts, sid = _decode_cursor(query.cursor)
            where.append("(created_at, score_id) < ({c_ts:DateTime64(6, 'UTC')}, {c_sid:String})")
            params.update(c_ts=ts, c_sid=sid)
        params["limit"] = query.limit + 1
        rows = self._q(
            f"SELECT {_SCORE_SELECT} FROM scores FINAL WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY created_at DESC, score_id DESC LIMIT {limit:UInt32}",
            params,
        )
        scores = [row_to_score(r) for r in rows[: query.limit]]
        nxt = None
        if len(rows) > query.limit and scores:
            nxt = _encode_cursor(scores[-1].created_at, scores[-1].score_id)
        return ScorePage(scores, nxt)

    def score_distributions(
        self, project_id: str, start: datetime, end: datetime, *, source: str
    ) -> list[ScoreDistribution]:
        rows = self._q(
            f"""
            SELECT `name`,
                if(v IS NULL OR isNaN(v), NULL,
                   toInt32(least(greatest(floor(v * {SCORE_BINS}), 0), {SCORE_BINS - 1})))
                    AS bin,
                count(), count(v), sum(v), count(ok), countIf(ok)
            FROM (
                SELECT `name`, `value` AS v, passed AS ok, created_at AS at FROM scores FINAL
                WHERE project_id = {{p:String}} AND source = {{src:String}}
                    AND coalesce(label, '') = 'failed'
                UNION ALL
                -- of the others, the newest of each span (or trace) and name counts
                SELECT `name`, _r.1 AS v, _r.2 AS ok, _r.3 AS at FROM (
                    SELECT `name`, {ch_newest_score("`value`", "passed", "created_at")} AS _r
                    FROM scores FINAL
                    WHERE project_id = {{p:String}} AND source = {{src:String}}
                        AND coalesce(label, '') <> 'failed'
                    GROUP BY trace_id, span_id, `name`)
            )
            WHERE at >= {{start:DateTime64(6, 'UTC')}} AND at < {{end:DateTime64(6, 'UTC')}}
            GROUP BY `name`, bin
            """,  # noqa: S608
            {"p": project_id, "src": source, "start": ch_ts(start), "end": ch_ts(end)},
        )
        return ScoreDistribution.fold(rows)

    def list_trace_scores(self, project_id: str, trace_ids: Sequence[str]) -> list[Score]:
        if not trace_ids:
            return []
        rows = self._q(
            f"SELECT {_SCORE_SELECT} FROM scores FINAL WHERE project_id = {{p:String}}"  # noqa: S608
            " AND trace_id IN {t:Array(String)} ORDER BY created_at, score_id",
            {"p": project_id, "t": list(trace_ids)},
        )
        return [row_to_score(r) for r in rows]

    def list_scores_created_after(
        self, after: datetime, *, source: str, name: str, limit: int
    ) -> list[Score]:
        rows = self._q(
            f"SELECT {_SCORE_SELECT} FROM scores FINAL"  # noqa: S608
            " WHERE created_at > {after:DateTime64(6, 'UTC')} AND source = {src:String}"
            " AND `name` = {n:String} ORDER BY created_at, score_id LIMIT {limit:UInt32}",
            {"after": ch_ts(after), "src": source, "n": name, "limit": limit},
        )
        return [row_to_score(r) for r in rows]

    def list_agreement_pairs(self, project_id: str) -> list[AgreementPair]:
        # Like DuckDB's arg_max, argMax skips NULLs: each of passed and label is its latest
        # non-NULL value.
        latest = "argMax(passed, created_at) AS _p, argMax(label, created_at) AS _l"
        rows = self._q(
            f"""
            WITH e AS (
                SELECT trace_id, span_id, `name`, {latest}
                FROM scores FINAL
                WHERE project_id = {{p:String}} AND source = 'evaluator'
                    AND span_id IS NOT NULL AND passed IS NOT NULL
                    AND coalesce(label, '') <> 'failed'
                GROUP BY trace_id, span_id, `name`
            ), h AS (
                SELECT trace_id, span_id, `name`, {latest}
                FROM scores FINAL
                WHERE project_id = {{p:String}} AND source = 'human' AND passed IS NOT NULL
                GROUP BY trace_id, span_id, `name`
            )
            SELECT e.`name`, e.trace_id, e.span_id, e._p, e._l, h._p, h._l, h.span_id
            FROM e INNER JOIN h ON e.trace_id = h.trace_id AND e.`name` = h.`name`
            WHERE h.span_id IS NULL OR h.span_id = e.span_id
            ORDER BY e.`name`, e.trace_id, e.span_id
            """,  # noqa: S608
            {"p": project_id},
        )
        return agreement_pairs(rows)

    # -- datasets ------------------------------------------------------------------------------

    def create_dataset(self, dataset: Dataset, rows: Sequence[dict[str, Any]]) -> None:
        # DuckDB refuses a taken id with its primary key; here a uniqueness claim on the id:
        # of two servers creating the same id at once, one writes it (docs/clickhouse.md)
        try:
            self._create_unique(
                "dataset",
                f"{dataset.project_id}\x00{dataset.dataset_id}",
                exists=lambda: self.get_dataset(dataset.project_id, dataset.dataset_id) is not None,
                create=lambda: self._write_dataset(dataset, rows),
                what=f"dataset {dataset.dataset_id!r}",
            )
        except KeyTaken:
            raise StoreError(
                f"dataset insert failed: dataset {dataset.dataset_id!r} already exists"
                f" in project {dataset.project_id!r}"
            ) from None

    def _write_dataset(self, dataset: Dataset, rows: Sequence[dict[str, Any]]) -> None:
        try:
            self._insert_rows(
                "dataset_rows",
                ["project_id", "dataset_id", "row_num", "row_json"],
                [
                    [dataset.project_id, dataset.dataset_id, i, orjson.dumps(r).decode()]
                    for i, r in enumerate(rows)
                ],
            )
            # the dataset row last: it makes the dataset visible
            self._insert_rows(
                "datasets",
                ["project_id", "dataset_id", "name", "filter", "num_rows", "created_at"],
                [
                    [
                        dataset.project_id,
                        dataset.dataset_id,
                        dataset.name,
                        orjson.dumps(dataset.filter).decode(),
                        dataset.num_rows,
                        ch_ts(dataset.created_at),
                    ]
                ],
            )
        except StoreError as e:
            raise StoreError(f"dataset insert failed: {e}") from e

    def list_datasets(self, project_id: str) -> list[Dataset]:
        rows = self._q(
            f"SELECT {_DATASET_COLUMNS} FROM datasets FINAL WHERE project_id = {{p:String}}"  # noqa: S608
            " ORDER BY created_at DESC, dataset_id",
            {"p": project_id},
        )
        return [_row_to_dataset(r) for r in rows]

    def get_dataset(self, project_id: str, dataset_id: str) -> Dataset | None:
        rows = self._q(
            f"SELECT {_DATASET_COLUMNS} FROM datasets FINAL"  # noqa: S608
            " WHERE project_id = {p:String} AND dataset_id = {d:String}",
            {"p": project_id, "d": dataset_id},
        )
        return _row_to_dataset(rows[0]) if rows else None

    def get_dataset_rows(self, project_id: str, dataset_id: str) -> list[dict[str, Any]]:
        rows = self._q(
            "SELECT row_json FROM dataset_rows FINAL"
            " WHERE project_id = {p:String} AND dataset_id = {d:String} ORDER BY row_num",
            {"p": project_id, "d": dataset_id},
        )
        out: list[dict[str, Any]] = [orjson.loads(r[0]) for r in rows]
        return out

    # -- score metrics -------------------------------------------------------------------------

    def _query_score_metric(self, query: MetricQuery) -> list[MetricSeries]:
        """A metric of scores joined to their spans (``MetricDef.score_name``).

        The store's ``query_metric`` hands these over; dimensions are checked against
        ``DIMENSIONS`` before they reach the SQL.
        """
        m = query.metric
        if m.score_name is None:
            raise ConfigError(f"metric {m.name!r} is not computed from scores")
        if m.formula is not None:
            value = CH_SCORE_FORMULAS.get(m.name, m.formula)
        elif m.column is not None:
            if query.agg not in CH_AGG_SQL:
                raise ConfigError(f"metric {m.name!r} cannot be aggregated by {query.agg!r}")
            value = CH_AGG_SQL[query.agg].format(f"`{m.column}`")
        else:
            raise ConfigError(f"metric {m.name!r} has neither a column nor a formula")
        start_us = (_utc(query.start) - _EPOCH) // timedelta(microseconds=1)  # exact, no float
        params: dict[str, Any] = {
            "p": query.project_id,
            "sn": m.score_name,
            "src": m.score_source,
            "start": ch_ts(query.start),
            "end": ch_ts(query.end),
            "o_us": start_us,
        }
        span_where = [
            "project_id = {p:String}",
            "start_time >= {start:DateTime64(6, 'UTC')}",
            "start_time < {end:DateTime64(6, 'UTC')}",
        ]
        for i, (dim, v) in enumerate(query.filters.items()):
            if dim != "kind" and dim not in DIMENSIONS:
                raise ConfigError(f"cannot filter by {dim!r}")
            span_where.append(f"`{dim}` = {{f{i}:String}}")
            params[f"f{i}"] = v
        for dim in query.group_by:
            if dim not in DIMENSIONS:
                raise ConfigError(f"cannot group by {dim!r}")
        dims = sorted(set(query.group_by))
        span_cols = ", ".join(["project_id", "trace_id", "span_id", "start_time", *dims])
        # the newest score of each span (or trace) counts (SCORE_KEY; the DuckDB store marks
        # the others superseded when it writes)
        newest = ch_newest_score("`value`", "label", "passed", "details")
        scores = (
            "SELECT project_id, trace_id, span_id, _r.1 AS `value`, _r.2 AS label,"  # noqa: S608
            " _r.3 AS passed, _r.4 AS details FROM ("
            f"SELECT project_id, trace_id, span_id, {newest} AS _r"
            " FROM scores FINAL WHERE project_id = {p:String} AND `name` = {sn:String}"
            " AND source = {src:String} AND coalesce(label, '') <> 'failed'"
            " GROUP BY project_id, trace_id, span_id)"
        )
        if m.score_source == "user":
            # Trace-level scores (end-user feedback) count on the trace's answer: its last LLM
            # span, else its root (as in _duckdb_evals._ANCHOR).
            anchor = (
                "SELECT trace_id, argMax(span_id, tuple(if(kind = 'llm', 1, 0), end_time)) AS _a"
                " FROM spans WHERE project_id = {p:String}"
                " AND start_time >= {start:DateTime64(6, 'UTC')}"
                " AND start_time < {end:DateTime64(6, 'UTC')} GROUP BY trace_id"
            )
            scored = (
                "SELECT sc0.trace_id AS trace_id, coalesce(sc0.span_id, a._a) AS _sid,"  # noqa: S608
                " sc0.`value` AS `value`, sc0.label AS label, sc0.passed AS passed,"
                " sc0.details AS details"
                f" FROM ({scores}) sc0 LEFT JOIN ({anchor}) a ON a.trace_id = sc0.trace_id"
            )
        else:
            scored = (
                "SELECT trace_id, span_id AS _sid, `value`, label, passed, details"  # noqa: S608
                f" FROM ({scores})"
            )
        # dims and filters are names checked against DIMENSIONS above
        dim_cols = "".join(f"s.`{d}` AS `{d}`, " for d in dims)
        spans = f"SELECT {span_cols} FROM spans WHERE {' AND '.join(span_where)}"  # noqa: S608
        joined = (
            f"SELECT s.start_time AS _st, {dim_cols}sc.`value` AS `value`, sc.label AS label,"  # noqa: S608
            " sc.passed AS passed, sc.details AS details"
            f" FROM ({scored}) sc INNER JOIN ({spans}) s"
            " ON s.trace_id = sc.trace_id AND s.span_id = sc._sid"
        )
        if query.step_s:
            params["step_us"] = int(query.step_s) * 1_000_000
            bucket = (
                "fromUnixTimestamp64Micro({o_us:Int64} + intDiv(toUnixTimestamp64Micro(_st)"
                " - {o_us:Int64}, {step_us:Int64}) * {step_us:Int64}, 'UTC')"
            )
        else:
            bucket = "fromUnixTimestamp64Micro({o_us:Int64}, 'UTC')"
        groups = [f"`{d}`" for d in query.group_by]
        select = ", ".join([f"{bucket} AS _t", *groups, f"{value} AS _v"])
        sql = (
            f"SELECT {select} FROM ({joined}) j"  # noqa: S608
            f" GROUP BY {', '.join(['_t', *groups])} ORDER BY {', '.join([*groups, '_t'])}"
        )
        series: dict[tuple[Any, ...], MetricSeries] = {}
        for row in self._q(sql, params):
            key = tuple(row[1:-1])
            s = series.get(key)
            if s is None:
                s = series[key] = MetricSeries(dict(zip(query.group_by, key, strict=True)), [])
            v = row[-1]
            s.points.append((_utc(row[0]), None if v is None else float(v)))
        return list(series.values())


def _row_to_dataset(r: Sequence[Any]) -> Dataset:
    return Dataset(
        project_id=r[0],
        dataset_id=r[1],
        name=r[2],
        filter=orjson.loads(r[3]),
        num_rows=int(r[4]),
        created_at=_utc(r[5]),
    )
