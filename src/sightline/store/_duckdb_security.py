"""Keys, privacy settings, the audit log, retention purges and erasure (DuckDB SQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import orjson
import structlog

from sightline.errors import StoreError
from sightline.semconv import USER_ID_ATTRIBUTES
from sightline.store._scrub import example_texts, scrub_examples
from sightline.store.base import ApiKey, AuditEntry, Deleted, PrivacySettings

if TYPE_CHECKING:
    from sightline.store._duckdb import DuckDBStore

__all__ = [
    "add_audit",
    "checkpoint",
    "compact",
    "erase_user",
    "get_privacy",
    "list_api_keys",
    "list_audit",
    "purge_before",
    "revoke_api_key",
    "set_privacy",
    "touch_api_keys",
]

log = structlog.get_logger("sightline.store")

_T = TypeVar("_T")
_KEY_COLUMNS = "key_hash, prefix, project_id, role, created_at, name, last_used_at, revoked_at"


def _ts(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def _utc(dt: datetime | None) -> datetime | None:
    return dt.replace(tzinfo=UTC) if dt is not None else None


def _key(row: tuple[Any, ...]) -> ApiKey:
    return ApiKey(
        row[0], row[1], row[2], row[3], row[4].replace(tzinfo=UTC), row[5], _utc(row[6]),
        _utc(row[7]),
    )  # fmt: skip


@contextmanager
def _as_store_error(what: str) -> Iterator[None]:
    try:
        yield
    except duckdb.Error as e:
        raise StoreError(f"{what} failed: {e}") from e


def _admin(store: DuckDBStore, work: Callable[[duckdb.DuckDBPyConnection], _T]) -> _T:
    """Run ``work`` in one transaction; retry once when it conflicts with the span writer."""
    for attempt in (1, 2):
        with store._admin_lock, store._cursor() as cur:
            try:
                cur.execute("BEGIN")
                out = work(cur)
                cur.execute("COMMIT")
                return out
            except duckdb.TransactionException as e:
                cur.execute("ROLLBACK")
                if attempt == 2:
                    raise StoreError(f"write conflict: {e}") from e
            except duckdb.Error:
                cur.execute("ROLLBACK")
                raise
    raise AssertionError("unreachable")


def list_api_keys(store: DuckDBStore, project_id: str) -> list[ApiKey]:
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE project_id = ?"  # noqa: S608
            " ORDER BY created_at, key_hash",
            [project_id],
        ).fetchall()
    return [_key(r) for r in rows]


def revoke_api_key(store: DuckDBStore, project_id: str, key_id: str) -> ApiKey | None:
    def work(cur: duckdb.DuckDBPyConnection) -> ApiKey | None:
        rows = cur.execute(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE project_id = ?"  # noqa: S608
            " AND starts_with(key_hash, ?) AND revoked_at IS NULL",
            [project_id, key_id],
        ).fetchall()
        if len(rows) != 1:
            return None
        cur.execute("UPDATE api_keys SET revoked_at = now() WHERE key_hash = ?", [rows[0][0]])
        return _key(rows[0])

    # key ids are 16 hex digits: anything else matches nothing (and no prefix search of "")
    if len(key_id) != 16 or any(c not in "0123456789abcdef" for c in key_id):
        return None
    return _admin(store, work)


def touch_api_keys(store: DuckDBStore, last_used: dict[str, datetime]) -> None:
    if not last_used:
        return
    rows = [[_ts(t), h] for h, t in last_used.items()]
    with store._admin_lock, store._cursor() as cur:
        cur.executemany("UPDATE api_keys SET last_used_at = ? WHERE key_hash = ?", rows)


def get_privacy(store: DuckDBStore, project_id: str) -> PrivacySettings | None:
    with store._cursor() as cur:
        row = cur.execute(
            "SELECT project_id, policy, retention_days, updated_at FROM project_privacy"
            " WHERE project_id = ?",
            [project_id],
        ).fetchone()
    if row is None:
        return None
    policy = orjson.loads(row[1]) if row[1] is not None else None
    return PrivacySettings(row[0], policy, row[2], row[3].replace(tzinfo=UTC))


def set_privacy(store: DuckDBStore, settings: PrivacySettings) -> None:
    policy = orjson.dumps(settings.policy).decode() if settings.policy is not None else None
    with store._admin_lock, store._cursor() as cur:
        cur.execute(
            "INSERT OR REPLACE INTO project_privacy (project_id, policy, retention_days,"
            " updated_at) VALUES (?, ?, ?, ?)",
            [settings.project_id, policy, settings.retention_days, _ts(settings.updated_at)],
        )


def add_audit(store: DuckDBStore, e: AuditEntry) -> None:
    with store._admin_lock, store._cursor() as cur, _as_store_error("audit write"):
        cur.execute(
            'INSERT INTO audit_log (project_id, audit_id, "at", actor, action, target, details)'
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [e.project_id, e.audit_id, _ts(e.at), e.actor, e.action, e.target,
             orjson.dumps(e.details).decode()],
        )  # fmt: skip


def list_audit(
    store: DuckDBStore, project_id: str, *, limit: int = 100, before: datetime | None = None
) -> list[AuditEntry]:
    # no "before": a time past every entry (TIMESTAMP's range ends in year 294247)
    until = _ts(before) if before is not None else datetime(9999, 1, 1)
    with store._cursor() as cur:
        rows = cur.execute(
            'SELECT project_id, audit_id, "at", actor, action, target, details FROM audit_log'
            ' WHERE project_id = ? AND "at" < ? ORDER BY "at" DESC, audit_id DESC LIMIT ?',
            [project_id, until, limit],
        ).fetchall()
    return [
        AuditEntry(r[0], r[1], r[2].replace(tzinfo=UTC), r[3], r[4], r[5], orjson.loads(r[6]))
        for r in rows
    ]


def purge_before(store: DuckDBStore, project_id: str, cutoff: datetime) -> Deleted:
    c = _ts(cutoff)

    def work(cur: duckdb.DuckDBPyConnection) -> Deleted:
        # Scores of the traces that lose spans go with them; so do scores older than the
        # cutoff whose trace is already gone.
        scores = cur.execute(
            "DELETE FROM scores WHERE project_id = ? AND (trace_id IN (SELECT trace_id FROM"
            " spans WHERE project_id = ? AND start_time < ?) OR created_at < ?)",
            [project_id, project_id, c, c],
        ).fetchall()
        cur.execute("DELETE FROM outcomes WHERE project_id = ? AND created_at < ?", [project_id, c])
        spans = cur.execute(
            "DELETE FROM spans WHERE project_id = ? AND start_time < ?", [project_id, c]
        ).fetchall()
        # OTLP log records (which may quote prompts) and metric points age out with the spans
        cur.execute('DELETE FROM otel_logs WHERE project_id = ? AND "time" < ?', [project_id, c])
        cur.execute(
            'DELETE FROM otel_metric_points WHERE project_id = ? AND "time" < ?', [project_id, c]
        )
        # drift results quote the prompts and answers of their window as examples
        cur.execute(
            "DELETE FROM drift_results WHERE project_id = ? AND created_at < ?", [project_id, c]
        )
        return Deleted(int(spans[0][0]), int(scores[0][0]))

    return _admin(store, work)


def _logs_of_user(user_id: str) -> tuple[str, list[Any]]:
    """SQL matching the log records whose attributes or resource attributes name the user."""
    # the user id as it appears inside the JSON text: a cheap filter before parsing the JSON
    needle = orjson.dumps(user_id).decode()[1:-1]
    paths = [f'$."{name}"' for name in USER_ID_ATTRIBUTES]
    tests = " OR ".join(
        f"json_extract_string({col}, ?) = ?"
        for col in ("attributes", "resource_attributes")
        for _ in paths
    )
    params: list[Any] = [needle, needle]
    for _col in ("attributes", "resource_attributes"):
        for path in paths:
            params += [path, user_id]
    return f"((contains(attributes, ?) OR contains(resource_attributes, ?)) AND ({tests}))", params


def _scrub_drift_examples(cur: duckdb.DuckDBPyConnection, project_id: str, user_id: str) -> None:
    """Remove the user's prompts and answers quoted as examples in drift results."""
    texts = example_texts(
        cur.execute(
            "SELECT input, output FROM spans WHERE project_id = ? AND trace_id IN"
            " (SELECT trace_id FROM spans WHERE project_id = ? AND user_id = ?)",
            [project_id, project_id, user_id],
        ).fetchall()
    )
    if not texts:
        return
    rows = cur.execute(
        "SELECT result_id, details FROM drift_results WHERE project_id = ?"
        " AND contains(details, '\"examples\"')",
        [project_id],
    ).fetchall()
    for result_id, details in rows:
        new = scrub_examples(orjson.loads(details), texts)
        if new is not None:
            cur.execute(
                "UPDATE drift_results SET details = ? WHERE result_id = ?",
                [orjson.dumps(new).decode(), result_id],
            )


