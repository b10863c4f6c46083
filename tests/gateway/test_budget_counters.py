"""The memory backend's hard-budget counters stay bounded: one per budget, user and period."""

from __future__ import annotations

import asyncio

import pytest

from sightline.gateway import _backend


def test_idle_budget_counters_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_backend, "_MAX_BUDGETS", 50, raising=False)
    monkeypatch.setattr(_backend, "_BUDGET_IDLE_S", 0.0, raising=False)
    monkeypatch.setattr(_backend, "_PRUNE_EVERY_S", 0.0, raising=False)

    async def go() -> None:
        b = _backend.MemoryBackend()
        assert await b.budget_reserve("held", 0.0, 0.1, 1.0) == "ok"  # a call in flight
        for i in range(500):  # a per-user daily budget, 500 users
            bid = f"per-user\0u-{i}\0day"
            assert await b.budget_reserve(bid, 0.0, 0.1, 1.0) == "ok"
            await b.budget_commit(bid, 0.1)
        assert len(b._budgets) <= 51
        assert "held" in b._budgets  # its call is still running
        # a dropped counter starts again from the server's figure
        assert await b.budget_reserve("per-user\0u-0\0day", 1.0, 0.1, 1.0) == "deny"

    asyncio.run(go())
