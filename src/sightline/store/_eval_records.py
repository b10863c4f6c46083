"""Typed queries and records of the evaluation stage's store methods (scores, datasets)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sightline.model import Score, Span

__all__ = [
    "AgreementPair",
    "Dataset",
    "EvalCursor",
    "ScorePage",
    "ScoreQuery",
    "SeqSpan",
    "SeqSpanKey",
    "SessionTurn",
    "agreement_pairs",
]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ScoreQuery:
    """Filters of ``GET /api/v1/scores``; ``start``/``end`` bound ``created_at``."""

    project_id: str
    trace_id: str | None = None
    span_id: str | None = None
    name: str | None = None
    source: str | None = None
    label: str | None = None
    evaluator: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = 100
    cursor: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ScorePage:
    """One page of scores, newest first."""

    scores: list[Score]
    next_cursor: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class SeqSpan:
    """A span with the commit that stored it (``spans.ingest_seq``)."""

    ingest_seq: int
    span: Span


@dataclasses.dataclass(frozen=True, slots=True)
class SeqSpanKey:
    """What identifies a span in the commit order, and what decides whether it must be scored.

    ``list_span_keys_after`` returns these instead of whole spans: reading the text columns
    (prompt, answer, messages, attributes) of every span is what skipping under load costs.
    """

    ingest_seq: int
    project_id: str
    trace_id: str
    span_id: str
    status: str
    start_time: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class SessionTurn:
    """One span of a session, as much of it as finding the previous turn needs."""

    session_id: str
    kind: str
    start_time: datetime
    trace_id: str
    span_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class EvalCursor:
    """A position in the commit order of spans.

    ``pos`` is ``project_id/trace_id/span_id`` of the last span read inside commit ``seq``, so
    one commit of 50,000 spans can be read in several batches; ``""`` means commit ``seq`` was
    read whole.
    """

    seq: int
    pos: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class AgreementPair:
    """An evaluator's verdict and a person's on the same span (the latest of each)."""

    name: str
    trace_id: str
    span_id: str
    evaluator_passed: bool
    evaluator_label: str | None
    human_passed: bool
    human_label: str | None


def agreement_pairs(rows: Iterable[Sequence[Any]]) -> list[AgreementPair]:
    """One pair per evaluator score from the stores' join rows.

    A row is ``(name, trace_id, span_id, evaluator passed, evaluator label, human passed, human
    label, human span_id)``; the human label is on the span or (span_id NULL) on its whole
    trace. When a span has both, the label on the span wins: a span is counted once, with one
    human verdict.
    """
    out: dict[tuple[str, str, str], AgreementPair] = {}
    for r in rows:
        key = (r[0], r[1], r[2])
        if key in out and r[7] is None:
            continue
        out[key] = AgreementPair(r[0], r[1], r[2], bool(r[3]), r[4], bool(r[5]), r[6])
    return list(out.values())


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Dataset:
    """A saved evaluation dataset (rows in the ``sightline eval run`` JSONL format)."""

    project_id: str
    dataset_id: str
    name: str
    filter: dict[str, Any]
    num_rows: int
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        d = dataclasses.asdict(self)
        d["created_at"] = self.created_at.isoformat()
        return d
