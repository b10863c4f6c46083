"""Agreement of evaluators with human labels: accuracy and Cohen's kappa ("validate your judge")."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sightline.store._eval_records import AgreementPair

__all__ = ["HUMAN_LABELS", "Agreement", "agreement", "agreement_by_evaluator", "human_passed"]

HUMAN_LABELS: dict[str, bool] = {
    "correct": True,
    "incorrect": False,
    "harmful": False,
    "off-topic": False,
    "legitimate": True,
}
"""The labels people give, and whether each means the answer passed. ``legitimate`` reviews
a guardrail's block: the content was fine (the block a false positive); ``harmful`` confirms it."""


def human_passed(label: str | None, value: float | None, *, threshold: float = 0.5) -> bool | None:
    """Whether a human label (or a rubric score in [0, 1]) says the answer passed."""
    if label is not None and label in HUMAN_LABELS:
        return HUMAN_LABELS[label]
    if value is not None:
        return value >= threshold
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class Agreement:
    """How often an evaluator's verdict (passed) matches people's, beyond chance."""

    name: str
    num_pairs: int
    accuracy: float | None
    kappa: float | None
    """Cohen's kappa; None when undefined (both raters always gave the same single verdict)."""
    true_pass: int
    true_fail: int
    false_pass: int
    """The evaluator passed what people failed."""
    false_fail: int
    """The evaluator failed what people passed."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return dataclasses.asdict(self)


def agreement(name: str, pairs: Iterable[tuple[bool, bool]]) -> Agreement:
    """Agreement of (evaluator passed, human passed) pairs."""
    tp = tn = fp = fn = 0
    for ev, hu in pairs:
        if ev and hu:
            tp += 1
        elif not ev and not hu:
            tn += 1
        elif ev and not hu:
            fp += 1
        else:
            fn += 1
    n = tp + tn + fp + fn
    if n == 0:
        return Agreement(name, 0, None, None, 0, 0, 0, 0)
    po = (tp + tn) / n
    # chance agreement from each rater's own pass rate
    pe = ((tp + fp) / n) * ((tp + fn) / n) + ((tn + fn) / n) * ((tn + fp) / n)
    kappa = None if pe >= 1.0 else (po - pe) / (1.0 - pe)
    return Agreement(
        name,
        n,
        round(po, 4),
        None if kappa is None else round(kappa, 4),
        tp,
        tn,
        fp,
        fn,
    )


def agreement_by_evaluator(pairs: Sequence[AgreementPair]) -> list[Agreement]:
    """One :class:`Agreement` per score name, sorted by name."""
    by: dict[str, list[tuple[bool, bool]]] = {}
    for p in pairs:
        by.setdefault(p.name, []).append((p.evaluator_passed, p.human_passed))
    return [agreement(name, by[name]) for name in sorted(by)]
