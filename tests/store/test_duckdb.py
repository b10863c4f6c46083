from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from _evalspans import insert, span
from _payload import llm_request
from sightline.ingest._service import _prepare
from sightline.model import Score
from sightline.store import DuckDBStore, SpanQuery, _duckdb
from sightline.store._migrations import MIGRATIONS
from sightline.store.base import SCORE_METRICS, MetricQuery
from store._spans import T0, batch, span_record, spans_over


def _batch(n: int):  # type: ignore[no-untyped-def]
    table, _ = _prepare("otlp_proto", llm_request(n)[0].SerializeToString(), None, "p", 1 << 24)
    assert table is not None
    return table


class TestIngestSeq:
    def test_each_commit_gets_the_next_sequence_number_across_restarts(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "db.duckdb"
        store = DuckDBStore(path)
        store.migrate()
        store.insert_batches([_batch(3)])
        store.insert_batches([_batch(2), _batch(1)])
        store.close()
        store = DuckDBStore(path)
        store.migrate()
        store.insert_batches([_batch(4)])
        with store._cursor() as cur:
            rows = cur.execute(
                "SELECT ingest_seq, count(*) FROM spans GROUP BY 1 ORDER BY 1"
            ).fetchall()
        store.close()
        assert rows == [(1, 3), (2, 3), (3, 4)]

    def test_a_retried_batch_keeps_its_first_sequence_number(self, tmp_path: Path) -> None:
        store = DuckDBStore(tmp_path / "db.duckdb")
        store.migrate()
        b = _batch(5)
        store.insert_batches([b])
        store.insert_batches([b])
        with store._cursor() as cur:
            rows = cur.execute("SELECT ingest_seq, count(*) FROM spans GROUP BY 1").fetchall()
        store.close()
        assert rows == [(1, 5)]


class TestTextSearch:
    """list_spans(text=...): a case-insensitive substring of the input or the output."""

    TEXTS = (
        ("Reset my PASSWORD please", "ok"),
        ("école du soir", "Straße"),
        ("50% off", "a_b"),
        ("5000 off", "axb"),
        ("back\\slash", ""),
    )

    def search(self, store: DuckDBStore, text: str) -> list[str]:
        now = datetime.now(UTC)
        page = store.list_spans(
            SpanQuery(project_id="p", start=now - timedelta(days=1),
                      end=now + timedelta(days=1), text=text, limit=10)
        )  # fmt: skip
        return sorted(s.input or "" for s in page.spans)

    def test_case_unicode_and_like_wildcards_taken_literally(self, tmp_path: Path) -> None:
        store = DuckDBStore(tmp_path / "db.duckdb")
        store.migrate()
        insert(store, [span("p", f"{i + 1:032x}", kind="llm", name="chat", input=i_, output=o)
                       for i, (i_, o) in enumerate(self.TEXTS)])  # fmt: skip
        assert self.search(store, "password") == ["Reset my PASSWORD please"]
        assert self.search(store, "ÉCOLE") == ["école du soir"]
        assert self.search(store, "STRASSE") == []  # folding is per character, not ß -> ss
        assert self.search(store, "straße") == ["école du soir"]
        assert self.search(store, "0% off") == ["50% off"]  # % is a character, not a wildcard
        assert self.search(store, "a_b") == ["50% off"]  # _ too
        assert self.search(store, "k\\s") == ["back\\slash"]
        assert self.search(store, "nothing like it") == []
        store.close()


class TestSpansWithoutKey:
    """Spans have no primary key (migration 15); the insert itself keeps each span once."""

    def test_migration_15_rebuilds_spans_as_they_were_without_the_key(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "db.duckdb"
        monkeypatch.setattr(_duckdb, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= 14])
        store = DuckDBStore(path)
        assert store.migrate() == 14
        old = _batch(7)
        store.insert_batches([old])
        store.insert_batches([spans_over(20, step=timedelta(hours=3))])
        columns, rows = self._table(store)
        assert self._keys(store) == ["PRIMARY KEY"]  # the previous schema
        store.close()

        monkeypatch.setattr(_duckdb, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= 15])
        store = DuckDBStore(path)
        assert store.migrate() == 15
        try:
            assert self._table(store) == (columns, rows)  # names, types, NOT NULL, defaults, order
            assert self._keys(store) == []
            assert store.last_ingest_seq() == 2
            store.insert_batches([old])  # stored before the migration: still a no-op
            assert store.count_spans("p") == 27
        finally:
            store.close()

    def test_a_resent_span_whose_start_time_the_decoder_made_up_is_stored_once(
        self, tmp_path: Path
    ) -> None:
        req, _ = llm_request(3)
        for s in req.resource_spans[0].scope_spans[0].spans:
            s.start_time_unix_nano = s.end_time_unix_nano = 0  # both made up: "now"
        body = req.SerializeToString()
        first, res = _prepare("otlp_proto", body, None, "p", 1 << 24)
        assert first is not None and res.repaired == {"missing_start_time": 3}
        time.sleep(0.01)
        again, _ = _prepare("otlp_proto", body, None, "p", 1 << 24)
        assert again is not None
        assert again.column("start_time") != first.column("start_time")
        store = DuckDBStore(tmp_path / "db.duckdb")
        store.migrate()
        try:
            store.insert_batches([first])
            store.insert_batches([again])
            assert store.count_spans("p") == 3
        finally:
            store.close()

    def test_a_batch_repeating_spans_keeps_the_first_row_of_each(self, tmp_path: Path) -> None:
        store = DuckDBStore(tmp_path / "db.duckdb")
        store.migrate()
        try:
            a, b, c = (span_record(input=f"first {n}") for n in "abc")
            again = {**a, "input": "second a"}
            store.insert_batches([batch(a, b, again, c, {**b, "input": "second b"}, a)])
            with store._cursor() as cur:
                rows = cur.execute("SELECT span_id, input FROM spans ORDER BY input").fetchall()
            assert rows == [(a["span_id"], "first a"), (b["span_id"], "first b"),
                            (c["span_id"], "first c")]  # fmt: skip
        finally:
            store.close()

    def test_a_resent_batch_with_far_apart_start_times_adds_only_its_new_spans(
        self, tmp_path: Path
    ) -> None:
        store = DuckDBStore(tmp_path / "db.duckdb")
        store.migrate()
        try:
            # start times hours apart: the check reads several ranges, not the time between
            early, late = span_record(start=T0), span_record(start=T0 + timedelta(hours=2))
            store.insert_batches([batch(early, late)])
            between = span_record(start=T0 + timedelta(hours=1))
            far = [span_record(start=T0 + timedelta(days=d, minutes=d)) for d in range(12)]
            store.insert_batches([batch(late, between, early, *far)])
            store.insert_batches([batch(*far, early, between)])
            assert store.count_spans("p") == 15
        finally:
            store.close()

    def test_the_check_reads_only_the_row_groups_of_the_batch_start_times(
        self, tmp_path: Path
    ) -> None:
        store = DuckDBStore(tmp_path / "db.duckdb")
        store.migrate()
        try:
            with store._cursor() as cur:  # 500k spans, one a second from T0: 5 row groups
                cur.execute(
                    "INSERT INTO spans (project_id, trace_id, span_id, name, kind, start_time,"
                    " end_time, duration_ms, status, _key_trace, _key_span)"
                    " SELECT 'p', lpad(to_hex(i), 32, '0'), lpad(to_hex(i), 16, '0'), 'x', 'llm',"
                    " ?::TIMESTAMP + to_seconds(i), ?::TIMESTAMP + to_seconds(i), 0, 'ok',"
                    " hash('p', lpad(to_hex(i), 32, '0')), i FROM range(500000) r(i)",
                    [T0.replace(tzinfo=None), T0.replace(tzinfo=None)],
                )
            table = batch(*(span_record(start=T0 + timedelta(seconds=10 + i)) for i in range(3)))
            where = _duckdb._start_filter(_duckdb._first_of_each_span(table))
            with store._cursor() as cur:
                cur.register(_duckdb._INCOMING, table)
                plan = cur.execute(
                    "EXPLAIN ANALYZE " + _duckdb._INSERT.replace("{where}", where), [9]
                ).fetchall()[0][1]
            scanned = [int(m) for m in re.findall(r"Row Groups Scanned: (\d+) /", plan)]
            assert scanned and min(scanned) == 1, plan
        finally:
            store.close()

    @staticmethod
    def _table(store: DuckDBStore) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        with store._cursor() as cur:
            cols = cur.execute(
                "SELECT column_name, data_type, is_nullable, column_default, column_index"
                " FROM duckdb_columns() WHERE table_name = 'spans' ORDER BY column_index"
            ).fetchall()
            rows = cur.execute("SELECT * FROM spans").fetchall()  # in the table's order
        return cols, rows

    @staticmethod
    def _keys(store: DuckDBStore) -> list[str]:
        with store._cursor() as cur:
            found = cur.execute(
                "SELECT constraint_type FROM duckdb_constraints() WHERE table_name = 'spans'"
                " AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
                " UNION ALL SELECT 'INDEX' FROM duckdb_indexes() WHERE table_name = 'spans'"
            ).fetchall()
        return [r[0] for r in found]


