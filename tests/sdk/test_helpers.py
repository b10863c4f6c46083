"""The clients' helper methods: ``stream()``, ``parse()``, embeddings — one span per call.

The real ``openai`` and ``anthropic`` packages against the fake provider. Some helpers call an
instrumented method themselves (openai's ``stream()`` calls ``create()``): each test checks that
exactly one span of the call is exported to Sightline.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import openai
import pydantic
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from _sdk import anthropic_client, openai_client
from sightline.sdk._providers import keep_span
from sightline.testing import CapturedSpans, FakeProvider

Q = [{"role": "user", "content": "Can I get a refund on an annual plan?"}]
REPLY = "Annual plans are refundable within thirty days."
SLOW = {"x-fake-ttft-ms": "80", "x-fake-token-ms": "15"}
CLAUDE = "claude-haiku-4-5"

pytestmark = pytest.mark.usefixtures("instrumented")


class Refund(pydantic.BaseModel):
    refundable: bool
    days: int


REFUND_JSON = '{"refundable": true, "days": 30}'


def _oai(fake: FakeProvider, **kw: Any) -> openai.OpenAI:
    return openai_client(fake, **kw)


def _claude(fake: FakeProvider, **kw: Any) -> anthropic.Anthropic:
    return anthropic_client(fake, **kw)


def _exported(capture: CapturedSpans) -> list[ReadableSpan]:
    """The spans Sightline's exporter sends (clients' own duplicates left out)."""
    return [s for s in capture.spans if keep_span(s)]


def _one_llm_span(capture: CapturedSpans, name: str) -> ReadableSpan:
    spans = _exported(capture)
    assert [s.name for s in spans] == [name], "one call, one exported span"
    return spans[0]


def _assert_streamed(span: ReadableSpan, output_tokens: int) -> dict[str, Any]:
    """TTFT from the first content chunk; the span ends with the stream (TPOT's end)."""
    a = dict(span.attributes or {})
    assert a["gen_ai.usage.output_tokens"] == output_tokens
    assert 80 <= a["sightline.ttft_ms"] < 5000
    assert span.end_time is not None and span.start_time is not None
    total_ms = (span.end_time - span.start_time) / 1e6
    # the fake waits 80 ms, then 15 ms before each further token: the span lasts until the
    # last one (the server's TPOT is (end - first token) / (output tokens - 1))
    assert total_ms >= 80 + 15 * (output_tokens - 1)
    assert total_ms > a["sightline.ttft_ms"]
    return a


class TestOpenAIChatHelpers:
    def test_stream_helper_sync(self, fake: FakeProvider, capture_spans: CapturedSpans) -> None:
        with _oai(fake).chat.completions.stream(
            model="gpt-4o-mini", messages=Q, extra_headers=SLOW
        ) as stream:
            kinds = [e.type for e in stream]
            final = stream.get_final_completion()
        assert "content.delta" in kinds and kinds[-1] in ("content.done", "chunk")
        assert final.choices[0].message.content == REPLY
        span = _one_llm_span(capture_spans, "chat gpt-4o-mini")
        a = _assert_streamed(span, 7)
        assert a["gen_ai.request.stream"] is True and a["gen_ai.usage.input_tokens"] > 0
        assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
        assert json.loads(a["gen_ai.output.messages"])[0]["content"] == REPLY

    def test_stream_helper_async(self, fake: FakeProvider, capture_spans: CapturedSpans) -> None:
        async def main() -> str:
            async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="t") as client:
                async with client.chat.completions.stream(
                    model="gpt-4o", messages=Q, extra_headers=SLOW
                ) as stream:
                    parts = [e.delta async for e in stream if e.type == "content.delta"]
                return "".join(parts)

        assert asyncio.run(main()) == REPLY
        a = _assert_streamed(_one_llm_span(capture_spans, "chat gpt-4o"), 7)
        assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)

    def test_stream_helper_error_marks_the_span(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        with (
            pytest.raises(openai.InternalServerError),
            _oai(fake, max_retries=0).chat.completions.stream(
                model="gpt-4o-mini", messages=Q, extra_headers={"x-fake-status": "500"}
            ),
        ):
            pass
        span = _one_llm_span(capture_spans, "chat gpt-4o-mini")
        assert span.status.status_code == StatusCode.ERROR
        assert (span.attributes or {})["error.type"] == "500"

    @pytest.mark.parametrize("beta", [False, True])
    def test_parse_sync(self, beta: bool, fake: FakeProvider, capture_spans: CapturedSpans) -> None:
        client = _oai(fake)
        completions = client.beta.chat.completions if beta else client.chat.completions
        done = completions.parse(
            model="gpt-4o-mini",
            messages=Q,
            response_format=Refund,
            extra_headers={"x-fake-reply": REFUND_JSON},
        )
        assert done.choices[0].message.parsed == Refund(refundable=True, days=30)
        a = _one_llm_span(capture_spans, "chat gpt-4o-mini").attributes or {}
        assert a["gen_ai.usage.output_tokens"] == done.usage.completion_tokens  # type: ignore[union-attr]
        assert a["gen_ai.usage.input_tokens"] == done.usage.prompt_tokens  # type: ignore[union-attr]
        assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
        assert json.loads(a["gen_ai.output.messages"])[0]["content"] == REFUND_JSON
        assert "sightline.ttft_ms" not in a

    def test_parse_async_and_retries(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        fake.fail_next(503, 1, path_prefix="/v1/chat")

        async def main() -> Any:
            async with openai.AsyncOpenAI(
                base_url=fake.openai_base_url, api_key="t", max_retries=2
            ) as client:
                return await client.chat.completions.parse(
                    model="gpt-4o",
                    messages=Q,
                    response_format=Refund,
                    extra_headers={"x-fake-reply": REFUND_JSON},
                )

        done = asyncio.run(main())
        assert done.choices[0].message.parsed == Refund(refundable=True, days=30)
        a = _one_llm_span(capture_spans, "chat gpt-4o").attributes or {}
        assert a["http.request.resend_count"] == 1
        assert a["gen_ai.usage.output_tokens"] == done.usage.completion_tokens


class TestOpenAIResponsesHelpers:
    def test_stream_helper_sync(self, fake: FakeProvider, capture_spans: CapturedSpans) -> None:
        with _oai(fake).responses.stream(
            model="gpt-4o-mini", input="Refund on annual plans?", extra_headers=SLOW
        ) as stream:
            kinds = [e.type for e in stream]
            final = stream.get_final_response()
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        assert final.output_text == REPLY
        a = _assert_streamed(_one_llm_span(capture_spans, "chat gpt-4o-mini"), 7)
        assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
        assert json.loads(a["gen_ai.output.messages"])[0]["content"] == REPLY

    def test_stream_helper_async(self, fake: FakeProvider, capture_spans: CapturedSpans) -> None:
        async def main() -> str:
            async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="t") as client:
                async with client.responses.stream(
                    model="gpt-4o", input="Refund?", extra_headers=SLOW
                ) as stream:
                    async for _ in stream:
                        pass
                    final = await stream.get_final_response()
                return final.output_text

        assert asyncio.run(main()) == REPLY
        _assert_streamed(_one_llm_span(capture_spans, "chat gpt-4o"), 7)

    def test_parse(self, fake: FakeProvider, capture_spans: CapturedSpans) -> None:
        done = _oai(fake).responses.parse(
            model="gpt-4o-mini",
            input="Refund?",
            text_format=Refund,
            extra_headers={"x-fake-reply": REFUND_JSON},
        )
        assert done.output_parsed == Refund(refundable=True, days=30)
        a = _one_llm_span(capture_spans, "chat gpt-4o-mini").attributes or {}
        assert a["gen_ai.usage.output_tokens"] == done.usage.output_tokens  # type: ignore[union-attr]
        assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)

    def test_stream_helper_error(self, fake: FakeProvider, capture_spans: CapturedSpans) -> None:
        with (
            pytest.raises(openai.RateLimitError),
            _oai(fake, max_retries=0).responses.stream(
                model="gpt-4o-mini", input="Refund?", extra_headers={"x-fake-status": "429"}
            ),
        ):
            pass
        span = _one_llm_span(capture_spans, "chat gpt-4o-mini")
        assert span.status.status_code == StatusCode.ERROR


