"""Span records to Arrow tables: the batch form every backend inserts from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa

from sightline.model import SPAN_FIELDS

__all__ = ["JSON_FIELDS", "PRESERIALIZED", "SPAN_SCHEMA", "records_to_table"]

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


def _dumps_shared(values: Sequence[Any]) -> list[str | None]:
    """``_dumps`` of each value, once per run of the same object (a resource's spans share it)."""
    out: list[str | None] = []
    last: Any = None
    text: str | None = None
    for v in values:
        if v is not last or not out:
            last, text = v, _dumps(v)
        out.append(text)
    return out


PRESERIALIZED = "_json"  # = sightline.redact.JSON_TEXTS (not imported: the store stands alone)
"""Optional record key: ``{field: (value, text)}``, the JSON ``text`` of a JSON field already
made (by redaction's check, ``sightline.redact.JSON_TEXTS``) for exactly the object ``value``;
used only while the record still holds that object, so a value replaced since is serialised
anew."""

# what each column reads from a record (the times are kept in nanoseconds under other names)
_KEYS = tuple({"start_time": "start_ns", "end_time": "end_ns"}.get(n, n) for n in SPAN_FIELDS)


def _dumps_column(name: str, values: Sequence[Any], pre: Sequence[Any]) -> list[str | None]:
    out: list[str | None] = []
    for v, p in zip(values, pre, strict=True):
        if v is None:
            out.append(None)
            continue
        if p is not None:
            hit = p.get(name)
            if hit is not None and hit[0] is v:
                out.append(hit[1])
                continue
        out.append(_dumps(v))
    return out


def records_to_table(records: Sequence[dict[str, Any]]) -> pa.Table:
    """Arrow table of decoded span records (JSON fields serialised, times in nanoseconds)."""
    if not records:
        return SPAN_SCHEMA.empty_table()
    # one C-level pass per record, then a transposition: not 49 Python loops over the records
    columns = list(zip(*[tuple(map(r.get, _KEYS)) for r in records], strict=True))
    pre = [r.get(PRESERIALIZED) for r in records]
    arrays: list[Any] = []
    for name, values in zip(SPAN_FIELDS, columns, strict=True):
        if name == "resource_attributes":
            values = _dumps_shared(values)
        elif name in JSON_FIELDS:
            values = _dumps_column(name, values, pre)
        elif name in _TIME_FIELDS and None in values:
            raise KeyError(_KEYS[SPAN_FIELDS.index(name)])  # as r["start_ns"] would
        arrays.append(values)
    return pa.Table.from_arrays(
        [pa.array(v, type=f.type) for v, f in zip(arrays, SPAN_SCHEMA, strict=True)],
        schema=SPAN_SCHEMA,
    )


_TIME_FIELDS = ("start_time", "end_time")
