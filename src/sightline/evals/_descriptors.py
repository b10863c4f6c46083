"""Descriptors of a response: cheap, offline text statistics whose distribution drift watches.

One :func:`describe` call per response gives:

- ``response_length``: characters; ``num_words``: words;
- ``sentiment``: VADER's compound polarity in [-1, 1] (``vaderSentiment``: a lexicon and rules,
  no model download);
- ``reading_level``: Flesch-Kincaid grade (``textstat``; syllables from ``pyphen``'s bundled
  hyphenation dictionaries);
- ``language``: ISO 639-1 code from ``py3langid`` (langid.py's naive Bayes model, which ships
  inside the package; 0.4 ms a text where ``langdetect`` took 12 ms), ``"unknown"`` for texts
  too short or too unsure to tell;
- ``refusal``: the answer declines (the ``refusal`` evaluator's phrase rules, no embeddings);
- ``json``: the answer is a JSON object or array (code fences allowed);
- ``top_terms``: its most frequent content words.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from typing import Any

from sightline.evals.evaluators._refusal import _PIVOT, _REFUSAL
from sightline.evals.evaluators._text import STOPWORDS, split_sentences

__all__ = ["DESCRIPTOR_FIELDS", "describe"]

DESCRIPTOR_FIELDS = (
    "response_length",
    "num_words",
    "sentiment",
    "reading_level",
    "language",
    "refusal",
    "json",
    "top_terms",
)

_MAX_CHARS = 20_000  # statistics of the first 20k characters: enough, and bounded in time
_MIN_LANG_CHARS = 20
_TERM = re.compile(r"[^\W\d_][\w'-]{2,}")
_lock = threading.Lock()
_vader: Any = None
_langid: Any = None


def _sentiment(text: str) -> float:
    global _vader
    with _lock:
        if _vader is None:
            from vaderSentiment.vaderSentiment import (  # type: ignore[import-untyped]
                SentimentIntensityAnalyzer,
            )

            _vader = SentimentIntensityAnalyzer()
        analyzer = _vader
    return float(analyzer.polarity_scores(text)["compound"])


def _language(text: str) -> str:
    global _langid
    if len(text.strip()) < _MIN_LANG_CHARS:
        return "unknown"
    with _lock:
        if _langid is None:
            from py3langid.langid import (  # type: ignore[import-untyped]
                MODEL_DIR,
                MODEL_FILE,
                LanguageIdentifier,
            )

            _langid = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
        ident = _langid
    lang, prob = ident.classify(text)
    return str(lang) if prob >= 0.5 and lang != "zxx" else "unknown"


def _reading_level(text: str) -> float | None:
    import textstat  # type: ignore[import-untyped]

    if not _TERM.search(text):
        return None
    return float(textstat.flesch_kincaid_grade(text))


def _is_json(text: str) -> bool:
    t = text.strip()
    # A Markdown fence around the JSON (```json ... ```), found by slicing: the regex it
    # replaces backtracked cubically on an unclosed fence before a run of blank lines (an
    # answer of "```" and 2,000 newlines took 4 s, one of 20,000 about an hour, holding up
    # every evaluator behind it).
    if len(t) >= 6 and t.startswith("```") and t.endswith("```"):
        t = t[3:-3]
        t = (t[4:] if t.startswith("json") else t).strip()
    if not t or t[0] not in "[{":
        return False
    try:
        json.loads(t)
    except (ValueError, RecursionError):  # nested deeper than the parser's stack: not JSON here
        return False
    return True


def _is_refusal(text: str) -> bool:
    head = " ".join(split_sentences(text)[:2])
    return bool(_REFUSAL.search(head)) and not _PIVOT.search(head)


def top_terms(text: str, k: int = 5) -> list[str]:
    """The ``k`` most frequent content words of ``text`` (lowercase, stopwords left out)."""
    words = [w.lower() for w in _TERM.findall(text)]
    counts = Counter(w for w in words if w not in STOPWORDS)
    return [w for w, _ in counts.most_common(k)]


def describe(text: str) -> dict[str, Any]:
    """The descriptors of one response (see the module docstring).

    Example:
        >>> d = describe("I'm sorry, I can't help with that.")
        >>> d["refusal"], d["sentiment"] < 0.5
        (True, True)
    """
    t = text[:_MAX_CHARS]
    return {
        "response_length": len(text),
        "num_words": len(t.split()),
        "sentiment": _sentiment(t),
        "reading_level": _reading_level(t),
        "language": _language(t),
        "refusal": _is_refusal(t),
        "json": _is_json(t),
        "top_terms": top_terms(t),
    }
