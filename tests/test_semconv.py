"""Each convention's attributes map to the same record fields."""

from __future__ import annotations

import json
from typing import Any

from sightline import semconv

START = 1_700_000_000_000_000_000


def _norm(
    attrs: dict[str, Any],
    events: list[semconv.Event] | None = None,
    resource: dict[str, Any] | None = None,
    duration_ms: float = 1000.0,
    **rec: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    r: dict[str, Any] = {
        "start_ns": START,
        "end_ns": START + int(duration_ms * 1e6),
        "duration_ms": duration_ms,
        **rec,
    }
    rest = semconv.normalise(r, attrs, events, resource or {})
    return r, rest


class TestOtelGenAiCurrent:
    def test_chat_span(self) -> None:
        rec, rest = _norm(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
                "gen_ai.usage.cache_read.input_tokens": 100,
                "gen_ai.usage.cache_creation.input_tokens": 10,
                "gen_ai.request.temperature": 0.3,
                "gen_ai.request.top_p": 0.9,
                "gen_ai.request.max_tokens": 256,
                "gen_ai.request.seed": 7,
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.conversation.id": "conv-1",
                "gen_ai.system_instructions": json.dumps(
                    [{"type": "text", "content": "Be brief."}]
                ),
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": "Hi there"}]}]
                ),
                "gen_ai.output.messages": json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "text", "content": "Hello!"}],
                            "finish_reason": "stop",
                        }
                    ]
                ),
                "server.address": "api.openai.com",
            }
        )
        assert rec["kind"] == "llm"
        assert rec["operation"] == "chat"
        assert rec["provider"] == "openai"
        assert rec["request_model"] == "gpt-4o"
        assert rec["model"] == "gpt-4o-2024-08-06"
        assert (rec["input_tokens"], rec["output_tokens"], rec["total_tokens"]) == (120, 30, 150)
        assert rec["cached_input_tokens"] == 100 and rec["cache_write_tokens"] == 10
        assert (rec["temperature"], rec["top_p"], rec["max_tokens"], rec["seed"]) == (
            0.3,
            0.9,
            256,
            7,
        )
        assert rec["finish_reason"] == "stop"
        assert rec["session_id"] == "conv-1"
        assert [m["role"] for m in rec["input_messages"]] == ["system", "user"]
        assert rec["input_messages"][0]["content"] == "Be brief."
        assert rec["input"] == "Hi there"
        assert rec["output"] == "Hello!"
        assert rest == {"server.address": "api.openai.com"}

    def test_operation_names_map_to_kinds(self) -> None:
        for op, kind in [
            ("embeddings", "embedding"),
            ("execute_tool", "tool"),
            ("invoke_agent", "agent"),
            ("text_completion", "llm"),
            ("generate_content", "llm"),
        ]:
            assert _norm({"gen_ai.operation.name": op})[0]["kind"] == kind

    def test_tool_call_arguments_and_result(self) -> None:
        rec, _ = _norm(
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "search",
                "gen_ai.tool.call.arguments": '{"q": "x"}',
                "gen_ai.tool.call.result": "3 hits",
            }
        )
        assert (rec["kind"], rec["input"], rec["output"]) == ("tool", '{"q": "x"}', "3 hits")

    def test_resource_gives_service_and_environment(self) -> None:
        rec, _ = _norm(
            {},
            resource={
                "service.name": "bot",
                "service.version": "2.0",
                "deployment.environment.name": "prod",
            },
        )
        assert (rec["service_name"], rec["service_version"], rec["environment"]) == (
            "bot",
            "2.0",
            "prod",
        )


