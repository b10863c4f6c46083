"""OTLP ingest against a real `sightline serve` process."""

from __future__ import annotations

import gzip
import json
import os
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from _helpers import API_KEY, Server, free_port, start_server
from _payload import llm_request

PROTO = {"content-type": "application/x-protobuf"}


def _spans(srv: Server, **params: object) -> list[dict[str, object]]:
    with srv.client() as c:
        r = c.get("/api/v1/spans", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def _json_body(trace_id: str, spans: list[dict[str, object]]) -> bytes:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                    },
                    "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
                }
            ]
        }
    ).encode()


def _span_json(trace_id: str, span_id: str, **extra: object) -> dict[str, object]:
    now = time.time_ns()
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "name": "chat gpt-4o-mini",
        "kind": 3,
        "startTimeUnixNano": str(now - 500_000_000),
        "endTimeUnixNano": str(now),
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1000"}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 200}},
        ],
        **extra,
    }


class TestRealExporters:
    def test_otlp_http_protobuf_exporter_lands_spans(self, server: Server) -> None:
        exporter = OTLPSpanExporter(
            endpoint=f"{server.url}/v1/traces", headers={"authorization": f"Bearer {API_KEY}"}
        )
        provider = TracerProvider(resource=Resource.create({"service.name": "exp-http"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("rag", attributes={"user.id": "u-http"}) as root:
            with tracer.start_as_current_span(
                "chat gpt-4o",
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 100,
                    "gen_ai.usage.output_tokens": 50,
                },
            ):
                pass
        provider.shutdown()
        trace_id = format(root.get_span_context().trace_id, "032x")
        spans = _spans(server, trace_id=trace_id)
        assert {s["name"] for s in spans} == {"rag", "chat gpt-4o"}
        llm = next(s for s in spans if s["kind"] == "llm")
        assert llm["model"] == "gpt-4o"
        assert llm["service_name"] == "exp-http"
        assert llm["cost_usd"] == pytest.approx((100 * 2.5 + 50 * 10) / 1e6)

    def test_otlp_grpc_exporter_lands_spans(self, server: Server) -> None:
        exporter = GrpcExporter(
            endpoint=f"127.0.0.1:{server.grpc_port}",
            insecure=True,
            headers=(("authorization", f"Bearer {API_KEY}"),),
        )
        provider = TracerProvider(resource=Resource.create({"service.name": "exp-grpc"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("t").start_as_current_span("grpc-span") as s:
            pass
        provider.shutdown()
        trace_id = format(s.get_span_context().trace_id, "032x")
        spans = _spans(server, trace_id=trace_id)
        assert [x["service_name"] for x in spans] == ["exp-grpc"]

    def test_grpc_rejects_unknown_key(self, server: Server) -> None:
        mem = InMemorySpanExporter()
        exporter = GrpcExporter(
            endpoint=f"127.0.0.1:{server.grpc_port}",
            insecure=True,
            headers=(("authorization", "Bearer nope-nope-nope-nope"),),
        )
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(mem))
        with provider.get_tracer("t").start_as_current_span("x"):
            pass
        result = exporter.export(mem.get_finished_spans())
        assert result.name == "FAILURE"
        exporter.shutdown()


class TestOtlpHttp:
    def test_protobuf_batch_is_queryable_when_acknowledged(self, server: Server) -> None:
        req, ids = llm_request(64)
        with server.client() as c:
            r = c.post("/v1/traces", content=req.SerializeToString(), headers=PROTO)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/x-protobuf"
        resp = ExportTraceServiceResponse.FromString(r.content)
        assert not resp.HasField("partial_success")
        # durable before acknowledged: every span is readable the moment the 200 arrives
        stored = {
            s["span_id"]
            for s in _spans(server, model="gpt-4o")
            + _spans(server, model="gpt-4o-mini")
            + _spans(server, model="claude-sonnet-4-5")
            + _spans(server, model="claude-3-5-haiku-20241022")
        }
        assert set(ids) <= stored

    def test_json_body_lands_spans(self, server: Server) -> None:
        tid = os.urandom(16).hex()
        body = _json_body(tid, [_span_json(tid, os.urandom(8).hex())])
        with server.client() as c:
            r = c.post("/v1/traces", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        assert r.json() == {}
        [span] = _spans(server, trace_id=tid)
        assert span["input_tokens"] == 1000 and span["output_tokens"] == 200
        assert span["service_name"] == "svc"

    def test_vercel_ai_sdk_trace_is_read_and_its_tokens_counted_once(self, server: Server) -> None:
        tid, session = os.urandom(16).hex(), f"s-{os.urandom(4).hex()}"
        ids = [os.urandom(8).hex() for _ in range(3)]

        def attrs(**a: object) -> list[dict[str, object]]:
            return [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int)
                     else {"doubleValue": v} if isinstance(v, float)
                     else {"stringValue": v}} for k, v in a.items()]  # fmt: skip

        common = {"ai.model.id": "gpt-4o-mini", "ai.model.provider": "openai.chat",
                  "ai.telemetry.metadata.sessionId": session,
                  "ai.usage.promptTokens": 1000, "ai.usage.completionTokens": 11}  # fmt: skip
        question = "How do I reset my password?"
        outer = _span_json(tid, ids[0], name="ai.streamText", attributes=attrs(
            **common, **{"ai.operationId": "ai.streamText", "ai.response.text": "Open Settings.",
                         "ai.prompt": json.dumps({"prompt": question})}))  # fmt: skip
        request = _span_json(tid, ids[1], name="ai.streamText.doStream", parentSpanId=ids[0],
                             attributes=attrs(**common, **{
            "ai.operationId": "ai.streamText.doStream", "ai.response.msToFirstChunk": 120.0,
            "ai.prompt.messages": json.dumps([{"role": "user", "content": question}]),
            "ai.response.text": "Open Settings.", "gen_ai.system": "openai.chat",
            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 11}))  # fmt: skip
        tool_attrs = {
            "ai.operationId": "ai.toolCall",
            "ai.toolCall.name": "lookup",
            "ai.toolCall.args": '{"q": "reset"}',
            "ai.toolCall.result": "Settings",
        }
        tool = _span_json(tid, ids[2], name="ai.toolCall", parentSpanId=ids[0],
                          attributes=attrs(**tool_attrs))  # fmt: skip
        with server.client() as c:
            r = c.post("/v1/traces", content=_json_body(tid, [outer, request, tool]),
                       headers={"content-type": "application/json"})  # fmt: skip
            assert r.status_code == 200, r.text
            got = {s["span_id"]: s for s in _spans(server, trace_id=tid)}
            cost = c.get("/api/v1/metrics", params={"name": "cost_usd", "agg": "sum", "from": 0,
                                                    "session_id": session}).json()  # fmt: skip
        kinds = [got[i]["kind"] for i in ids]
        assert kinds == ["chain", "llm", "tool"]
        llm = got[ids[1]]
        assert (llm["model"], llm["provider"], llm["ttft_ms"]) == ("gpt-4o-mini", "openai", 120.0)
        assert (llm["input"], llm["output"], llm["is_streaming"]) == (
            question,
            "Open Settings.",
            True,
        )
        assert got[ids[0]]["input"] == question and got[ids[0]]["cost_usd"] is None
        assert got[ids[2]]["input"] == '{"q": "reset"}'
        [series] = cost["series"]
        assert series["points"][0]["value"] == pytest.approx(llm["cost_usd"])  # once, not twice

    def test_gzip_body(self, server: Server) -> None:
        req, ids = llm_request(8)
        with server.client() as c:
            r = c.post(
                "/v1/traces",
                content=gzip.compress(req.SerializeToString()),
                headers={**PROTO, "content-encoding": "gzip"},
            )
        assert r.status_code == 200
        tid = req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
        assert [s["span_id"] for s in _spans(server, trace_id=tid)] == [ids[0]]

    def test_multi_member_gzip_body_stores_every_member(self, server: Server) -> None:
        """Two gzip members one after the other (RFC 1952; `cat a.gz b.gz`): both are read,
        and the two protobuf messages make one request; none of its spans is dropped."""
        first, ids1 = llm_request(3)
        second, ids2 = llm_request(2)
        body = gzip.compress(first.SerializeToString()) + gzip.compress(second.SerializeToString())
        with server.client() as c:
            r = c.post("/v1/traces", content=body, headers={**PROTO, "content-encoding": "gzip"})
        assert r.status_code == 200, r.text
        assert ExportTraceServiceResponse.FromString(r.content).partial_success.rejected_spans == 0
        stored = set()
        for req in (first, second):
            for s in req.resource_spans[0].scope_spans[0].spans:
                stored |= {x["span_id"] for x in _spans(server, trace_id=s.trace_id.hex())}
        assert stored == set(ids1 + ids2)

    def test_multi_member_gzip_native_json(self, server: Server) -> None:
        """The native route reads every member too: a JSON array cut in two members."""
        tid = os.urandom(16).hex()
        sids = [os.urandom(8).hex() for _ in range(2)]
        text = json.dumps(
            [{"trace_id": tid, "span_id": s, "name": "n", "kind": "llm"} for s in sids]
        ).encode()
        cut = len(text) // 2
        body = gzip.compress(text[:cut]) + gzip.compress(text[cut:])
        with server.client() as c:
            r = c.post(
                "/api/v1/spans",
                content=body,
                headers={"content-type": "application/json", "content-encoding": "gzip"},
            )
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 2
        assert {s["span_id"] for s in _spans(server, trace_id=tid)} == set(sids)

    def test_partial_success_reports_rejected_spans(self, server: Server) -> None:
        tid = os.urandom(16).hex()
        good = _span_json(tid, os.urandom(8).hex())
        no_span_id = _span_json(tid, "")
        bad_trace = _span_json("zz" * 16, os.urandom(8).hex())
        with server.client() as c:
            r = c.post(
                "/v1/traces",
                content=_json_body(tid, [good, no_span_id, bad_trace]),
                headers={"content-type": "application/json"},
            )
        assert r.status_code == 200
        ps = r.json()["partialSuccess"]
        assert ps["rejectedSpans"] == "2"
        assert "invalid_span_id=1" in ps["errorMessage"]
        assert "invalid_trace_id=1" in ps["errorMessage"]
        assert len(_spans(server, trace_id=tid)) == 1

    def test_partial_success_in_protobuf_response(self, server: Server) -> None:
        req, _ = llm_request(3)
        req.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x01\x02"
        with server.client() as c:
            r = c.post("/v1/traces", content=req.SerializeToString(), headers=PROTO)
        resp = ExportTraceServiceResponse.FromString(r.content)
        assert resp.partial_success.rejected_spans == 1
        assert "invalid_span_id" in resp.partial_success.error_message

    def test_retried_batch_does_not_duplicate(self, server: Server) -> None:
        req, ids = llm_request(20)
        body = req.SerializeToString()
        tids = {s.trace_id.hex() for s in req.resource_spans[0].scope_spans[0].spans}
        with server.client() as c:
            for _ in range(3):
                assert c.post("/v1/traces", content=body, headers=PROTO).status_code == 200
        got = [s["span_id"] for t in tids for s in _spans(server, trace_id=t)]
        assert sorted(got) == sorted(ids)

    def test_repairs_are_counted_not_fatal(self, server: Server) -> None:
        tid = os.urandom(16).hex()
        now = time.time_ns()
        backwards = _span_json(
            tid, os.urandom(8).hex(), startTimeUnixNano=str(now), endTimeUnixNano=str(now - 10**9)
        )
        no_times = _span_json(tid, os.urandom(8).hex(), startTimeUnixNano="0", endTimeUnixNano="0")
        with server.client() as c:
            r = c.post(
                "/v1/traces",
                content=_json_body(tid, [backwards, no_times]),
                headers={"content-type": "application/json"},
            )
        assert r.status_code == 200 and r.json() == {}
        spans = _spans(server, trace_id=tid)
        assert len(spans) == 2
        notes = sorted(n for s in spans for n in s["ingest_notes"])
        assert "negative_duration" in notes and "missing_start_time" in notes
        assert all(s["duration_ms"] >= 0 for s in spans)

    @pytest.mark.parametrize("fmt", ["otlp_json", "otlp_proto", "native"])
    def test_a_long_message_is_stored_cut_to_the_limit(self, server: Server, fmt: str) -> None:
        """A 3 MiB message is stored cut to max_text_bytes (1 MiB) with a note, whichever the
        format; the other span of the batch is stored as it was sent."""
        big = "\u20ac" * (1 << 20)  # 3 bytes of UTF-8 each: the cut falls inside one
        tid, long_id, short_id = os.urandom(16).hex(), os.urandom(8).hex(), os.urandom(8).hex()
        msgs = {long_id: [{"role": "user", "content": big}],
                short_id: [{"role": "user", "content": "short question"}]}  # fmt: skip
        if fmt == "otlp_json":
            spans = []
            for sid, m in msgs.items():
                span = _span_json(tid, sid)
                span["attributes"].append(  # type: ignore[attr-defined]
                    {"key": "gen_ai.input.messages", "value": {"stringValue": json.dumps(m)}}
                )
                spans.append(span)
            body, url, ctype = _json_body(tid, spans), "/v1/traces", "application/json"
        elif fmt == "otlp_proto":
            req, _ = llm_request(2)
            pb_spans = req.resource_spans[0].scope_spans[0].spans
            for s, (sid, m) in zip(pb_spans, msgs.items(), strict=True):
                s.trace_id, s.span_id = bytes.fromhex(tid), bytes.fromhex(sid)
                [kv] = [kv for kv in s.attributes if kv.key == "gen_ai.input.messages"]
                kv.value.string_value = json.dumps(m)
            body, url, ctype = req.SerializeToString(), "/v1/traces", PROTO["content-type"]
        else:
            now = time.time()
            spans = [{"trace_id": tid, "span_id": sid, "start_time": now, "duration_ms": 5,
                      "input_messages": m} for sid, m in msgs.items()]  # fmt: skip
            body, url, ctype = json.dumps(spans).encode(), "/api/v1/spans", "application/json"
        with server.client() as c:
            r = c.post(url, content=body, headers={"content-type": ctype})
        assert r.status_code == 200, r.text
        got = {s["span_id"]: s for s in _spans(server, trace_id=tid)}
        long, short = got[long_id], got[short_id]
        assert long["input_messages"] == [{"role": "user", "content": "\u20ac" * ((1 << 20) // 3)}]
        assert "message_truncated" in long["ingest_notes"]  # type: ignore[operator]
        assert short["input_messages"] == msgs[short_id]
        assert "message_truncated" not in short["ingest_notes"]  # type: ignore[operator]

    def test_many_long_messages_are_bounded_by_the_spans_budget(self, server: Server) -> None:
        """Nine messages just under the limit: each fits, together they pass the span's budget
        (8 x max_text_bytes), which the stored span keeps to."""
        tid, sid = os.urandom(16).hex(), os.urandom(8).hex()
        msgs = [{"role": "user", "content": f"{i}" * ((1 << 20) - 1)} for i in range(9)]
        span = {"trace_id": tid, "span_id": sid, "kind": "llm", "start_time": time.time(),
                "duration_ms": 5, "input_messages": msgs}  # fmt: skip
        with server.client() as c:
            r = c.post("/api/v1/spans", json=[span])
        assert r.status_code == 200, r.text
        assert r.json()["repaired_reasons"] == {"text_budget_exceeded": 1}
        [got] = _spans(server, trace_id=tid)
        stored = got["input_messages"]
        assert isinstance(stored, list) and len(stored) == 9
        assert sum(len(m["role"]) + len(m["content"]) for m in stored) == 8 << 20
        assert stored[:7] == msgs[:7] and stored[8]["content"] == ""
        assert got["ingest_notes"] == ["text_budget_exceeded"]


@pytest.fixture(scope="module")
def bad_srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("bad"),
        env={"SIGHTLINE_MAX_BODY_BYTES": str(64 * 1024), "SIGHTLINE_MAX_TEXT_BYTES": "4096"},
    )
    req, _ = llm_request(10)
    with srv.client() as c:
        r = c.post("/v1/traces", content=req.SerializeToString(), headers=PROTO)
        assert r.status_code == 200, r.text
    yield srv
    srv.stop()


class TestBadInput:
    """Every bad request gets a clear 4xx, and the server keeps serving with data intact."""

    @pytest.fixture
    def srv(self, bad_srv: Server) -> Server:
        return bad_srv

    def _assert_intact(self, srv: Server) -> None:
        with srv.client() as c:
            assert c.get("/healthz").status_code == 200
            r = c.get("/api/v1/spans", params={"limit": 1000})
        assert r.status_code == 200 and len(r.json()["data"]) >= 10

    @pytest.mark.parametrize(
        ("body", "headers", "status", "code"),
        [
            (b"\x0a\xff\xff\xff\xff\x0f", PROTO, 400, "invalid_payload"),
            (b"{not json", {"content-type": "application/json"}, 400, "invalid_payload"),
            (b"[1, 2]", {"content-type": "application/json"}, 400, "invalid_payload"),
            (b"x", {"content-type": "text/plain"}, 415, "unsupported_media_type"),
            (b"x", {}, 415, "unsupported_media_type"),
            (b"x", {**PROTO, "content-encoding": "br"}, 415, "unsupported_media_type"),
            (b"not gzip", {**PROTO, "content-encoding": "gzip"}, 400, "invalid_payload"),
            (
                gzip.compress(llm_request(1)[0].SerializeToString()) + b"garbage",
                {**PROTO, "content-encoding": "gzip"},
                400,
                "invalid_payload",
            ),
            (
                gzip.compress(b"") + gzip.compress(llm_request(1)[0].SerializeToString())[:-4],
                {**PROTO, "content-encoding": "gzip"},
                400,
                "invalid_payload",
            ),
            (
                zlib.compress(llm_request(1)[0].SerializeToString()) + b"\0",
                {**PROTO, "content-encoding": "deflate"},
                400,
                "invalid_payload",
            ),
            (b"\0" * (65 * 1024), PROTO, 413, "payload_too_large"),
            (
                gzip.compress(b"\0" * (1024 * 1024)),
                {**PROTO, "content-encoding": "gzip"},
                413,
                "payload_too_large",
            ),
            (
                # each member is under the 64 KiB limit, the two together are not
                gzip.compress(b"\0" * (40 * 1024)) * 2,
                {**PROTO, "content-encoding": "gzip"},
                413,
                "payload_too_large",
            ),
        ],
        ids=[
            "bad-proto",
            "bad-json",
            "json-not-object",
            "text-plain",
            "no-content-type",
            "brotli",
            "bad-gzip",
            "gzip-trailing-garbage",
            "gzip-second-member-truncated",
            "deflate-trailing-bytes",
            "too-large",
            "gzip-bomb",
            "gzip-members-over-limit",
        ],
    )
    def test_bad_body(
        self, srv: Server, body: bytes, headers: dict[str, str], status: int, code: str
    ) -> None:
        with srv.client() as c:
            r = c.post("/v1/traces", content=body, headers=headers)
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["error"]["code"] == code
        self._assert_intact(srv)

    @pytest.mark.parametrize("key", [None, "", "wrong-key-wrong-key"])
    def test_missing_or_unknown_key(self, srv: Server, key: str | None) -> None:
        headers = PROTO if key is None else {**PROTO, "authorization": f"Bearer {key}".strip()}
        r = httpx.post(f"{srv.url}/v1/traces", content=b"", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        self._assert_intact(srv)

    def test_x_api_key_header_is_accepted(self, srv: Server) -> None:
        r = httpx.get(f"{srv.url}/api/v1/spans", headers={"x-api-key": API_KEY})
        assert r.status_code == 200

    def test_invalid_utf8_in_json_is_repaired(self, srv: Server) -> None:
        tid = os.urandom(16).hex()
        body = _json_body(tid, [_span_json(tid, os.urandom(8).hex(), name="PLACEHOLDER")])
        body = body.replace(b"PLACEHOLDER", b"bad \xff\xfe name")
        with srv.client() as c:
            r = c.post("/v1/traces", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 200, r.text
            [span] = c.get("/api/v1/spans", params={"trace_id": tid}).json()["data"]
        assert span["name"] == "bad \ufffd\ufffd name"

    def test_absurd_values_are_bounded(self, srv: Server) -> None:
        tid = os.urandom(16).hex()
        span = _span_json(tid, os.urandom(8).hex(), startTimeUnixNano="99999999999999999999999")
        span["attributes"] = [  # type: ignore[index]
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "-5"}},
            {"key": "gen_ai.request.seed", "value": {"intValue": str(2**70)}},
            {"key": "gen_ai.request.max_tokens", "value": {"doubleValue": 1e30}},
            {"key": "gen_ai.request.temperature", "value": {"doubleValue": 1e308}},
            {"key": "input.value", "value": {"stringValue": "é" * 10_000}},
        ]
        body = json.dumps(
            {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}, ensure_ascii=False
        ).encode()
        with srv.client() as c:
            r = c.post("/v1/traces", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 200, r.text
            [got] = c.get("/api/v1/spans", params={"trace_id": tid}).json()["data"]
        assert got["input_tokens"] is None
        assert "invalid_input_tokens" in got["ingest_notes"]
        assert got["seed"] is None and "invalid_seed" in got["ingest_notes"]
        assert got["max_tokens"] is None and "invalid_max_tokens" in got["ingest_notes"]
        assert "missing_start_time" in got["ingest_notes"]
        assert "input_truncated" in got["ingest_notes"]
        assert got["input"] == "é" * 2048  # 4096 bytes, cut on a character boundary

    def test_bad_query_parameters(self, srv: Server) -> None:
        with srv.client() as c:
            for params in (
                {"limit": 5000},
                {"limit": 0},
                {"from": "yesterday"},
                {"kind": "nonsense"},
                {"cursor": "!!!"},
            ):
                r = c.get("/api/v1/spans", params=params)
                assert r.status_code == 400, (params, r.text)
                assert "message" in r.json()["error"]
            r = c.get("/api/v1/traces/not-a-trace-id")
            assert r.status_code in (400, 422)
            r = c.get(f"/api/v1/traces/{'0' * 32}")
            assert r.status_code == 404
        self._assert_intact(srv)


class TestIsolation:
    def test_a_key_reads_only_its_project(self, tmp_path: Path) -> None:
        from sightline.server._auth import create_project_with_key
        from sightline.store import DuckDBStore

        data = tmp_path / "data"
        store = DuckDBStore(data / "sightline.duckdb")
        store.migrate()
        other_key = create_project_with_key(store, "other")
        store.close()
        srv = Server(data_dir=data, port=free_port()).start()
        try:
            req, ids = llm_request(5)
            with srv.client() as c:
                c.post("/v1/traces", content=req.SerializeToString(), headers=PROTO)
            with srv.client(other_key) as c:
                assert c.get("/api/v1/spans").json()["data"] == []
                tid = req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
                assert c.get(f"/api/v1/traces/{tid}").status_code == 404
            with srv.client() as c:
                assert len(c.get("/api/v1/spans").json()["data"]) == 5
        finally:
            srv.stop()


class TestDurability:
    def test_sigkill_after_ack_loses_nothing(self, tmp_path: Path) -> None:
        srv = start_server(tmp_path)
        acked: list[str] = []
        with srv.client() as c:
            for _ in range(5):
                req, ids = llm_request(200)
                r = c.post("/v1/traces", content=req.SerializeToString(), headers=PROTO)
                assert r.status_code == 200
                acked += ids
        srv.kill()
        srv2 = Server(data_dir=srv.data_dir, port=free_port()).start()
        try:
            with srv2.client() as c:
                got: set[str] = set()
                cursor = None
                while True:
                    params: dict[str, object] = {"limit": 1000}
                    if cursor:
                        params["cursor"] = cursor
                    page = c.get("/api/v1/spans", params=params).json()
                    got |= {s["span_id"] for s in page["data"]}
                    cursor = page["next_cursor"]
                    if not cursor:
                        break
            assert set(acked) <= got
            assert len(got) == len(acked)
        finally:
            srv2.stop()

    def test_process_pool_ingest(self, tmp_path: Path) -> None:
        """The decode worker pool (the default on multi-core machines) stores the same spans."""
        srv = start_server(tmp_path, env={"SIGHTLINE_INGEST_WORKERS": "2"})
        try:
            req, ids = llm_request(300)
            with srv.client() as c:
                r = c.post("/v1/traces", content=req.SerializeToString(), headers=PROTO)
                assert r.status_code == 200
                data = c.get("/api/v1/spans", params={"limit": 1000}).json()["data"]
            assert sorted(s["span_id"] for s in data) == sorted(ids)
            assert all(s["cost_usd"] > 0 for s in data)
        finally:
            srv.stop()
        assert "server_stopped" in srv.log()
