"""The prompt registry: append-only versions and movable labels."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb
import orjson

from sightline.errors import Conflict, NotFound
from sightline.model import PromptVersion
from sightline.store._analysis_records import PromptSummary

if TYPE_CHECKING:
    from sightline.store._duckdb import DuckDBStore

__all__ = [
    "add_prompt_version",
    "delete_prompt_label",
    "get_prompt_version",
    "list_prompt_versions",
    "list_prompts",
    "set_prompt_label",
]

_COLS = (
    "project_id, name, version, kind, type, template, model, parameters, author, message,"
    " created_at"
)


def _ts(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def _labels(cur: duckdb.DuckDBPyConnection, project_id: str, name: str) -> dict[int, list[str]]:
    rows = cur.execute(
        "SELECT version, label FROM prompt_labels WHERE project_id = ? AND name = ? ORDER BY label",
        [project_id, name],
    ).fetchall()
    out: dict[int, list[str]] = {}
    for v, label in rows:
        out.setdefault(int(v), []).append(str(label))
    return out


def _version(r: tuple[Any, ...], labels: list[str]) -> PromptVersion:
    template = orjson.loads(r[5]) if r[4] == "chat" else r[5]
    return PromptVersion(
        project_id=r[0],
        name=r[1],
        version=int(r[2]),
        kind=r[3],
        type=r[4],
        template=template,
        model=r[6],
        parameters=orjson.loads(r[7]),
        labels=labels,
        author=r[8],
        message=r[9],
        created_at=r[10].replace(tzinfo=UTC),
    )


def add_prompt_version(
    store: DuckDBStore, pv: PromptVersion, *, labels: list[str], updated_by: str | None
) -> PromptVersion:
    template = pv.template if isinstance(pv.template, str) else orjson.dumps(pv.template).decode()
    with store._admin_lock, store._cursor() as cur:
        row = cur.execute(
            "SELECT max(version), any_value(kind) FROM prompt_versions"
            " WHERE project_id = ? AND name = ?",
            [pv.project_id, pv.name],
        ).fetchall()[0]
        if row[1] is not None and row[1] != pv.kind:
            raise Conflict(f"{pv.name!r} is a {row[1]}; a new version cannot make it a {pv.kind}")
        version = int(row[0] or 0) + 1
        cur.execute("BEGIN")
        try:
            cur.execute(
                f"INSERT INTO prompt_versions ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                [
                    pv.project_id,
                    pv.name,
                    version,
                    pv.kind,
                    pv.type,
                    template,
                    pv.model,
                    orjson.dumps(pv.parameters).decode(),
                    pv.author,
                    pv.message,
                    _ts(pv.created_at),
                ],  # fmt: skip
            )
            for label in labels:
                _put_label(cur, pv.project_id, pv.name, label, version, pv.created_at, updated_by)
            cur.execute("COMMIT")
        except duckdb.Error:
            cur.execute("ROLLBACK")
            raise
        got = _labels(cur, pv.project_id, pv.name).get(version, [])
    return _version(
        (pv.project_id, pv.name, version, pv.kind, pv.type, template, pv.model,
         orjson.dumps(pv.parameters), pv.author, pv.message, _ts(pv.created_at)),
        got,
    )  # fmt: skip


def _put_label(
    cur: duckdb.DuckDBPyConnection,
    project_id: str,
    name: str,
    label: str,
    version: int,
    at: datetime,
    by: str | None,
) -> None:
    cur.execute(
        "INSERT OR REPLACE INTO prompt_labels"
        " (project_id, name, label, version, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?)",
        [project_id, name, label, version, _ts(at), by],
    )


def list_prompts(store: DuckDBStore, project_id: str, kind: str | None) -> list[PromptSummary]:
    where, params = "project_id = ?", [project_id]
    if kind is not None:
        where += " AND kind = ?"
        params.append(kind)
    with store._cursor() as cur:
        rows = cur.execute(
            "SELECT name, any_value(kind), max(version), count(*), max(created_at)"  # noqa: S608
            f" FROM prompt_versions WHERE {where} GROUP BY name ORDER BY name",
            params,
        ).fetchall()
        labels = cur.execute(
            "SELECT name, label, version FROM prompt_labels WHERE project_id = ?"
            " ORDER BY name, label",
            [project_id],
        ).fetchall()
    by_name: dict[str, dict[str, int]] = {}
    for name, label, version in labels:
        by_name.setdefault(name, {})[label] = int(version)
    return [
        PromptSummary(
            name=r[0],
            kind=r[1],
            latest_version=int(r[2]),
            num_versions=int(r[3]),
            labels=by_name.get(r[0], {}),
            updated_at=r[4].replace(tzinfo=UTC),
        )
        for r in rows
    ]


def list_prompt_versions(store: DuckDBStore, project_id: str, name: str) -> list[PromptVersion]:
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {_COLS} FROM prompt_versions WHERE project_id = ? AND name = ?"  # noqa: S608
            " ORDER BY version",
            [project_id, name],
        ).fetchall()
        labels = _labels(cur, project_id, name)
    return [_version(r, labels.get(int(r[2]), [])) for r in rows]


def get_prompt_version(
    store: DuckDBStore,
    project_id: str,
    name: str,
    *,
    version: int | None = None,
    label: str | None = None,
) -> PromptVersion | None:
    with store._cursor() as cur:
        if version is None and label is not None and label != "latest":
            row = cur.execute(
                "SELECT version FROM prompt_labels WHERE project_id = ? AND name = ? AND label = ?",
                [project_id, name, label],
            ).fetchall()
            if not row:
                return None
            version = int(row[0][0])
        if version is None:
            rows = cur.execute(
                f"SELECT {_COLS} FROM prompt_versions WHERE project_id = ? AND name = ?"  # noqa: S608
                " ORDER BY version DESC LIMIT 1",
                [project_id, name],
            ).fetchall()
        else:
            rows = cur.execute(
                f"SELECT {_COLS} FROM prompt_versions WHERE project_id = ? AND name = ?"  # noqa: S608
                " AND version = ?",
                [project_id, name, version],
            ).fetchall()
        if not rows:
            return None
        labels = _labels(cur, project_id, name)
    return _version(rows[0], labels.get(int(rows[0][2]), []))


def set_prompt_label(
    store: DuckDBStore,
    project_id: str,
    name: str,
    label: str,
    version: int,
    *,
    at: datetime,
    updated_by: str | None,
) -> int | None:
    with store._admin_lock, store._cursor() as cur:
        exists = cur.execute(
            "SELECT count(*) FROM prompt_versions"
            " WHERE project_id = ? AND name = ? AND version = ?",
            [project_id, name, version],
        ).fetchall()[0][0]
        if not exists:
            raise NotFound(f"prompt {name!r} has no version {version}")
        prev = cur.execute(
            "SELECT version FROM prompt_labels WHERE project_id = ? AND name = ? AND label = ?",
            [project_id, name, label],
        ).fetchall()
        _put_label(cur, project_id, name, label, version, at, updated_by)
    return int(prev[0][0]) if prev else None


def delete_prompt_label(store: DuckDBStore, project_id: str, name: str, label: str) -> int | None:
    with store._admin_lock, store._cursor() as cur:
        prev = cur.execute(
            "SELECT version FROM prompt_labels WHERE project_id = ? AND name = ? AND label = ?",
            [project_id, name, label],
        ).fetchall()
        if prev:
            cur.execute(
                "DELETE FROM prompt_labels WHERE project_id = ? AND name = ? AND label = ?",
                [project_id, name, label],
            )
    return int(prev[0][0]) if prev else None