class TestStructuredMessages:
    def test_messages_as_structured_anyvalue_through_protobuf(self) -> None:
        """The spec prefers structured values for gen_ai.*.messages; JSON strings are a MAY."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
        from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

        from sightline.ingest._decode import Limits, decode_otlp_proto

        def kv(k: str, v: AnyValue) -> KeyValue:
            return KeyValue(key=k, value=v)

        def s(x: str) -> AnyValue:
            return AnyValue(string_value=x)

        def obj(**fields: AnyValue) -> AnyValue:
            v = AnyValue()
            v.kvlist_value.values.extend(kv(k, x) for k, x in fields.items())
            return v

        def arr(*items: AnyValue) -> AnyValue:
            v = AnyValue()
            v.array_value.values.extend(items)
            return v

        req = ExportTraceServiceRequest()
        span = req.resource_spans.add().scope_spans.add().spans.add()
        span.trace_id, span.span_id = b"\x01" * 16, b"\x02" * 8
        span.start_time_unix_nano, span.end_time_unix_nano = START, START + 10**9
        span.attributes.extend(
            [
                kv("gen_ai.operation.name", s("chat")),
                kv(
                    "gen_ai.input.messages",
                    arr(
                        obj(
                            role=s("user"),
                            parts=arr(obj(type=s("text"), content=s("Where is my order?"))),
                        )
                    ),
                ),
                kv(
                    "gen_ai.output.messages",
                    arr(
                        obj(
                            role=s("assistant"),
                            parts=arr(obj(type=s("text"), content=s("It ships today."))),
                            finish_reason=s("stop"),
                        )
                    ),
                ),
            ]
        )
        [rec] = decode_otlp_proto(req.SerializeToString(), "p", limits=Limits()).records
        assert (rec["input"], rec["output"]) == ("Where is my order?", "It ships today.")
        assert rec["finish_reason"] == "stop"
        assert rec["input_messages"][0]["role"] == "user"


class TestOtelGenAiOlder:
    def test_openllmetry_indexed_prompts_and_usage(self) -> None:
        rec, rest = _norm(
            {
                "gen_ai.system": "Anthropic",
                "llm.request.type": "chat",
                "gen_ai.request.model": "claude-3-5-sonnet",
                "gen_ai.usage.prompt_tokens": 50,
                "gen_ai.usage.completion_tokens": 20,
                "llm.usage.total_tokens": 70,
                "gen_ai.usage.cache_read_input_tokens": 5,
                "gen_ai.usage.cache_creation_input_tokens": 3,
                "gen_ai.prompt.0.role": "system",
                "gen_ai.prompt.0.content": "You help.",
                "gen_ai.prompt.1.role": "user",
                "gen_ai.prompt.1.content": "What is 2+2?",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "4",
                "gen_ai.completion.0.finish_reason": "end_turn",
                "llm.is_streaming": True,
                "traceloop.association.properties.user_id": "u1",
            }
        )
        assert rec["kind"] == "llm"
        assert rec["provider"] == "Anthropic"
        assert (rec["input_tokens"], rec["output_tokens"], rec["total_tokens"]) == (50, 20, 70)
        assert (rec["cached_input_tokens"], rec["cache_write_tokens"]) == (5, 3)
        assert rec["input_messages"] == [
            {"role": "system", "content": "You help."},
            {"role": "user", "content": "What is 2+2?"},
        ]
        assert rec["input"] == "What is 2+2?"
        assert rec["output"] == "4"
        assert rec["finish_reason"] == "end_turn"
        assert rec["is_streaming"] is True
        assert rec["user_id"] == "u1"
        assert rest == {}

    def test_openllmetry_content_as_json_parts(self) -> None:
        rec, _ = _norm(
            {
                "gen_ai.prompt.0.role": "user",
                "gen_ai.request.model": "m",
                "gen_ai.prompt.0.content": json.dumps(
                    [
                        {"type": "text", "text": "look at this"},
                        {"type": "image_url", "image_url": {"url": "x"}},
                    ]
                ),
            }
        )
        assert rec["input"] == "look at this"

    def test_tool_blocks_and_images_are_kept_beside_the_text(self) -> None:
        """Anthropic's tool_use/tool_result blocks and an image part have no text: the message
        kept only its text, so a turn of tool results was an empty message, and an image was
        gone. They are kept as ``parts``, the image's inline data cut short."""
        image = "data:image/png;base64," + "A" * 50_000
        msgs = [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"},
                                         {"type": "image_url", "image_url": {"url": image}}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "tu1", "name": "weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "tu1", "content": "18°C, cloudy"}]},
            {"role": "user", "content": [{"type": "text", "text": "plain"}]},
        ]  # fmt: skip
        rec, _ = _norm({"gen_ai.request.model": "m", "gen_ai.input.messages": json.dumps(msgs)})
        got = rec["input_messages"]
        assert [m["content"] for m in got] == ["Weather in Paris?", "Let me check.", "", "plain"]
        assert got[1]["parts"][1] == msgs[1]["content"][1]  # type: ignore[index]
        assert got[2]["parts"] == msgs[2]["content"]
        assert "parts" not in got[3]  # text alone is not stored twice
        url = got[0]["parts"][1]["image_url"]["url"]
        assert url.startswith("data:image/png;base64,AAA") and url.endswith("(50,022 characters)")
        assert len(url) < 300

    def test_prompt_and_completion_events(self) -> None:
        events: list[semconv.Event] = [
            (
                "gen_ai.content.prompt",
                START,
                {"gen_ai.prompt": json.dumps([{"role": "user", "content": "Q?"}])},
            ),
            (
                "gen_ai.content.completion",
                START + 5,
                {"gen_ai.completion": json.dumps([{"role": "assistant", "content": "A."}])},
            ),
        ]
        rec, rest = _norm({"gen_ai.request.model": "m"}, events)
        assert (rec["input"], rec["output"]) == ("Q?", "A.")
        assert [e["name"] for e in rest["events"]] == [e[0] for e in events]

    def test_per_message_events(self) -> None:
        events: list[semconv.Event] = [
            ("gen_ai.system.message", START, {"content": "Be nice."}),
            ("gen_ai.user.message", START, {"content": "Hello?"}),
            (
                "gen_ai.choice",
                START + 10,
                {"index": 0, "finish_reason": "stop", "message": json.dumps({"content": "Hi!"})},
            ),
        ]
        rec, _ = _norm({"gen_ai.operation.name": "chat"}, events)
        assert rec["input_messages"] == [
            {"role": "system", "content": "Be nice."},
            {"role": "user", "content": "Hello?"},
        ]
        assert rec["output"] == "Hi!"
        assert rec["finish_reason"] == "stop"


