"""Properties of the OTLP normaliser: any attribute values give valid spans or a clean 400."""

from __future__ import annotations

import json
import os
from typing import Any

import hypothesis
import pyarrow as pa
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sightline.errors import IngestError
from sightline.ingest._service import _prepare
from sightline.redact import Redactor

EXAMPLES = int(os.environ.get("SIGHTLINE_FUZZ_EXAMPLES", "60"))
SETTINGS = hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None)
KEYS = ["gen_ai.request.model", "gen_ai.usage.input_tokens", "gen_ai.input.messages",
        "gen_ai.output.messages", "input.value", "output.value", "sightline.documents",
        "llm.input_messages.0.message.content", "retrieval.documents.0.document.content",
        "gen_ai.request.temperature", "session.id", "user.id", "openinference.span.kind",
        "app.note"]  # fmt: skip

scalars = (
    st.text(max_size=40)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.binary(max_size=20)
)


def _any_value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v if v == v and abs(v) != float("inf") else str(v)}
    if isinstance(v, bytes):
        return {"bytesValue": v.hex()}
    if isinstance(v, list):
        return {"arrayValue": {"values": [_any_value(x) for x in v]}}
    if isinstance(v, dict):
        return {
            "kvlistValue": {"values": [{"key": k, "value": _any_value(x)} for k, x in v.items()]}
        }
    return {"stringValue": v}


def _kvs(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _any_value(v)} for k, v in attrs.items()]


values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(
    st.text(max_size=8), c, max_size=3), max_leaves=12)  # fmt: skip
attributes = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=20), values, max_size=8)


def _check(table: pa.Table | None) -> None:
    if table is None:
        return
    for row in table.to_pylist():
        assert len(row["trace_id"]) == 32 and len(row["span_id"]) == 16
        assert row["end_time"] >= row["start_time"]
        json.loads(row["attributes"])


@SETTINGS
@hypothesis.given(attrs=attributes, resource=attributes)
def test_any_json_attributes_give_valid_spans(
    attrs: dict[str, Any], resource: dict[str, Any]
) -> None:
    body = {"resourceSpans": [{
        "resource": {"attributes": _kvs(resource)},
        "scopeSpans": [{"spans": [{"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "x",
            "startTimeUnixNano": "1772452800000000000", "endTimeUnixNano": "1772452801000000000",
            "attributes": _kvs(attrs)}]}]}]}  # fmt: skip
    try:
        raw = json.dumps(body).encode()
    except ValueError:
        return
    for redactor in (None, Redactor(max_depth=4)):
        try:
            table, _ = _prepare("otlp_json", raw, None, "p", 1 << 24, redactor)
        except IngestError as e:
            assert e.status in (400, 413, 415)
            continue
        _check(table)


@SETTINGS
@hypothesis.given(data=st.binary(max_size=400))
def test_any_bytes_as_protobuf_give_spans_or_a_clean_400(data: bytes) -> None:
    try:
        table, _ = _prepare("otlp_proto", data, None, "p", 1 << 24, Redactor())
    except IngestError as e:
        assert e.status == 400
        return
    _check(table)


@SETTINGS
@hypothesis.given(attrs=attributes)
def test_any_protobuf_attributes_give_valid_spans(attrs: dict[str, Any]) -> None:
    from google.protobuf import json_format

    body = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "q6urq6urq6urq6urq6urqw==", "spanId": "zc3Nzc3Nzc0=", "name": "x",
        "startTimeUnixNano": "1772452800000000000", "endTimeUnixNano": "1772452801000000000",
        "attributes": _kvs(attrs)}]}]}]}  # fmt: skip
    for kv in body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]:
        _b64_bytes(kv["value"])
    msg = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(body, msg)
    except (json_format.ParseError, ValueError, TypeError):
        return  # not representable as protobuf (NaN as text, bad UTF-8): nothing to send
    table, _ = _prepare("otlp_proto", msg.SerializeToString(), None, "p", 1 << 24, Redactor())
    _check(table)


def _b64_bytes(v: dict[str, Any]) -> None:
    import base64

    if "bytesValue" in v:
        v["bytesValue"] = base64.b64encode(bytes.fromhex(v["bytesValue"])).decode()
    for x in v.get("arrayValue", {}).get("values", []):
        _b64_bytes(x)
    for kv in v.get("kvlistValue", {}).get("values", []):
        _b64_bytes(kv["value"])
