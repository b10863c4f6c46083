"""A compact summary of a response's token log-probabilities (OpenAI ``logprobs``, vLLM).

Keeping every token's log-probability would multiply a span's size by the length of the answer;
three numbers say how sure the model was:

- ``sightline.logprobs.mean``: mean of the chosen tokens' log-probabilities (natural log);
  ``exp(mean)`` is the geometric mean of their probabilities, the model's *confidence*;
- ``sightline.logprobs.min``: the least likely token chosen (a single guessed number or name);
- ``sightline.logprobs.entropy_mean``: mean per-token entropy (nats) of the top-k alternatives
  the provider returned (``top_logprobs``), where it returned some. The probability mass the
  top-k leave out counts as one more outcome, so this is a lower bound of the true entropy;
- ``sightline.logprobs.num_tokens``: tokens summarised.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["ATTR_ENTROPY", "ATTR_MEAN", "ATTR_MIN", "ATTR_NUM", "TokenLogprob", "summarise"]

ATTR_MEAN = "sightline.logprobs.mean"
ATTR_MIN = "sightline.logprobs.min"
ATTR_ENTROPY = "sightline.logprobs.entropy_mean"
ATTR_NUM = "sightline.logprobs.num_tokens"

TokenLogprob = tuple[float, Sequence[float]]
"""One token: its log-probability and the log-probabilities of the top alternatives."""


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def tokens_of(logprobs: Any) -> list[TokenLogprob]:
    """The tokens of an OpenAI-style ``choice.logprobs`` (``{"content": [...]}``)."""
    out: list[TokenLogprob] = []
    for item in _get(logprobs, "content") or ():
        lp = _get(item, "logprob")
        if not isinstance(lp, int | float) or isinstance(lp, bool) or math.isnan(lp):
            continue
        top = [
            float(t)
            for alt in _get(item, "top_logprobs") or ()
            if isinstance(t := _get(alt, "logprob"), int | float) and not isinstance(t, bool)
        ]
        out.append((float(lp), top))
    return out


def entropy(top: Iterable[float]) -> float | None:
    """Entropy (nats) of one token's top-k log-probabilities, the rest as one more outcome."""
    probs = [math.exp(min(lp, 0.0)) for lp in top]
    if not probs:
        return None
    rest = max(0.0, 1.0 - sum(probs))
    return -sum(p * math.log(p) for p in [*probs, rest] if p > 0.0)


def summarise(tokens: Sequence[TokenLogprob]) -> dict[str, float | int]:
    """The span attributes summarising ``tokens`` (empty when there are none).

    Example:
        >>> s = summarise([(-0.1, [-0.1, -2.5]), (-0.7, [])])
        >>> round(s["sightline.logprobs.mean"], 3), s["sightline.logprobs.min"]
        (-0.4, -0.7)
    """
    if not tokens:
        return {}
    lps = [max(lp, -1e4) for lp, _ in tokens]  # -inf (a forced token) would poison the mean
    out: dict[str, float | int] = {
        ATTR_MEAN: sum(lps) / len(lps),
        ATTR_MIN: min(lps),
        ATTR_NUM: len(lps),
    }
    ents = [e for _, top in tokens if (e := entropy(top)) is not None]
    if ents:
        out[ATTR_ENTROPY] = sum(ents) / len(ents)
    return out