def erase_user(store: DuckDBStore, project_id: str, user_id: str) -> Deleted:
    # A trace is the user's when any of its spans names them: child spans (retrieval, tools)
    # often carry no user id of their own, and they hold the same prompt.
    def work(cur: duckdb.DuckDBPyConnection) -> Deleted:
        # the user's traces' log records (GenAI content events hold their prompts) go too, and
        # so do records that name the user in their attributes without a trace of theirs
        where, params = _logs_of_user(user_id)
        sql = (
            "DELETE FROM otel_logs WHERE project_id = ? AND (trace_id IN"  # noqa: S608 - where: constants
            f" (SELECT trace_id FROM spans WHERE project_id = ? AND user_id = ?) OR {where})"
        )
        cur.execute(sql, [project_id, project_id, user_id, *params])
        scores = cur.execute(
            "DELETE FROM scores WHERE project_id = ? AND (user_id = ? OR trace_id IN"
            " (SELECT trace_id FROM spans WHERE project_id = ? AND user_id = ?))",
            [project_id, user_id, project_id, user_id],
        ).fetchall()
        if scores[0][0]:
            # a label the user gave may have been the newest of its span: the one before it
            # counts again
            from sightline.store._duckdb_evals import mark_superseded

            mark_superseded(cur, project_id)
        # Outcomes the user's app reported: theirs by user id, trace or session.
        cur.execute(
            "DELETE FROM outcomes WHERE project_id = ? AND (user_id = ? OR trace_id IN"
            " (SELECT trace_id FROM spans WHERE project_id = ? AND user_id = ?) OR session_id IN"
            " (SELECT session_id FROM spans WHERE project_id = ? AND user_id = ?))",
            [project_id, user_id, project_id, user_id, project_id, user_id],
        )
        # Dataset rows copied from the user's spans (their id is "trace_id:span_id") hold the
        # same prompts and answers; the datasets' row counts follow.
        cur.execute(
            "DELETE FROM dataset_rows WHERE project_id = ?"
            " AND (json_extract_string(row_json, '$.metadata.user_id') = ?"
            " OR split_part(json_extract_string(row_json, '$.id'), ':', 1) IN"
            " (SELECT trace_id FROM spans WHERE project_id = ? AND user_id = ?))",
            [project_id, user_id, project_id, user_id],
        )
        cur.execute(
            "UPDATE datasets SET num_rows = (SELECT count(*) FROM dataset_rows r"
            " WHERE r.project_id = datasets.project_id AND r.dataset_id = datasets.dataset_id)"
            " WHERE project_id = ?",
            [project_id],
        )
        _scrub_drift_examples(cur, project_id, user_id)
        # the thresholds a per-user budget alerted for the user (their id and spend); a budget
        # of another scope whose value happens to equal the id keeps its marks
        cur.execute(
            "DELETE FROM budget_alerts WHERE project_id = ? AND scope_value = ? AND budget NOT IN"
            " (SELECT name FROM budgets WHERE project_id = ?"
            " AND coalesce(json_extract_string(spec, '$.scope'), 'project') <> 'user')",
            [project_id, user_id, project_id],
        )
        spans = cur.execute(
            "DELETE FROM spans WHERE project_id = ? AND trace_id IN"
            " (SELECT trace_id FROM spans WHERE project_id = ? AND user_id = ?)",
            [project_id, project_id, user_id],
        ).fetchall()
        return Deleted(int(spans[0][0]), int(scores[0][0]))

    out = _admin(store, work)
    checkpoint(store)
    return out


