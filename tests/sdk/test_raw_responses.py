"""Raw-response calls (``with_raw_response``, ``with_streaming_response``) are recorded in full.

The clients return the HTTP response there, and the stream or completion only comes out of
``parse()``: the span must still get the output, the tokens and the TTFT, as a plain call's.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry.trace import StatusCode

import sightline
from _sdk import anthropic_client, openai_client
from sightline.testing import CapturedSpans, FakeProvider

Q = [{"role": "user", "content": "Can I get a refund on an annual plan?"}]
REPLY = "Annual plans are refundable within thirty days."
SLOW = {"x-fake-ttft-ms": "120"}
CLAUDE = "claude-haiku-4-5"

pytestmark = pytest.mark.usefixtures("instrumented")


def _openai(fake: FakeProvider) -> openai.OpenAI:
    return openai_client(fake, max_retries=0)


def _anthropic(fake: FakeProvider) -> anthropic.Anthropic:
    return anthropic_client(fake, max_retries=0)


def _assert_streamed_call(a: Any, *, input_tokens: bool = True) -> None:
    assert a["gen_ai.usage.output_tokens"] == 7
    if input_tokens:
        assert a["gen_ai.usage.input_tokens"] > 0
    assert 120 <= a["sightline.ttft_ms"] < 2000
    assert json.loads(a["gen_ai.output.messages"])[0]["content"] == REPLY


class TestOpenAIRawResponse:
    def test_parsed_stream_records_tokens_output_and_ttft(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        sightline.uninstrument_openai()
        bare = [
            c.to_dict()
            for c in _openai(fake).chat.completions.create(
                model="gpt-4o-mini", messages=Q, stream=True
            )
        ]
        sightline.instrument_openai()
        raw = _openai(fake).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=Q, stream=True, extra_headers=SLOW
        )
        assert raw.headers["content-type"].startswith("text/event-stream")
        stream = raw.parse()
        assert isinstance(stream, openai.Stream)
        assert not capture_spans.spans  # open while the app reads
        seen = [c.to_dict() for c in stream]
        # the usage chunk Sightline asked for is hidden, as for a plain stream
        assert [{k: v for k, v in c.items() if k != "created"} for c in seen] == [
            {k: v for k, v in c.items() if k != "created"} for c in bare
        ]
        assert raw.parse() is stream  # parse() caches: observed once
        span = capture_spans.one("chat gpt-4o-mini")
        assert span.status.status_code != StatusCode.ERROR
        _assert_streamed_call(span.attributes)

    def test_async_parsed_stream_records_tokens_output_and_ttft(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        async def main() -> str:
            async with openai.AsyncOpenAI(
                base_url=fake.openai_base_url, api_key="test", max_retries=0
            ) as client:
                raw = await client.chat.completions.with_raw_response.create(
                    model="gpt-4o", messages=Q, stream=True, extra_headers=SLOW
                )
                parts = []
                async with raw.parse() as stream:
                    async for c in stream:
                        if c.choices:
                            parts.append(c.choices[0].delta.content or "")
                return "".join(parts)

        assert asyncio.run(main()) == REPLY
        _assert_streamed_call(capture_spans.attributes("chat gpt-4o"))

    def test_streaming_response_sends_the_request_unchanged_and_records_the_output(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        client = _openai(fake)
        with client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini",
            messages=Q,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=SLOW,
        ) as response:
            chunks = list(response.parse())
        assert chunks[-1].usage is not None  # the app asked for it: it gets it
        _assert_streamed_call(capture_spans.attributes("chat gpt-4o-mini"))
        # an app reading the bytes itself sees exactly what it asked for
        with client.chat.completions.with_streaming_response.create(
            model="gpt-4o", messages=Q, stream=True
        ) as response:
            lines = [line for line in response.iter_lines() if line]
        assert "stream_options" not in (fake.requests[-1].body or {})
        assert lines[-1] == "data: [DONE]"
        span = capture_spans.one("chat gpt-4o")  # ended when the response closed
        assert span.status.status_code != StatusCode.ERROR

    def test_not_streamed_raw_call_records_tokens_and_output(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        raw = _openai(fake).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=Q
        )
        a = capture_spans.attributes("chat gpt-4o-mini")  # ended before parse()
        assert raw.parse().choices[0].message.content == REPLY
        assert a["gen_ai.usage.output_tokens"] == 7 and a["gen_ai.usage.input_tokens"] > 0
        assert a["gen_ai.response.finish_reasons"] == ("stop",)
        assert json.loads(a["gen_ai.output.messages"])[0]["content"] == REPLY

    def test_not_streamed_streaming_response_records_tokens_and_output(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        # the body is read inside parse() (or json()), and the read closes the response: that
        # close ended the call before the answer was recorded (no tokens, cost or output)
        client = _openai(fake)
        with client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=Q
        ) as response:
            assert response.parse().choices[0].message.content == REPLY
        with client.chat.completions.with_streaming_response.create(
            model="gpt-4o", messages=Q
        ) as response:
            assert response.json()["choices"][0]["message"]["content"] == REPLY

        async def main() -> str:
            async with openai.AsyncOpenAI(
                base_url=fake.openai_base_url, api_key="test", max_retries=0
            ) as aclient:
                async with aclient.chat.completions.with_streaming_response.create(
                    model="gpt-4.1", messages=Q
                ) as aresponse:
                    parsed = await aresponse.parse()
                    return parsed.choices[0].message.content or ""

        assert asyncio.run(main()) == REPLY
        for model in ("gpt-4o-mini", "gpt-4o", "gpt-4.1"):
            span = capture_spans.one(f"chat {model}")
            a = span.attributes or {}
            assert span.status.status_code != StatusCode.ERROR
            assert a["gen_ai.usage.output_tokens"] == 7, model
            assert a["gen_ai.usage.input_tokens"] > 0
            assert a["gen_ai.response.finish_reasons"] == ("stop",)
            assert json.loads(a["gen_ai.output.messages"])[0]["content"] == REPLY

    def test_an_error_status_is_raised_unchanged_and_recorded(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        with pytest.raises(openai.RateLimitError):
            _openai(fake).chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=Q, stream=True, extra_headers={"x-fake-status": "429"}
            )
        span = capture_spans.one("chat gpt-4o-mini")
        assert span.status.status_code == StatusCode.ERROR
        assert (span.attributes or {})["error.type"] == "429"


class TestAnthropicRawResponse:
    def test_parsed_stream_records_tokens_output_and_ttft(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        raw = _anthropic(fake).messages.with_raw_response.create(
            model=CLAUDE, max_tokens=100, messages=Q, stream=True, extra_headers=SLOW
        )
        events = [e.type for e in raw.parse()]
        assert events[0] == "message_start" and events[-1] == "message_stop"
        _assert_streamed_call(capture_spans.attributes(f"chat {CLAUDE}"))

    def test_async_parsed_stream_records_tokens_output_and_ttft(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        async def main() -> str:
            async with anthropic.AsyncAnthropic(
                base_url=fake.base_url, api_key="test", max_retries=0
            ) as client:
                raw = await client.messages.with_raw_response.create(
                    model=CLAUDE, max_tokens=100, messages=Q, stream=True, extra_headers=SLOW
                )
                text = []
                async for e in await raw.parse():  # anthropic's async parse() is a coroutine
                    if e.type == "content_block_delta" and e.delta.type == "text_delta":
                        text.append(e.delta.text)
                return "".join(text)

        assert asyncio.run(main()) == REPLY
        _assert_streamed_call(capture_spans.attributes(f"chat {CLAUDE}"))

    def test_not_streamed_streaming_response_records_tokens_and_output(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        with _anthropic(fake).messages.with_streaming_response.create(
            model=CLAUDE, max_tokens=100, messages=Q
        ) as response:
            assert response.parse().content[0].text == REPLY  # type: ignore[union-attr]
        a = capture_spans.attributes(f"chat {CLAUDE}")
        assert a["gen_ai.usage.output_tokens"] == 7
        assert json.loads(a["gen_ai.output.messages"])[0]["content"] == REPLY

    def test_not_streamed_raw_call_records_tokens_and_output(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        raw = _anthropic(fake).messages.with_raw_response.create(
            model=CLAUDE, max_tokens=100, messages=Q
        )
        assert raw.parse().content[0].text == REPLY  # type: ignore[union-attr]
        a = capture_spans.attributes(f"chat {CLAUDE}")
        assert a["gen_ai.usage.output_tokens"] == 7
        assert json.loads(a["gen_ai.output.messages"])[0]["content"] == REPLY
