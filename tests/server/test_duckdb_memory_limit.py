"""DuckDB's memory limit: the setting reaches the database the server opens; bad values stop
the server at start with a clear message."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sightline.config import Settings, check_memory_limit
from sightline.server import create_app
from sightline.store import DuckDBStore


def _duckdb_setting(store: object, name: str) -> str:
    assert isinstance(store, DuckDBStore)
    with store._cursor() as cur:
        return str(cur.execute("SELECT current_setting(?)", [name]).fetchall()[0][0])


def _app_settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(
        data_dir=tmp_path,
        otlp_grpc_port=0,
        ingest_workers=0,
        eval_enabled=False,
        monitor_interval_s=0,
        drift_interval_s=0,
        retention_interval_s=0,
        **kw,  # type: ignore[arg-type]
    )


def test_the_server_opens_duckdb_with_the_configured_limit_and_threads(tmp_path: Path) -> None:
    app = create_app(_app_settings(tmp_path, duckdb_memory_limit="300MB", duckdb_threads=1))
    with TestClient(app) as c:
        assert c.get("/readyz").status_code == 200
        store = app.state.sightline.store
        # DuckDB's MB is 1000^2 bytes and it prints MiB: 300MB = 286.1 MiB
        assert _duckdb_setting(store, "memory_limit") == "286.1 MiB"
        assert _duckdb_setting(store, "threads") == "1"


def test_the_default_limit_is_256mb_not_duckdbs_80_percent_of_ram(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SIGHTLINE_DUCKDB_MEMORY_LIMIT", raising=False)
    app = create_app(_app_settings(tmp_path))
    with TestClient(app):
        assert _duckdb_setting(app.state.sightline.store, "memory_limit") == "244.1 MiB"


def test_the_limit_survives_a_reopen_after_a_fatal_error(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb", memory_limit="25%", threads=1)
    store.migrate()
    store._invalid = True  # as after a checkpoint on a full disk: the writer reopens
    store.check_writable()
    total = _duckdb_setting(store, "memory_limit")
    fresh = DuckDBStore(":memory:")
    assert total != _duckdb_setting(fresh, "memory_limit")  # 25 %, not DuckDB's 80 %
    assert _duckdb_setting(store, "threads") == "1"
    store.close()
    fresh.close()


@pytest.mark.parametrize(
    ("how", "value", "message"),
    [
        ("flag", "lots", "is not a size"),
        ("env", "10MB", "below the 64MiB"),
    ],
)
def test_a_bad_limit_stops_serve_with_a_clear_message(
    tmp_path: Path, how: str, value: str, message: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")}
    args = [sys.executable, "-m", "sightline", "serve", "--data-dir", str(tmp_path)]
    if how == "flag":
        args += ["--duckdb-memory-limit", value]
    else:
        env["SIGHTLINE_DUCKDB_MEMORY_LIMIT"] = value
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode != 0
    assert "duckdb_memory_limit" in proc.stderr and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "sightline.duckdb").exists()  # refused before opening anything


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1GB", "1GB"),
        (" 512 MiB ", "512MiB"),
        ("2.5gb", "2.5gb"),
        ("25%", "25%"),
        ("64MiB", "64MiB"),
    ],
)
def test_limits_duckdb_takes(value: str, expected: str) -> None:
    assert check_memory_limit(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1 GB of RAM", "is not a size"),
        ("1GB; DROP TABLE spans", "is not a size"),
        ("-1", "is not a size"),
        ("63MiB", "below the 64MiB"),
        ("0%", "must be in (0, 100]%"),
        ("150%", "must be in (0, 100]%"),
    ],
)
def test_limits_refused(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_memory_limit(value)


def test_stored_spans_take_no_index_memory(tmp_path: Path) -> None:
    """Spans have no key index (migration 15): what DuckDB must keep in memory does not grow
    with the spans stored, only its evictable cache does."""
    from store._spans import spans_over

    def index_bytes(store: DuckDBStore) -> int:
        with store._cursor() as cur:
            rows = cur.execute(
                "SELECT memory_usage_bytes FROM duckdb_memory() WHERE tag = 'ART_INDEX'"
            ).fetchall()
        return int(rows[0][0]) if rows else 0

    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path, memory_limit="64MiB")
    store.migrate()
    before = index_bytes(store)
    for _ in range(20):
        store.insert_batches([spans_over(1000)])
    assert store.count_spans("p") == 20_000
    assert index_bytes(store) == before  # was ~1 MiB more (50 bytes a span)
    store.close()


def test_a_read_that_meets_the_memory_limit_answers_503_and_the_data_stays(
    tmp_path: Path,
) -> None:
    # A checkpoint can take what the limit leaves for a moment (seen in a soak under 128MB):
    # a read then fails with DuckDB's out-of-memory error. The answer is a JSON 503 to retry,
    # not a 500, and nothing is lost. The limit is lowered on the live database: a real
    # DuckDB out-of-memory, not a simulated one.
    key = "sk-memory-limit-test"
    app = create_app(_app_settings(tmp_path, init_project="mem", init_api_key=key))
    spans = [
        {
            "trace_id": f"{i + 1:032x}",
            "span_id": f"{i + 1:016x}",
            "name": "chat",
            "kind": "llm",
            "model": "gpt-4o",
            "start_time": 1_767_225_600 + i,
            "duration_ms": 100.0,
            "input": f"question {i} " + "x" * 400,
            "output": f"answer {i} " + "y" * 400,
        }
        for i in range(3000)
    ]
    auth = {"authorization": f"Bearer {key}"}
    with TestClient(app) as c:
        for i in range(0, len(spans), 1000):
            r = c.post("/api/v1/spans", json=spans[i : i + 1000], headers=auth)
            assert r.status_code == 200, r.text
        store = app.state.sightline.store
        store._write.execute("CHECKPOINT")
        with store._cursor() as cur:
            cur.execute("SET memory_limit = '1MB'")
        r = c.get("/api/v1/spans", params={"limit": 1000, "q": "answer"}, headers=auth)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "store_out_of_memory"
        assert "SIGHTLINE_DUCKDB_MEMORY_LIMIT" in r.json()["error"]["message"]
        with store._cursor() as cur:
            cur.execute("SET memory_limit = '256MB'")
        r = c.get("/api/v1/spans", params={"limit": 1000, "q": "answer"}, headers=auth)
        assert r.status_code == 200, r.text
        assert len(r.json()["data"]) == 1000
        window = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}
        r = c.get("/api/v1/metrics", params={"name": "requests", **window}, headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["series"][0]["points"][0]["value"] == 3000