class TestOpenAIEmbeddings:
    def test_sync_list_input(self, fake: FakeProvider, capture_spans: CapturedSpans) -> None:
        res = _oai(fake).embeddings.create(
            model="text-embedding-3-small", input=["refund policy", "annual plan terms"]
        )
        assert len(res.data) == 2 and len(res.data[0].embedding) == 16
        a = _one_llm_span(capture_spans, "embeddings text-embedding-3-small").attributes or {}
        assert a["gen_ai.operation.name"] == "embeddings"
        assert a["sightline.span.kind"] == "embedding"
        assert a["gen_ai.provider.name"] == "openai"
        assert a["gen_ai.response.model"] == "text-embedding-3-small"
        assert a["gen_ai.usage.input_tokens"] == res.usage.prompt_tokens == 5
        assert a["gen_ai.embeddings.dimension.count"] == 16
        assert a["sightline.embeddings.input_count"] == 2
        assert "gen_ai.usage.output_tokens" not in a

    def test_async_with_dimensions(self, fake: FakeProvider, capture_spans: CapturedSpans) -> None:
        async def main() -> Any:
            async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="t") as client:
                return await client.embeddings.create(
                    model="text-embedding-3-large", input="refund policy", dimensions=8
                )

        res = asyncio.run(main())
        assert len(res.data[0].embedding) == 8
        a = _one_llm_span(capture_spans, "embeddings text-embedding-3-large").attributes or {}
        assert a["gen_ai.embeddings.dimension.count"] == 8
        assert a["gen_ai.usage.input_tokens"] == 2

    def test_error(self, fake: FakeProvider, capture_spans: CapturedSpans) -> None:
        with pytest.raises(openai.InternalServerError):
            _oai(fake, max_retries=0).embeddings.create(
                model="text-embedding-3-small",
                input="x",
                extra_headers={"x-fake-status": "500"},
            )
        span = _one_llm_span(capture_spans, "embeddings text-embedding-3-small")
        assert span.status.status_code == StatusCode.ERROR


