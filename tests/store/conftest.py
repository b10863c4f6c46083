"""The store suite runs on every backend: DuckDB, and ClickHouse on the engine chdb embeds
(or on a server when SIGHTLINE_CLICKHOUSE_URL is set, e.g. clickhouse://default:@127.0.0.1:8123)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sightline.store import open_store
from sightline.store.base import TraceStore
from store._spans import BACKENDS, store_url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def any_store(backend: str, tmp_path: Path) -> Iterator[TraceStore]:
    """A migrated, empty store of each backend."""
    st = open_store(store_url(backend, tmp_path))
    st.migrate()
    try:
        yield st
    finally:
        st.close()
