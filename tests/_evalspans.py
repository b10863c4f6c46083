"""Span records for evaluation tests: RAG traces written straight into a real store."""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime
from typing import Any

from sightline.store import DuckDBStore
from sightline.store._arrow import records_to_table

_T0 = int(datetime.now(UTC).timestamp() * 1e9)
_ids = itertools.count(1)


def _ms(n: float) -> int:
    return int(n * 1e6)


def span(
    project_id: str,
    trace_id: str,
    *,
    kind: str,
    name: str,
    parent: str | None = None,
    start_ms: float = 0,
    dur_ms: float = 10,
    **fields: Any,
) -> dict[str, Any]:
    start = _T0 + _ms(start_ms)
    return {
        "project_id": project_id,
        "trace_id": trace_id,
        "span_id": f"{next(_ids):016x}",
        "parent_span_id": parent,
        "name": name,
        "kind": kind,
        "start_ns": start,
        "end_ns": start + _ms(dur_ms),
        "duration_ms": dur_ms,
        "status": fields.pop("status", "ok"),
        **fields,
    }


def rag_trace(
    project_id: str,
    question: str,
    docs: list[str],
    answer: str,
    *,
    status: str = "ok",
    session_id: str | None = None,
    guardrail_blocked: bool | None = None,
    model: str = "gpt-4o-mini",
    start_ms: float = 0,
) -> list[dict[str, Any]]:
    """Root chain (the question) > retrieval (the documents) > LLM (templated prompt, answer)."""
    tid = secrets.token_hex(16)
    root = span(
        project_id,
        tid,
        kind="chain",
        name="rag-request",
        start_ms=start_ms,
        dur_ms=100,
        input=question,
        output=answer,
        session_id=session_id,
    )
    ret = span(
        project_id,
        tid,
        kind="retrieval",
        name="retrieve",
        parent=root["span_id"],
        start_ms=start_ms + 1,
        documents=[
            {"id": f"d{i}", "content": d, "score": 1.0 - i / 10, "metadata": None}
            for i, d in enumerate(docs)
        ],
        session_id=session_id,
    )
    prompt = "Context:\n" + "\n".join(docs) + f"\n\nQuestion: {question}"
    llm = span(
        project_id,
        tid,
        kind="llm",
        name=f"chat {model}",
        parent=root["span_id"],
        start_ms=start_ms + 20,
        dur_ms=50,
        status=status,
        model=model,
        input=prompt,
        input_messages=[{"role": "user", "content": prompt}],
        output=None if status == "error" else answer,
        session_id=session_id,
        feature="support",
    )
    out = [root, ret, llm]
    if guardrail_blocked is not None:
        out.append(
            span(
                project_id,
                tid,
                kind="guardrail",
                name="safety",
                parent=root["span_id"],
                start_ms=start_ms + 80,
                attributes={"sightline.guardrail.blocked": guardrail_blocked},
            )
        )
    return out


def insert(store: DuckDBStore, records: list[dict[str, Any]]) -> None:
    """One commit, like the group-commit writer's."""
    store.insert_batches([records_to_table(records)])