def _row_groups(store: DuckDBStore) -> list[int]:
    with store._cursor() as cur:
        rows = cur.execute(
            "SELECT row_group_id, max(count) FROM pragma_storage_info('spans')"
            " GROUP BY row_group_id ORDER BY row_group_id"
        ).fetchall()
    return [int(n) for _, n in rows]


def test_the_file_is_written_in_small_row_groups_before_and_after_a_reopen(
    tmp_path: Path,
) -> None:
    # DuckDB does not keep the row group size in the file: every open must give it, or the
    # next checkpoint holds a 122,880-row group uncompressed (all of a 256MB limit).
    size = _duckdb.ROW_GROUP_SIZE
    assert size < 122_880
    store = DuckDBStore(tmp_path / "s.duckdb")
    store.migrate()
    store.insert_batches([spans_over(size + 1000, step=timedelta(seconds=1))])
    store._write.execute("CHECKPOINT")
    assert _row_groups(store) == [size, 1000]
    store.close()
    store = DuckDBStore(tmp_path / "s.duckdb")
    store.migrate()
    start = T0 + timedelta(days=1)
    store.insert_batches([batch(*(span_record(start=start) for _ in range(2 * size)))])
    store._write.execute("CHECKPOINT")
    groups = _row_groups(store)
    assert sum(groups) == 3 * size + 1000
    assert max(groups) == size
    assert store.count_spans("p") == 3 * size + 1000
    store.close()


