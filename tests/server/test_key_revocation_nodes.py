"""A key revoked through one server process stops working on the other processes that share
the store (an api node and an ingest node over one ClickHouse) within the key cache's TTL,
not only on the process that revoked it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _helpers import Server, free_port

pytest.importorskip("chdb")
pytest.importorskip("clickhouse_connect")

from sightline.testing import ClickHouseHTTP  # noqa: E402

TTL_S = 1.0


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[ClickHouseHTTP]:
    with ClickHouseHTTP(tmp_path / "ch", log_path=tmp_path / "ch.log") as ch:
        yield ch


def _span(i: int) -> list[dict[str, object]]:
    return [
        {
            "trace_id": f"{i:032x}",
            "span_id": f"{i + 1:016x}",
            "name": "chat",
            "kind": "llm",
            "start_time": time.time() - 1,
            "end_time": time.time(),
        }
    ]


@pytest.mark.timeout(300)
def test_a_key_revoked_on_the_api_node_stops_working_on_the_ingest_node(
    tmp_path: Path, harness: ClickHouseHTTP
) -> None:
    store = harness.store_url("revoke")
    env = {"SIGHTLINE_KEY_CACHE_TTL_S": str(TTL_S), "SIGHTLINE_DEFAULT_ALERT_RULES": "false"}

    def node(role: str) -> Server:
        return Server(
            data_dir=tmp_path / role,
            port=free_port(),
            env=dict(env),
            args=["--role", role, "--store", store],
            ready_timeout_s=180,
        )

    api = node("api").start()  # first: it creates the schema, the project and its admin key
    ingest = node("ingest").start()
    try:
        with api.client() as c:
            r = c.post("/api/v1/keys", json={"role": "ingest", "name": "edge"})
            assert r.status_code == 201, r.text
            key, key_id = r.json()["key"], r.json()["key_id"]
        with ingest.client(key) as c:
            # the ingest node looks the key up and caches it
            assert c.post("/api/v1/spans", json=_span(1)).status_code == 200
            assert c.post("/api/v1/spans", json=_span(3)).status_code == 200
        with api.client() as c:
            assert c.delete(f"/api/v1/keys/{key_id}").status_code == 200
            revoked = time.monotonic()
        with api.client(key) as c:  # the revoking process: at once
            r = c.get("/api/v1/spans")
            assert r.status_code == 401, r.text
        with ingest.client(key) as c:
            i = 5
            while True:
                r = c.post("/api/v1/spans", json=_span(i))
                if r.status_code == 401:
                    break
                assert r.status_code == 200, r.text
                assert time.monotonic() - revoked < TTL_S + 10, "still accepted past the TTL"
                i += 2
                time.sleep(0.1)
            assert r.json()["error"]["message"] == "unknown API key"
            # and it stays refused (the negative cache, then the store, both say so)
            time.sleep(TTL_S)
            assert c.post("/api/v1/spans", json=_span(i)).status_code == 401
    finally:
        ingest.stop()
        api.stop()
    for s in (api, ingest):
        assert "Traceback" not in s.log(), s.log()[-3000:]
