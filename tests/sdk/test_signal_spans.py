"""Signal helpers of SightlineSpan: guardrail decisions and sampled answers."""

from __future__ import annotations

import sightline
from sightline.testing import CapturedSpans


def test_set_guardrail_records_version_and_stage(capture_spans: CapturedSpans) -> None:
    with sightline.span("injection-shield") as s:
        s.set_guardrail(blocked=True, reason="prompt_injection", version="2", stage="input")
    a = capture_spans.attributes("injection-shield")
    assert a["sightline.span.kind"] == "guardrail"
    assert a["sightline.guardrail.blocked"] is True
    assert a["sightline.guardrail.version"] == "2"
    assert a["sightline.guardrail.stage"] == "input"
    assert a["sightline.guardrail.reason"] == "prompt_injection"


def test_set_samples_records_the_other_answers_as_json(capture_spans: CapturedSpans) -> None:
    import json

    with sightline.span("chat gpt-4o-mini", kind="llm") as s:
        s.set_samples(["Refunds take 30 days.", "Refunds take 90 days."])
    a = capture_spans.attributes("chat gpt-4o-mini")
    assert json.loads(a["sightline.samples"]) == ["Refunds take 30 days.", "Refunds take 90 days."]


def test_set_samples_respects_content_capture(capture_spans: CapturedSpans) -> None:
    from sightline.sdk._tracing import _Content

    capture, redact = _Content.capture, _Content.redact
    try:
        _Content.capture = False
        with sightline.span("off", kind="llm") as s:
            s.set_samples(["secret answer"])
        _Content.capture, _Content.redact = True, lambda t: t.replace("secret", "[x]")
        with sightline.span("redacted", kind="llm") as s:
            s.set_samples(["secret answer"])
    finally:
        _Content.capture, _Content.redact = capture, redact
    assert "sightline.samples" not in capture_spans.attributes("off")
    assert capture_spans.attributes("redacted")["sightline.samples"] == '["[x] answer"]'
