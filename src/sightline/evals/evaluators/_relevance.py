from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sightline.evals._embed import Embedder, default_embedder
from sightline.evals.base import EvalCase, EvalResult

__all__ = ["Relevance", "calibrated_relevance"]

# Platt scaling of the question-answer cosine of all-MiniLM-L6-v2 into P(relevant), fitted by
# bench/calibrate_relevance.py on the tuning two thirds of tests/evals/data/relevance.jsonl
# (right answers; answers to other questions; same-topic non-answers; evasive filler). Score 0.7
# is then cosine 0.573. Held-out third: balanced accuracy 0.87, precision 0.92, recall 0.79.
_PLATT_A = 12.173
_PLATT_B = -6.132


def calibrated_relevance(cosine: float) -> float:
    """P(relevant) for a question-text cosine similarity (the calibrated score in [0, 1])."""
    return 1.0 / (1.0 + math.exp(-(_PLATT_A * cosine + _PLATT_B)))


class Relevance:
    """Does the answer address the question? Calibrated question-answer embedding similarity.

    The score is P(relevant) from the cosine of the two sentence embeddings (see
    :func:`calibrated_relevance`); it passes at ``threshold`` (0.7 by default). Cases without a
    question or an answer are skipped (``None``).
    """

    name = "relevance"
    version = "1"
    requires_options = False

    def __init__(self, *, threshold: float = 0.7, embedder: Embedder | None = None) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must be in [0, 1]")
        self.threshold = threshold
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        """The embedder used (the process-wide default unless one was given)."""
        if self._embedder is None:
            self._embedder = default_embedder()
        return self._embedder

    def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
        """Score each case; ``None`` where the question or the answer is empty."""
        idx = [i for i, c in enumerate(cases) if c.question and c.answer]
        out: list[EvalResult | None] = [None] * len(cases)
        if not idx:
            return out
        texts = [str(cases[i].question) for i in idx] + [str(cases[i].answer) for i in idx]
        vecs = self.embedder.embed(texts)
        q, a = vecs[: len(idx)], vecs[len(idx) :]
        cos = np.sum(q * a, axis=1)
        for i, c in zip(idx, cos, strict=True):
            score = calibrated_relevance(float(c))
            passed = score >= self.threshold
            out[i] = EvalResult(
                score=round(score, 4),
                label="relevant" if passed else "irrelevant",
                passed=passed,
                explanation=None
                if passed
                else f"the answer does not address the question (similarity {float(c):.2f})",
                details={"cosine": round(float(c), 4)},
            )
        return out
