"""Span records to Arrow tables: the batch form every backend inserts from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa

from sightline.model import SPAN_FIELDS

__all__ = ["JSON_FIELDS", "SPAN_SCHEMA", "records_to_table"]

JSON_FIELDS = (
    "input_messages",
    "output_messages",
    "documents",
    "attributes",
    "resource_attributes",
)
_STR = pa.string()
_I64 = pa.int64()
_F64 = pa.float64()
_TS = pa.timestamp("ns")
SPAN_SCHEMA = pa.schema(
    [
        ("project_id", _STR),
        ("trace_id", _STR),
        ("span_id", _STR),
        ("parent_span_id", _STR),
        ("name", _STR),
        ("kind", _STR),
        ("start_time", _TS),
        ("end_time", _TS),
        ("duration_ms", _F64),
        ("status", _STR),
        ("status_message", _STR),
        ("service_name", _STR),
        ("service_version", _STR),
        ("environment", _STR),
        ("operation", _STR),
        ("provider", _STR),
        ("request_model", _STR),
        ("response_model", _STR),
        ("model", _STR),
        ("input_tokens", _I64),
        ("output_tokens", _I64),
        ("total_tokens", _I64),
        ("cached_input_tokens", _I64),
        ("cache_write_tokens", _I64),
        ("reasoning_tokens", _I64),
        ("ttft_ms", _F64),
        ("tpot_ms", _F64),
        ("finish_reason", _STR),
        ("temperature", _F64),
        ("top_p", _F64),
        ("max_tokens", _I64),
        ("seed", _I64),
        ("is_streaming", pa.bool_()),
        ("user_id", _STR),
        ("session_id", _STR),
        ("tenant_id", _STR),
        ("feature", _STR),
        ("prompt_name", _STR),
        ("prompt_version", _STR),
        ("variant", _STR),
        ("input", _STR),
        ("output", _STR),
        ("input_messages", _STR),
        ("output_messages", _STR),
        ("documents", _STR),
        ("cost_usd", _F64),
        ("attributes", _STR),
        ("resource_attributes", _STR),
        ("ingest_notes", pa.list_(_STR)),
    ]
)
if tuple(SPAN_SCHEMA.names) != SPAN_FIELDS:  # pragma: no cover - a programming error
    raise ImportError("store schema and model.Span disagree")


def _dumps(v: Any) -> str | None:
    if v is None:
        return None
    try:
        return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return orjson.dumps(v, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _dumps_shared(values: list[Any]) -> list[str | None]:
    """``_dumps`` of each value, once per run of the same object (a resource's spans share it)."""
    out: list[str | None] = []
    last: Any = None
    text: str | None = None
    for v in values:
        if v is not last or not out:
            last, text = v, _dumps(v)
        out.append(text)
    return out


def records_to_table(records: Sequence[dict[str, Any]]) -> pa.Table:
    """Arrow table of decoded span records (JSON fields serialised, times in nanoseconds)."""
    cols: dict[str, list[Any]] = {}
    for name in SPAN_FIELDS:
        if name == "resource_attributes":
            cols[name] = _dumps_shared([r.get(name) for r in records])
        elif name in JSON_FIELDS:
            cols[name] = [_dumps(r.get(name)) for r in records]
        elif name == "start_time":
            cols[name] = [r["start_ns"] for r in records]
        elif name == "end_time":
            cols[name] = [r["end_ns"] for r in records]
        else:
            cols[name] = [r.get(name) for r in records]
    return pa.Table.from_pydict(cols, schema=SPAN_SCHEMA)
