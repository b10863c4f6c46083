"""set_guardrail records the decision, the guardrail's version and its stage."""

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
