"""Dashboard users, sessions and memberships in the DuckDB store (migration 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sightline.errors import ConfigError
from sightline.store import DuckDBStore, Membership, User, UserSession
from sightline.store._migrations import MIGRATIONS

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> DuckDBStore:
    s = DuckDBStore(tmp_path / "s.duckdb")
    assert s.migrate() == max(v for v, _ in MIGRATIONS)  # the highest applied
    s.create_project("alpha")
    s.create_project("beta")
    return s


def test_users_are_unique_by_lower_case_email(store: DuckDBStore) -> None:
    assert store.count_users() == 0
    ada = User("u1", "ada@example.com", "$argon2id$x", True, T0)
    store.create_user(ada)
    assert store.get_user("u1") == ada
    assert store.get_user_by_email(" ADA@example.com ") == ada
    assert store.get_user("nope") is None and store.get_user_by_email("x@y.z") is None
    with pytest.raises(ConfigError, match="exists"):
        store.create_user(User("u2", "ada@example.com", "h", False, T0))
    assert store.count_users() == 1


def test_sessions_expire_and_expired_ones_are_dropped_at_the_next_login(
    store: DuckDBStore,
) -> None:
    store.create_user(User("u1", "ada@example.com", "h", False, T0))
    old = UserSession("h-old", "u1", "csrf1", T0, T0 + timedelta(hours=1))
    store.create_session(old)
    assert store.get_session("h-old", T0 + timedelta(minutes=5)) == old
    assert store.get_session("h-old", T0 + timedelta(hours=2)) is None
    new = UserSession("h-new", "u1", "csrf2", T0 + timedelta(days=1), T0 + timedelta(days=2))
    store.create_session(new)
    with store._cursor() as cur:
        rows = cur.execute("SELECT session_hash FROM user_sessions").fetchall()
    assert rows == [("h-new",)]
    store.delete_session("h-new")
    assert store.get_session("h-new", T0 + timedelta(days=1, hours=1)) is None


def test_memberships(store: DuckDBStore) -> None:
    ada = User("u1", "ada@example.com", "h", False, T0)
    bob = User("u2", "bob@example.com", "h", False, T0)
    store.create_user(ada)
    store.create_user(bob)
    store.add_membership(Membership("u1", "beta", "viewer", T0))
    store.add_membership(Membership("u1", "alpha", "viewer", T0))
    store.add_membership(Membership("u1", "alpha", "admin", T0))  # a role change
    store.add_membership(Membership("u2", "alpha", "viewer", T0))
    assert [(m.project_id, m.role) for m in store.list_memberships("u1")] == [
        ("alpha", "admin"),
        ("beta", "viewer"),
    ]
    assert [(u.email, m.role) for u, m in store.list_members("alpha")] == [
        ("ada@example.com", "admin"),
        ("bob@example.com", "viewer"),
    ]
    assert store.remove_membership("u1", "beta") is True
    assert store.remove_membership("u1", "beta") is False
    assert [m.project_id for m in store.list_memberships("u1")] == ["alpha"]
