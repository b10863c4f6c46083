"""Coordinators of the scale-out tests: both backends, on a real store and a real Redis."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest

from sightline.coordination import Coordinator, RedisCoordinator, StoreCoordinator
from sightline.store import DuckDBStore

REDIS_URL = "redis://127.0.0.1:6379/0"

BACKENDS = ["store", "redis"]

MakeCoordinator = Callable[[DuckDBStore], Coordinator]


def coordinators(backend: str) -> Iterator[tuple[MakeCoordinator, str]]:
    """A factory of coordinators of ``backend`` (each call: a new client, as another process
    would have), and the per-test Redis key prefix; the keys are deleted afterwards."""
    prefix = f"sightline:test:{secrets.token_hex(6)}:"
    made: list[Coordinator] = []

    def make(store: DuckDBStore) -> Coordinator:
        c: Coordinator = (
            StoreCoordinator(store)
            if backend == "store"
            else RedisCoordinator(REDIS_URL, prefix=prefix)
        )
        made.append(c)
        return c

    yield make, prefix
    for c in made:
        c.close()
    if backend == "redis":
        import redis

        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(f"{prefix}*"))
        if keys:
            r.delete(*keys)
        r.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    b: str = request.param
    return b
