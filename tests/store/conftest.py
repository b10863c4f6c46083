"""The store suite runs on every backend: DuckDB, and ClickHouse on the engine chdb embeds
(or on a server when SIGHTLINE_CLICKHOUSE_URL is set, e.g. clickhouse://default:@127.0.0.1:8123,
or over HTTP on the test harness with ``--clickhouse-http``: each test its own database)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sightline.store import open_store
from sightline.store.base import TraceStore
from store._spans import BACKENDS, CLICKHOUSE_SERVER, store_url


@pytest.fixture(autouse=True, scope="session")
def _clickhouse_server(request: pytest.FixtureRequest) -> Iterator[None]:
    if not request.config.getoption("--clickhouse-http"):
        yield
        return
    ch = request.getfixturevalue("clickhouse_http")
    before = CLICKHOUSE_SERVER[0]
    CLICKHOUSE_SERVER[0] = f"clickhouse://default:@{ch.host}:{ch.port}"
    yield
    CLICKHOUSE_SERVER[0] = before


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
