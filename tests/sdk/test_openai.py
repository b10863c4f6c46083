"""The real openai client against the fake provider, instrumented by Sightline."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.trace import StatusCode

import sightline
from _sdk import openai_client, track
from sightline.sdk._tracing import _Content
from sightline.testing import CapturedSpans, FakeProvider

Q = [{"role": "user", "content": "Can I get a refund on an annual plan?"}]
REPLY = "Annual plans are refundable within thirty days."


def _client(fake: FakeProvider, **kw: Any) -> openai.OpenAI:
    return openai_client(fake, **kw)


def _aclient(fake: FakeProvider, **kw: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="test", **kw)


def _chunks(stream: Any) -> list[dict[str, Any]]:
    return [c.to_dict() for c in stream]


pytestmark = pytest.mark.usefixtures("instrumented")


class TestChatCompletions:
    def test_non_streaming_call_records_model_tokens_and_text(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        chat = _client(fake).chat.completions.create(
            model="gpt-4o-mini", messages=Q, temperature=0.2, max_tokens=50
        )
        assert isinstance(chat, openai.types.chat.ChatCompletion)
        assert chat.choices[0].message.content == REPLY
        a = capture_spans.attributes("chat gpt-4o-mini")
        assert a["sightline.span.kind"] == "llm" and a["gen_ai.provider.name"] == "openai"
        assert a["gen_ai.request.model"] == "gpt-4o-mini"
        assert a["gen_ai.response.model"] == "gpt-4o-mini"
        assert a["gen_ai.request.temperature"] == 0.2 and a["gen_ai.request.max_tokens"] == 50
        assert a["gen_ai.usage.input_tokens"] == chat.usage.prompt_tokens  # type: ignore[union-attr]
        assert a["gen_ai.usage.output_tokens"] == 7
        assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
        assert json.loads(a["gen_ai.input.messages"]) == Q
        out = json.loads(a["gen_ai.output.messages"])
        assert out == [{"role": "assistant", "content": REPLY, "finish_reason": "stop"}]
        assert "sightline.ttft_ms" not in a  # nothing streamed: no first token to time

    def test_streaming_ttft_usage_and_the_app_sees_the_same_chunks(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        sightline.uninstrument_openai()
        bare = _chunks(
            _client(fake).chat.completions.create(model="gpt-4o-mini", messages=Q, stream=True)
        )
        sightline.instrument_openai()
        stream = _client(fake).chat.completions.create(
            model="gpt-4o-mini",
            messages=Q,
            stream=True,
            extra_headers={"x-fake-ttft-ms": "120", "x-fake-token-ms": "15"},
        )
        assert isinstance(stream, openai.Stream)
        seen = _chunks(stream)
        # the usage chunk Sightline asked for is hidden, and no chunk shows a usage field
        strip = ("created",)
        assert [{k: v for k, v in c.items() if k not in strip} for c in seen] == [
            {k: v for k, v in c.items() if k not in strip} for c in bare
        ]
        sent = fake.requests[-1].body or {}
        assert sent["stream_options"] == {"include_usage": True}
        [span] = capture_spans.named("chat gpt-4o-mini")
        a = span.attributes or {}
        assert a["gen_ai.usage.output_tokens"] == 7 and a["gen_ai.usage.input_tokens"] > 0
        assert a["gen_ai.request.stream"] is True
        # TTFT from the call's start to the first content chunk (the role chunk comes at once)
        assert 120 <= a["sightline.ttft_ms"] < 1000
        duration_ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
        tpot_ms = (duration_ms - a["sightline.ttft_ms"]) / (7 - 1)
        assert 14 <= tpot_ms < 200
        assert json.loads(a["gen_ai.output.messages"])[0]["content"] == REPLY

    def test_app_that_asked_for_usage_still_gets_its_usage_chunk(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        seen = _chunks(
            _client(fake).chat.completions.create(
                model="gpt-4o-mini",
                messages=Q,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert seen[-1]["choices"] == [] and seen[-1]["usage"]["completion_tokens"] == 7
        assert capture_spans.attributes("chat gpt-4o-mini")["gen_ai.usage.output_tokens"] == 7

    def test_stream_as_context_manager_closed_early_ends_the_span(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        with _client(fake).chat.completions.create(
            model="gpt-4o-mini", messages=Q, stream=True
        ) as stream:
            first = next(iter(stream))
            assert first.choices[0].delta.role == "assistant"
            assert not capture_spans.spans  # still open while the app reads
        [span] = capture_spans.named("chat gpt-4o-mini")
        assert span.status.status_code != StatusCode.ERROR
        stream2 = _client(fake).chat.completions.create(model="gpt-4o", messages=Q, stream=True)
        stream2.close()
        assert len(capture_spans.named("chat gpt-4o")) == 1

    def test_a_stream_left_unclosed_ends_at_its_last_chunk_not_when_collected(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        import time

        gc.disable()  # the stream sits in a reference cycle: only the collector frees it
        try:
            stream = _client(fake).chat.completions.create(
                model="gpt-4o-mini", messages=Q, stream=True
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    break  # the app has what it wanted, and never closes the stream
            del stream, chunk
            time.sleep(0.6)
            assert not capture_spans.named("chat gpt-4o-mini")
        finally:
            gc.enable()
            gc.collect()
        [span] = capture_spans.named("chat gpt-4o-mini")
        assert span.attributes is not None and span.attributes["sightline.stream.abandoned"]
        assert span.end_time is not None and span.start_time is not None
        assert (span.end_time - span.start_time) / 1e9 < 0.5  # not the 0.6 s it lay unread

    def test_error_is_reraised_unchanged_and_marks_the_span(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        with pytest.raises(openai.InternalServerError) as caught:
            _client(fake, max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=Q, extra_headers={"x-fake-status": "500"}
            )
        assert caught.value.status_code == 500
        span = capture_spans.one("chat gpt-4o-mini")
        assert span.status.status_code == StatusCode.ERROR
        assert (span.attributes or {})["error.type"] == "500"
        assert any(e.name == "exception" for e in span.events)

    def test_retries_are_counted(self, fake: FakeProvider, capture_spans: CapturedSpans) -> None:
        fake.fail_next(429, 2, path_prefix="/v1/chat")
        chat = _client(fake, max_retries=3).chat.completions.create(model="gpt-4o-mini", messages=Q)
        assert chat.choices[0].message.content == REPLY
        a = capture_spans.attributes("chat gpt-4o-mini")
        assert a["http.request.resend_count"] == 2
        assert a["gen_ai.usage.output_tokens"] == 7

    def test_raw_response_is_untouched(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        raw = _client(fake).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=Q
        )
        assert raw.http_response.status_code == 200
        assert raw.parse().choices[0].message.content == REPLY
        assert capture_spans.one("chat gpt-4o-mini").status.status_code != StatusCode.ERROR

    def test_async_streaming_and_not(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        async def main() -> tuple[str, str]:
            async with _aclient(fake) as client:
                return await calls(client)

        async def calls(client: openai.AsyncOpenAI) -> tuple[str, str]:
            chat = await client.chat.completions.create(model="gpt-4o", messages=Q)
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=Q,
                stream=True,
                extra_headers={"x-fake-ttft-ms": "60"},
            )
            assert isinstance(stream, openai.AsyncStream)
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            return chat.choices[0].message.content or "", "".join(parts)

        assert asyncio.run(main()) == (REPLY, REPLY)
        assert capture_spans.attributes("chat gpt-4o")["gen_ai.usage.output_tokens"] == 7
        a = capture_spans.attributes("chat gpt-4o-mini")
        assert a["gen_ai.usage.output_tokens"] == 7 and a["sightline.ttft_ms"] >= 60

    def test_llm_span_is_a_child_of_the_trace_with_its_attributes(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        with sightline.trace("rag", user_id="u-1", feature="answer"):
            _client(fake).chat.completions.create(model="gpt-4o-mini", messages=Q)
        root, llm = capture_spans.one("rag"), capture_spans.one("chat gpt-4o-mini")
        assert llm.parent is not None and llm.parent.span_id == root.context.span_id
        assert (llm.attributes or {})["sightline.user_id"] == "u-1"


class TestResponsesApi:
    def test_non_streaming(self, fake: FakeProvider, capture_spans: CapturedSpans) -> None:
        resp = _client(fake).responses.create(
            model="gpt-4o-mini", input="Refund on annual plans?", instructions="Be brief."
        )
        assert resp.output_text == REPLY
        a = capture_spans.attributes("chat gpt-4o-mini")
        assert a["gen_ai.usage.input_tokens"] == resp.usage.input_tokens  # type: ignore[union-attr]
        assert a["gen_ai.usage.output_tokens"] == 7
        assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
        assert json.loads(a["gen_ai.input.messages"]) == [
            {"role": "user", "content": "Refund on annual plans?"}
        ]
        assert json.loads(a["gen_ai.system_instructions"])[0]["content"] == "Be brief."
        assert json.loads(a["gen_ai.output.messages"])[0]["content"] == REPLY

    def test_streaming_sync_and_async(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        headers = {"x-fake-ttft-ms": "80"}
        with _client(fake).responses.create(
            model="gpt-4o-mini", input=Q, stream=True, extra_headers=headers
        ) as stream:
            kinds = [e.type for e in stream]
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"

        async def main() -> str:
            async with _aclient(fake) as client:
                stream = await client.responses.create(
                    model="gpt-4o", input="Refund?", stream=True, extra_headers=headers
                )
                return "".join(
                    [e.delta async for e in stream if e.type == "response.output_text.delta"]
                )

        assert asyncio.run(main()) == REPLY
        for name in ("chat gpt-4o-mini", "chat gpt-4o"):
            a = capture_spans.attributes(name)
            assert a["gen_ai.usage.output_tokens"] == 7 and a["sightline.ttft_ms"] >= 80
            assert json.loads(a["gen_ai.output.messages"])[0]["content"] == REPLY


class TestNeverBreakTheApp:
    def test_a_failing_serializer_leaves_the_call_untouched(
        self,
        fake: FakeProvider,
        capture_spans: CapturedSpans,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        def boom(text: str) -> str:
            raise RuntimeError("redactor exploded")

        monkeypatch.setattr(_Content, "redact", boom)
        chat = _client(fake).chat.completions.create(model="gpt-4o-mini", messages=Q)
        assert chat.choices[0].message.content == REPLY
        stream = _client(fake).chat.completions.create(model="gpt-4o-mini", messages=Q, stream=True)
        assert isinstance(stream, openai.Stream)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == REPLY

    def test_uninstrument_restores_the_client(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        sightline.uninstrument_openai()
        _client(fake).chat.completions.create(model="gpt-4o-mini", messages=Q)
        assert not capture_spans.named("chat gpt-4o-mini")
        assert not hasattr(openai.resources.chat.Completions.create, "__sightline_wrapped__")


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Spans must end when the app is done with a stream, not when the collector runs."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_gc")
class TestStreamHelpers:
    def test_chat_stream_helper_left_early_ends_the_span_on_exit(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        with _client(fake).chat.completions.stream(model="gpt-4o-mini", messages=Q) as stream:
            for event in stream:
                if event.type == "content.delta" and event.delta:
                    break
            assert not capture_spans.spans
        span = capture_spans.one("chat gpt-4o-mini")
        assert span.status.status_code != StatusCode.ERROR
        assert (span.attributes or {})["sightline.ttft_ms"] > 0

    def test_responses_stream_helper_left_early_ends_the_span_on_exit(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        with _client(fake).responses.stream(model="gpt-4o-mini", input="Refund?") as stream:
            for event in stream:
                if event.type == "response.output_text.delta":
                    break
        assert capture_spans.one("chat gpt-4o-mini").status.status_code != StatusCode.ERROR

    def test_async_stream_helpers_left_early_end_the_span_on_exit(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        async def main() -> None:
            async with _aclient(fake) as client:
                async with client.chat.completions.stream(model="gpt-4o", messages=Q) as s1:
                    async for event in s1:
                        if event.type == "content.delta":
                            break
                assert len(capture_spans.named("chat gpt-4o")) == 1
                async with client.responses.stream(model="gpt-4o-mini", input="Refund?") as s2:
                    async for e in s2:
                        if e.type == "response.output_text.delta":
                            break
                assert len(capture_spans.named("chat gpt-4o-mini")) == 1

        asyncio.run(main())

    def test_a_stream_cut_mid_way_is_an_error_once(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        cut = {"x-fake-abort-after": "2"}
        with pytest.raises(openai.APIConnectionError):
            with _client(fake, max_retries=0).chat.completions.stream(
                model="gpt-4o-mini", messages=Q, extra_headers=cut
            ) as stream:
                for _ in stream:
                    pass
        span = capture_spans.one("chat gpt-4o-mini")
        assert span.status.status_code == StatusCode.ERROR


class TestInjectedStreamOptions:
    def test_the_apps_own_bad_request_is_sent_once(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        before = len(fake.requests)
        with pytest.raises(openai.BadRequestError):
            _client(fake, max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=Q, stream=True, extra_headers={"x-fake-status": "400"}
            )
        assert len(fake.requests) - before == 1
        assert capture_spans.one("chat gpt-4o-mini").status.status_code == StatusCode.ERROR

    def test_a_server_refusing_stream_options_gets_the_call_as_the_app_wrote_it(
        self, capture_spans: CapturedSpans
    ) -> None:
        httpx = pytest.importorskip("httpx2")
        sent: list[dict[str, Any]] = []

        def handler(request: Any) -> Any:
            body = json.loads(request.content)
            sent.append(body)
            if "stream_options" in body:
                error = {"message": "Unrecognized request argument supplied: stream_options"}
                return httpx.Response(400, json={"error": error})
            chunk = {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}],
            }
            sse = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=sse)

        client = openai.OpenAI(
            api_key="test",
            base_url="http://compatible.invalid/v1",
            max_retries=0,
            http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        )
        track(client)
        stream = client.chat.completions.create(model="m", messages=Q, stream=True)
        assert [c.choices[0].delta.content for c in stream] == ["hi"]
        assert [("stream_options" in b) for b in sent] == [True, False]
        span = capture_spans.one("chat m")
        assert span.status.status_code != StatusCode.ERROR
        assert (span.attributes or {})["gen_ai.response.finish_reasons"] == ("stop",)


def _tool_delta(choice: int, call_id: str | None, name: str | None, args: str) -> dict[str, Any]:
    fn: dict[str, Any] = {"arguments": args}
    tc: dict[str, Any] = {"index": 0, "function": fn}
    if call_id:
        tc.update(id=call_id, type="function")
        fn["name"] = name
    return {"index": choice, "delta": {"tool_calls": [tc]}, "finish_reason": None}


class TestSeveralChoices:
    def test_tool_calls_of_other_choices_are_not_merged_into_the_first(
        self, capture_spans: CapturedSpans
    ) -> None:
        httpx = pytest.importorskip("httpx2")

        def chunk(choices: list[dict[str, Any]]) -> str:
            body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
            return f"data: {json.dumps({**body, 'choices': choices})}\n\n"

        stream = [
            [_tool_delta(0, "a", "f0", ""), _tool_delta(1, "b", "f1", "")],
            [_tool_delta(0, None, None, '{"x":1}'), _tool_delta(1, None, None, '{"y":2}')],
            [{"index": i, "delta": {}, "finish_reason": "tool_calls"} for i in (0, 1)],
        ]
        message = {"role": "assistant", "content": None}
        whole = {
            "id": "c",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        **message,
                        "tool_calls": [
                            {
                                "id": "a",
                                "type": "function",
                                "function": {"name": "f0", "arguments": "{}"},
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                },
                {
                    "index": 1,
                    "message": {**message, "content": "no tool"},
                    "finish_reason": "stop",
                },
            ],
        }

        def handler(request: Any) -> Any:
            if json.loads(request.content).get("stream"):
                sse = "".join(chunk(c) for c in stream) + "data: [DONE]\n\n"
                return httpx.Response(
                    200, headers={"content-type": "text/event-stream"}, content=sse.encode()
                )
            return httpx.Response(200, json=whole)

        client = openai.OpenAI(
            api_key="test",
            base_url="http://several.invalid/v1",
            http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        )
        track(client)
        for _ in client.chat.completions.create(model="m", messages=Q, n=2, stream=True):
            pass
        client.chat.completions.create(model="m", messages=Q, n=2)
        streamed, whole_span = capture_spans.named("chat m")
        out = json.loads((streamed.attributes or {})["gen_ai.output.messages"])[0]
        assert out["tool_calls"] == [{"id": "a", "name": "f0", "arguments": '{"x":1}'}]
        out = json.loads((whole_span.attributes or {})["gen_ai.output.messages"])[0]
        assert out["content"] == "" and [t["id"] for t in out["tool_calls"]] == ["a"]


class TestStreamedRefusal:
    def test_a_streamed_refusal_is_recorded_as_the_output_as_when_not_streamed(
        self, capture_spans: CapturedSpans
    ) -> None:
        httpx = pytest.importorskip("httpx2")
        words = ["I'm sorry, ", "I can't ", "help with that."]

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return f"data: {json.dumps({**body, 'choices': [choice]})}\n\n"

        sse = (
            chunk({"role": "assistant", "content": None, "refusal": ""})
            + "".join(chunk({"refusal": w}) for w in words)
            + chunk({}, "stop")
            + "data: [DONE]\n\n"
        )

        def handler(request: Any) -> Any:
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=sse.encode()
            )

        client = openai.OpenAI(
            api_key="test",
            base_url="http://refusing.invalid/v1",
            http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        )
        track(client)
        got = [
            c.choices[0].delta.refusal
            for c in client.chat.completions.create(model="m", messages=Q, stream=True)
            if c.choices and c.choices[0].delta.refusal
        ]
        assert got == words  # the app sees its chunks unchanged
        a = capture_spans.attributes("chat m")
        assert json.loads(a["gen_ai.output.messages"])[0]["content"] == "".join(words)
        assert a["sightline.ttft_ms"] > 0
