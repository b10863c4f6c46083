"""The fake provider speaks the wire formats the real clients expect."""

from __future__ import annotations

import json
import time

import anthropic
import httpx
import openai
import pytest

from sightline.testing import FakeProvider


def _sse_data(body: str) -> list[str]:
    return [line[6:] for line in body.splitlines() if line.startswith("data: ")]


class TestOpenAIWire:
    def test_chat_stream_ends_with_usage_chunk_and_done(self) -> None:
        with FakeProvider(reply="one two three") as fake:
            r = httpx.post(
                f"{fake.openai_base_url}/chat/completions",
                json={
                    "model": "m",
                    "messages": [{"role": "user", "content": "hi there"}],
                    "stream": True,
                    "stream_options": {"include_usage": True},
                },
            )
        assert r.headers["content-type"] == "text/event-stream"
        data = _sse_data(r.text)
        assert data[-1] == "[DONE]"
        chunks = [json.loads(d) for d in data[:-1]]
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1]) == (
            "one two three"
        )
        assert all(c["usage"] is None for c in chunks[:-1])
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
        assert chunks[-1]["usage"]["prompt_tokens"] == 2

    def test_latency_is_controlled(self) -> None:
        with FakeProvider(reply="a b c d", ttft_s=0.1, token_interval_s=0.05) as fake:
            t0 = time.perf_counter()
            with httpx.stream(
                "POST",
                f"{fake.openai_base_url}/chat/completions",
                json={"model": "m", "messages": [], "stream": True},
            ) as r:
                times = [
                    time.perf_counter() - t0 for line in r.iter_lines() if '"content": "' in line
                ]
        # the role chunk carries "content": "" at once; the four tokens follow, paced
        assert times[1] >= 0.1 and times[-1] >= 0.1 + 3 * 0.05

    def test_embeddings_models_and_errors_through_the_client(self) -> None:
        with (
            FakeProvider() as fake,
            openai.OpenAI(base_url=fake.openai_base_url, api_key="t", max_retries=0) as client,
        ):
            emb = client.embeddings.create(model="text-embedding-3-small", input=["a", "b", "a"])
            v = [d.embedding for d in emb.data]
            assert len(v[0]) == 16 and v[0] == v[2] and v[0] != v[1]
            assert abs(sum(x * x for x in v[0]) - 1) < 1e-5
            floats = client.embeddings.create(
                model="m", input="a", encoding_format="float", dimensions=8
            )
            assert (
                floats.data[0].embedding == pytest.approx(v[0][:8], abs=1)
                and len(floats.data[0].embedding) == 8
            )
            assert "gpt-4o-mini" in [m.id for m in client.models.list()]
            fake.fail_next(429, retry_after_s=None)
            with pytest.raises(openai.RateLimitError) as caught:
                client.chat.completions.create(model="m", messages=[])
            assert caught.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
            assert "retry-after" not in caught.value.response.headers

    def test_stream_cut_short_raises_in_the_client(self) -> None:
        with (
            FakeProvider(reply="a b c d e") as fake,
            openai.OpenAI(base_url=fake.openai_base_url, api_key="t", max_retries=0) as client,
        ):
            stream = client.chat.completions.create(
                model="m",
                messages=[],
                stream=True,
                extra_headers={"x-fake-abort-after": "2"},
            )
            with pytest.raises(openai.APIError):
                for _ in stream:
                    pass

    def test_unknown_route_and_bad_body(self) -> None:
        with FakeProvider() as fake:
            assert httpx.post(f"{fake.base_url}/v1/nope", json={}).status_code == 404
            r = httpx.post(f"{fake.openai_base_url}/chat/completions", content=b"not json")
            assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
            assert httpx.get(f"{fake.base_url}/v1/other").status_code == 404


class TestAnthropicWire:
    def test_stream_events_and_error_format(self) -> None:
        with FakeProvider(reply="hello world", token_interval_s=0.0) as fake:
            r = httpx.post(
                f"{fake.base_url}/v1/messages",
                json={"model": "m", "max_tokens": 10, "messages": [], "stream": True},
            )
            events = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
            assert events == [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
            with anthropic.Anthropic(base_url=fake.base_url, api_key="t", max_retries=0) as client:
                fake.fail_next(429)
                with pytest.raises(anthropic.RateLimitError) as caught:
                    client.messages.create(model="m", max_tokens=5, messages=[])
                assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
        assert [r.path for r in fake.requests] == ["/v1/messages", "/v1/messages"]
        assert "anthropic-version" in fake.requests[-1].headers

    def test_reply_can_be_a_function_of_the_request(self) -> None:
        with FakeProvider(reply=lambda body: f"{len(body['messages'])} messages") as fake:
            r = httpx.post(
                f"{fake.base_url}/v1/messages",
                json={
                    "model": "m",
                    "max_tokens": 10,
                    "messages": [{"role": "user", "content": "x"}],
                },
            )
        assert r.json()["content"][0]["text"] == "1 messages"
