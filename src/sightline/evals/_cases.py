"""Cases from live spans: what an LLM span was asked, answered, and given to read.

In a RAG trace the LLM span rarely carries the retrieved documents: the retrieval (and rerank)
spans of the same trace do. And its prompt often wraps the user's question in a template with
the context pasted in; the trace's root span usually holds the question as the user asked it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sightline.evals.base import EvalCase
from sightline.model import Span

__all__ = ["CONTEXT_KINDS", "case_from_span", "cases_from_trace", "is_guardrail_hit"]

CONTEXT_KINDS = ("retrieval", "rerank")
"""Span kinds whose documents are the context of the LLM spans that start after them."""

_METADATA_FIELDS = (
    "model",
    "provider",
    "kind",
    "name",
    "status",
    "feature",
    "prompt_name",
    "prompt_version",
    "variant",
    "user_id",
    "session_id",
    "tenant_id",
    "environment",
    "service_name",
)


_LOGPROBS = "sightline.logprobs."
"""The SDK's log-probability summary (sightline.sdk._logprobs), per key without the prefix."""


def _root(spans: Sequence[Span]) -> Span | None:
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if not s.parent_span_id or s.parent_span_id not in ids]
    return min(roots, key=lambda s: s.start_time) if roots else None


def _question(span: Span, root: Span | None) -> str | None:
    q = span.input
    if root is None or root is span or not root.input:
        return q
    # The root's input is the question as the user asked it; the LLM span's last user message
    # is often a template holding it (plus the context). Prefer the root's when it is inside.
    if q is None or root.input.strip() in q:
        return root.input
    return q


def _contexts(span: Span, spans: Sequence[Span]) -> tuple[str, ...]:
    before = [
        s
        for s in spans
        if s.kind in CONTEXT_KINDS and s.documents and s.start_time <= span.start_time
    ]
    reranks = [s for s in before if s.kind == "rerank"]
    # A reranker's output is the order the model saw; without one, every retrieval in order.
    sources = [max(reranks, key=lambda s: s.start_time)] if reranks else before
    out: list[str] = []
    seen: set[str] = set()
    for s in [span, *sources]:
        for d in s.documents or ():
            text = d.get("content") if isinstance(d, dict) else None
            if isinstance(text, str) and text.strip() and text not in seen:
                seen.add(text)
                out.append(text)
    return tuple(out)


def _messages(span: Span) -> tuple[dict[str, Any], ...]:
    return tuple(
        {"role": m.get("role"), "content": m.get("content")}
        for m in span.input_messages or ()
        if isinstance(m, dict)
    )


def case_from_span(span: Span, trace: Sequence[Span] = ()) -> EvalCase:
    """The case of one span, using the other spans of its trace for question and contexts."""
    spans = list(trace) or [span]
    meta: dict[str, Any] = {f: getattr(span, f) for f in _METADATA_FIELDS}
    meta["trace_id"] = span.trace_id
    meta["span_id"] = span.span_id
    a = span.attributes
    logprobs = {
        k[len(_LOGPROBS) :]: v for k, v in a.items() if k.startswith(_LOGPROBS)
    }  # fmt: skip
    if logprobs:
        meta["logprobs"] = logprobs
    if a.get("sightline.samples") is not None:
        meta["samples"] = a["sightline.samples"]
    return EvalCase(
        question=_question(span, _root(spans)),
        answer=span.output,
        contexts=_contexts(span, spans),
        messages=_messages(span),
        metadata=meta,
        case_id=f"{span.trace_id}:{span.span_id}",
    )


def cases_from_trace(
    spans: Sequence[Span], *, kinds: Sequence[str] = ("llm",)
) -> list[tuple[Span, EvalCase]]:
    """A case for each span of ``kinds`` in a trace (spans in start order)."""
    return [(s, case_from_span(s, spans)) for s in spans if s.kind in kinds]


def is_guardrail_hit(span: Span) -> bool:
    """A guardrail span that blocked or flagged its content."""
    if span.kind != "guardrail":
        return False
    a = span.attributes
    return any(
        a.get(k) in (True, "true", "True", 1)
        for k in ("sightline.guardrail.blocked", "sightline.guardrail.triggered")
    )
