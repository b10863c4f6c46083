"""What every evaluator takes and gives: :class:`EvalCase` in, :class:`EvalResult` out.

An evaluator judges cases, not spans: the same evaluator scores live spans (the runner builds
a case from each sampled span) and rows of an offline dataset (``sightline eval run``). It does
no store IO; the runner reads, batches, and appends the results as scores.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["EvalCase", "EvalResult", "Evaluator"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EvalCase:
    """One answer to judge, with what it was asked and what it was given."""

    question: str | None = None
    """The user's question (the span's ``input``, or the dataset row's ``question``)."""
    answer: str | None = None
    """The model's answer (the span's ``output``, or the row's ``answer``)."""
    contexts: tuple[str, ...] = ()
    """Retrieved documents, in rank order."""
    reference: str | None = None
    """A reference answer (offline datasets)."""
    messages: tuple[Mapping[str, Any], ...] = ()
    """Input messages (``{"role", "content"}``) when the case comes from an LLM span."""
    previous_answer: str | None = None
    """The previous answer of the same session, for evaluators of follow-up turns."""
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Anything else an evaluator may use (model, feature, span kind...)."""
    case_id: str | None = None
    """Dataset row id, or ``trace_id:span_id`` for a live span."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EvalResult:
    """An evaluator's judgement of one case.

    ``score`` is in [0, 1] with 1 = good (faithful, relevant, safe...), so every score reads the
    same way on a chart; ``label`` names the outcome (``hallucination``, ``toxic``...).
    """

    score: float | None
    label: str | None = None
    passed: bool | None = None
    explanation: str | None = None
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Extra figures (e.g. ``rouge_l``, ``bleu``, per-claim support), kept with the score."""


@runtime_checkable
class Evaluator(Protocol):
    """Judges a batch of cases. Registered under the ``sightline.evaluators`` entry-point group.

    ``evaluate`` returns one item per case, in order; ``None`` where the evaluator does not
    apply (no retrieved context for ``faithfulness``, no question for ``relevance``). It may
    raise: the runner then marks this evaluator's scores of the batch as failed and the other
    evaluators go on.
    """

    name: str
    """The score name stored, and the metric it feeds (``faithfulness``, ``relevance``...)."""
    version: str
    """Bumped whenever the evaluator would score the same case differently."""

    def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
        """Judge ``cases``."""
        ...
