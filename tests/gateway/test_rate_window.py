"""The per-key rate limit is a sliding window: no burst of 2 × limit around a window's edge.

Both backends, the Redis one on the real Redis server of this machine.
"""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from sightline.gateway._backend import Backend, MemoryBackend, RedisBackend

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _check(backend: Backend) -> None:
    key = "k-" + secrets.token_hex(4)
    # start 0.05 s after an odd second: a fixed 2 s window (aligned on even seconds) would
    # reset 0.95 s later and let the next three through
    await asyncio.sleep((1.05 - time.time() % 2) % 2)
    assert [await backend.rate_hit(key, 3, 2) for _ in range(3)] == [0, 0, 0]
    wait = await backend.rate_hit(key, 3, 2)
    assert 1 <= wait <= 2
    await asyncio.sleep(1.1)  # a fixed window would have reset by now
    assert await backend.rate_hit(key, 3, 2) > 0
    await asyncio.sleep(1.0)  # now 2.1 s after the first three: they have left the window
    assert [await backend.rate_hit(key, 3, 2) for _ in range(4)][:3] == [0, 0, 0]


def test_memory_backend_slides() -> None:
    asyncio.run(_check(MemoryBackend()))


def test_redis_backend_slides_and_is_shared() -> None:
    async def run() -> None:
        prefix = f"sightline-test:{secrets.token_hex(6)}:"
        a = RedisBackend(REDIS_URL, prefix=prefix)
        b = RedisBackend(REDIS_URL, prefix=prefix)
        try:
            try:
                await a.ping()
            except Exception as e:  # pragma: no cover - the machine runs Redis
                pytest.fail(f"Redis is not reachable at {REDIS_URL}: {e}")
            await _check(a)
            key = "shared-" + secrets.token_hex(4)
            got = [await (a if i % 2 else b).rate_hit(key, 5, 60) for i in range(8)]
            assert got[:5] == [0] * 5 and all(w > 0 for w in got[5:]), got
        finally:
            await a.close()
            await b.close()

    asyncio.run(run())