class TestAnthropicHelpers:
    def test_messages_stream_sync(self, fake: FakeProvider, capture_spans: CapturedSpans) -> None:
        with _claude(fake).messages.stream(
            model=CLAUDE, max_tokens=100, messages=Q, extra_headers=SLOW
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert text == REPLY and final.stop_reason == "end_turn"
        span = _one_llm_span(capture_spans, f"chat {CLAUDE}")
        a = _assert_streamed(span, 7)
        assert a["gen_ai.request.stream"] is True and a["gen_ai.request.max_tokens"] == 100
        assert a["gen_ai.usage.input_tokens"] == final.usage.input_tokens
        assert tuple(a["gen_ai.response.finish_reasons"]) == ("end_turn",)
        assert json.loads(a["gen_ai.output.messages"])[0]["content"] == REPLY
        # the client's own span of the request is a marked child, not a second export
        theirs = [s for s in capture_spans.spans if s is not span]
        assert all(s.parent and s.parent.span_id == span.context.span_id for s in theirs)

    def test_messages_stream_async(self, fake: FakeProvider, capture_spans: CapturedSpans) -> None:
        async def main() -> str:
            async with anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="t") as client:
                async with client.messages.stream(
                    model=CLAUDE, max_tokens=100, messages=Q, extra_headers=SLOW
                ) as stream:
                    parts = [t async for t in stream.text_stream]
                return "".join(parts)

        assert asyncio.run(main()) == REPLY
        _assert_streamed(_one_llm_span(capture_spans, f"chat {CLAUDE}"), 7)

    def test_messages_stream_max_tokens_and_error(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        with _claude(fake).messages.stream(model=CLAUDE, max_tokens=3, messages=Q) as stream:
            stream.until_done()
        a = _one_llm_span(capture_spans, f"chat {CLAUDE}").attributes or {}
        assert tuple(a["gen_ai.response.finish_reasons"]) == ("max_tokens",)
        assert a["gen_ai.usage.output_tokens"] == 3
        capture_spans.clear()
        with (
            pytest.raises(anthropic.APIStatusError),
            _claude(fake, max_retries=0).messages.stream(
                model=CLAUDE, max_tokens=100, messages=Q, extra_headers={"x-fake-status": "529"}
            ),
        ):
            pass
        span = _one_llm_span(capture_spans, f"chat {CLAUDE}")
        assert span.status.status_code == StatusCode.ERROR

    def test_messages_stream_retries(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        fake.fail_next(529, 2, path_prefix="/v1/messages")
        with _claude(fake, max_retries=3).messages.stream(
            model=CLAUDE, max_tokens=100, messages=Q
        ) as stream:
            assert stream.get_final_text() == REPLY
        a = _one_llm_span(capture_spans, f"chat {CLAUDE}").attributes or {}
        assert a["http.request.resend_count"] == 2

    def test_messages_parse(self, fake: FakeProvider, capture_spans: CapturedSpans) -> None:
        msg = _claude(fake).messages.parse(
            model=CLAUDE,
            max_tokens=100,
            messages=Q,
            output_format=Refund,
            extra_headers={"x-fake-reply": REFUND_JSON},
        )
        assert msg.parsed_output == Refund(refundable=True, days=30)
        a = _one_llm_span(capture_spans, f"chat {CLAUDE}").attributes or {}
        assert a["gen_ai.usage.output_tokens"] == msg.usage.output_tokens
        assert json.loads(a["gen_ai.output.messages"])[0]["content"] == REFUND_JSON


class TestNestedCalls:
    def test_a_recorded_helper_calling_create_is_one_span(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        """A helper that is instrumented and calls the instrumented ``create`` itself (as
        openai's own helpers have done in some versions): the outer call is the one recorded."""
        from openai.types.chat import ChatCompletion

        from sightline.sdk._openai import ChatApi
        from sightline.sdk._wrap import wrap_sync

        client = _oai(fake)

        class Helpers:
            def ask(self, **kwargs: Any) -> Any:
                return client.chat.completions.create(**kwargs)

        Helpers.ask = wrap_sync(Helpers.ask, ChatApi((), (ChatCompletion,), True))  # type: ignore[method-assign]
        done = Helpers().ask(model="gpt-4o-mini", messages=Q)
        assert done.choices[0].message.content == REPLY
        a = _one_llm_span(capture_spans, "chat gpt-4o-mini").attributes or {}
        assert a["gen_ai.usage.output_tokens"] == 7
        # and a call after it is recorded again: the guard is per call, not sticky
        client.chat.completions.create(model="gpt-4o", messages=Q)  # type: ignore[arg-type]
        assert [s.name for s in _exported(capture_spans)] == ["chat gpt-4o-mini", "chat gpt-4o"]