class TestOpenInference:
    def test_llm_span(self) -> None:
        rec, rest = _norm(
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o-mini",
                "llm.provider": "openai",
                "llm.invocation_parameters": json.dumps({"temperature": 0.1, "max_tokens": 99}),
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "Question?",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.contents.0.message_content.type": "text",
                "llm.output_messages.0.message.contents.0.message_content.text": "Answer.",
                "llm.token_count.prompt": 40,
                "llm.token_count.completion": 10,
                "llm.token_count.total": 50,
                "llm.token_count.prompt_details.cache_read": 8,
                "llm.token_count.completion_details.reasoning": 4,
                "session.id": "s1",
                "user.id": "u1",
                "llm.prompt_template.version": "v7",
                "metadata": '{"a": 1}',
            }
        )
        assert rec["kind"] == "llm"
        assert (rec["model"], rec["provider"]) == ("gpt-4o-mini", "openai")
        assert (rec["temperature"], rec["max_tokens"]) == (0.1, 99)
        assert (rec["input"], rec["output"]) == ("Question?", "Answer.")
        assert (rec["input_tokens"], rec["output_tokens"], rec["total_tokens"]) == (40, 10, 50)
        assert (rec["cached_input_tokens"], rec["reasoning_tokens"]) == (8, 4)
        assert (rec["session_id"], rec["user_id"], rec["prompt_version"]) == ("s1", "u1", "v7")
        assert rest == {"metadata": '{"a": 1}'}

    def test_retriever_documents(self) -> None:
        rec, _ = _norm(
            {
                "openinference.span.kind": "RETRIEVER",
                "input.value": "refund policy",
                "retrieval.documents.0.document.id": "doc-1",
                "retrieval.documents.0.document.content": "Refunds within 30 days.",
                "retrieval.documents.0.document.score": 0.91,
                "retrieval.documents.1.document.id": "doc-2",
                "retrieval.documents.1.document.content": "Monthly plans are not refunded.",
                "retrieval.documents.1.document.score": 0.42,
                "retrieval.documents.1.document.metadata": '{"source": "faq"}',
            }
        )
        assert rec["kind"] == "retrieval"
        assert rec["input"] == "refund policy"
        assert rec["documents"] == [
            {"id": "doc-1", "content": "Refunds within 30 days.", "score": 0.91, "metadata": None},
            {
                "id": "doc-2",
                "content": "Monthly plans are not refunded.",
                "score": 0.42,
                "metadata": {"source": "faq"},
            },
        ]

    def test_every_kind(self) -> None:
        for oi, kind in semconv.OPENINFERENCE_KINDS.items():
            assert _norm({"openinference.span.kind": oi})[0]["kind"] == kind


