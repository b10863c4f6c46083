"""Fixtures shared by the gateway tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis

from _gw import REDIS_URL


@pytest.fixture
def prefix() -> Iterator[str]:
    """A Redis key prefix of this test alone (the Redis is shared); its keys go afterwards."""
    p = f"sightline-test:{secrets.token_hex(6)}:"
    yield p
    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(match=p + "*"))
    if keys:
        r.delete(*keys)
    r.close()
