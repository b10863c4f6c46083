"""Hostile payloads: every decoder answers IngestError or decodes, never anything else.

Seeded random structures of the wrong types, and corrupted or truncated protobuf; each case
that once crashed the decoder (strings where objects belong, infinite times) is in the mix.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import pytest

from _payload import llm_request
from sightline.errors import IngestError
from sightline.ingest._service import _prepare
from sightline.store import DuckDBStore

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
