from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sightline.evals._embed import Embedder, default_embedder
from sightline.evals.base import EvalCase, EvalResult
from sightline.evals.evaluators._relevance import calibrated_relevance

__all__ = ["ContextRelevance", "context_precision"]


def context_precision(relevant: Sequence[bool]) -> float:
    """Rank-weighted context precision: mean of precision@k over the ranks k of relevant items.

    1.0 when every relevant document is ranked above every irrelevant one, lower as irrelevant
    documents come first, 0.0 when none is relevant (the Ragas definition, without an LLM).
    """
    hits = 0
    total = 0.0
    for k, rel in enumerate(relevant, start=1):
        if rel:
            hits += 1
            total += hits / k
    return total / hits if hits else 0.0


class ContextRelevance:
    """Were the retrieved documents relevant to the question, and ranked first?

    Each document is relevant when its calibrated question similarity (the relevance
    evaluator's mapping of the embedding cosine to P(relevant)) reaches ``doc_threshold``; the
    score is the rank-weighted :func:`context_precision` of the documents in rank order, and
    passes at ``threshold``. Cases without a question or documents are skipped.
    """

    name = "context_relevance"
    version = "1"
    requires_options = False

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        doc_threshold: float = 0.5,
        max_docs: int = 20,
        embedder: Embedder | None = None,
    ) -> None:
        if not (0.0 <= threshold <= 1.0 and 0.0 <= doc_threshold <= 1.0):
            raise ValueError("thresholds must be in [0, 1]")
        if max_docs < 1:
            raise ValueError("max_docs must be at least 1")
        self.threshold = threshold
        self.doc_threshold = doc_threshold
        self.max_docs = max_docs
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        """The embedder used (the process-wide default unless one was given)."""
        if self._embedder is None:
            self._embedder = default_embedder()
        return self._embedder

    def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
        """Score each case's documents against its question."""
        out: list[EvalResult | None] = [None] * len(cases)
        todo = [i for i, c in enumerate(cases) if c.question and any(c.contexts)]
        if not todo:
            return out
        # One embed call for the whole batch: repeated questions and documents (the same
        # chunks are retrieved again and again) are embedded once and then come from the cache.
        texts: list[str] = []
        spans: list[tuple[int, int, int]] = []
        for i in todo:
            docs = [d for d in cases[i].contexts[: self.max_docs]]
            spans.append((i, len(texts), len(docs)))
            texts.append(str(cases[i].question))
            texts.extend(docs)
        vecs = self.embedder.embed(texts)
        for i, start, n in spans:
            sims = vecs[start + 1 : start + 1 + n] @ vecs[start]
            probs = [calibrated_relevance(float(s), self.embedder.model) for s in np.asarray(sims)]
            rel = [p >= self.doc_threshold for p in probs]
            score = context_precision(rel)
            passed = score >= self.threshold
            irrelevant = [k + 1 for k, r in enumerate(rel) if not r]
            expl = f"{sum(rel)} of {n} documents relevant" + (
                f"; irrelevant at rank {', '.join(map(str, irrelevant))}" if irrelevant else ""
            )
            out[i] = EvalResult(
                score=round(score, 4),
                label="relevant_context" if passed else "irrelevant_context",
                passed=passed,
                explanation=expl,
                details={
                    "num_docs": n,
                    "num_relevant": int(sum(rel)),
                    "doc_relevance": [round(p, 4) for p in probs],
                },
            )
        return out