def test_spills_go_next_to_the_file(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb", memory_limit="64MB")
    with store._cursor() as cur:
        temp = cur.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
        assert cur.execute("SELECT current_database()").fetchall()[0][0] == "sightline"
    assert temp == str(tmp_path / "s.duckdb.tmp")
    store.close()


@pytest.mark.parametrize("read", ["keys", "spans"])
def test_a_span_deleted_mid_read_does_not_cut_the_read_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read: str
) -> None:
    """A read after a cursor is two statements (its commits' bound, then the rows); a delete
    between them (retention, erasure) must not make it return fewer than ``limit`` spans while
    more follow, which the runner would take for the end of the spans and skip the rest."""
    from sightline.store import _duckdb_evals
    from sightline.store._eval_records import EvalCursor

    s = DuckDBStore(tmp_path / "db.duckdb")
    s.migrate()
    for _ in range(4):
        s.insert_batches([batch(*(span_record(kind="llm") for _ in range(5)))])
    top = s.last_ingest_seq()
    first = s.list_span_keys_after(EvalCursor(0), upto_seq=top, kinds=("llm",), limit=7)
    bound = _duckdb_evals._read_upto

    def bound_then_delete(cur, cursor, upto_seq, kinds, limit):  # type: ignore[no-untyped-def]
        upto = bound(cur, cursor, upto_seq, kinds, limit)
        with s._cursor() as other:  # another connection deletes the second span meanwhile
            other.execute("DELETE FROM spans WHERE span_id = ?", [first[1].span_id])
        return upto

    monkeypatch.setattr(_duckdb_evals, "_read_upto", bound_then_delete)
    if read == "keys":
        got = [k.span_id for k in s.list_span_keys_after(EvalCursor(0), upto_seq=top,
                                                          kinds=("llm",), limit=7)]  # fmt: skip
    else:
        got = [x.span.span_id for x in s.list_spans_after(EvalCursor(0), upto_seq=top,
                                                           kinds=("llm",), limit=7)]  # fmt: skip
    assert got == [k.span_id for k in first]  # the read's own snapshot, all 7
    s.close()


def test_commits_checkpoint_only_past_a_larger_log_than_duckdbs_default(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "db.duckdb")
    store.migrate()
    with store._cursor() as cur:
        (threshold,) = cur.execute("SELECT current_setting('checkpoint_threshold')").fetchone()
    assert threshold == "64.0 MiB"  # DuckDB's own: 16.0 MiB; the writer checkpoints in pauses
    assert not DuckDBStore(":memory:").checkpoint_when_idle()