def checkpoint(store: DuckDBStore) -> None:
    """Rewrite the file so deleted rows leave its blocks (best effort while ingest runs)."""
    with store._admin_lock, store._cursor() as cur:
        try:
            cur.execute("CHECKPOINT")
        except duckdb.Error as e:
            log.warning("checkpoint_skipped", error=str(e))


def duckdb_settings(con: duckdb.DuckDBPyConnection) -> str:
    """The connection's memory limit and threads as DuckDB reports them (for the CLI)."""
    limit, threads = con.execute(
        "SELECT current_setting('memory_limit'), current_setting('threads')"
    ).fetchall()[0]
    return f"DuckDB memory_limit {limit}, threads {threads}"


def compact(
    path: Path,
    *,
    memory_limit: str | None = None,
    threads: int | None = None,
    report: Callable[[str], None] | None = None,
) -> tuple[int, int]:
    """Rewrite the database file so deleted rows leave it; return its size before and after.

    DuckDB marks deleted rows and frees blocks but does not overwrite them, so erased values
    stay readable in the file's bytes until the blocks are reused. Copying the database into a
    new file and swapping it in removes them. The file must not be open (the server stopped).
    ``memory_limit`` and ``threads`` are DuckDB's settings for the copy (as ``serve`` takes
    them); ``report`` is told the settings the connection runs with.
    """
    before = path.stat().st_size
    fresh = path.with_name(path.name + ".compact")
    fresh.unlink(missing_ok=True)
    config: dict[str, Any] = {}
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if threads is not None:
        config["threads"] = threads
    try:
        con = duckdb.connect(str(path), config=config)
    except duckdb.Error as e:
        raise StoreError(f"cannot open {path}: {e}") from None
    try:
        if report is not None:
            report(duckdb_settings(con))
        name = con.execute("SELECT current_database()").fetchall()[0][0]
        from sightline.store._duckdb import ROW_GROUP_SIZE  # _duckdb imports this module

        # the row group size the store writes with (see ROW_GROUP_SIZE)
        con.execute(f"ATTACH ? AS _fresh (ROW_GROUP_SIZE {ROW_GROUP_SIZE})", [str(fresh)])
        con.execute(f'COPY FROM DATABASE "{name}" TO _fresh')
        con.execute("DETACH _fresh")
    except duckdb.Error as e:
        fresh.unlink(missing_ok=True)
        raise StoreError(f"compaction failed: {e}") from e
    finally:
        con.close()
    fresh.replace(path)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
    return before, path.stat().st_size
