"""Hostile payloads: every decoder answers IngestError or decodes, never anything else.

Seeded random structures of the wrong types, and corrupted or truncated protobuf; each case
that once crashed the decoder (strings where objects belong, infinite times) is in the mix.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import random
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.json_format import ParseDict
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from _payload import llm_request
from sightline.errors import IngestError
from sightline.ingest import _service
from sightline.ingest._decode import Limits, decode_native, decode_otlp_json, decode_otlp_proto
from sightline.ingest._otlp_lite import LiteTracesData
from sightline.ingest._service import _prepare
from sightline.store import DuckDBStore
from sightline.store._arrow import records_to_table

WEIRD: list[Any] = [
    None,
    0,
    -1,
    2**70,
    1e308,
    -1e308,
    1.5,
    "",
    "x",
    "0" * 32,
    [],
    {},
    [1, "a"],
    {"a": 1},
    True,
    "zz" * 16,
    "ab" * 8,
]
KEYS = [
    "gen_ai.request.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.input.messages",
    "llm.input_messages.0.message.content",
    "retrieval.documents.0.document.score",
    "retrieval.documents.0.document.metadata",
    "gen_ai.request.seed",
    "llm.invocation_parameters",
    "sightline.ttft_ms",
    "gen_ai.system_instructions",
    "gen_ai.response.finish_reasons",
    "openinference.span.kind",
    "gen_ai.prompt.0.content",
    "sightline.documents",
    "gen_ai.output.messages",
    "session.id",
]
VALUE_KEYS = [
    "stringValue",
    "intValue",
    "doubleValue",
    "boolValue",
    "arrayValue",
    "kvlistValue",
    "bytesValue",
    "values",
    "key",
    "value",
]


def _value(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth < 3 and r < 0.2:
        return {k: _value(rng, depth + 1) for k in rng.sample(VALUE_KEYS, 2)}
    if depth < 3 and r < 0.3:
        return [_value(rng, depth + 1) for _ in range(2)]
    return rng.choice(WEIRD)


def _otlp_span(rng: random.Random) -> dict[str, Any]:
    s: dict[str, Any] = {
        "traceId": os.urandom(16).hex(),
        "spanId": os.urandom(8).hex(),
        "name": "n",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000001000000000",
        "attributes": [{"key": rng.choice(KEYS), "value": _value(rng)} for _ in range(6)],
    }
    for k in rng.sample(list(s), 2):
        if rng.random() < 0.3:
            s[k] = _value(rng)
    for k in ("events", "status"):
        if rng.random() < 0.3:
            s[k] = _value(rng)
    return s


_STORE: DuckDBStore | None = None


def _check(fmt: str, body: bytes) -> None:
    """Decoding refuses the body with a 400, or gives a batch the store takes whole."""
    global _STORE
    try:
        table, _ = _prepare(fmt, body, None, "p", 1 << 24)  # type: ignore[arg-type]
    except IngestError:
        return
    if table is not None:
        if _STORE is None:
            _STORE = DuckDBStore(":memory:")
            _STORE.migrate()
        _STORE.insert_batches([table])  # a NOT NULL column left empty would fail every request


@pytest.mark.parametrize("seed", range(4))
def test_otlp_json_of_any_shape(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(150):
        body = {
            "resourceSpans": [
                {
                    "resource": _value(rng) if rng.random() < 0.2 else {"attributes": []},
                    "scopeSpans": [
                        {
                            "scope": _value(rng) if rng.random() < 0.2 else {},
                            "spans": [_otlp_span(rng) for _ in range(3)],
                        }
                    ],
                }
            ]
        }
        _check("otlp_json", json.dumps(body).encode())


@pytest.mark.parametrize("seed", range(4))
def test_native_json_of_any_shape(seed: int) -> None:
    rng = random.Random(seed)
    good = {
        "trace_id": "ab" * 16,
        "span_id": "cd" * 8,
        "start_time": 1.7e9,
        "end_time": "2026-01-01T00:00:00Z",
        "model": "gpt-4o",
        "input_tokens": 5,
        "documents": [{"id": 1}],
        "input_messages": [{"role": "u"}],
        "attributes": {"a": 1},
        "kind": "llm",
        "is_streaming": True,
        "duration_ms": 5,
    }
    for _ in range(150):
        span = {k: _value(rng) if rng.random() < 0.3 else v for k, v in good.items()}
        _check("native", json.dumps([span, _value(rng)]).encode())


def test_corrupted_and_truncated_protobuf() -> None:
    rng = random.Random(7)
    base = llm_request(5, rng=random.Random(3))[0].SerializeToString()
    for i in range(600):
        b = bytearray(base)
        if i % 3 == 0:
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif i % 3 == 1:
            b = b[: rng.randrange(len(b))]
        else:
            b = bytearray(os.urandom(rng.randint(0, 300)))
        _check("otlp_proto", bytes(b))


@pytest.mark.parametrize("fmt", ["native", "otlp_json"])
def test_a_text_cut_inside_an_emoji_is_repaired_not_the_batch_refused(fmt: str) -> None:
    # json.dumps and JSON.stringify write a lone surrogate as the escape "\ud83d", which
    # strict JSON parsers refuse; one such text must not lose the other 99 spans
    texts = [f"answer {i}" for i in range(99)] + ["Great job \ud83d", "a \\ud83d b \U0001f600"]
    if fmt == "native":
        body = [
            {"trace_id": f"{i + 1:032x}", "span_id": f"{i + 1:016x}", "name": "chat",
             "start_time": 1.7e9, "duration_ms": 3, "output": t}
            for i, t in enumerate(texts)
        ]  # fmt: skip
    else:
        body = {"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": f"{i + 1:032x}", "spanId": f"{i + 1:016x}", "name": "chat",
             "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000",
             "attributes": [{"key": "output.value", "value": {"stringValue": t}}]}
            for i, t in enumerate(texts)
        ]}]}]}  # fmt: skip
    raw = json.dumps(body).encode()
    assert b'"Great job \\ud83d"' in raw  # ASCII: the repair of invalid UTF-8 cannot see it
    table, res = _prepare(fmt, raw, None, "p", 1 << 24)  # type: ignore[arg-type]
    assert table is not None and table.num_rows == 101 and res.num_rejected == 0
    ids, outputs = table.column("span_id").to_pylist(), table.column("output").to_pylist()
    out = dict(zip(ids, outputs, strict=True))
    assert out[f"{100:016x}"] == "Great job \ufffd"
    assert out[f"{101:016x}"] == "a \\ud83d b \U0001f600"  # a pair, and a backslash, kept
    assert out[f"{1:016x}"] == "answer 0"


def _pb_with_bad_utf8() -> bytes:
    """5 spans; the 2nd's output and the 4th's event hold protobuf.js's encoding of a lone
    surrogate (ED A0 BD, not UTF-8), the 5th's name a Latin-1 byte."""
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for i in range(5):
        s = spans.add(trace_id=(i + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"),
                      name=f"chat{i}", start_time_unix_nano=1_700_000_000_000_000_000,
                      end_time_unix_nano=1_700_000_000_100_000_000)  # fmt: skip
        s.attributes.add(key="output.value").value.string_value = f"Great job @{i}"
        e = s.events.add(name="gen_ai.content.completion", time_unix_nano=1)
        e.attributes.add(key="gen_ai.completion").value.string_value = f"event text #{i}"
    body = req.SerializeToString()
    for old, new in (
        (b"@1", b"\xed\xa0\xbd"[:2]),
        (b" #3", b"\xed\xa0\xbd"),
        (b"chat4", b"caf\xe9!"),
    ):
        assert body.count(old) == 1 and len(old) == len(new)
        body = body.replace(old, new)
    with pytest.raises(DecodeError, match="UTF-8"):
        ExportTraceServiceRequest.FromString(body)
    return body


def test_invalid_utf8_in_protobuf_is_repaired_per_span_not_the_batch_refused() -> None:
    # protobuf.js (the JS exporters) writes a lone surrogate as 3 bytes that are not UTF-8;
    # upb refuses the whole message for them, and one cut emoji must not lose the batch
    table, res = _prepare("otlp_proto", _pb_with_bad_utf8(), None, "p", 1 << 24)
    assert table is not None and table.num_rows == 5 and res.num_rejected == 0
    assert res.repaired["invalid_utf8"] == 3
    rows = {
        r["span_id"]: r
        for r in table.select(["span_id", "name", "output", "ingest_notes"]).to_pylist()
    }
    assert rows[f"{2:016x}"]["output"] == "Great job \ufffd"  # one for the run of bad bytes
    assert rows[f"{5:016x}"]["name"] == "caf\ufffd!"
    assert rows[f"{1:016x}"]["output"] == "Great job @0"
    assert [r["ingest_notes"] for r in rows.values()] == [
        [],
        ["invalid_utf8"],
        [],
        ["invalid_utf8"],
        ["invalid_utf8"],
    ]


def test_invalid_utf8_only_in_span_attributes_is_repaired() -> None:
    # the fast path reads span attributes as raw bytes apart from the message: the fault is
    # found only there, after the message itself parsed
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for i in range(3):
        s = spans.add(trace_id=b"\x07" * 16, span_id=bytes([i + 1]) * 8, name="chat",
                      start_time_unix_nano=1, end_time_unix_nano=2)  # fmt: skip
        s.attributes.add(key="input.value").value.string_value = f"question {i}"
    body = req.SerializeToString().replace(b"question 1", b"question\xc3(")
    assert LiteTracesData.FromString(body)  # parses: the attributes are bytes there
    table, res = _prepare("otlp_proto", body, None, "p", 1 << 24)
    assert table is not None and res.repaired == {"invalid_utf8": 1}
    assert table.column("input").to_pylist() == ["question 0", "question\ufffd(", "question 2"]


def test_invalid_utf8_in_a_resource_marks_each_of_its_spans() -> None:
    req = ExportTraceServiceRequest()
    for svc in ("svc-A", "svc-B"):
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = svc
        span = rs.scope_spans.add().spans.add(trace_id=b"\x01" * 16, span_id=svc[-1].encode() * 8)
        span.start_time_unix_nano, span.end_time_unix_nano = 1, 2
    body = req.SerializeToString().replace(b"svc-B", b"svc\xff\xfe")
    table, res = _prepare("otlp_proto", body, None, "p", 1 << 24)
    assert table is not None and res.repaired["invalid_utf8"] == 1
    rows = table.select(["service_name", "ingest_notes"]).to_pylist()
    assert rows == [
        {"service_name": "svc-A", "ingest_notes": []},
        {"service_name": "svc\ufffd", "ingest_notes": ["invalid_utf8"]},
    ]


def test_protobuf_malformed_besides_its_utf8_is_still_refused() -> None:
    body = _pb_with_bad_utf8()
    with pytest.raises(IngestError, match="malformed OTLP protobuf"):
        _prepare("otlp_proto", body[:-3], None, "p", 1 << 24)


def _otlp_json(spans: list[dict[str, Any]], resource: dict[str, Any] | None = None) -> bytes:
    attrs = [{"key": k, "value": {"stringValue": v}} for k, v in (resource or {}).items()]
    return json.dumps(
        {"resourceSpans": [{"resource": {"attributes": attrs},
                            "scopeSpans": [{"scope": {"name": "s"}, "spans": spans}]}]}
    ).encode()  # fmt: skip


def _json_span(i: int, **kw: Any) -> dict[str, Any]:
    return {"traceId": f"{i + 1:032x}", "spanId": f"{i + 1:016x}", "name": "chat",
            "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000000100000000", **kw}  # fmt: skip


def test_a_status_code_of_the_wrong_type_is_unset_not_a_crash() -> None:
    spans = [_json_span(i, status={"code": c}) for i, c in enumerate([[], {}, [2], 2, "x"])]
    table, res = _prepare("otlp_json", _otlp_json(spans), None, "p", 1 << 24)
    assert table is not None and res.num_rejected == 0
    assert table.column("status").to_pylist() == ["unset", "unset", "unset", "error", "unset"]


def test_an_all_zero_parent_id_is_a_root_span() -> None:
    body = llm_request(2)[0]
    body.resource_spans[0].scope_spans[0].spans[0].parent_span_id = b"\0" * 8
    native = [{"trace_id": "ab" * 16, "span_id": "cd" * 8, "parent_span_id": "0" * 16,
               "start_time": 1.7e9, "duration_ms": 1}]  # fmt: skip
    for fmt, raw in [
        ("otlp_proto", body.SerializeToString()),
        ("otlp_json", _otlp_json([_json_span(0, parentSpanId="0" * 16)])),
        ("native", json.dumps(native).encode()),
    ]:
        table, _ = _prepare(fmt, raw, None, "p", 1 << 24)  # type: ignore[arg-type]
        assert table is not None
        assert table.column("parent_span_id").to_pylist()[0] is None, fmt


def test_the_attribute_cap_keeps_what_the_conventions_map() -> None:
    # OpenInference writes a long conversation's messages first, model and usage last
    attrs = {"openinference.span.kind": "LLM"}
    for i in range(130):
        attrs[f"llm.input_messages.{i}.message.role"] = "user"
        attrs[f"llm.input_messages.{i}.message.content"] = f"turn {i}"
    attrs |= {f"extra.{i}": i for i in range(600)}
    attrs |= {"llm.model_name": "gpt-4o", "llm.token_count.prompt": 1200,
              "llm.token_count.completion": 80, "output.value": "the answer"}  # fmt: skip
    span = _json_span(0, attributes=[
        {"key": k, "value": {"stringValue": v} if isinstance(v, str) else {"intValue": v}}
        for k, v in attrs.items()
    ])  # fmt: skip
    table, res = _prepare("otlp_json", _otlp_json([span]), None, "p", 1 << 24)
    assert table is not None
    [row] = table.to_pylist()
    assert (row["model"], row["input_tokens"], row["output_tokens"]) == ("gpt-4o", 1200, 80)
    assert row["output"] == "the answer" and len(json.loads(row["input_messages"])) == 130
    assert row["cost_usd"] is not None
    assert "attributes_dropped" in row["ingest_notes"] and res.repaired["attributes_dropped"] == 1
    kept = json.loads(row["attributes"])
    assert len(kept) == Limits().max_attributes + 1 and kept["otel.scope.name"] == "s"


def test_a_huge_resource_is_cut_to_the_requests_budget_and_stored(tmp_path: Any) -> None:
    big = "x" * (1 << 20)
    spans = [_json_span(i) for i in range(300)]
    raw = _otlp_json(spans, {"service.name": "svc", "huge": big, "small": "ok"})
    table, res = _prepare("otlp_json", raw, None, "p", 1 << 24)
    assert table is not None and table.num_rows == 300
    resources = {r for r in table.column("resource_attributes").to_pylist()}
    assert [json.loads(r) for r in resources] == [{"service.name": "svc", "small": "ok"}]
    assert table.column("service_name").to_pylist() == ["svc"] * 300
    assert res.repaired["resource_attributes_dropped"] == 300
    store = DuckDBStore(tmp_path / "db.duckdb", memory_limit="256MB")
    store.migrate()
    assert store.insert_batches([table]) == 300
    # a resource that fits is untouched, and unnoted
    fits = {"large": "x" * ((1 << 20) - 100)}
    table, res = _prepare("otlp_json", _otlp_json(spans[:5], fits), None, "p", 1 << 24)
    assert table is not None and "resource_attributes_dropped" not in res.repaired


def test_span_links_are_kept_in_the_attributes() -> None:
    body = llm_request(1)[0]
    span = body.resource_spans[0].scope_spans[0].spans[0]
    link = span.links.add(trace_id=b"\x0a" * 16, span_id=b"\x0b" * 8)
    link.attributes.add(key="step", value={"int_value": 3})
    span.links.add(trace_id=b"\x0c" * 16, span_id=b"\x0d" * 8)
    step = [{"key": "step", "value": {"intValue": "3"}}]
    json_links = [{"traceId": "0a" * 16, "spanId": "0b" * 8, "attributes": step},
                  {"traceId": "0c" * 16, "spanId": "0d" * 8}, "junk"]  # fmt: skip
    json_span = _json_span(0, links=json_links)
    for fmt, raw in [
        ("otlp_proto", body.SerializeToString()),
        ("otlp_json", _otlp_json([json_span])),
    ]:
        table, _ = _prepare(fmt, raw, None, "p", 1 << 24)  # type: ignore[arg-type]
        assert table is not None
        attrs = json.loads(table.column("attributes").to_pylist()[0])
        assert attrs["otel.links"] == [
            {"trace_id": "0a" * 16, "span_id": "0b" * 8, "attributes": {"step": 3}},
            {"trace_id": "0c" * 16, "span_id": "0d" * 8},
        ], fmt


def test_links_past_the_cap_or_without_valid_ids_are_dropped_and_noted() -> None:
    body = llm_request(1)[0]
    span = body.resource_spans[0].scope_spans[0].spans[0]
    span.links.add(trace_id=b"\x0a" * 16, span_id=b"")  # no span id
    json_links: list[Any] = [{"traceId": "0a" * 16, "spanId": "zz" * 8}]
    for i in range(299):
        span.links.add(trace_id=(i + 1).to_bytes(16, "big"), span_id=b"\x0b" * 8)
        json_links.append({"traceId": f"{i + 1:032x}", "spanId": "0b" * 8})
    for fmt, raw in [
        ("otlp_proto", body.SerializeToString()),
        ("otlp_json", _otlp_json([_json_span(0, links=json_links)])),
    ]:
        table, res = _prepare(fmt, raw, None, "p", 1 << 24)  # type: ignore[arg-type]
        assert table is not None
        links = json.loads(table.column("attributes").to_pylist()[0])["otel.links"]
        assert len(links) == 255 and links[0]["trace_id"] == f"{1:032x}", fmt
        assert all(x["span_id"] == "0b" * 8 for x in links)
        notes = table.column("ingest_notes").to_pylist()[0]
        assert {"invalid_link", "links_dropped"} <= set(notes), fmt
        assert res.repaired["links_dropped"] == res.repaired["invalid_link"] == 1


def test_the_resource_budget_is_the_whole_requests_over_many_resources() -> None:
    # 20 resources of 50 spans: each alone would fit 16 MiB / 50, all together do not
    value = "r" * 200_000
    blocks = [
        {"resource": {"attributes": [{"key": "big", "value": {"stringValue": value}},
                                     {"key": "service.name", "value": {"stringValue": f"s{b}"}}]},
         "scopeSpans": [{"spans": [_json_span(b * 50 + i) for i in range(50)]}]}
        for b in range(20)
    ]  # fmt: skip
    raw = json.dumps({"resourceSpans": blocks}).encode()
    table, res = _prepare("otlp_json", raw, None, "p", 1 << 26)
    assert table is not None and table.num_rows == 1000
    stored = sum(len(r) for r in table.column("resource_attributes").to_pylist())
    assert stored <= 16 << 20
    assert res.repaired["resource_attributes_dropped"] == 1000
    assert sorted(set(table.column("service_name").to_pylist())) == sorted(
        f"s{b}" for b in range(20)
    )


@pytest.mark.parametrize("index", ["\u00b2", "9" * 5000, "\u0663"])
def test_an_index_int_cannot_read_is_not_a_crash(index: str) -> None:
    span = _json_span(0, attributes=[
        {"key": f"gen_ai.prompt.{index}.content", "value": {"stringValue": "hi"}},
        {"key": f"llm.input_messages.{index}.message.content", "value": {"stringValue": "hi"}},
        {"key": f"retrieval.documents.{index}.document.content", "value": {"stringValue": "d"}},
        {"key": "gen_ai.prompt.0.content", "value": {"stringValue": "kept"}},
    ])  # fmt: skip
    table, _ = _prepare("otlp_json", _otlp_json([span]), None, "p", 1 << 24)
    assert table is not None
    assert json.loads(table.column("input_messages").to_pylist()[0]) == [
        {"role": "user", "content": "kept"}
    ]


# -- long texts nested in messages, documents, attributes and events ----------------------------

_MIB = 1 << 20
_EURO = "\u20ac"  # 3 bytes of UTF-8: a 1 MiB cut falls inside one


def _otlp_obj(spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "s"}, "spans": spans}]}]}