def test_migrations_16_17_keep_each_scores_span_start_time_and_its_newest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scores stored before them get their span's start time, and the newest of a span counts."""
    path = tmp_path / "db.duckdb"
    monkeypatch.setattr(_duckdb, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= 15])
    store = DuckDBStore(path)
    assert store.migrate() == 15
    a = span_record(start=T0 + timedelta(minutes=5))
    b = span_record(start=T0 + timedelta(minutes=40), model="claude")
    store.insert_batches([batch(a, b)])
    # b re-sent with another start is stored twice: its scores take the earliest, as an insert
    store.insert_batches([batch({**b, "start_ns": b["start_ns"] - 300 * 10**9})])
    rows = [  # (trace, span, value): of two spans, of a trace, of no stored span; a re-run
        (a["trace_id"], a["span_id"], 0.2),
        (b["trace_id"], b["span_id"], 0.8),
        (a["trace_id"], None, 0.0),
        ("ab" * 16, "cd" * 8, 1.0),
        (a["trace_id"], a["span_id"], 0.4),
    ]
    for i, (tid, sid, v) in enumerate(rows):
        store._write.execute(
            "INSERT INTO scores (project_id, score_id, trace_id, span_id, name, value, source,"
            " created_at) VALUES ('p', ?, ?, ?, 'faithfulness', ?, 'evaluator', ?)",
            [f"s{i}", tid, sid, v, datetime(2030, 1, 1, 0, i)],
        )
    q = MetricQuery(project_id="p", metric=SCORE_METRICS["faithfulness"], agg="avg",
                    start=T0, end=T0 + timedelta(hours=1), step_s=1800)  # fmt: skip
    store.close()

    monkeypatch.setattr(_duckdb, "MIGRATIONS", MIGRATIONS)
    store = DuckDBStore(path)
    try:
        assert store.migrate() == max(v for v, _ in MIGRATIONS)
        kept = store._write.execute(
            "SELECT score_id, span_start_time, superseded FROM scores ORDER BY score_id"
        ).fetchall()
        a_start = (T0 + timedelta(minutes=5)).replace(tzinfo=None)
        assert kept == [
            ("s0", a_start, True),  # migration 17: the re-run s4 is newer
            ("s1", (T0 + timedelta(minutes=35)).replace(tzinfo=None), False),
            ("s2", None, False),
            ("s3", None, False),
            ("s4", a_start, False),
        ]
        (after,) = store.query_metric(q)
        assert [(p[0] - T0, p[1]) for p in after.points] == [
            (timedelta(0), 0.4),
            (timedelta(minutes=30), 0.8),
        ]
    finally:
        store.close()


def test_scores_are_written_after_the_migrations_that_add_their_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB 2.0.1 failed the first commit appending to a table of row groups larger than the
    store's after an ALTER TABLE ... ADD COLUMN in the same process ("Corrupted segment
    tree"): migrate() checkpoints after each migration."""
    path = tmp_path / "db.duckdb"
    monkeypatch.setattr(_duckdb, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= 15])
    store = DuckDBStore(path)
    store.migrate()
    store.close()
    # several row groups of DuckDB's default size, as stores made before ROW_GROUP_SIZE have
    con = duckdb.connect(str(path))
    con.execute(
        "INSERT INTO scores (project_id, score_id, trace_id, span_id, name, value, source,"
        " created_at) SELECT 'p', 's' || i, 'ab', lpad(to_hex(i), 16, '0'), 'relevance', 0.5,"
        " 'evaluator', TIMESTAMP '2030-01-01' FROM range(300000) t(i)"
    )
    con.close()
    monkeypatch.setattr(_duckdb, "MIGRATIONS", MIGRATIONS)
    store = DuckDBStore(path)
    try:
        store.migrate()
        store.add_scores([Score(project_id="p", score_id="new", trace_id="ab", span_id="0" * 16,
                                name="relevance", value=1.0, source="evaluator",
                                created_at=datetime(2030, 1, 2, tzinfo=UTC))])  # fmt: skip
        rows = store._write.execute(
            "SELECT score_id, superseded FROM scores WHERE span_id = ? ORDER BY score_id",
            ["0" * 16],
        ).fetchall()
        assert rows == [("new", False), ("s0", True)]
    finally:
        store.close()
