"""The Coordinator's contract, the same on both backends (the store's tables, Redis)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _coord import BACKENDS, MakeCoordinator, coordinators
from sightline.coordination import Claim, Leadership
from sightline.store import DuckDBStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore(tmp_path / "db.duckdb")
    s.migrate()
    yield s
    s.close()


@pytest.fixture(params=BACKENDS)
def make(request: pytest.FixtureRequest) -> Iterator[MakeCoordinator]:
    for m, _ in coordinators(request.param):
        yield m


class TestClaims:
    def test_frontier_starts_at_start_seq_and_moves_by_compare_and_set(
        self, make: MakeCoordinator, store: DuckDBStore
    ) -> None:
        a, b = make(store), make(store)
        assert a.claims_state("s").frontier is None
        assert a.claim_range("s", lo=0, hi=5, owner="a", lease_s=30, start_seq=3) is None
        c = a.claim_range("s", lo=3, hi=5, owner="a", lease_s=30, start_seq=3)
        assert c is not None and (c.lo, c.hi, c.owner, c.attempts) == (3, 5, "a", 1)
        # b read the same frontier: its claim fails, the next one succeeds
        assert b.claim_range("s", lo=3, hi=9, owner="b", lease_s=30, start_seq=3) is None
        d = b.claim_range("s", lo=5, hi=9, owner="b", lease_s=30)
        assert d is not None
        state = a.claims_state("s")
        assert state.frontier == 9
        assert [(x.lo, x.hi, x.owner) for x in state.claims] == [(3, 5, "a"), (5, 9, "b")]
        assert state.done_upto() == 3
        assert a.complete(c)
        assert b.claims_state("s").done_upto() == 5
        assert b.complete(d)
        assert a.claims_state("s").done_upto() == 9
        assert not a.complete(c)  # twice: already gone

    def test_concurrent_claimers_get_disjoint_ranges(
        self, make: MakeCoordinator, store: DuckDBStore
    ) -> None:
        got: list[Claim] = []
        lock = threading.Lock()

        def claimer(name: str) -> None:
            c = make(store)
            for _ in range(40):
                f = c.claims_state("s").frontier or 0
                cl = c.claim_range("s", lo=f, hi=f + 1, owner=name, lease_s=30)
                if cl is not None:
                    with lock:
                        got.append(cl)

        threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        los = sorted(c.lo for c in got)
        assert los == list(range(len(got)))  # every range once, none twice, no gap
        assert len({c.owner for c in got}) > 1

    def test_expired_claim_is_taken_over_and_the_old_holder_loses_it(
        self, make: MakeCoordinator, store: DuckDBStore
    ) -> None:
        a, b = make(store), make(store)
        c = a.claim_range("s", lo=0, hi=4, owner="a", lease_s=0.5)
        assert c is not None
        assert b.take_over("s", owner="b", lease_s=30) is None  # still leased
        renewed = a.renew(c, lease_s=0.5)
        assert renewed is not None and renewed.expires_at >= c.expires_at
        time.sleep(0.7)
        t = b.take_over("s", owner="b", lease_s=30)
        assert t is not None and (t.lo, t.hi, t.owner, t.attempts) == (0, 4, "b", 2)
        assert t.token != c.token
        assert t.claimed_at == c.claimed_at > 0  # the first claim's time stays
        assert a.renew(c, lease_s=30) is None
        assert not a.complete(c)
        assert b.take_over("s", owner="c", lease_s=30) is None
        assert b.complete(t)
        assert a.claims_state("s").claims == ()

    def test_renew_with_zero_lease_hands_the_claim_over_at_once(
        self, make: MakeCoordinator, store: DuckDBStore
    ) -> None:
        a, b = make(store), make(store)
        c = a.claim_range("s", lo=0, hi=2, owner="a", lease_s=30)
        assert c is not None
        assert a.renew(c, lease_s=0) is not None
        t = b.take_over("s", owner="b", lease_s=30)
        assert t is not None and t.owner == "b"

    def test_evaluator_sets_are_independent(
        self, make: MakeCoordinator, store: DuckDBStore
    ) -> None:
        a = make(store)
        assert a.claim_range("x", lo=0, hi=3, owner="a", lease_s=30) is not None
        assert a.claim_range("y", lo=0, hi=7, owner="a", lease_s=30) is not None
        assert a.claims_state("x").frontier == 3
        assert a.claims_state("y").frontier == 7


class TestLeader:
    def test_one_leader_until_its_lease_runs_out(
        self, make: MakeCoordinator, store: DuckDBStore
    ) -> None:
        a, b = make(store), make(store)
        assert a.acquire_leader("monitor", owner="a", lease_s=0.6)
        assert not b.acquire_leader("monitor", owner="b", lease_s=0.6)
        assert a.acquire_leader("monitor", owner="a", lease_s=0.6)  # renewal
        time.sleep(0.8)
        assert b.acquire_leader("monitor", owner="b", lease_s=30)
        assert not a.acquire_leader("monitor", owner="a", lease_s=30)

    def test_release_hands_over_at_once_and_only_by_the_holder(
        self, make: MakeCoordinator, store: DuckDBStore
    ) -> None:
        a, b = make(store), make(store)
        assert a.acquire_leader("monitor", owner="a", lease_s=30)
        b.release_leader("monitor", owner="b")  # not b's: nothing happens
        assert not b.acquire_leader("monitor", owner="b", lease_s=30)
        a.release_leader("monitor", owner="a")
        assert b.acquire_leader("monitor", owner="b", lease_s=30)

    def test_a_leader_whose_start_fails_hands_over_and_starts_again_later(
        self, make: MakeCoordinator, store: DuckDBStore
    ) -> None:
        """Elected, its work failed to start (the store was down while the monitor reloaded
        its alerts): it must neither sit on the lease running nothing nor stay half started."""
        calls: list[str] = []

        def elected() -> None:
            calls.append("start")
            if calls.count("start") == 1:
                raise RuntimeError("store unreachable")

        lead = Leadership(
            make(store),
            "monitor",
            owner="a",
            lease_s=30,
            on_elected=elected,
            on_deposed=lambda: calls.append("stop"),
        )
        lead.run_once()  # logged, not raised
        assert calls == ["start", "stop"] and not lead.is_leader
        b = make(store)
        assert b.acquire_leader("monitor", owner="b", lease_s=30)  # handed over
        b.release_leader("monitor", owner="b")
        lead.run_once()  # the next renewal elects it again, and its work starts
        assert calls == ["start", "stop", "start"] and lead.is_leader
        lead.stop()
        assert calls[-1] == "stop"
