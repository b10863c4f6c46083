from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from sightline.evals._embed import Embedder, default_embedder
from sightline.evals.base import EvalCase, EvalResult

__all__ = ["ReferenceSimilarity", "rouge_l"]

_WORD = re.compile(r"\w+", re.UNICODE)


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 over lowercased word tokens (longest common subsequence).

    Written here rather than taken from ``rouge-score``, which pulls in nltk and absl for
    these dozen lines.
    """
    c = _WORD.findall(candidate.lower())
    r = _WORD.findall(reference.lower())
    if not c or not r:
        return 0.0
    prev = [0] * (len(r) + 1)
    for tc in c:
        cur = [0]
        for j, tr in enumerate(r):
            cur.append(prev[j] + 1 if tc == tr else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, rec = lcs / len(c), lcs / len(r)
    return 2 * p * rec / (p + rec)


class ReferenceSimilarity:
    """How close is the answer to a reference answer? For offline datasets with references.

    The score is the embedding cosine of answer and reference (clipped to [0, 1]), passing at
    ``threshold``; ROUGE-L F1 and sentence BLEU (``sacrebleu``, 0-1) are kept in ``details``,
    since they reward the same words rather than the same meaning. Cases without a reference
    are skipped, so it is off by default online (live spans have no reference).
    """

    name = "reference_similarity"
    version = "1"
    requires_options = True

    def __init__(self, *, threshold: float = 0.75, embedder: Embedder | None = None) -> None:
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
        """Compare each case's answer with its reference."""
        import sacrebleu

        out: list[EvalResult | None] = [None] * len(cases)
        idx = [i for i, c in enumerate(cases) if c.reference and c.answer is not None]
        if not idx:
            return out
        texts = [str(cases[i].answer) for i in idx] + [str(cases[i].reference) for i in idx]
        vecs = self.embedder.embed(texts)
        cos = np.sum(vecs[: len(idx)] * vecs[len(idx) :], axis=1)
        for i, c in zip(idx, cos, strict=True):
            ans, ref = str(cases[i].answer), str(cases[i].reference)
            score = float(min(max(float(c), 0.0), 1.0))
            bleu = sacrebleu.sentence_bleu(ans, [ref]).score / 100.0
            rl = rouge_l(ans, ref)
            passed = score >= self.threshold
            out[i] = EvalResult(
                score=round(score, 4),
                label="similar" if passed else "different",
                passed=passed,
                explanation=f"cosine {score:.2f}, ROUGE-L {rl:.2f}, BLEU {bleu:.2f}",
                details={
                    "cosine": round(score, 4),
                    "rouge_l": round(rl, 4),
                    "bleu": round(bleu, 4),
                },
            )
        return out
