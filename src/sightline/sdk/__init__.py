"""The Sightline SDK: instrument an LLM application (OpenTelemetry only)."""

from sightline.sdk._feedback import feedback
from sightline.sdk._init import dropped_spans, init, shutdown
from sightline.sdk._outcome import outcome
from sightline.sdk._prompts import Prompt, clear_prompt_cache, get_prompt
from sightline.sdk._providers import (
    instrument_anthropic,
    instrument_openai,
    uninstrument_anthropic,
    uninstrument_openai,
)
from sightline.sdk._threads import instrument_threads, uninstrument_threads
from sightline.sdk._tracing import SightlineSpan, current_span, observe, span, trace

__all__ = [
    "Prompt",
    "SightlineSpan",
    "current_span",
    "clear_prompt_cache",
    "dropped_spans",
    "feedback",
    "get_prompt",
    "init",
    "instrument_anthropic",
    "instrument_openai",
    "instrument_threads",
    "observe",
    "outcome",
    "shutdown",
    "span",
    "trace",
    "uninstrument_anthropic",
    "uninstrument_openai",
    "uninstrument_threads",
]
