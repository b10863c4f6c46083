"""Sightline: observability and evaluation for LLM systems.

``import sightline`` is what applications do, so it stays light: it loads OpenTelemetry and
nothing of the server (FastAPI, DuckDB, NumPy); a test guards this.

Example:
    ```python
    import sightline

    sightline.init(api_key="sl_...", service_name="support-bot")

    @sightline.observe(kind="retrieval")
    def retrieve(question: str) -> list[str]: ...

    with sightline.trace("rag-request", user_id="u-42"):
        docs = retrieve("How do I reset my password?")
    ```
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from sightline.errors import BudgetExceeded, PromptUnavailable
from sightline.sdk import (
    Prompt,
    SightlineSpan,
    clear_prompt_cache,
    current_span,
    dropped_spans,
    feedback,
    get_prompt,
    init,
    instrument_anthropic,
    instrument_openai,
    instrument_threads,
    observe,
    outcome,
    shutdown,
    span,
    trace,
    uninstrument_anthropic,
    uninstrument_openai,
    uninstrument_threads,
)

try:
    __version__ = version("sightline")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Prompt",
    "PromptUnavailable",
    "BudgetExceeded",
    "SightlineSpan",
    "__version__",
    "clear_prompt_cache",
    "current_span",
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
