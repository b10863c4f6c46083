"""Cached and reasoning tokens of each convention reach the price, through a real server."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

from _helpers import Server
from sightline.pricing import Pricer


def _attrs(**a: Any) -> list[dict[str, Any]]:
    def v(x: Any) -> dict[str, Any]:
        return {"intValue": str(x)} if isinstance(x, int) else {"stringValue": x}

    return [{"key": k, "value": v(x)} for k, x in a.items()]


def _post_span(server: Server, attrs: dict[str, Any]) -> dict[str, Any]:
    tid, sid = os.urandom(16).hex(), os.urandom(8).hex()
    now = time.time_ns()
    span = {"traceId": tid, "spanId": sid, "name": "ai.generateText.doGenerate",
            "startTimeUnixNano": str(now - 10**9), "endTimeUnixNano": str(now),
            "attributes": _attrs(**attrs)}  # fmt: skip
    body = {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "ai"}, "spans": [span]}]}]}
    with server.client() as c:
        r = c.post("/v1/traces", content=json.dumps(body),
                   headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 200, r.text
        got: dict[str, Any] = c.get(f"/api/v1/traces/{tid}").json()["spans"][0]
    return got


def test_ai_sdk_6_cache_writes_are_priced_as_writes(server: Server) -> None:
    # AI SDK 6 on Anthropic: inputTokens is the whole input, the details say what the cache did
    got = _post_span(
        server,
        {
            "ai.operationId": "ai.generateText.doGenerate",
            "ai.model.id": "claude-sonnet-4-5",
            "ai.model.provider": "anthropic.messages",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.input_tokens": 10_000,
            "gen_ai.usage.output_tokens": 200,
            "ai.usage.inputTokens": 10_000,
            "ai.usage.outputTokens": 200,
            "ai.usage.cachedInputTokens": 8_000,
            "ai.usage.inputTokenDetails.noCacheTokens": 500,
            "ai.usage.inputTokenDetails.cacheReadTokens": 8_000,
            "ai.usage.inputTokenDetails.cacheWriteTokens": 1_500,
            "ai.usage.outputTokenDetails.reasoningTokens": 50,
        },
    )
    assert (got["input_tokens"], got["cached_input_tokens"], got["cache_write_tokens"]) == (
        10_000,
        8_000,
        1_500,
    )
    assert (got["output_tokens"], got["reasoning_tokens"]) == (200, 50)
    want = Pricer().cost_usd(model="claude-sonnet-4-5", provider="anthropic",
                             input_tokens=10_000, output_tokens=200, cached_input_tokens=8_000,
                             cache_write_tokens=1_500)  # fmt: skip
    # $3/M fresh, $0.30/M read, $3.75/M written, $15/M out
    assert want == pytest.approx((500 * 3 + 8_000 * 0.3 + 1_500 * 3.75 + 200 * 15) / 1e6)
    assert got["cost_usd"] == pytest.approx(want)


def test_ai_sdk_5_anthropic_cache_reads_and_writes_are_priced(server: Server) -> None:
    # AI SDK 5 on Anthropic: inputTokens (and gen_ai.usage.input_tokens) are Anthropic's
    # input_tokens, the fresh ones only; the reads come apart, the writes in the metadata
    got = _post_span(
        server,
        {
            "ai.operationId": "ai.generateText.doGenerate",
            "ai.model.id": "claude-sonnet-4-5",
            "ai.model.provider": "anthropic.messages",
            "gen_ai.system": "anthropic.messages",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.input_tokens": 5_000,
            "gen_ai.usage.output_tokens": 200,
            "ai.usage.inputTokens": 5_000,
            "ai.usage.outputTokens": 200,
            "ai.usage.cachedInputTokens": 1_000,
            "ai.response.providerMetadata": json.dumps(
                {"anthropic": {"cacheCreationInputTokens": 2_000}}
            ),
        },
    )
    assert (got["input_tokens"], got["cached_input_tokens"], got["cache_write_tokens"]) == (
        8_000,
        1_000,
        2_000,
    )
    # $3/M fresh, $0.30/M read, $3.75/M written, $15/M out
    want = (5_000 * 3 + 1_000 * 0.3 + 2_000 * 3.75 + 200 * 15) / 1e6
    assert got["cost_usd"] == pytest.approx(want)