def _as_proto(body: dict[str, Any]) -> bytes:
    """An OTLP/JSON body as protobuf (ids in base64, as proto3 JSON has them)."""
    body = copy.deepcopy(body)
    for s in body["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for k in ("traceId", "spanId"):
            s[k] = base64.b64encode(bytes.fromhex(s[k])).decode()
    return ParseDict(body, ExportTraceServiceRequest()).SerializeToString()


def _attr(key: str, value: Any) -> dict[str, Any]:
    """An OTLP/JSON attribute of a plain value (lists and dicts as arrays and kvlists)."""
    return {"key": key, "value": _any(value)}


def _any(v: Any) -> dict[str, Any]:
    if isinstance(v, list):
        return {"arrayValue": {"values": [_any(x) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": [_attr(k, x) for k, x in v.items()]}}
    return {"stringValue": v}


def _native_span(i: int, **kw: Any) -> dict[str, Any]:
    return {"trace_id": f"{i + 1:032x}", "span_id": f"{i + 1:016x}", "start_time": 1.7e9,
            "duration_ms": 100, **kw}  # fmt: skip


def _bodies(
    otlp_spans: list[dict[str, Any]], native_spans: list[dict[str, Any]]
) -> dict[str, bytes]:
    body = _otlp_obj(otlp_spans)
    return {
        "otlp_json": json.dumps(body).encode(),
        "otlp_proto": _as_proto(body),
        "native": json.dumps(native_spans).encode(),
    }


def _strings(v: Any, *, keys: bool = True) -> Iterator[str]:
    """Every string in a JSON-like value (keys too, with ``keys``)."""
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for k, x in v.items():
            if keys:
                yield k
            yield from _strings(x, keys=keys)
    elif isinstance(v, list):
        for x in v:
            yield from _strings(x, keys=keys)


_JSON_COLUMNS = ("input_messages", "output_messages", "documents", "attributes")


def _rows(table: Any) -> dict[str, dict[str, Any]]:
    """The table's rows by span id, JSON columns parsed."""
    rows = {}
    for row in table.to_pylist():
        for c in _JSON_COLUMNS:
            row[c] = json.loads(row[c]) if row[c] is not None else None
        rows[row["span_id"]] = row
    return rows


def _longest(row: dict[str, Any]) -> int:
    return max((len(s.encode()) for c in _JSON_COLUMNS for s in _strings(row[c])), default=0)


@pytest.mark.parametrize("fmt", ["otlp_proto", "otlp_json", "native"])
def test_a_long_message_is_cut_to_the_limit_and_noted_once(fmt: str) -> None:
    big = _EURO * _MIB  # 3 MiB
    cut = _EURO * (_MIB // 3)  # the longest whole-character prefix within 1 MiB
    inp = [{"role": "user", "content": big}]
    out = [{"role": "assistant", "parts": [{"type": "text", "content": big}]}]
    hi = [{"role": "user", "content": "hi"}]
    raw = _bodies(
        [_json_span(0, attributes=[_attr("gen_ai.input.messages", json.dumps(inp)),
                                   _attr("gen_ai.output.messages", json.dumps(out))]),
         _json_span(1, attributes=[_attr("gen_ai.input.messages", json.dumps(hi))])],
        [_native_span(0, input_messages=inp, output_messages=[{"content": big, **out[0]}]),
         _native_span(1, input_messages=hi)],
    )[fmt]  # fmt: skip
    table, res = _prepare(fmt, raw, None, "p", 1 << 26)  # type: ignore[arg-type]
    assert table is not None and table.num_rows == 2 and res.num_rejected == 0
    rows = _rows(table)
    long, short = rows[f"{1:016x}"], rows[f"{2:016x}"]
    assert long["input_messages"] == [{"role": "user", "content": cut}]
    # the content and the part it was read from: two strings cut, one note
    assert long["output_messages"][0]["content"] == cut
    assert long["output_messages"][0]["parts"][0]["content"] == cut
    assert long["ingest_notes"].count("message_truncated") == 1
    assert res.repaired["message_truncated"] == 1
    assert short["input_messages"] == hi
    assert short["ingest_notes"] == []


@pytest.mark.parametrize("fmt", ["otlp_proto", "otlp_json", "native"])
def test_long_strings_in_documents_attributes_and_events_are_cut(fmt: str) -> None:
    big = "d" * (3 * _MIB)
    prompt = json.dumps([{"role": "user", "content": big}])
    raw = _bodies(
        [_json_span(0, attributes=[
            _attr("retrieval.documents.0.document.content", big),
            _attr("retrieval.documents.0.document.id", "doc-1"),
            _attr("tool.args", [big, {"query": big, "k": "3"}]),
            _attr("k" * (3 * _MIB), "a long key"),
            _attr("plain", big),
         ], events=[{"name": "gen_ai.content.prompt", "timeUnixNano": "1700000000000000000",
                     "attributes": [_attr("gen_ai.prompt", prompt)]}])],
        [_native_span(0, documents=[{"id": "doc-1", "content": big}],
                      attributes={"tool.args": [big, {"query": big, "k": "3"}],
                                  "k" * (3 * _MIB): "a long key", "plain": big})],
    )[fmt]  # fmt: skip
    table, res = _prepare(fmt, raw, None, "p", 1 << 26)  # type: ignore[arg-type]
    assert table is not None and res.num_rejected == 0
    [row] = _rows(table).values()
    assert _longest(row) == _MIB
    assert row["documents"][0]["content"] == "d" * _MIB and row["documents"][0]["id"] == "doc-1"
    attrs = row["attributes"]
    assert attrs["tool.args"] == ["d" * _MIB, {"query": "d" * _MIB, "k": "3"}]
    assert attrs["plain"] == "d" * _MIB and attrs["k" * _MIB] == "a long key"
    expected = {"document_truncated", "attribute_truncated"}
    if fmt != "native":  # the prompt event: its attribute, and the messages read from it
        assert attrs["events"][0]["attributes"]["gen_ai.prompt"] == prompt[:_MIB]
        assert row["input_messages"] == [{"role": "user", "content": "d" * _MIB}]
        expected |= {"event_truncated", "message_truncated", "input_truncated"}
    assert set(row["ingest_notes"]) == expected
    assert all(res.repaired[n] == 1 for n in expected)


@pytest.mark.parametrize("fmt", ["otlp_proto", "otlp_json", "native"])
def test_a_spans_texts_share_a_budget_of_8_times_the_limit(fmt: str) -> None:
    limits = Limits(max_text_bytes=4096)
    many = [{"role": "user", "content": f"{i:04d}" + "m" * 3996} for i in range(20)]  # 80 KB
    some = many[:5]  # with the answer and the note, 28 KB: over the limit, within the budget
    answer = [{"role": "assistant", "content": "a" * 4000}]
    otlp, native = [], []
    for i, msgs in enumerate([many, some]):
        otlp.append(_json_span(i, attributes=[_attr("gen_ai.input.messages", json.dumps(msgs)),
                                              _attr("gen_ai.output.messages", json.dumps(answer)),
                                              _attr("note", "n" * 4000)]))  # fmt: skip
        native.append(_native_span(i, input_messages=msgs, output_messages=answer,
                                   attributes={"note": "n" * 4000}))  # fmt: skip
    raw = _bodies(otlp, native)[fmt]
    decode = {"otlp_proto": decode_otlp_proto, "otlp_json": decode_otlp_json,
              "native": decode_native}[fmt]  # fmt: skip
    res = decode(raw, "p", limits=limits)
    over, within = res.records
    texts = [over["output_messages"], over["input_messages"], over.get("documents"),
             over["attributes"]]  # fmt: skip
    assert sum(len(s.encode()) for s in _strings(texts, keys=False)) == 8 * 4096
    # spent in order: the answer first, then the conversation from its start
    assert over["output_messages"] == answer
    contents = [m["content"] for m in over["input_messages"]]
    assert contents[:7] == [m["content"] for m in many[:7]]
    assert contents[-1] == "" and len(contents) == 20
    assert over["input"] == many[-1]["content"]  # the question is a field of its own
    assert over["ingest_notes"] == ["text_budget_exceeded"]
    assert res.repaired == {"text_budget_exceeded": 1}
    assert within["input_messages"] == some and within["ingest_notes"] == []
    assert within["attributes"]["note"] == "n" * 4000
    assert records_to_table(res.records).num_rows == 2


@pytest.mark.parametrize("fmt", ["otlp_proto", "otlp_json", "native"])
def test_long_text_fields_are_cut(fmt: str) -> None:
    limits = Limits(max_text_bytes=4096)
    raw = _bodies(
        [_json_span(0, name="n" * 10_000, attributes=[_attr("gen_ai.request.model", "m" * 10_000),
                                                      _attr("user.id", "u" * 10_000)])],
        [_native_span(0, name="n" * 10_000, request_model="m" * 10_000, user_id="u" * 10_000)],
    )[fmt]  # fmt: skip
    decode = {"otlp_proto": decode_otlp_proto, "otlp_json": decode_otlp_json,
              "native": decode_native}[fmt]  # fmt: skip
    [rec] = decode(raw, "p", limits=limits).records
    assert rec["name"] == "n" * 4096 and rec["user_id"] == "u" * 4096
    assert rec["request_model"] == rec["model"] == "m" * 4096
    assert {
        "name_truncated",
        "request_model_truncated",
        "model_truncated",
        "user_id_truncated",
    } <= set(rec["ingest_notes"])


@pytest.mark.parametrize("depth", [10, 60, 150, 300, 1000])
def test_deeply_nested_values_with_long_strings_are_not_a_crash(
    depth: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_service, "_LIMITS", Limits(max_text_bytes=4096))
    big = "x" * 10_000

    def nested(leaf: Any, n: int) -> Any:
        for _ in range(n):
            leaf = {"a": leaf, "s": big}
        return leaf

    deep = nested(big, depth)
    # json.dumps recurses: the bodies are written by hand past its depth
    inner = json.dumps(deep) if depth < 200 else '{"a": ' * depth + json.dumps(big) + "}" * depth
    native = json.dumps([_native_span(0, attributes={"deep": "DEEP", "top": big},
                                      input_messages=[{"content": "c", "x": "DEEP"}])])  # fmt: skip
    native_raw = native.replace('"DEEP"', inner).encode()
    _check("native", native_raw)
    kv = '{"kvlistValue": {"values": [{"key": "a", "value": ' * depth
    otlp = kv + json.dumps({"stringValue": big}) + "}]}}" * depth
    body = json.dumps(_otlp_obj([_json_span(0, attributes=[{"key": "deep", "value": "DEEP"},
                                                           _attr("top", big)])]))  # fmt: skip
    _check("otlp_json", body.replace('"DEEP"', otlp).encode())
    if depth <= 30:  # deeper, protobuf refuses the body (its recursion limit of 100 messages)
        pb = _as_proto(_otlp_obj([_json_span(0, attributes=[_attr("deep", nested(big, depth))])]))
        _check("otlp_proto", pb)
    try:
        table, _ = _prepare("native", native_raw, None, "p", 1 << 26)
    except IngestError:  # past orjson's depth limit
        return
    if table is not None:  # else too deep to store, and rejected (as it always was)
        [row] = _rows(table).values()
        texts = [row[c] for c in _JSON_COLUMNS]
        assert _longest(row) <= 4096
        assert sum(len(s.encode()) for s in _strings(texts, keys=False)) <= 8 * 4096


def test_an_exception_message_of_any_type_is_a_status_message() -> None:
    span = _json_span(0, status={"code": 2}, events=[
        {"name": "exception", "timeUnixNano": "1700000000000000000",
         "attributes": [{"key": "exception.message", "value": {"intValue": "5"}}]}])  # fmt: skip
    table, res = _prepare("otlp_json", _otlp_json([span]), None, "p", 1 << 24)
    assert table is not None and res.num_rejected == 0
    assert table.column("status_message").to_pylist() == ["5"]


def test_long_log_bodies_and_attributes_are_cut_to_the_limit() -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from sightline.ingest._service import _LIMITS, _prepare_signal

    lim = _LIMITS.max_text_bytes
    req = ExportLogsServiceRequest()
    recs = req.resource_logs.add().scope_logs.add().log_records
    for i in range(3):
        r = recs.add(time_unix_nano=1_700_000_000_000_000_000 + i)
        r.body.string_value = "€" * (lim // 2) if i == 0 else f"short {i}"  # 1.5x the limit
        kv = r.attributes.add(key="payload").value.kvlist_value.values.add(key="text")
        kv.value.string_value = "x" * (lim + 10) if i == 1 else "small"
    table, res = _prepare_signal("logs", "otlp_proto", req.SerializeToString(), None, "p", 1 << 26)
    assert table is not None and table.num_rows == 3
    assert res.repaired == {"body_truncated": 1, "attribute_truncated": 1}
    bodies = table.column("body").to_pylist()
    assert len(bodies[0].encode()) <= lim and bodies[0] == "€" * (lim // 3)
    assert bodies[1:] == ["short 1", "short 2"]
    attrs = [json.loads(a) for a in table.column("attributes").to_pylist()]
    assert attrs[1]["payload"]["text"] == "x" * lim
    assert attrs[0]["payload"]["text"] == attrs[2]["payload"]["text"] == "small"
