"""The real anthropic client against the fake provider, instrumented by Sightline."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import pytest
from opentelemetry.trace import StatusCode

from _sdk import anthropic_client
from sightline.sdk._providers import keep_span
from sightline.testing import CapturedSpans, FakeProvider

Q = [{"role": "user", "content": "Can I get a refund on an annual plan?"}]
REPLY = "Annual plans are refundable within thirty days."
MODEL = "claude-haiku-4-5"
NAME = f"chat {MODEL}"

pytestmark = pytest.mark.usefixtures("instrumented")


def _client(fake: FakeProvider, **kw: Any) -> anthropic.Anthropic:
    return anthropic_client(fake, **kw)


class TestMessages:
    def test_non_streaming_with_system_prompt(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        msg = _client(fake).messages.create(
            model=MODEL, max_tokens=100, system="Answer briefly.", messages=Q
        )
        assert isinstance(msg, anthropic.types.Message) and msg.content[0].text == REPLY  # type: ignore[union-attr]
        a = capture_spans.attributes(NAME)
        assert a["gen_ai.provider.name"] == "anthropic" and a["gen_ai.request.max_tokens"] == 100
        assert a["gen_ai.usage.input_tokens"] == msg.usage.input_tokens
        assert a["gen_ai.usage.output_tokens"] == 7
        assert tuple(a["gen_ai.response.finish_reasons"]) == ("end_turn",)
        assert json.loads(a["gen_ai.system_instructions"])[0]["content"] == "Answer briefly."
        assert json.loads(a["gen_ai.input.messages"]) == Q
        assert json.loads(a["gen_ai.output.messages"])[0]["content"] == REPLY

    def test_streaming_ttft_tokens_and_context_manager(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        with _client(fake).messages.create(
            model=MODEL,
            max_tokens=100,
            messages=Q,
            stream=True,
            extra_headers={"x-fake-ttft-ms": "90", "x-fake-token-ms": "10"},
        ) as stream:
            assert isinstance(stream, anthropic.Stream)
            kinds = [e.type for e in stream]
        assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
        span = capture_spans.one(NAME)
        a = span.attributes or {}
        assert a["gen_ai.usage.output_tokens"] == 7 and a["gen_ai.usage.input_tokens"] > 0
        assert 90 <= a["sightline.ttft_ms"] < 1000
        assert json.loads(a["gen_ai.output.messages"])[0]["content"] == REPLY

    def test_the_clients_own_span_is_marked_and_not_exported(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        _client(fake).messages.create(model=MODEL, max_tokens=100, messages=Q)
        ours = capture_spans.one(NAME)
        theirs = [s for s in capture_spans.spans if s is not ours]
        # anthropic >= 2 traces its own calls: one span, a child of ours, left out of export
        for s in theirs:
            assert s.parent is not None and s.parent.span_id == ours.context.span_id
            assert (s.attributes or {})["sightline.duplicate"] is True
            assert not keep_span(s)
        assert keep_span(ours)

    def test_async_streaming(self, fake: FakeProvider, capture_spans: CapturedSpans) -> None:
        async def main() -> str:
            async with anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="t") as client:
                stream = await client.messages.create(
                    model=MODEL, max_tokens=100, messages=Q, stream=True
                )
                assert isinstance(stream, anthropic.AsyncStream)
                parts = []
                async for e in stream:
                    if e.type == "content_block_delta":
                        parts.append(e.delta.text)  # type: ignore[union-attr]
                return "".join(parts)

        assert asyncio.run(main()) == REPLY
        assert capture_spans.attributes(NAME)["gen_ai.usage.output_tokens"] == 7

    def test_max_tokens_finish_reason(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        msg = _client(fake).messages.create(model=MODEL, max_tokens=3, messages=Q)
        assert msg.stop_reason == "max_tokens"
        a = capture_spans.attributes(NAME)
        assert tuple(a["gen_ai.response.finish_reasons"]) == ("max_tokens",)
        assert a["gen_ai.usage.output_tokens"] == 3

    def test_overloaded_error_and_retries(
        self, fake: FakeProvider, capture_spans: CapturedSpans
    ) -> None:
        with pytest.raises(anthropic.APIStatusError) as caught:
            _client(fake, max_retries=0).messages.create(
                model=MODEL, max_tokens=100, messages=Q, extra_headers={"x-fake-status": "503"}
            )
        assert caught.value.status_code == 503
        failed = capture_spans.one(NAME)
        assert failed.status.status_code == StatusCode.ERROR
        assert (failed.attributes or {})["error.type"] == "503"
        capture_spans.clear()
        fake.fail_next(529, 1, path_prefix="/v1/messages")
        msg = _client(fake, max_retries=2).messages.create(model=MODEL, max_tokens=100, messages=Q)
        assert msg.content[0].text == REPLY  # type: ignore[union-attr]
        assert capture_spans.attributes(NAME)["http.request.resend_count"] == 1
