"""``self_consistency``: do N answers sampled for the same prompt agree with one another?

A model that knows the answer says the same thing each time it is asked; one that guesses
says something different each time (SelfCheckGPT, Manakul et al. 2023). With no retrieved
context to check an answer against, disagreement between samples is the hallucination signal.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sightline.evals.base import EvalCase, EvalResult
from sightline.evals.evaluators._consistency import negation_scopes
from sightline.evals.evaluators._text import content_stems, names, numbers

if TYPE_CHECKING:
    from sightline.evals._embed import Embedder

__all__ = ["SampleAgreement", "SelfConsistency", "self_consistency"]


@dataclasses.dataclass(frozen=True, slots=True)
class SampleAgreement:
    """How much a set of sampled answers agree; every figure in [0, 1], 1 = they all agree."""

    score: float
    """Mean over pairs of ``embedding_weight``·cosine + (1 − weight)·lexical, 0 for a conflict."""
    embedding: float
    """Mean pairwise cosine similarity of the answers' sentence embeddings (floored at 0)."""
    lexical: float
    """Mean pairwise overlap of the answers' content-word stems: shared / the smaller set's."""
    num_pairs: int
    num_conflicts: int
    """Pairs that state different numbers or names, or one denies what the other says."""
    conflicts: list[str]


def _conflict(a: str, b: str) -> str | None:
    """Why two answers cannot both be right, on lexical evidence; None when none is seen."""
    na = {round(v, 6) for v, _ in numbers(a)}
    nb = {round(v, 6) for v, _ in numbers(b)}
    if na and nb and not na & nb:
        return "different numbers"
    shared = content_stems(a) & content_stems(b)
    ma, mb = names(a), names(b)
    # names() skips a sentence's first word (capitalised by grammar); the other answer tells
    # whether it is a name: "Australia's capital is..." next to "...capital of Australia".
    ma, mb = ma | (_initial(a) & mb), mb | (_initial(b) & ma)
    # "The capital is Canberra" / "The capital is Sydney": the same statement about another
    # name. Names on one side only ("It was finished for the World Fair") add, not contradict.
    if ma - mb and mb - ma and len(shared - ma - mb) >= 1 and len(shared) >= 2:
        return "different names"
    # A word both talk about, negated on one side only: "cannot be refunded" / "refundable".
    neg_a = set().union(*negation_scopes(a))
    neg_b = set().union(*negation_scopes(b))
    if len(shared) >= 2 and (shared & neg_a) ^ (shared & neg_b):
        return "one denies what the other states"
    return None


def _initial(text: str) -> set[str]:
    m = re.match(r"\W*([A-Z][A-Za-z'’-]*)", text)
    if m is None:
        return set()
    w = m.group(1).replace("’", "'")
    return {(w[:-2] if w.endswith("'s") else w).lower()}


def self_consistency(
    answers: Sequence[str],
    *,
    embedder: Embedder | None = None,
    embedding_weight: float = 0.5,
) -> SampleAgreement | None:
    """The agreement of ``answers`` (None with fewer than two non-empty answers).

    Example:
        ```python
        from sightline.evals.evaluators import self_consistency

        same = ["Paris is the capital of France."] * 3
        assert self_consistency(same).score > 0.9
        ```
    """
    texts = [a.strip() for a in answers if a and a.strip()]
    if len(texts) < 2:
        return None
    if embedder is None:
        from sightline.evals._embed import default_embedder

        embedder = default_embedder()
    vecs = embedder.embed(texts)
    stems = [content_stems(t) for t in texts]
    pairs = list(itertools.combinations(range(len(texts)), 2))
    cos_sum = lex_sum = score_sum = 0.0
    conflicts: list[str] = []
    for i, j in pairs:
        cos = max(0.0, float(vecs[i] @ vecs[j]))
        smaller = min(len(stems[i]), len(stems[j]))
        lex = len(stems[i] & stems[j]) / smaller if smaller else 1.0
        cos_sum += cos
        lex_sum += lex
        why = _conflict(texts[i], texts[j])
        if why is not None:
            conflicts.append(f"answers {i + 1} and {j + 1}: {why}")
        else:
            score_sum += embedding_weight * cos + (1.0 - embedding_weight) * lex
    n = len(pairs)
    return SampleAgreement(
        score=score_sum / n,
        embedding=cos_sum / n,
        lexical=lex_sum / n,
        num_pairs=n,
        num_conflicts=len(conflicts),
        conflicts=conflicts,
    )


class SelfConsistency:
    """Scores the agreement of a span's sampled answers (:func:`self_consistency`).

    The samples are the case's ``metadata["samples"]`` (the span attribute
    ``sightline.samples``: a JSON list of the other answers to the same prompt), together with
    the answer itself. Fails as ``inconsistent`` below ``threshold``. Not applicable (``None``)
    without at least one sample.
    """

    name = "self_consistency"
    # 2: shared helpers changed ("-tion" nouns stem with their verb; negation scopes stop at
    # modals and "unless", "only if" negates twice), so contradiction checks can differ.
    version = "2"
    requires_options = False

    def __init__(
        self,
        *,
        threshold: float = 0.45,
        embedding_weight: float = 0.5,
        embedder: Embedder | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0 or not 0.0 <= embedding_weight <= 1.0:
            raise ValueError("threshold and embedding_weight must be in [0, 1]")
        self.threshold = threshold
        self.embedding_weight = embedding_weight
        self._embedder = embedder

    def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
        """Judge each case's samples."""
        out: list[EvalResult | None] = []
        for case in cases:
            samples = _samples(case.metadata.get("samples"))
            answers = ([case.answer] if case.answer else []) + samples
            if not samples:
                out.append(None)
                continue
            ag = self_consistency(
                answers, embedder=self._embedder, embedding_weight=self.embedding_weight
            )
            if ag is None:
                out.append(None)
                continue
            passed = ag.score >= self.threshold
            out.append(
                EvalResult(
                    score=ag.score,
                    label="consistent" if passed else "inconsistent",
                    passed=passed,
                    explanation="; ".join(ag.conflicts) or None,
                    details={
                        "embedding": round(ag.embedding, 4),
                        "lexical": round(ag.lexical, 4),
                        "num_answers": len(answers),
                        "num_conflicts": ag.num_conflicts,
                    },
                )
            )
        return out


def _samples(raw: Any) -> list[str]:
    if isinstance(raw, str):
        import json

        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):  # nested too deeply: not a list of answers
            return []
    if not isinstance(raw, list | tuple):
        return []
    return [s for s in raw if isinstance(s, str) and s.strip()]
