"""KeyRing over a real DuckDB store: a cached key is asked about again after its TTL (so a
revocation made elsewhere takes effect), and a store that cannot answer does not lock out a key
known a moment ago."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sightline.errors import AuthError, StoreError
from sightline.server._auth import KeyRing, hash_key, new_key
from sightline.store import DuckDBStore
from sightline.store.base import ApiKey


def _store_with_key(tmp_path: Path) -> tuple[DuckDBStore, str, ApiKey]:
    store = DuckDBStore(tmp_path / "s.duckdb")
    store.migrate()
    store.create_project("p")
    key = new_key()
    rec = ApiKey(hash_key(key), key[:10], "p", "ingest", datetime.now(UTC))
    store.add_api_key(rec)
    return store, key, rec


def test_a_key_revoked_in_the_store_stops_working_after_the_ttl(tmp_path: Path) -> None:
    store, key, rec = _store_with_key(tmp_path)
    ring = KeyRing(store, ttl_s=0.3)
    assert ring.resolve(key).project_id == "p"
    assert ring.cached(key) is not None
    store.revoke_api_key("p", rec.key_id)  # as another process would: this ring is not told
    assert ring.resolve(key).project_id == "p"  # within the TTL: the cached record
    time.sleep(0.35)
    assert ring.cached(key) is None  # stale: callers must ask resolve
    with pytest.raises(AuthError, match="unknown API key"):
        ring.resolve(key)
    store.close()


def test_a_known_key_stays_good_while_the_store_cannot_answer(tmp_path: Path) -> None:
    store, key, _ = _store_with_key(tmp_path)
    ring = KeyRing(store, ttl_s=0)  # every request asks the store
    assert ring.resolve(key).project_id == "p"
    store.close()  # the store now fails every query
    assert ring.resolve(key).project_id == "p"
    with pytest.raises(StoreError):
        ring.resolve(new_key())  # a key never seen is not let in
