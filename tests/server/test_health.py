"""/readyz and /metrics do their store work off the event loop."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient

from sightline.config import Settings
from sightline.errors import StoreError
from sightline.server import create_app
from sightline.store import DuckDBStore

KEY = "sl_health_key_0123456789abcdef"


class StalledPingStore(DuckDBStore):
    """A real DuckDB store whose ping waits, as a ClickHouse that stopped answering does."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.stall = threading.Event()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def ping(self) -> None:
        if self.stall.is_set():
            self.entered.set()
            if not self.gate.wait(10):
                raise StoreError("store unreachable: timed out")
        super().ping()


def test_a_stalled_store_ping_does_not_stall_other_requests(tmp_path: Path) -> None:
    store = StalledPingStore(tmp_path / "db.duckdb")
    settings = Settings(
        data_dir=tmp_path,
        otlp_grpc_port=0,
        ingest_workers=0,
        eval_enabled=False,
        init_project="health",
        init_api_key=KEY,
    )
    app = create_app(settings, store=store)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        store.stall.set()
        ready: dict[str, int] = {}
        t = threading.Thread(target=lambda: ready.update(status=client.get("/readyz").status_code))
        t.start()
        try:
            assert store.entered.wait(10)  # /readyz is inside the store's ping
            started = time.monotonic()
            r = client.get("/healthz")
            took = time.monotonic() - started
            assert r.status_code == 200 and r.json() == {"status": "ok"}
            m = client.get("/metrics", headers={"authorization": f"Bearer {KEY}"})
            assert m.status_code == 200 and "sightline_ingest_queue_spans" in m.text
            # the old /readyz pinged on the event loop: /healthz waited the whole 10 s
            assert took < 5, took
        finally:
            store.gate.set()
            t.join(30)
        assert ready["status"] == 200