class TestTiming:
    def test_ttft_attribute_in_seconds_and_tpot(self) -> None:
        rec, _ = _norm(
            {"gen_ai.server.time_to_first_token": 0.25, "gen_ai.usage.output_tokens": 11},
            duration_ms=1250.0,
        )
        assert rec["ttft_ms"] == 250.0
        assert rec["tpot_ms"] == 100.0  # (1250 - 250) / (11 - 1)

    def test_ttft_from_first_token_event(self) -> None:
        rec, _ = _norm(
            {"gen_ai.usage.output_tokens": 5},
            [("gen_ai.first_token", START + 300_000_000, {})],
            duration_ms=700.0,
        )
        assert rec["ttft_ms"] == 300.0
        assert rec["tpot_ms"] == 100.0

    def test_current_ttft_and_reasoning_names(self) -> None:
        rec, rest = _norm(
            {
                "gen_ai.response.time_to_first_chunk": 0.12,
                "gen_ai.usage.output_tokens": 300,
                "gen_ai.usage.reasoning.output_tokens": 200,
                "gen_ai.usage.cache_write.input_tokens": 7,
            }
        )
        assert rec["ttft_ms"] == 120.0
        assert (rec["output_tokens"], rec["reasoning_tokens"]) == (300, 200)
        assert rec["cache_write_tokens"] == 7
        assert rest == {}

    def test_no_tpot_for_one_token(self) -> None:
        rec, _ = _norm({"sightline.ttft_ms": 5.0, "gen_ai.usage.output_tokens": 1})
        assert rec["ttft_ms"] == 5.0 and rec.get("tpot_ms") is None


class TestTokenConventions:
    def test_cache_counted_inside_input_is_kept(self) -> None:
        rec, _ = _norm(
            {"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.cache_read.input_tokens": 800}
        )
        assert rec["input_tokens"] == 1000

    def test_cache_counted_apart_is_added(self) -> None:
        """Anthropic's API counts cache reads apart from input_tokens; some instrumentors pass
        that through. A cache count above the input count can only mean that."""
        rec, _ = _norm(
            {
                "gen_ai.usage.input_tokens": 12,
                "gen_ai.usage.cache_read_input_tokens": 5000,
                "gen_ai.usage.cache_creation_input_tokens": 300,
            }
        )
        assert rec["input_tokens"] == 5312
        assert "cache_tokens_added_to_input" in rec["_notes"]

    def test_reasoning_counted_apart_is_added(self) -> None:
        rec, _ = _norm({"gen_ai.usage.output_tokens": 10, "gen_ai.usage.reasoning_tokens": 500})
        assert rec["output_tokens"] == 510

    def test_sightline_names_win(self) -> None:
        rec, _ = _norm(
            {
                "user.id": "otel-user",
                "sightline.user_id": "ours",
                "gen_ai.provider.name": "openai",
                "sightline.provider": "azure",
            }
        )
        assert (rec["user_id"], rec["provider"]) == ("ours", "azure")

    def test_garbage_values_do_not_raise(self) -> None:
        rec, _ = _norm(
            {
                "gen_ai.usage.input_tokens": "lots",
                "gen_ai.request.temperature": "hot",
                "gen_ai.input.messages": "{not json",
                "llm.invocation_parameters": "[1",
                "retrieval.documents.x.document.id": 3,
                "gen_ai.prompt.0": "x",
            }
        )
        assert rec.get("input_tokens") is None and rec.get("temperature") is None
        assert rec["input_messages"] == [{"role": "user", "content": "{not json"}]


class TestInstrumentorQuirks:
    """Names found by running the real OpenLLMetry and OpenInference instrumentors."""

    def test_openinference_json_bodies_give_way_to_messages(self) -> None:
        rec, _ = _norm(
            {
                "openinference.span.kind": "LLM",
                "input.value": json.dumps({"model": "m", "messages": [{"role": "user"}]}),
                "input.mime_type": "application/json",
                "output.value": json.dumps({"choices": []}),
                "output.mime_type": "application/json",
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "Where is my invoice?",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "Under Billing.",
                "llm.finish_reason": "stop",
            }
        )
        assert (rec["input"], rec["output"]) == ("Where is my invoice?", "Under Billing.")
        assert rec["finish_reason"] == "stop"

    def test_openinference_plain_text_value_is_kept(self) -> None:
        rec, _ = _norm(
            {
                "openinference.span.kind": "LLM",
                "input.value": "the question as text",
                "input.mime_type": "text/plain",
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "something else",
            }
        )
        assert rec["input"] == "the question as text"

    def test_openllmetry_streaming_flag_and_openinference_first_token_event(self) -> None:
        rec, _ = _norm(
            {"gen_ai.is_streaming": True, "gen_ai.usage.output_tokens": 3},
            [("First Token Stream Event", START + 200_000_000, {})],
            duration_ms=400.0,
        )
        assert rec["is_streaming"] is True
        assert (rec["ttft_ms"], rec["tpot_ms"]) == (200.0, 100.0)


