"""``descriptors``: per-response text statistics (tone, reading level, language...) for drift."""

from __future__ import annotations

from collections.abc import Sequence

from sightline.evals.base import EvalCase, EvalResult

__all__ = ["Descriptors"]


class Descriptors:
    """Describes each answer (:func:`sightline.evals._descriptors.describe`); judges nothing.

    The score is the tone, (sentiment + 1) / 2 in [0, 1] with 1 = positive; the label is the
    language; ``details`` holds every descriptor. Metrics (``sentiment``, ``reading_level``,
    ``json_share``...) and the ``descriptors`` drift detector read them. ``passed`` is None:
    a descriptor is a measurement, not a verdict. Not applicable (``None``) without an answer.
    """

    name = "descriptors"
    version = "1"
    requires_options = False

    def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
        """Describe each case's answer."""
        from sightline.evals._descriptors import describe

        out: list[EvalResult | None] = []
        for case in cases:
            if not (case.answer or "").strip():
                out.append(None)
                continue
            d = describe(case.answer or "")
            out.append(
                EvalResult(
                    score=(d["sentiment"] + 1.0) / 2.0,
                    label=d["language"],
                    passed=None,
                    details=d,
                )
            )
        return out
