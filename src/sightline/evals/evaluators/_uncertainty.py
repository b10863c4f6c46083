"""``uncertainty``: how sure was the model of its answer, from its token log-probabilities."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sightline.evals.base import EvalCase, EvalResult

__all__ = ["Uncertainty"]


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        return None
    try:
        f = float(v)
    except ValueError:
        return None
    return f if math.isfinite(f) else None


class Uncertainty:
    """Confidence of an answer from the span's log-probability summary (see docs/signals.md).

    score = confidence = exp(mean token log-probability), the geometric mean of the chosen
    tokens' probabilities, in [0, 1] with 1 = sure (the ``uncertainty`` metric is its mean
    1 − score). Labelled ``uncertain`` below ``threshold``. The details keep the summary
    (mean, min, mean entropy). Not applicable (``None``) when the provider returned no
    log-probabilities.

    Example:
        ```python
        from sightline.evals import EvalCase
        from sightline.evals.evaluators import Uncertainty

        case = EvalCase(answer="42", metadata={"logprobs": {"mean": -0.02, "min": -0.05}})
        result = Uncertainty().evaluate([case])[0]
        assert result is not None and result.label == "confident"
        ```
    """

    name = "uncertainty"
    version = "1"
    requires_options = False

    def __init__(self, *, threshold: float = 0.6) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must be in [0, 1]")
        self.threshold = threshold

    def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
        """Judge each case from ``metadata["logprobs"]``."""
        out: list[EvalResult | None] = []
        for case in cases:
            lp = case.metadata.get("logprobs")
            mean = _num(lp.get("mean")) if isinstance(lp, Mapping) else None
            if mean is None or not isinstance(lp, Mapping):
                out.append(None)
                continue
            confidence = math.exp(min(mean, 0.0))
            low = _num(lp.get("min"))
            if low is not None:
                low = min(low, 0.0)  # a log-probability; exp() of a bogus 1000 raised
                # OverflowError, and the whole batch's uncertainty scores were failed with it
            ent = _num(lp.get("entropy_mean"))
            passed = confidence >= self.threshold
            out.append(
                EvalResult(
                    score=confidence,
                    label="confident" if passed else "uncertain",
                    passed=passed,
                    explanation=(
                        f"geometric mean token probability {confidence:.2f}"
                        + (f", least likely token p={math.exp(low):.2f}" if low is not None else "")
                        + (f", mean entropy {ent:.2f} nats" if ent is not None else "")
                    ),
                    details={
                        "mean_logprob": mean,
                        "min_logprob": low,
                        "entropy_mean": ent,
                        "num_tokens": lp.get("num_tokens"),
                    },
                )
            )
        return out
