"""Evaluation results sent as OpenTelemetry GenAI ``gen_ai.evaluation.result`` events.

An evaluator outside Sightline (a CI job, a framework's own evals, a human review tool) can
report its verdict on a GenAI operation with the event the GenAI conventions define: attributes
``gen_ai.evaluation.name`` (required), ``gen_ai.evaluation.score.value``,
``gen_ai.evaluation.score.label``, ``gen_ai.evaluation.explanation`` and ``error.type``,
parented to the span it evaluates. Emitters send it three ways, all read here:

- a span event on the evaluated span (the older Span Events API);
- a log record with that event name, in the evaluated span's context (the Events API);
- a span of its own carrying those attributes, child of the evaluated span (tracing bridges
  that cannot emit events).

Each becomes a :class:`~sightline.model.Score` (source ``evaluator``), with the same metrics,
dashboard and alerts as the scores Sightline's own evaluators write. The decoders return plain
dicts (cheap to send back from a decode process); :func:`to_scores` makes the scores, with ids
derived from their content, so a retried request stores each once.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sightline.model import MAX_SCORE_NAME_CHARS, Score

__all__ = [
    "EVALUATION_EVENT",
    "EVALUATION_NAME",
    "MAX_EVALUATIONS_PER_REQUEST",
    "evaluation",
    "to_scores",
]

MAX_EVALUATIONS_PER_REQUEST = 1000
"""Evaluation results kept from one request; the others are counted ``evaluations_dropped``
(each is a row written after the request's commit, in a transaction of its own)."""

EVALUATION_EVENT = "gen_ai.evaluation.result"
EVALUATION_NAME = "gen_ai.evaluation.name"
_VALUE = "gen_ai.evaluation.score.value"
_LABEL = "gen_ai.evaluation.score.label"
_EXPLANATION = "gen_ai.evaluation.explanation"
_MAX_NAME = MAX_SCORE_NAME_CHARS
_MAX_LABEL = 128
_MAX_EXPLANATION = 8192
_PASS_LABELS = frozenset(("pass", "passed", "true", "yes", "correct", "relevant", "good"))
_FAIL_LABELS = frozenset(("fail", "failed", "false", "no", "incorrect", "not_relevant", "bad"))
# Nanoseconds: 2000-01-01 to 2300-01-01, what the store can hold and a real event has.
_MIN_NS, _MAX_NS = 946_684_800 * 10**9, 10_413_792_000 * 10**9


def evaluation(
    trace_id: str,
    span_id: str | None,
    time_ns: int,
    attrs: dict[str, Any],
    redact: Callable[[str], str | None] | None = None,
) -> dict[str, Any] | None:
    """The score an evaluation event's attributes describe, or None if it names none.

    ``redact``: the project's redaction of attribute text, applied to the label and the
    explanation (the evaluator's reasoning may quote the answer it judged).
    """
    name = attrs.get(EVALUATION_NAME)
    if not isinstance(name, str) or not name.strip():
        return None
    value = attrs.get(_VALUE)
    if isinstance(value, bool) or not isinstance(value, int | float):
        value = None
    elif not math.isfinite(value):
        value = None
    label = _text(attrs.get(_LABEL), _MAX_LABEL, redact)
    explanation = _text(attrs.get(_EXPLANATION), _MAX_EXPLANATION, redact)
    if value is None and label is None and explanation is None:
        return None
    low = label.lower() if label else None
    passed = True if low in _PASS_LABELS else False if low in _FAIL_LABELS else None
    details = {
        k: attrs[k]
        for k in ("error.type", "gen_ai.response.id")
        if isinstance(attrs.get(k), str) and attrs[k]
    }
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "time_ns": time_ns,
        "name": name.strip()[:_MAX_NAME],
        "value": float(value) if value is not None else None,
        "label": label,
        "passed": passed,
        "explanation": explanation,
        "details": details or None,
    }


def _text(v: Any, limit: int, redact: Callable[[str], str | None] | None) -> str | None:
    if v is None or v == "":
        return None
    s = (v if isinstance(v, str) else str(v))[:limit]
    if redact is not None:
        out = redact(s)
        return out if out is not None else "<REDACTED>"
    return s


def to_scores(project_id: str, found: Sequence[dict[str, Any]], now_ns: int) -> list[Score]:
    """Scores of ``project_id`` from :func:`evaluation`'s dicts.

    A score's time is its event's (the time the verdict was given), else ``now_ns``; its id is
    a hash of the project and the whole event, so the same event sent again is the same score.
    """
    out = []
    for f in found:
        t = f["time_ns"] if _MIN_NS <= f["time_ns"] < _MAX_NS else now_ns
        h = hashlib.blake2b(digest_size=12)
        for part in (project_id, f["trace_id"], f["span_id"] or "", f["name"], str(f["time_ns"]),
                     repr(f["value"]), f["label"] or "", f["explanation"] or ""):  # fmt: skip
            b = part.encode("utf-8", "surrogatepass")
            h.update(len(b).to_bytes(4, "big"))
            h.update(b)
        out.append(
            Score(
                project_id=project_id,
                score_id=f"otel-{h.hexdigest()}",
                trace_id=f["trace_id"],
                span_id=f["span_id"],
                name=f["name"],
                value=f["value"],
                label=f["label"],
                passed=f["passed"],
                explanation=f["explanation"],
                source="evaluator",
                evaluator="otel",
                created_at=datetime.fromtimestamp(t / 1e9, UTC),
                details=f["details"],
            )
        )
    return out
