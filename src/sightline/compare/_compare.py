"""Put two samples side by side, metric by metric, each with its significance test."""

from __future__ import annotations

from typing import Any

from sightline.compare._stats import holm, mann_whitney, two_proportions
from sightline.store._analysis_records import GroupSample

__all__ = ["compare_groups"]


def _continuous(name: str, a: list[float], b: list[float], alpha: float) -> dict[str, Any]:
    r = mann_whitney(a, b)
    ma, mb = r["a"]["median"], r["b"]["median"]
    return {
        "metric": name,
        "type": "continuous",
        **r,
        "difference": None if ma is None or mb is None else mb - ma,
        "significant": r["p_value"] is not None and r["p_value"] < alpha,
    }


def _rate(name: str, xa: int, na: int, xb: int, nb: int, alpha: float) -> dict[str, Any]:
    r = two_proportions(xa, na, xb, nb)
    return {
        "metric": name,
        "type": "rate",
        **r,
        "significant": r["p_value"] is not None and r["p_value"] < alpha,
    }


def compare_groups(a: GroupSample, b: GroupSample, *, alpha: float = 0.05) -> list[dict[str, Any]]:
    """Latency, cost, tokens, errors, every score and feedback of A against B.

    Continuous metrics carry medians and ``difference`` = median B − median A; rates carry
    ``difference`` = rate B − rate A. ``significant`` is ``p_value < alpha`` for that metric
    alone; ``p_value_holm`` is the Holm–Bonferroni adjustment over every metric tested, and
    ``significant_holm`` holds it to alpha (see docs/prompts.md).
    """
    out = [
        _continuous("latency_ms", a.latency_ms, b.latency_ms, alpha),
        _continuous("cost_usd", a.cost_usd, b.cost_usd, alpha),
        _continuous("output_tokens", a.output_tokens, b.output_tokens, alpha),
        _rate("error_rate", a.num_errors, a.num_spans, b.num_errors, b.num_spans, alpha),
    ]
    for name in sorted(set(a.scores) | set(b.scores)):
        out.append(
            _continuous(f"score.{name}", a.scores.get(name, []), b.scores.get(name, []), alpha)
        )
    for name in sorted(set(a.passed) | set(b.passed)):
        pa, pb = a.passed.get(name, []), b.passed.get(name, [])
        out.append(_rate(f"pass_rate.{name}", sum(pa), len(pa), sum(pb), len(pb), alpha))
    out.append(_continuous("feedback_score", a.feedback, b.feedback, alpha))
    out.append(
        _rate(
            "feedback_positive_rate",
            sum(1 for v in a.feedback if v > 0),
            len(a.feedback),
            sum(1 for v in b.feedback if v > 0),
            len(b.feedback),
            alpha,
        )
    )
    for m, adjusted in zip(out, holm([m["p_value"] for m in out]), strict=True):
        m["p_value_holm"] = adjusted
        m["significant_holm"] = adjusted is not None and adjusted < alpha
    return out
