"""Scale-out on every store: scores appended once; claims where the store can hold them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sightline.errors import StoreError
from sightline.model import Score
from sightline.store.base import TraceStore
from store._spans import T0


def _score(i: int, trace: str = "a" * 32) -> Score:
    return Score(
        project_id="p",
        score_id=f"relevance:{i:016x}",
        trace_id=trace,
        span_id=f"{i:016x}",
        name="relevance",
        value=i / 10,
        source="evaluator",
        evaluator="relevance",
        created_at=T0 + timedelta(seconds=i),
    )


def test_scores_already_stored_are_not_appended_again(any_store: TraceStore) -> None:
    assert any_store.append_scores_once([_score(1), _score(2)]) == 2
    assert any_store.append_scores_once([_score(1), _score(2), _score(3), _score(3)]) == 1
    assert any_store.append_scores_once([_score(3)], since=T0) == 0
    assert any_store.append_scores_once([]) == 0
    assert sorted(s.score_id for s in any_store.list_scores("p", "a" * 32)) == [
        _score(i).score_id for i in (1, 2, 3)
    ]


def test_claims_are_held_by_duckdb_and_refused_by_clickhouse(
    any_store: TraceStore, backend: str
) -> None:
    if backend == "duckdb":
        claim = any_store.claim_range("set", lo=0, hi=10, owner="w1", lease_s=30)
        assert claim is not None and any_store.complete_claim(claim)
        assert any_store.acquire_leader("monitor", owner="m1", lease_s=30)
        assert not any_store.acquire_leader("monitor", owner="m2", lease_s=30)
    else:
        with pytest.raises(StoreError, match="redis-url"):
            any_store.claim_range("set", lo=0, hi=10, owner="w1", lease_s=30)
        with pytest.raises(StoreError, match="redis-url"):
            any_store.acquire_leader("monitor", owner="m1", lease_s=30)
