from __future__ import annotations

import re
from collections.abc import Sequence

from sightline.evals.base import EvalCase, EvalResult

__all__ = ["UserCorrection"]

# Phrases a user writes when the previous answer was wrong. Anchored near the start of the turn
# ("Actually, ..." opens a correction; "it actually works" does not), or unmistakable anywhere.
_OPENERS = (
    r"no[,.!]",
    r"nope\b",
    r"actually\b",
    r"wrong\b",
    r"incorrect\b",
    r"that'?s not (?:it|right|true|correct|what i asked)",
    r"not quite\b",
    r"are you sure\b",
)
_ANYWHERE = (
    r"\b(?:(?:that|this|your|the) answer|that|this|it)(?:'s| is| was) (?:wrong|incorrect|false|"
    r"not (?:right|correct|true|accurate)|inaccurate|a hallucination|made up)\b",
    r"\byou(?:'re| are) (?:wrong|mistaken|incorrect)\b",
    r"\b(?:wrong|incorrect) answer\b",
    r"\bthat'?s not what i (?:asked|meant)\b",
    r"\bthat (?:doesn'?t|does not|didn'?t|did not) (?:work|help|answer)\b",
    r"\byou (?:misunderstood|got it wrong|made (?:that|it) up)\b",
    r"\bstill (?:wrong|incorrect|not (?:working|right))\b",
)
_OPEN_RE = re.compile(r"^\s*(?:" + "|".join(_OPENERS) + ")", re.IGNORECASE)
_ANY_RE = re.compile("|".join(_ANYWHERE), re.IGNORECASE)
# "No, thanks" / "no problem" close a conversation; they do not correct it.
_POLITE_RE = re.compile(r"^\s*no[,.!]?\s*(?:thanks|thank you|problem|worries)\b", re.IGNORECASE)


class UserCorrection:
    """Did the user's next turn say the previous answer was wrong?

    Judges a follow-up turn (``question``) of a session, and marks the *previous* answer: the
    online runner attaches the score to the previous LLM span of the same session
    (``judges = "previous_answer"``). Score 0 (label ``corrected``) when the turn corrects
    the answer ("that's wrong", "actually, ...", "no, ..."), 1 (``accepted``) otherwise.
    Cases without a previous answer are skipped.
    """

    name = "user_correction"
    version = "1"
    requires_options = False
    judges = "previous_answer"
    """The runner attaches this evaluator's scores to the previous answer of the session."""

    def __init__(self, *, extra_patterns: Sequence[str] = ()) -> None:
        try:
            self._extra = [re.compile(p, re.IGNORECASE) for p in extra_patterns]
        except re.error as e:
            raise ValueError(f"invalid pattern: {e}") from None

    def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
        """Judge each follow-up turn."""
        return [self._one(c) for c in cases]

    def _one(self, case: EvalCase) -> EvalResult | None:
        if not case.previous_answer or not case.question:
            return None
        turn = case.question.strip()
        m = None
        if not _POLITE_RE.match(turn):
            m = _OPEN_RE.match(turn) or _ANY_RE.search(turn)
        if m is None:
            m = next((x for p in self._extra if (x := p.search(turn))), None)
        if m is None:
            return EvalResult(score=1.0, label="accepted", passed=True)
        return EvalResult(
            score=0.0,
            label="corrected",
            passed=False,
            explanation=f"the next user turn corrects this answer: {m.group(0).strip()!r} "
            f"in {turn[:200]!r}",
        )
