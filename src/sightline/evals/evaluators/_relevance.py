from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sightline.evals._embed import MODEL_L3, MODEL_L6, MODELS, Embedder, default_embedder
from sightline.evals.base import EvalCase, EvalResult

__all__ = ["Relevance", "calibrated_relevance"]

# Platt scaling of the question-answer cosine of all-MiniLM-L6-v2 into P(relevant), fitted by
# bench/calibrate_relevance.py on the tuning two thirds of tests/evals/data/relevance.jsonl
# (right answers; answers to other questions; same-topic non-answers; evasive filler). Score 0.7
# is then cosine 0.573. Held-out third: balanced accuracy 0.87, precision 0.92, recall 0.79.
_PLATT_A = 12.173
_PLATT_B = -6.132
# The same fit for paraphrase-MiniLM-L3-v2 (``--model paraphrase-MiniLM-L3-v2``): score 0.7 is
# cosine 0.528. Held-out third: balanced accuracy 0.87, precision 0.92, recall 0.79.
_PLATT = {MODEL_L6: (_PLATT_A, _PLATT_B), MODEL_L3: (10.578, -4.737)}


def calibrated_relevance(cosine: float, model: str = MODEL_L6) -> float:
    """P(relevant) for a question-text cosine similarity (the calibrated score in [0, 1]).

    ``model`` names the embedding model the cosine comes from (each has its own calibration).
    """
    a, b = _PLATT[model]
    return 1.0 / (1.0 + math.exp(-(a * cosine + b)))


class Relevance:
    """Does the answer address the question? Calibrated question-answer embedding similarity.

    The score is P(relevant) from the cosine of the two sentence embeddings (see
    :func:`calibrated_relevance`); it passes at ``threshold`` (0.7 by default). Cases without a
    question or an answer are skipped (``None``).

    ``model`` picks the embedding model: paraphrase-MiniLM-L3-v2 by default (as accurate on the
    labelled set as all-MiniLM-L6-v2 at ~40% of its CPU a span), or ``"all-MiniLM-L6-v2"``.
    A given ``embedder`` decides the model (and so the calibration) itself.
    """

    name = "relevance"
    version = "2"  # 2: paraphrase-MiniLM-L3-v2 by default (1: all-MiniLM-L6-v2)
    requires_options = False
    default_model = MODEL_L3
    """The embedding model used unless ``model`` or ``embedder`` says otherwise."""

    def __init__(
        self,
        *,
        threshold: float = 0.7,
        embedder: Embedder | None = None,
        model: str | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must be in [0, 1]")
        if model is not None and model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}")
        if embedder is not None and model is not None and embedder.model != model:
            raise ValueError(f"the embedder runs {embedder.model}, not {model}")
        self.threshold = threshold
        self._embedder = embedder
        self.model = embedder.model if embedder is not None else model or self.default_model

    @property
    def embedder(self) -> Embedder:
        """The embedder used (the process-wide one of ``model`` unless one was given)."""
        if self._embedder is None:
            self._embedder = default_embedder(self.model)
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
            score = calibrated_relevance(float(c), self.model)
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
