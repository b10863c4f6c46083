"""Erasure of span texts copied into drift results' explanations (both backends)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["EXAMPLE_CHARS", "example_texts", "scrub_examples"]

EXAMPLE_CHARS = 300
"""Drift detectors quote at most this many characters of a span's input or output as an
example (sightline.drift); erasure compares the same prefixes."""

_GONE = object()


def example_texts(rows: Iterable[Iterable[str | None]]) -> set[str]:
    """The example forms of span texts (each non-empty text's first characters)."""
    return {t[:EXAMPLE_CHARS] for row in rows for t in row if t}


def _scrub(v: Any, texts: set[str]) -> Any:
    if isinstance(v, str):
        return _GONE if v in texts else v
    if isinstance(v, list):
        kept = [_scrub(x, texts) for x in v]
        return [x for x in kept if x is not _GONE]
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            y = _scrub(x, texts)
            if y is _GONE:
                # an example with its figures ({"prompt": ..., "mean_cos": ...}) goes whole
                return _GONE
            out[k] = y
        return out
    return v


def scrub_examples(details: dict[str, Any], texts: set[str]) -> dict[str, Any] | None:
    """``details`` without the examples quoting one of ``texts``; None when none does."""
    if not texts:
        return None
    out = {k: _scrub(v, texts) for k, v in details.items()}
    out = {k: v for k, v in out.items() if v is not _GONE}
    return out if out != details else None
