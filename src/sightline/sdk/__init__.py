"""The Sightline SDK: instrument an LLM application (OpenTelemetry only)."""

from sightline.sdk._feedback import feedback
from sightline.sdk._init import init, shutdown
from sightline.sdk._tracing import SightlineSpan, current_span, observe, span, trace

__all__ = [
    "SightlineSpan",
    "current_span",
    "feedback",
    "init",
    "observe",
    "shutdown",
    "span",
    "trace",
]
