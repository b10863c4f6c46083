"""Realistic OTLP GenAI span batches for benchmarks and tests."""

from __future__ import annotations

import json
import os
import random
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-3-5-haiku-20241022"),
    ("anthropic", "claude-sonnet-4-5"),
]
QUESTIONS = [
    "How do I reset my password?",
    "What is your refund policy for annual plans?",
    "Can I export my data to CSV?",
    "Why was my card declined?",
    "How do I add a teammate to my workspace?",
]


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def llm_request(
    n: int, *, start_ns: int | None = None, spread_s: float = 0.0, rng: random.Random | None = None
) -> tuple[ExportTraceServiceRequest, list[str]]:
    """One request of ``n`` LLM spans (~20 GenAI attributes each); returns it and its span ids."""
    rng = rng or random.Random()
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(
        [
            _kv("service.name", "support-bot"),
            _kv("service.version", "1.4.2"),
            _kv("deployment.environment.name", "prod"),
        ]
    )
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.openai"
    base = start_ns if start_ns is not None else time.time_ns()
    ids = []
    for _ in range(n):
        provider, model = rng.choice(MODELS)
        s = ss.spans.add()
        s.trace_id = os.urandom(16)
        s.span_id = os.urandom(8)
        ids.append(s.span_id.hex())
        s.parent_span_id = os.urandom(8)
        s.name = f"chat {model}"
        s.kind = 3
        t0 = base + int(rng.random() * spread_s * 1e9)
        dur = int(rng.uniform(0.3, 4.0) * 1e9)
        s.start_time_unix_nano = t0
        s.end_time_unix_nano = t0 + dur
        q = rng.choice(QUESTIONS)
        inp, out = rng.randint(200, 3000), rng.randint(20, 600)
        s.attributes.extend(
            [
                _kv("gen_ai.operation.name", "chat"),
                _kv("gen_ai.provider.name", provider),
                _kv("gen_ai.request.model", model),
                _kv("gen_ai.response.model", model),
                _kv("gen_ai.response.id", "chatcmpl-" + os.urandom(6).hex()),
                _kv("gen_ai.request.temperature", 0.2),
                _kv("gen_ai.request.top_p", 1.0),
                _kv("gen_ai.request.max_tokens", 1024),
                _kv("gen_ai.usage.input_tokens", inp),
                _kv("gen_ai.usage.output_tokens", out),
                _kv("gen_ai.usage.cache_read.input_tokens", inp // 4),
                _kv("gen_ai.conversation.id", f"sess-{rng.randint(1, 5000)}"),
                _kv("user.id", f"user-{rng.randint(1, 2000)}"),
                _kv("sightline.tenant_id", f"tenant-{rng.randint(1, 50)}"),
                _kv("sightline.feature", rng.choice(["support-answer", "summarise", "triage"])),
                _kv("sightline.ttft_ms", rng.uniform(80, 900)),
                _kv("server.address", "api.example.com"),
                _kv(
                    "gen_ai.input.messages",
                    json.dumps(
                        [
                            {
                                "role": "system",
                                "parts": [
                                    {"type": "text", "content": "You are a helpful support agent."}
                                ],
                            },
                            {"role": "user", "parts": [{"type": "text", "content": q}]},
                        ]
                    ),
                ),
                _kv(
                    "gen_ai.output.messages",
                    json.dumps(
                        [
                            {
                                "role": "assistant",
                                "parts": [
                                    {"type": "text", "content": "Here is how: " + q[::-1] * 3}
                                ],
                                "finish_reason": "stop",
                            }
                        ]
                    ),
                ),
                _kv("gen_ai.response.finish_reasons", "stop"),
            ]
        )
        if rng.random() < 0.02:
            s.status.code = Status.STATUS_CODE_ERROR
            s.status.message = "upstream 503"
    return req, ids
