"""`sightline migrate`: a DuckDB store moved to ClickHouse (chdb), nothing lost or doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from _helpers import start_server
from sightline.cli import main
from sightline.model import Score
from sightline.store import open_store
from sightline.store._clickhouse import ClickHouseStore
from sightline.store._duckdb import DuckDBStore
from sightline.store._eval_records import EvalCursor
from sightline.store.base import SpanQuery
from store._spans import T0, batch, span_record

# The ClickHouse tables of scores, evaluation cursors and projects belong to other parts of the
# store; where this branch does not have them yet, the test creates them as DuckDB's schema
# reads (IF NOT EXISTS: once the parts are merged, their own tables are the ones used).
_TARGET_TABLES = [
    """CREATE TABLE IF NOT EXISTS scores (
        project_id String, score_id String, trace_id String, span_id Nullable(String),
        name String, value Nullable(Float64), label Nullable(String), passed Nullable(Bool),
        explanation Nullable(String), source String, evaluator Nullable(String),
        evaluator_version Nullable(String), user_id Nullable(String),
        created_at DateTime64(6, 'UTC'), details Nullable(String)
    ) ENGINE = MergeTree ORDER BY (project_id, trace_id, created_at)""",
    """CREATE TABLE IF NOT EXISTS eval_cursors (
        name String, seq Int64, pos String, updated_at DateTime64(6, 'UTC'),
        _version UInt64
    ) ENGINE = ReplacingMergeTree(_version) ORDER BY name""",
    # no key in DuckDB: a row is all its columns; severity_text not Nullable here on purpose
    """CREATE TABLE IF NOT EXISTS otel_logs (
        project_id String, `time` DateTime64(6, 'UTC'),
        observed_time Nullable(DateTime64(6, 'UTC')), severity_number Nullable(Int32),
        severity_text String, body Nullable(String), event_name Nullable(String),
        attributes String, resource_attributes String,
        service_name LowCardinality(Nullable(String)), scope Nullable(String),
        trace_id Nullable(String), span_id Nullable(String)
    ) ENGINE = MergeTree PARTITION BY toYYYYMMDD(`time`) ORDER BY (project_id, `time`)""",
    """CREATE TABLE IF NOT EXISTS projects (
        id String, created_at DateTime64(6, 'UTC'), _version UInt64
    ) ENGINE = ReplacingMergeTree(_version) ORDER BY id""",
]


def _prepare_target(url: str) -> None:
    st = open_store(url)
    try:
        st.migrate()
        for ddl in _TARGET_TABLES:
            st._cmd(ddl)  # type: ignore[attr-defined]
    finally:
        st.close()


def _make_source(path: Path, *, commits: int, per_commit: int) -> None:
    """A DuckDB store: spans in several commits (varied values), scores, a cursor, projects."""
    st = DuckDBStore(path)
    st.migrate()
    try:
        st.create_project("p")
        st.create_project("q")
        for c in range(commits):
            recs = []
            for i in range(per_commit):
                n = c * per_commit + i
                over: dict[str, Any] = {
                    "project_id": "p" if n % 3 else "q",
                    "start": T0 + timedelta(seconds=n),
                    "model": ["gpt-4o", "claude-sonnet-4-5", None][n % 3],
                    "input_tokens": None if n % 7 == 0 else n,
                    "is_streaming": bool(n % 2),
                    "ingest_notes": ["truncated:input"] if n % 5 == 0 else [],
                    "attributes": {"k": n, "s": "ü\"'<x>"},
                    "input": f"question {n} 100% \\ ok",
                }
                if n % 4:
                    over["parent_span_id"] = os.urandom(8).hex()
                recs.append(span_record(**over))
            st.insert_batches([batch(*recs)])
        traces = [
            (r[0], r[1], r[2])
            for r in st._con.execute(
                "SELECT project_id, trace_id, span_id FROM spans ORDER BY ingest_seq LIMIT 50"
            ).fetchall()
        ]
        scores = [
            Score(
                project_id=p,
                score_id=uuid.uuid4().hex,
                trace_id=t,
                span_id=s if i % 2 else None,
                name="relevance",
                value=i / 50,
                label="ok" if i % 3 else None,
                passed=bool(i % 2),
                explanation="because",
                source="evaluator",
                evaluator="relevance",
                user_id=None,
                created_at=datetime(2026, 11, 2, tzinfo=UTC) + timedelta(seconds=i),
                details={"rouge": i} if i % 4 == 0 else None,
            )
            for i, (p, t, s) in enumerate(traces)
        ]
        # the runner's cursor: commit 2 read whole; a second one inside commit 3
        st.append_eval_scores(scores[:25], cursor_name="runner", cursor=EvalCursor(2))
        mid = st._con.execute(
            "SELECT project_id, trace_id, span_id FROM spans WHERE ingest_seq = 3"
            " ORDER BY project_id, trace_id, span_id LIMIT 1 OFFSET 5"
        ).fetchall()[0]
        st.append_eval_scores(
            scores[25:], cursor_name="runner-b", cursor=EvalCursor(3, "/".join(mid))
        )
        # a cursor whose span is gone (erased since): resumes at the start of commit 3
        gone = EvalCursor(3, f"p/{'0' * 32}/{'0' * 16}")
        st.append_eval_scores([], cursor_name="runner-gone", cursor=gone)
        # 6,000 log records, NULLs in half of a column, and ten rows present twice
        st._con.execute(
            "INSERT INTO otel_logs (project_id, time, severity_number, severity_text, body,"
            " attributes, resource_attributes, service_name, trace_id)"
            " SELECT 'p', TIMESTAMP '2026-11-01 12:00:00' + to_milliseconds(i * 250), i % 24,"
            " CASE WHEN i % 2 = 0 THEN 'INFO' END, 'log ' || i, '{}', '{}', 'bot',"
            " CASE WHEN i % 3 = 0 THEN lpad(to_hex(i), 32, '0') END FROM range(6000) t(i)"
        )
        st._con.execute(
            "INSERT INTO otel_logs SELECT * FROM otel_logs"
            " WHERE time < TIMESTAMP '2026-11-01 12:00:02.5'"
        )
    finally:
        st.close()


def _migrate_cli(src: Path, url: str, *extra: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-m", "sightline", "migrate", "--from", f"duckdb://{src}", "--to", url]
        + list(extra),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        **kw,
    )


def _source_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    st = DuckDBStore(path)
    try:
        return [tuple(r) for r in st._con.execute(sql).fetchall()]
    finally:
        st.close()


def _summary(out: str) -> dict[str, tuple[int, int]]:
    rows: dict[str, tuple[int, int]] = {}
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("table "))
    for line in lines[start + 1 :]:
        name, source, added, _ = line.split()
        rows[name] = (int(source), int(added))
    return rows


class TestMigrate:
    def test_copies_everything_once_and_a_second_run_adds_nothing(self, tmp_path: Path) -> None:
        src = tmp_path / "sightline.duckdb"
        _make_source(src, commits=4, per_commit=300)
        url = f"chdb://{tmp_path / 'ch'}"
        _prepare_target(url)

        first = _migrate_cli(src, url, "--chunk-rows", "250")
        assert first.returncode == 0, first.stdout + first.stderr
        summary = _summary(first.stdout)
        assert summary["spans"] == (1200, 1200)
        assert summary["scores"] == (50, 50)
        assert summary["eval_cursors"] == (3, 3)
        assert summary["projects"] == (2, 2)
        assert summary["otel_logs"] == (6010, 6010)
        assert "spans: 1200/1200 read, 1200 added" in first.stdout

        again = _migrate_cli(src, url)  # chunks of 10,000: looked up 5,000 rows at a time
        assert again.returncode == 0, again.stdout + again.stderr
        added_again = {t: a for t, (_, a) in _summary(again.stdout).items()}
        # every table both stores have is looked at again, and none gets a row
        assert {"spans", "scores", "eval_cursors", "projects", "otel_logs"} <= set(added_again)
        assert set(added_again.values()) == {0}, added_again

        duck = DuckDBStore(src)
        ch = ClickHouseStore(url)
        try:
            # spans: every trace reads the same on both stores, each span once
            traces = duck._con.execute(
                "SELECT DISTINCT project_id, trace_id FROM spans ORDER BY 1, 2"
            ).fetchall()
            assert len(traces) == 1200
            for p, t in traces[::60]:
                assert ch.get_trace(p, t) == duck.get_trace(p, t)
            for p in ("p", "q"):
                assert _all_spans(ch, p) == _all_spans(duck, p)
            assert ch._q("SELECT count(), uniqExact(project_id, trace_id, span_id) FROM spans")[
                0
            ] == (1200, 1200)
            assert ch.count_spans("p") == duck.count_spans("p")
            assert ch.count_spans("q") == duck.count_spans("q")
            # ingest order kept: the target's commit numbers never go down along the source's
            order = duck._con.execute(
                "SELECT project_id, trace_id, span_id FROM spans"
                " ORDER BY ingest_seq, project_id, trace_id, span_id"
            ).fetchall()
            seq_of = {
                (r[0], r[1], r[2]): r[3]
                for r in ch._q("SELECT project_id, trace_id, span_id, ingest_seq FROM spans")
            }
            seqs = [seq_of[tuple(k)] for k in order]  # type: ignore[index]
            assert seqs == sorted(seqs)
            # scores and projects: the same rows (through the store's API where this branch's
            # ClickHouse store has it, the raw columns otherwise)
            if hasattr(ch, "list_scores"):
                for p, t in {(s.project_id, s.trace_id) for s in _duck_scores(duck)}:
                    assert ch.list_scores(p, t) == duck.list_scores(p, t)
            else:
                cols = (
                    "project_id, score_id, trace_id, span_id, name, value, label, passed,"
                    " explanation, source, evaluator, evaluator_version, user_id, created_at,"
                    " details"
                )
                want = sorted(duck._con.execute(f"SELECT {cols} FROM scores").fetchall())  # noqa: S608
                got = sorted(
                    tuple(v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in r)
                    for r in ch._q(f"SELECT {cols} FROM scores")  # noqa: S608
                )
                assert got == want
            assert ch._q("SELECT count() FROM scores")[0][0] == 50
            assert sorted(r[0] for r in ch._q("SELECT id FROM projects")) == ["p", "q"]
            log_cols = "time, severity_number, coalesce(severity_text, ''), body, trace_id"
            want_logs = duck._con.execute(f"SELECT {log_cols} FROM otel_logs").fetchall()  # noqa: S608
            got_logs = ch._q(f"SELECT {log_cols} FROM otel_logs")  # noqa: S608
            assert sorted((t.replace(tzinfo=None), *rest) for t, *rest in got_logs) == sorted(
                want_logs
            )
            # each cursor names, in the target's commits, exactly the spans it named before
            # (the one whose span is gone: the spans of the commits before its commit)
            for name in ("runner", "runner-b", "runner-gone"):
                s_seq, s_pos = duck._con.execute(
                    "SELECT seq, pos FROM eval_cursors WHERE name = ?", [name]
                ).fetchall()[0]
                [(t_seq, t_pos)] = ch._q(
                    "SELECT seq, pos FROM eval_cursors WHERE name = {n:String}", {"n": name}
                )
                if name == "runner-gone":
                    s_seq, s_pos = s_seq - 1, ""
                assert t_pos == s_pos
                before_src = _read_before(duck, s_seq, s_pos)
                before_dst = {
                    (r[0], r[1], r[2])
                    for r in ch._q("SELECT project_id, trace_id, span_id, ingest_seq FROM spans")
                    if _is_before(r[3], (r[0], r[1], r[2]), t_seq, t_pos)
                }
                assert before_dst == before_src
                assert 0 < len(before_src) < 1200
        finally:
            ch.close()
            duck.close()

    def test_an_interrupted_run_resumes_without_duplicates(self, tmp_path: Path) -> None:
        src = tmp_path / "sightline.duckdb"
        _make_source(src, commits=20, per_commit=2000)
        url = f"chdb://{tmp_path / 'ch'}"
        _prepare_target(url)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
        proc = subprocess.Popen(
            [sys.executable, "-m", "sightline", "migrate", "--from", f"duckdb://{src}"]
            + ["--to", url, "--chunk-rows", "2000"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("spans: 6000/40000 read"):
                proc.send_signal(signal.SIGKILL)  # mid-copy, no chance to tidy up
                break
        proc.stdout.close()
        proc.wait(60)
        assert proc.returncode == -signal.SIGKILL, "".join(seen)

        ch = ClickHouseStore(url)
        try:
            partial = ch._q("SELECT count() FROM spans")[0][0]
        finally:
            ch.close()
        assert 6000 <= partial < 40000

        resumed = _migrate_cli(src, url, "--chunk-rows", "2000")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        summary = _summary(resumed.stdout)
        assert summary["spans"] == (40000, 40000 - partial)
        ch = ClickHouseStore(url)
        try:
            assert ch._q("SELECT count(), uniqExact(project_id, trace_id, span_id) FROM spans")[
                0
            ] == (40000, 40000)
            assert ch._q("SELECT count(), uniqExact(score_id) FROM scores")[0] == (50, 50)
        finally:
            ch.close()
        want = _source_rows(src, "SELECT count(*), count(DISTINCT span_id) FROM spans")
        assert want == [(40000, 40000)]


def _duck_scores(duck: DuckDBStore) -> list[Score]:
    rows = duck._con.execute("SELECT DISTINCT project_id, trace_id FROM scores").fetchall()
    return [s for p, t in rows for s in duck.list_scores(p, t)]


def _all_spans(st: Any, project_id: str) -> list[Any]:
    spans, cursor = [], None
    while True:
        page = st.list_spans(SpanQuery(project_id=project_id, limit=500, cursor=cursor))
        spans += page.spans
        if not (cursor := page.next_cursor):
            return spans


def _read_before(duck: DuckDBStore, seq: int, pos: str) -> set[tuple[str, str, str]]:
    rows = duck._con.execute("SELECT project_id, trace_id, span_id, ingest_seq FROM spans")
    return {(r[0], r[1], r[2]) for r in rows.fetchall() if _is_before(r[3], r[:3], seq, pos)}


def _is_before(seq: int, key: tuple[str, ...], c_seq: int, c_pos: str) -> bool:
    """Whether the runner at cursor (c_seq, c_pos) has read this span (its SQL, in Python)."""
    if c_pos:
        return (seq, *key) <= (c_seq, *c_pos.split("/"))
    return seq <= c_seq


class TestChunks:
    def test_chunks_keep_order_stay_small_and_never_straddle_a_cut(self, tmp_path: Path) -> None:
        from sightline.store._migrate import _chunks

        src = tmp_path / "sightline.duckdb"
        _make_source(src, commits=5, per_commit=300)
        st = DuckDBStore(src)
        try:
            sql = (
                "SELECT span_id, ingest_seq FROM spans"
                " ORDER BY ingest_seq, project_id, trace_id, span_id"
            )
            want = st._con.execute(sql).fetchall()
            chunks = list(_chunks(st, sql, 250, [1, 3]))  # cuts after commit 1, after commit 3
        finally:
            st.close()
        assert all(0 < c.num_rows <= 250 for c in chunks)
        got = [r for c in chunks for r in zip(*c.to_pydict().values(), strict=True)]
        assert got == want
        for c in chunks:
            seqs = set(c.column("ingest_seq").to_pylist())
            assert not (min(seqs) <= 1 < max(seqs)) and not (min(seqs) <= 3 < max(seqs))
        assert [c.num_rows for c in chunks] == [250, 50, 250, 250, 100, 250, 250, 100]


class TestMigrateRefuses:
    @pytest.mark.parametrize(
        ("source", "target", "message"),
        [
            ("duckdb:///nowhere/sightline.duckdb", "chdb://{tmp}/x", "no DuckDB store at"),
            ("{src}", "duckdb://{tmp}/x", "the target must be ClickHouse"),
            ("{src}", "{tmp}/x", "the target must be ClickHouse"),
            ("{src}", "postgres://h/db", "unknown target URL"),
            ("{src}", "chdb://", "chdb store URL needs a directory"),
            ("{src}", "clickhouse://:8123/db", "needs a host"),
            ("{src}", "clickhouse://h:notaport/db", "invalid port"),
            ("clickhouse://h:8123/db", "chdb://{tmp}/x", "the source must be a DuckDB store"),
            ("duckdb://", "chdb://{tmp}/x", "the source URL needs a file"),
        ],
    )
    def test_bad_urls_and_a_missing_source(
        self, tmp_path: Path, source: str, target: str, message: str
    ) -> None:
        src = tmp_path / "sightline.duckdb"
        st = DuckDBStore(src)
        st.migrate()
        st.close()
        result = CliRunner().invoke(
            main,
            ["migrate", "--from", source.format(src=src), "--to", target.format(tmp=tmp_path)],
        )
        assert result.exit_code == 1, result.output
        assert message in result.output
        assert "Traceback" not in result.output
        assert not (tmp_path / "x").exists()

    def test_a_source_held_by_a_running_server(self, tmp_path: Path) -> None:
        srv = start_server(tmp_path)
        try:
            src = srv.data_dir / "sightline.duckdb"
            result = _migrate_cli(src, f"chdb://{tmp_path / 'ch'}")
        finally:
            srv.stop()
        assert result.returncode == 1, result.stdout + result.stderr
        assert "stop it before migrating" in result.stderr
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "ch").exists()

    def test_chunk_rows_must_be_positive(self, tmp_path: Path) -> None:
        result = CliRunner().invoke(
            main,
            ["migrate", "--from", str(tmp_path / "s.duckdb"), "--to", "chdb:///x", "--chunk-rows"]
            + ["0"],
        )
        assert result.exit_code == 2
        assert "--chunk-rows" in result.output
