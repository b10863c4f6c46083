"""Dashboard users, sessions and memberships (DuckDB SQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb

from sightline.errors import ConfigError
from sightline.store._users import Membership, User, UserSession

if TYPE_CHECKING:
    from sightline.store._duckdb import DuckDBStore

__all__ = [
    "add_membership",
    "count_users",
    "create_session",
    "create_first_user",
    "create_user",
    "delete_session",
    "get_session",
    "get_user",
    "get_user_by_email",
    "list_members",
    "list_memberships",
    "remove_membership",
]

_USER_COLUMNS = "user_id, email, password_hash, is_admin, created_at"


def _ts(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def _user(row: tuple[Any, ...]) -> User:
    return User(row[0], row[1], row[2], bool(row[3]), row[4].replace(tzinfo=UTC))


def create_user(store: DuckDBStore, user: User) -> None:
    with store._admin_lock, store._cursor() as cur:
        try:
            cur.execute(
                f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?)",  # noqa: S608
                [
                    user.user_id,
                    user.email,
                    user.password_hash,
                    user.is_admin,
                    _ts(user.created_at),
                ],  # fmt: skip
            )
        except duckdb.ConstraintException:
            raise ConfigError(f"a user with email {user.email!r} exists") from None


def create_first_user(store: DuckDBStore, user: User) -> bool:
    # one statement under the admin lock: the check and the insert cannot interleave with another
    # (a DuckDB file has one writing process)
    with store._admin_lock, store._cursor() as cur:
        rows = cur.execute(
            f"INSERT INTO users ({_USER_COLUMNS}) SELECT ?, ?, ?, ?, ?"  # noqa: S608
            " WHERE NOT EXISTS (SELECT 1 FROM users) RETURNING user_id",
            [user.user_id, user.email, user.password_hash, user.is_admin, _ts(user.created_at)],
        ).fetchall()
    return bool(rows)


def count_users(store: DuckDBStore) -> int:
    with store._cursor() as cur:
        row = cur.execute("SELECT count(*) FROM users").fetchone()
    return int(row[0]) if row else 0


def get_user(store: DuckDBStore, user_id: str) -> User | None:
    with store._cursor() as cur:
        row = cur.execute(
            f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = ?",  # noqa: S608
            [user_id],
        ).fetchone()
    return _user(row) if row else None


def get_user_by_email(store: DuckDBStore, email: str) -> User | None:
    with store._cursor() as cur:
        row = cur.execute(
            f"SELECT {_USER_COLUMNS} FROM users WHERE email = ?",  # noqa: S608
            [email.strip().lower()],
        ).fetchone()
    return _user(row) if row else None


def create_session(store: DuckDBStore, session: UserSession) -> None:
    with store._admin_lock, store._cursor() as cur:
        # expired sessions go at the next login: the table never outgrows the live ones
        cur.execute("DELETE FROM user_sessions WHERE expires_at <= ?", [_ts(session.created_at)])
        cur.execute(
            "INSERT INTO user_sessions VALUES (?, ?, ?, ?, ?)",
            [
                session.session_hash,
                session.user_id,
                session.csrf_token,
                _ts(session.created_at),
                _ts(session.expires_at),
            ],  # fmt: skip
        )


def get_session(store: DuckDBStore, session_hash: str, now: datetime) -> UserSession | None:
    with store._cursor() as cur:
        row = cur.execute(
            "SELECT session_hash, user_id, csrf_token, created_at, expires_at FROM user_sessions"
            " WHERE session_hash = ? AND expires_at > ?",
            [session_hash, _ts(now)],
        ).fetchone()
    if row is None:
        return None
    return UserSession(row[0], row[1], row[2], row[3].replace(tzinfo=UTC),
                       row[4].replace(tzinfo=UTC))  # fmt: skip


def delete_session(store: DuckDBStore, session_hash: str) -> None:
    with store._admin_lock, store._cursor() as cur:
        cur.execute("DELETE FROM user_sessions WHERE session_hash = ?", [session_hash])


def add_membership(store: DuckDBStore, m: Membership) -> None:
    with store._admin_lock, store._cursor() as cur:
        cur.execute(
            "INSERT OR REPLACE INTO memberships VALUES (?, ?, ?, ?)",
            [m.user_id, m.project_id, m.role, _ts(m.created_at)],
        )


def remove_membership(store: DuckDBStore, user_id: str, project_id: str) -> bool:
    with store._admin_lock, store._cursor() as cur:
        rows = cur.execute(
            "DELETE FROM memberships WHERE user_id = ? AND project_id = ? RETURNING user_id",
            [user_id, project_id],
        ).fetchall()
    return bool(rows)


def list_memberships(store: DuckDBStore, user_id: str) -> list[Membership]:
    with store._cursor() as cur:
        rows = cur.execute(
            "SELECT user_id, project_id, role, created_at FROM memberships WHERE user_id = ?"
            " ORDER BY project_id",
            [user_id],
        ).fetchall()
    return [Membership(r[0], r[1], r[2], r[3].replace(tzinfo=UTC)) for r in rows]


def list_members(store: DuckDBStore, project_id: str) -> list[tuple[User, Membership]]:
    with store._cursor() as cur:
        rows = cur.execute(
            "SELECT u.user_id, u.email, u.password_hash, u.is_admin, u.created_at,"
            " m.role, m.created_at FROM memberships m JOIN users u USING (user_id)"
            " WHERE m.project_id = ? ORDER BY u.email",
            [project_id],
        ).fetchall()
    return [
        (_user(r[:5]), Membership(r[0], project_id, r[5], r[6].replace(tzinfo=UTC))) for r in rows
    ]
