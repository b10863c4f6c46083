"""ClickHouse creates of unique things raced by two writers: one wins (docs/clickhouse.md).

ClickHouse has no unique keys; the store claims a key before creating it
(``CHBase._create_unique``). Two threads start each create at the same moment, round after
round: on chdb they share the one store (chdb runs one query at a time per process, so their
queries interleave), and on a server (``--clickhouse-http``, SIGHTLINE_CLICKHOUSE_URL) each
thread has its own store and connection, as two Sightline processes would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import sightline.store._clickhouse_base as ch_base
from sightline.errors import ConfigError, Conflict, SightlineError, StoreError
from sightline.model import PromptVersion, RuleVersion
from sightline.store import open_store
from sightline.store._eval_records import Dataset
from sightline.store._users import User
from store._spans import store_url

ROUNDS = 12


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    url = store_url("clickhouse", tmp_path)
    a: Any = open_store(url)
    a.migrate()
    b: Any = a if url.startswith("chdb:") else open_store(url)
    try:
        yield a, b
    finally:
        if b is not a:
            b.close()
        a.close()


def race(a: Any, b: Any, fn: Callable[[Any], Any]) -> list[Any]:
    """``fn(store)`` on two threads released at once: each one's result or exception."""
    gate = threading.Barrier(2)
    out: list[Any] = [None, None]

    def run(i: int, st: Any) -> None:
        gate.wait()
        try:
            out[i] = fn(st)
        except SightlineError as e:
            out[i] = e

    threads = [threading.Thread(target=run, args=(i, st)) for i, st in enumerate((a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def _one_winner(results: list[Any], loser: type[Exception], match: str) -> None:
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1, results  # exactly one winner
    # the loser gets the error of a second create, or the "try again" of a busy key
    assert isinstance(errors[0], loser | Conflict), errors[0]
    if not isinstance(errors[0], Conflict):
        assert match in str(errors[0])


def test_two_writers_creating_one_project_one_wins(pair: tuple[Any, Any]) -> None:
    a, b = pair
    for i in range(ROUNDS):
        _one_winner(race(a, b, lambda st, i=i: st.create_project(f"p{i}")), ConfigError, "exists")
    assert [p.id for p in a.list_projects()] == sorted(f"p{i}" for i in range(ROUNDS))
    assert a._q("SELECT count() FROM projects")[0][0] == ROUNDS  # one row each, merged or not


def test_two_writers_creating_one_user_email_one_wins(pair: tuple[Any, Any]) -> None:
    a, b = pair
    for i in range(ROUNDS):
        email = f"u{i}@example.com"

        def create(st: Any, email: str = email) -> None:
            import secrets

            st.create_user(User(secrets.token_hex(8), email, "h", False, datetime.now(UTC)))

        _one_winner(race(a, b, create), ConfigError, "exists")
    assert a.count_users() == ROUNDS


def test_two_writers_creating_the_first_user_one_wins(pair: tuple[Any, Any]) -> None:
    """Two processes, each with a setup link of its own, claim them at once: one admin."""
    a, b = pair

    def first(st: Any) -> bool:
        import secrets

        email = f"{secrets.token_hex(4)}@example.com"  # different emails: no email claim helps
        return bool(st.create_first_user(User(secrets.token_hex(8), email, "h", True,
                                              datetime.now(UTC))))  # fmt: skip

    got = race(a, b, first)
    # one wins; the other sees the user, or the winner's claim ("try again")
    assert sum(r is True for r in got) == 1, got
    assert all(r is True or r is False or isinstance(r, Conflict) for r in got), got
    assert a.count_users() == 1
    for _ in range(ROUNDS // 4):  # and never again once one exists
        assert race(a, b, first) == [False, False]
    assert a.count_users() == 1


def test_two_writers_creating_one_dataset_id_one_wins(pair: tuple[Any, Any]) -> None:
    a, b = pair
    for i in range(ROUNDS):
        ds = Dataset(
            project_id="p",
            dataset_id=f"d{i}",
            name="n",
            filter={},
            num_rows=2,
            created_at=datetime.now(UTC),
        )

        def create(st: Any, ds: Dataset = ds) -> None:
            st.create_dataset(ds, [{"x": 1}, {"x": 2}])

        _one_winner(race(a, b, create), StoreError, "already exists")
    assert len(a.list_datasets("p")) == ROUNDS


def test_two_writers_adding_a_prompt_version_take_two_numbers(pair: tuple[Any, Any]) -> None:
    a, b = pair
    for i in range(ROUNDS // 2):

        def add(st: Any, i: int = i) -> int:
            pv = PromptVersion(
                project_id="p",
                name=f"greet{i}",
                version=0,
                kind="prompt",
                type="text",
                template="Hi {{name}}",
                created_at=datetime.now(UTC),
            )
            return int(st.add_prompt_version(pv, labels=[], updated_by=None).version)

        got = race(a, b, add)
        assert all(isinstance(v, int) for v in got), got  # a busy key retries, never fails here
        assert sorted(got) == [1, 2]
        assert [v.version for v in a.list_prompt_versions("p", f"greet{i}")] == [1, 2]


def test_two_writers_adding_an_alert_rule_version_take_two_numbers(pair: tuple[Any, Any]) -> None:
    a, b = pair
    for i in range(ROUNDS // 2):

        def add(st: Any, i: int = i) -> int:
            rv = RuleVersion(
                project_id="p",
                name=f"slow{i}",
                version=0,
                spec={"metric": "latency_ms", "threshold": 1.5},
                source="api",
                created_at=datetime.now(UTC),
            )
            return int(st.add_rule_version(rv).version)

        got = race(a, b, add)
        assert all(isinstance(v, int) for v in got), got
        assert sorted(got) == [1, 2]
        n = a._q("SELECT count() FROM alert_rules WHERE name = {n:String}", {"n": f"slow{i}"})
        assert n[0][0] == 2


def test_two_monitors_marking_one_budget_threshold_one_alerts(pair: tuple[Any, Any]) -> None:
    a, b = pair
    period = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(ROUNDS):

        def mark(st: Any, i: int = i) -> bool:
            return bool(st.mark_budget_alert("p", f"b{i}", "", period, 0.8, 1.0, datetime.now(UTC)))

        got = race(a, b, mark)
        assert sorted(got) == [False, True], got


def test_a_live_claim_of_another_writer_holds_the_key(
    pair: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create never goes past another writer's claim: it answers Conflict (409) instead."""
    a, _ = pair
    monkeypatch.setattr(ch_base, "_CLAIM_ATTEMPTS", 3)
    a._insert_rows(
        "unique_claims",
        ["scope", "key", "token", "_version", "_deleted"],
        [["project", "x", "other", 1, 0]],
    )
    with pytest.raises(Conflict, match="project 'x' is being created"):
        a.create_project("x")
    assert a.get_project("x") is None


def test_the_claim_of_a_writer_that_died_expires(
    pair: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = pair
    monkeypatch.setattr(ch_base, "CLAIM_TTL_S", 1.0)
    a._cmd(
        "INSERT INTO unique_claims (scope, `key`, token, claimed_at, _version, _deleted)"
        " VALUES ('project', 'x', 'dead', now64(6, 'UTC') - INTERVAL 2 SECOND, 1, 0)"
    )
    assert a.create_project("x").id == "x"
    with pytest.raises(ConfigError, match="already exists"):
        a.create_project("x")
