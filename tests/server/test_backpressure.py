"""A full write queue answers 503 with Retry-After (in-process app, real DuckDB store)."""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi.testclient import TestClient

from _helpers import GatedStore
from _payload import llm_request
from sightline.config import Settings
from sightline.server import create_app

KEY = "sl_backpressure_key_0123456789"


def test_full_queue_is_503_with_retry_after(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "db.duckdb")
    settings = Settings(
        data_dir=tmp_path,
        otlp_grpc_port=0,
        ingest_workers=0,
        max_queue_spans=600,
        init_project="bp",
        init_api_key=KEY,
    )
    app = create_app(settings, store=store)
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/x-protobuf"}
    with TestClient(app) as client:
        first: dict[str, int] = {}

        def send_first() -> None:
            r = client.post(
                "/v1/traces", content=llm_request(500)[0].SerializeToString(), headers=headers
            )
            first["status"] = r.status_code

        t = threading.Thread(target=send_first)
        t.start()
        assert store.entered.wait(30)  # the first batch is inside its commit
        r = client.post(
            "/v1/traces", content=llm_request(200)[0].SerializeToString(), headers=headers
        )
        assert r.status_code == 503
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "overloaded"
        store.gate.set()
        t.join(30)
        assert first["status"] == 200
        r = client.post(
            "/v1/traces", content=llm_request(200)[0].SerializeToString(), headers=headers
        )
        assert r.status_code == 200
        assert (
            client.get("/api/v1/spans", params={"limit": 1000}, headers=headers)
            .json()["data"]
            .__len__()
            == 700
        )
