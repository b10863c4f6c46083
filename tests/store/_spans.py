"""Span batches with chosen values, for the store suite."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from sightline.model import SPAN_FIELDS
from sightline.store._arrow import records_to_table

BACKENDS = ["duckdb", "clickhouse"]
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def span_record(**over: Any) -> dict[str, Any]:
    """One decoded span record (as ingest produces), an LLM call unless told otherwise."""
    start: datetime = over.pop("start", T0)
    duration_ms: float = over.pop("duration_ms", 250.0)
    rec: dict[str, Any] = {f: None for f in SPAN_FIELDS}
    rec.update(
        project_id="p",
        trace_id=os.urandom(16).hex(),
        span_id=os.urandom(8).hex(),
        name="chat gpt-4o",
        kind="llm",
        status="ok",
        duration_ms=duration_ms,
        model="gpt-4o",
        provider="openai",
        input_tokens=100,
        output_tokens=20,
        total_tokens=120,
        cost_usd=0.001,
        input="What is the refund policy?",
        output="Refunds within 30 days.",
        attributes={"gen_ai.request.model": "gpt-4o"},
        resource_attributes={"service.name": "bot"},
        ingest_notes=[],
    )
    rec.update(over)
    ns = int(start.timestamp() * 1e9)
    rec["start_ns"] = ns
    rec["end_ns"] = ns + int(duration_ms * 1e6)
    return rec


def batch(*records: dict[str, Any]) -> pa.Table:
    return records_to_table(list(records))


def spans_over(n: int, *, step: timedelta = timedelta(minutes=1), **over: Any) -> pa.Table:
    return batch(*(span_record(start=T0 + i * step, **over) for i in range(n)))


# Read once at import: the suite's autouse fixture removes SIGHTLINE_* from the environment
# before each test. ``--clickhouse-http`` (tests/conftest.py) sets it to a harness instead.
CLICKHOUSE_SERVER: list[str] = [os.environ.get("SIGHTLINE_CLICKHOUSE_URL", "")]


def store_url(backend: str, tmp_path: Path) -> str:
    if backend == "duckdb":
        return f"duckdb://{tmp_path / 'db.duckdb'}"
    server = CLICKHOUSE_SERVER[0]
    if server:
        # one database per test on a shared server
        return f"{server.rstrip('/')}/t_{uuid.uuid4().hex[:12]}"
    return f"chdb://{tmp_path / 'ch'}"