class TestRepeatedMessageTexts:
    """A repeated message text (cached once read) gives the same messages, as fresh objects."""

    def test_repeat_is_equal_and_unshared(self) -> None:
        text = json.dumps(
            [
                {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
                {"role": "user", "parts": [{"type": "text", "content": "Hi"}], "n": 1.5},
            ]
        )
        attrs = {"gen_ai.input.messages": text, "gen_ai.output.messages": "[1, -0.0, null]"}
        first, _ = _norm(dict(attrs))
        first["input_messages"][0]["parts"][0]["content"] = "changed"
        second, _ = _norm(dict(attrs))
        third, _ = _norm(dict(attrs))
        assert second["input_messages"] == [
            {
                "role": "system",
                "parts": [{"type": "text", "content": "Be brief."}],
                "content": "Be brief.",
            },
            {
                "role": "user",
                "parts": [{"type": "text", "content": "Hi"}],
                "n": 1.5,
                "content": "Hi",
            },
        ]
        assert repr(second) == repr(third)
        assert second["input_messages"] is not third["input_messages"]
        assert second["input_messages"][0]["parts"] is not third["input_messages"][0]["parts"]
        assert second["input"] == "Hi"
        assert repr(second["output_messages"]) == repr(
            [
                {"role": "user", "content": "1"},
                {"role": "user", "content": "-0.0"},
            ]
        )


class TestVercelAiSdk:
    """The Vercel AI SDK's telemetry (``experimental_telemetry``), names as its docs list them."""

    COMMON = {
        "ai.model.id": "gpt-4o-mini",
        "ai.model.provider": "openai.chat",
        "ai.telemetry.functionId": "support-answer",
        "ai.telemetry.metadata.userId": "u-1",
        "ai.telemetry.metadata.sessionId": "s-9",
        "operation.name": "ai.streamText support-answer",
    }

    def test_the_call_span_is_a_chain_without_the_token_counts_of_its_requests(self) -> None:
        rec, rest = _norm(
            {
                **self.COMMON,
                "ai.operationId": "ai.streamText",
                "ai.prompt": json.dumps({"system": "Be brief.", "prompt": "How do I reset it?"}),
                "ai.response.text": "Open Settings.",
                "ai.usage.promptTokens": 120,
                "ai.usage.completionTokens": 8,
            }
        )
        assert rec["kind"] == "chain"
        assert (rec["input"], rec["output"]) == ("How do I reset it?", "Open Settings.")
        assert (rec["user_id"], rec["session_id"], rec["feature"]) == (
            "u-1",
            "s-9",
            "support-answer",
        )
        # its requests' counts, summed: counted on the doStream spans, kept here as attributes
        assert rec.get("input_tokens") is None and rec.get("model") is None
        assert rest["ai.usage.promptTokens"] == 120 and rest["ai.model.id"] == "gpt-4o-mini"

    def test_a_call_span_with_messages_takes_the_last_user_message(self) -> None:
        second = [{"type": "text", "text": "second"}]
        prompt = {"messages": [{"role": "user", "content": "first"},
                               {"role": "assistant", "content": "ok"},
                               {"role": "user", "content": second}]}  # fmt: skip
        rec, _ = _norm({"ai.operationId": "ai.generateText", "ai.prompt": json.dumps(prompt)})
        assert rec["input"] == "second"

    def test_the_stream_request_span(self) -> None:
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "How do I reset it?"}]},
        ]
        calls = [{"toolCallType": "function", "toolCallId": "c1", "toolName": "lookup",
                  "args": '{"q": "reset"}'}]  # fmt: skip
        rec, rest = _norm(
            {
                **self.COMMON,
                "ai.operationId": "ai.streamText.doStream",
                "ai.prompt.messages": json.dumps(messages),
                "ai.response.text": "Open Settings.",
                "ai.response.toolCalls": json.dumps(calls),
                "ai.response.finishReason": "stop",
                "ai.response.msToFirstChunk": 300.0,
                "ai.response.model": "gpt-4o-mini-2024-07-18",
                "ai.response.id": "chatcmpl-1",
                "gen_ai.system": "openai.chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 8,
                "ai.usage.promptTokens": 999,  # the GenAI names win
            },
            duration_ms=1000.0,
        )
        assert rec["kind"] == "llm" and rec["is_streaming"] is True
        assert (rec["model"], rec["provider"]) == ("gpt-4o-mini-2024-07-18", "openai")
        assert (rec["input_tokens"], rec["output_tokens"]) == (120, 8)
        assert (rec["ttft_ms"], rec["tpot_ms"]) == (300.0, 100.0)
        assert rec["finish_reason"] == "stop"
        assert [m["content"] for m in rec["input_messages"]] == ["Be brief.", "How do I reset it?"]
        assert (rec["input"], rec["output"]) == ("How do I reset it?", "Open Settings.")
        assert rec["output_messages"] == [
            {"role": "assistant", "content": "Open Settings.", "tool_calls": calls}
        ]
        assert (rec["user_id"], rec["session_id"], rec["feature"]) == (
            "u-1",
            "s-9",
            "support-answer",
        )
        assert not {k for k in rest if k.startswith(("ai.usage.", "ai.prompt.", "ai.telemetry."))}
        assert rest["ai.response.id"] == "chatcmpl-1"

    def test_ai_sdk_5_names_alone(self) -> None:
        rec, _ = _norm(
            {
                "ai.operationId": "ai.generateText.doGenerate",
                "ai.model.id": "claude-sonnet-4-5",
                "ai.model.provider": "anthropic.messages",
                "ai.usage.inputTokens": 500,
                "ai.usage.outputTokens": 40,
                "ai.usage.cachedInputTokens": 400,
                "ai.usage.reasoningTokens": 10,
            }
        )
        assert rec["kind"] == "llm" and rec["is_streaming"] is False
        assert (rec["model"], rec["provider"]) == ("claude-sonnet-4-5", "anthropic")
        # AI SDK 5's Anthropic provider passes Anthropic's input_tokens through: the 500 do not
        # include the 400 cache reads (AI SDK 6 made inputTokens the total)
        assert (rec["input_tokens"], rec["cached_input_tokens"]) == (900, 400)
        assert (rec["output_tokens"], rec["reasoning_tokens"], rec["total_tokens"]) == (40, 10, 940)

    def test_ai_sdk_5_anthropic_counts_are_made_cache_inclusive(self) -> None:
        # as AI SDK 5 sends them: the GenAI names repeat the exclusive count, the cache writes
        # are only in the provider metadata
        rec, rest = _norm(
            {
                "ai.operationId": "ai.streamText.doStream",
                "ai.model.id": "claude-sonnet-4-5",
                "ai.model.provider": "anthropic.messages",
                "gen_ai.system": "anthropic.messages",
                "gen_ai.usage.input_tokens": 12,
                "gen_ai.usage.output_tokens": 30,
                "ai.usage.inputTokens": 12,
                "ai.usage.outputTokens": 30,
                "ai.usage.totalTokens": 42,
                "ai.usage.cachedInputTokens": 6209,
                "ai.response.providerMetadata": (
                    '{"anthropic": {"cacheCreationInputTokens": 150, "usage": {}}}'
                ),
            }
        )
        assert (rec["input_tokens"], rec["cached_input_tokens"], rec["cache_write_tokens"]) == (
            12 + 6209 + 150,
            6209,
            150,
        )
        assert rec["total_tokens"] == 12 + 6209 + 150 + 30
        assert "ai.response.providerMetadata" in rest
        # uncached input larger than the cache reads: the case the "cache > input" rule missed
        rec, _ = _norm(
            {
                "ai.operationId": "ai.generateText.doGenerate",
                "ai.model.provider": "anthropic.messages",
                "gen_ai.usage.input_tokens": 5000,
                "ai.usage.inputTokens": 5000,
                "ai.usage.cachedInputTokens": 1000,
            }
        )
        assert (rec["input_tokens"], rec["cached_input_tokens"]) == (6000, 1000)

    def test_ai_sdk_5_openai_and_ai_sdk_6_counts_stay_as_sent(self) -> None:
        # OpenAI's prompt_tokens already include the cached ones
        rec, _ = _norm(
            {
                "ai.operationId": "ai.generateText.doGenerate",
                "ai.model.provider": "openai.chat",
                "ai.usage.inputTokens": 500,
                "ai.usage.cachedInputTokens": 400,
            }
        )
        assert (rec["input_tokens"], rec["cached_input_tokens"]) == (500, 400)
        # AI SDK 6 (details present): inputTokens is the total, also for Anthropic
        rec, _ = _norm(
            {
                "ai.operationId": "ai.generateText.doGenerate",
                "ai.model.provider": "anthropic.messages",
                "ai.usage.inputTokens": 500,
                "ai.usage.cachedInputTokens": 400,
                "ai.usage.inputTokenDetails.cacheReadTokens": 400,
                "ai.usage.inputTokenDetails.noCacheTokens": 100,
            }
        )
        assert (rec["input_tokens"], rec["cached_input_tokens"]) == (500, 400)
        # bad metadata or counts are ignored, not a crash
        rec, _ = _norm(
            {
                "ai.operationId": "ai.generateText.doGenerate",
                "ai.model.provider": "anthropic.messages",
                "ai.usage.inputTokens": "x",
                "ai.usage.cachedInputTokens": 4,
                "ai.response.providerMetadata": "{not json",
            }
        )
        assert (rec["input_tokens"], rec["cached_input_tokens"]) == (4, 4)

    def test_ai_sdk_3_names_and_object_output(self) -> None:
        rec, rest = _norm(
            {
                "ai.operationId": "ai.generateText.doGenerate",
                "ai.model.id": "gpt-4o",
                "ai.result.text": "Paris.",
                "ai.result.toolCalls": "[]",
                "ai.finishReason": "stop",
            }
        )
        assert (rec["output"], rec["finish_reason"]) == ("Paris.", "stop")
        assert rec["output_messages"] == [
            {"role": "assistant", "content": "Paris.", "tool_calls": []}
        ]
        assert not [k for k in rest if k.startswith("ai.result") or k == "ai.finishReason"]
        rec, _ = _norm(
            {"ai.operationId": "ai.generateObject.doGenerate", "ai.response.object": '{"a": 1}'}
        )
        assert rec["output"] == '{"a": 1}'
        rec, _ = _norm({"ai.operationId": "ai.generateObject", "ai.result.object": '{"a": 2}'})
        assert (rec["kind"], rec["output"]) == ("chain", '{"a": 2}')

    def test_tool_and_embedding_spans(self) -> None:
        rec, rest = _norm(
            {
                "ai.operationId": "ai.toolCall",
                "ai.toolCall.name": "lookup",
                "ai.toolCall.args": '{"q": "reset"}',
                "ai.toolCall.result": '{"doc": "Settings"}',
            }
        )
        assert rec["kind"] == "tool" and rest["ai.toolCall.name"] == "lookup"
        assert (rec["input"], rec["output"]) == ('{"q": "reset"}', '{"doc": "Settings"}')
        rec, _ = _norm(
            {
                "ai.operationId": "ai.embedMany.doEmbed",
                "ai.model.id": "text-embedding-3-small",
                "ai.usage.tokens": 42,
            }
        )
        assert (rec["kind"], rec["model"], rec["input_tokens"]) == (
            "embedding",
            "text-embedding-3-small",
            42,
        )

    def test_odd_values_are_not_a_crash(self) -> None:
        rec, _ = _norm({"ai.operationId": 7, "ai.usage.inputTokens": 5})
        assert rec["kind"] == "other" and rec.get("input_tokens") is None
        rec, _ = _norm(
            {
                "ai.operationId": "ai.streamText.doStream",
                "ai.usage.inputTokens": "many",
                "ai.response.msToFirstChunk": -5,
                "ai.prompt.messages": "not json",
                "ai.response.toolCalls": "[",
                "ai.telemetry.metadata.userId": ["a", "b"],
            }
        )
        assert rec["kind"] == "llm" and rec.get("input_tokens") is None
        assert rec.get("ttft_ms") is None and rec["input"] == "not json"
        assert rec["user_id"] == "['a', 'b']"
        rec, _ = _norm({"ai.operationId": "ai.generateText", "ai.prompt": "[1, 2]"})
        assert rec["input"] == "[1, 2]"

    def test_an_explicit_kind_wins(self) -> None:
        rec, _ = _norm({"ai.operationId": "ai.generateText", "openinference.span.kind": "AGENT"})
        assert rec["kind"] == "agent"
