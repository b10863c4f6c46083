"""IngestService.saturated: what the online evaluation waits on (``eval_yield_s``)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from _helpers import GatedStore
from _payload import llm_request
from sightline.ingest import GroupCommitWriter
from sightline.ingest._service import IngestService


@pytest.fixture
def store(tmp_path: Path) -> GatedStore:
    s = GatedStore(tmp_path / "db.duckdb")
    s.migrate()
    return s


def _body(n: int = 3) -> bytes:
    return llm_request(n)[0].SerializeToString()


def test_one_worker_is_saturated_by_one_request_until_it_is_answered(store: GatedStore) -> None:
    writer = GroupCommitWriter(store)
    writer.start()
    svc = IngestService(writer, workers=0)  # decodes in the server: one request fills it

    async def main() -> None:
        assert not svc.saturated()
        task = asyncio.create_task(svc.ingest("otlp_proto", _body(), encoding=None, project_id="p"))
        assert await asyncio.to_thread(store.entered.wait, 10)  # waiting for its commit
        assert svc.in_flight == 1 and svc.saturated()
        began = svc.saturated_for()
        await asyncio.sleep(0.3)
        assert svc.saturated_for() >= began + 0.25  # one stretch, growing
        store.gate.set()
        assert (await task).accepted == 3
        assert svc.in_flight == 0
        await asyncio.sleep(0.2)  # past the 50 ms a burst's gaps are bridged by
        assert not svc.saturated() and svc.saturated_for() == 0.0
        # the next request starts a new stretch
        store.gate.clear()
        store.entered.clear()
        again = asyncio.create_task(
            svc.ingest("otlp_proto", _body(), encoding=None, project_id="p")
        )
        assert await asyncio.to_thread(store.entered.wait, 10)
        assert 0.0 < svc.saturated_for() < 0.5  # not the first stretch (0.5 s and more)
        store.gate.set()
        assert (await again).accepted == 3

    asyncio.run(main())
    writer.stop()


def test_the_grpc_threads_requests_count_too(store: GatedStore) -> None:
    writer = GroupCommitWriter(store)
    writer.start()
    svc = IngestService(writer, workers=0)
    out: list[int] = []
    t = threading.Thread(
        target=lambda: out.append(
            svc.ingest_sync("otlp_proto", _body(), encoding=None, project_id="p").accepted
        )
    )
    t.start()
    assert store.entered.wait(10)
    assert svc.saturated()
    store.gate.set()
    t.join(10)
    assert out == [3]
    time.sleep(0.2)
    assert not svc.saturated()
    writer.stop()


def test_two_decode_workers_are_saturated_by_two_requests_not_one(store: GatedStore) -> None:
    writer = GroupCommitWriter(store)
    writer.start()
    svc = IngestService(writer, workers=2)
    svc.start()

    async def main() -> None:
        first = asyncio.create_task(
            svc.ingest("otlp_proto", _body(), encoding=None, project_id="p")
        )
        assert await asyncio.to_thread(store.entered.wait, 60)  # decoded, held in its commit
        await asyncio.sleep(0.2)
        assert svc.in_flight == 1 and not svc.saturated()  # a worker is free
        second = asyncio.create_task(
            svc.ingest("otlp_proto", _body(), encoding=None, project_id="p")
        )
        await asyncio.sleep(0)
        assert svc.in_flight == 2 and svc.saturated()
        store.gate.set()
        assert [(await first).accepted, (await second).accepted] == [3, 3]
        await asyncio.sleep(0.2)
        assert svc.in_flight == 0 and not svc.saturated()

    try:
        asyncio.run(main())
    finally:
        svc.stop()
        writer.stop()
    assert store.count_spans("p") == 6
