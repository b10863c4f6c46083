"""Attribute names of the LLM tracing conventions, and the mapping from all of them to one record.

Sightline reads, on any span:

- OpenTelemetry GenAI semantic conventions, current names (``gen_ai.provider.name``,
  ``gen_ai.usage.input_tokens``, ``gen_ai.input.messages``...) and the older ones still emitted
  (``gen_ai.system``, ``gen_ai.usage.prompt_tokens``, ``gen_ai.prompt.N.*`` and
  ``gen_ai.completion.N.*`` from OpenLLMetry, and the GenAI span events);
- OpenInference (``openinference.span.kind``, ``llm.*``, ``input.value``, ``output.value``,
  ``retrieval.documents.N.document.*``, ``session.id``, ``user.id``);
- Sightline's own ``sightline.*`` names, which the SDK emits and which win over the others.

The first name of each tuple that a span carries wins; names are listed newest convention first.
This module is pure (no IO, no third-party import) so that the SDK and the server share it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

_json_loads: Callable[[str | bytes], Any]
try:  # orjson is several times faster; the SDK does not require it
    from orjson import loads as _json_loads
except ImportError:  # pragma: no cover
    _json_loads = json.loads

__all__ = [
    "GEN_AI_OPERATION_KINDS",
    "OPENINFERENCE_KINDS",
    "normalise",
]

# -- span kind ---------------------------------------------------------------------------------

SIGHTLINE_KIND = "sightline.span.kind"
OPENINFERENCE_SPAN_KIND = "openinference.span.kind"
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
TRACELOOP_SPAN_KIND = "traceloop.span.kind"
LLM_REQUEST_TYPE = "llm.request.type"

OPENINFERENCE_KINDS: dict[str, str] = {
    "LLM": "llm",
    "RETRIEVER": "retrieval",
    "EMBEDDING": "embedding",
    "RERANKER": "rerank",
    "TOOL": "tool",
    "CHAIN": "chain",
    "AGENT": "agent",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "other",
    "PROMPT": "chain",
    "UNKNOWN": "other",
}
GEN_AI_OPERATION_KINDS: dict[str, str] = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "embeddings": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "invoke_workflow": "chain",
    "plan": "agent",
    "retrieval": "retrieval",
}
_TRACELOOP_KINDS = {
    "workflow": "chain",
    "task": "chain",
    "agent": "agent",
    "tool": "tool",
}
_LLM_REQUEST_TYPES = {
    "chat": "llm",
    "completion": "llm",
    "embedding": "embedding",
    "rerank": "rerank",
}
_KINDS = frozenset(
    ("llm", "retrieval", "embedding", "rerank", "tool", "chain", "agent", "guardrail", "other")
)

# -- scalar fields -----------------------------------------------------------------------------

# field -> attribute names, first present wins.
_STR_FIELDS: dict[str, tuple[str, ...]] = {
    "provider": (
        "sightline.provider",
        "gen_ai.provider.name",
        "gen_ai.system",
        "llm.provider",
        "llm.system",
    ),
    "request_model": (
        "gen_ai.request.model",
        "llm.request.model",
        "llm.model_name",
        "embedding.model_name",
    ),
    "response_model": ("gen_ai.response.model", "llm.response.model"),
    "user_id": (
        "sightline.user_id",
        "user.id",
        "enduser.id",
        "langfuse.user.id",
        "traceloop.association.properties.user_id",
    ),
    "session_id": (
        "sightline.session_id",
        "session.id",
        "gen_ai.conversation.id",
        "langfuse.session.id",
        "traceloop.association.properties.session_id",
    ),
    "tenant_id": ("sightline.tenant_id", "tenant.id", "traceloop.association.properties.tenant_id"),
    "feature": ("sightline.feature", "traceloop.association.properties.feature"),
    "prompt_name": (
        "sightline.prompt.name",
        "langfuse.prompt.name",
        "gen_ai.prompt.name",
        "traceloop.prompt.key",
    ),
    "prompt_version": (
        "sightline.prompt.version",
        "llm.prompt_template.version",
        "langfuse.prompt.version",
        "traceloop.prompt.version",
    ),
    "variant": ("sightline.variant", "traceloop.association.properties.variant"),
    "environment": (
        "sightline.environment",
        "deployment.environment.name",
        "deployment.environment",
        "langfuse.environment",
    ),
    "operation": (GEN_AI_OPERATION_NAME, LLM_REQUEST_TYPE),
}
_INT_FIELDS: dict[str, tuple[str, ...]] = {
    "input_tokens": (
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
        "llm.usage.prompt_tokens",
    ),
    "output_tokens": (
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
        "llm.usage.completion_tokens",
    ),
    "total_tokens": (
        "gen_ai.usage.total_tokens",
        "llm.usage.total_tokens",
        "llm.token_count.total",
    ),
    "cached_input_tokens": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "llm.token_count.prompt_details.cache_read",
        "gen_ai.usage.cached_tokens",
    ),
    "cache_write_tokens": (
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "llm.token_count.prompt_details.cache_write",
    ),
    "reasoning_tokens": (
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.reasoning_tokens",
        "llm.usage.reasoning_tokens",
        "llm.token_count.completion_details.reasoning",
    ),
    "max_tokens": ("gen_ai.request.max_tokens", "llm.request.max_tokens"),
    "seed": ("gen_ai.request.seed",),
}
_FLOAT_FIELDS: dict[str, tuple[str, ...]] = {
    "temperature": ("gen_ai.request.temperature", "llm.request.temperature"),
    "top_p": ("gen_ai.request.top_p", "llm.request.top_p"),
}
# Time to first token: (attribute, factor to milliseconds).
_TTFT_ATTRS: tuple[tuple[str, float], ...] = (
    ("sightline.ttft_ms", 1.0),
    ("gen_ai.response.time_to_first_chunk", 1000.0),
    ("gen_ai.server.time_to_first_token", 1000.0),
    ("llm.response.time_to_first_token", 1000.0),
)
# Span events whose first occurrence marks the first streamed token.
_FIRST_TOKEN_EVENTS = frozenset(
    (
        "sightline.first_token",
        "gen_ai.first_token",
        "first_token",
        "llm.content.completion.chunk",
        "gen_ai.content.completion.chunk",
    )
)
_STREAMING_ATTRS = ("sightline.streaming", "gen_ai.request.stream", "llm.is_streaming")
_FINISH_REASON_ATTRS = (
    "gen_ai.response.finish_reasons",
    "llm.response.finish_reason",
    "llm.response.stop_reason",
)

# -- text, messages, documents -----------------------------------------------------------------

INPUT_VALUE = "input.value"
OUTPUT_VALUE = "output.value"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
_TEXT_IN = (
    "sightline.input",
    INPUT_VALUE,
    "traceloop.entity.input",
    "gen_ai.prompt",
    "gen_ai.tool.call.arguments",
)
_TEXT_OUT = (
    "sightline.output",
    OUTPUT_VALUE,
    "traceloop.entity.output",
    "gen_ai.completion",
    "gen_ai.tool.call.result",
)
_DOCUMENTS_JSON = ("sightline.documents", "gen_ai.retrieval.documents")
_INVOCATION_PARAMETERS = "llm.invocation_parameters"

# Indexed (flattened) attribute families, decoded into lists.
_INDEXED_PREFIXES = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
    "retrieval.documents.",
    "reranker.output_documents.",
)

# GenAI per-message span events (deprecated, still emitted by OpenLIT and older instrumentors).
_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_CHOICE_EVENT = "gen_ai.choice"
_PROMPT_EVENT = "gen_ai.content.prompt"
_COMPLETION_EVENT = "gen_ai.content.completion"
_EXCEPTION_EVENT = "exception"


def _consumed_names() -> frozenset[str]:
    names: set[str] = {
        SIGHTLINE_KIND,
        OPENINFERENCE_SPAN_KIND,
        TRACELOOP_SPAN_KIND,
        GEN_AI_INPUT_MESSAGES,
        GEN_AI_OUTPUT_MESSAGES,
        GEN_AI_SYSTEM_INSTRUCTIONS,
        _INVOCATION_PARAMETERS,
        "input.mime_type",
        "output.mime_type",
    }
    for table in (_STR_FIELDS, _INT_FIELDS, _FLOAT_FIELDS):
        for keys in table.values():
            names.update(keys)
    names.update(k for k, _ in _TTFT_ATTRS)
    names.update(_STREAMING_ATTRS, _FINISH_REASON_ATTRS, _TEXT_IN, _TEXT_OUT, _DOCUMENTS_JSON)
    return frozenset(names)


_CONSUMED = _consumed_names()


def _as_str(v: Any) -> str:
    return v if isinstance(v, str) else str(v)


def _build_spec() -> dict[str, tuple[str | None, int, Callable[[Any], Any]]]:
    """Attribute name -> (field it fills, rank among that field's names, converter).

    One dict lookup per attribute instead of one per (field, name) pair: this runs for every
    attribute of every span ingested.
    """
    spec: dict[str, tuple[str | None, int, Callable[[Any], Any]]] = {
        k: (None, 0, _as_str) for k in _CONSUMED
    }
    for table, conv in ((_STR_FIELDS, _as_str), (_INT_FIELDS, _as_int), (_FLOAT_FIELDS, _as_float)):
        for field, keys in table.items():
            for rank, k in enumerate(keys):
                spec[k] = (field, rank, conv)
    return spec


Attrs = dict[str, Any]
Event = tuple[str, int, Attrs]
"""A span event as decoded: (name, time in Unix nanoseconds, attributes)."""


def normalise(
    rec: dict[str, Any],
    attrs: Attrs,
    events: list[Event] | None,
    resource: Attrs,
) -> dict[str, Any]:
    """Fill the record ``rec`` from a span's attributes, events and resource attributes.

    ``rec`` arrives holding the envelope (ids, name, times in ``start_ns``/``end_ns``, status)
    and maybe fields set natively; fields already set are kept. Returns the attributes that no
    field took, to be stored as JSON.
    """
    rest: Attrs = {}
    indexed: dict[str, Any] | None = None
    found: dict[str, tuple[int, Callable[[Any], Any], Any]] = {}
    spec_get = _SPEC.get
    for k, v in attrs.items():
        spec = spec_get(k)
        if spec is not None:
            field, rank, conv = spec
            if field is not None and v is not None and v != "":
                prev = found.get(field)
                if prev is None or rank < prev[0]:
                    found[field] = (rank, conv, v)
            continue
        if k.startswith(_INDEXED_PREFIXES):
            if indexed is None:
                indexed = {}
            indexed[k] = v
            continue
        rest[k] = v
    for field, (_, conv, v) in found.items():
        if rec.get(field) is None:
            cv = conv(v)
            if cv is not None:
                rec[field] = cv

    _set_kind(rec, attrs)
    _set_model_and_params(rec, attrs)
    _set_messages(rec, attrs, indexed, events)
    _set_documents(rec, attrs, indexed)
    _set_timing(rec, attrs, events)
    _fix_tokens(rec)
    if events:
        rest["events"] = [{"name": n, "time_ns": t, "attributes": a} for n, t, a in events]
        if rec.get("status") == "error" and not rec.get("status_message"):
            for n, _, a in events:
                if n == _EXCEPTION_EVENT:
                    rec["status_message"] = a.get("exception.message") or a.get("exception.type")
                    break
    for rk, field in (
        ("service.name", "service_name"),
        ("service.version", "service_version"),
        ("deployment.environment.name", "environment"),
        ("deployment.environment", "environment"),
    ):
        if rec.get(field) is None:
            v = resource.get(rk)
            if v is not None:
                rec[field] = str(v)
    return rest


def _set_kind(rec: dict[str, Any], attrs: Attrs) -> None:
    kind = rec.get("kind")
    if kind in _KINDS:
        return
    v = attrs.get(SIGHTLINE_KIND)
    if isinstance(v, str) and v in _KINDS:
        rec["kind"] = v
        return
    v = attrs.get(OPENINFERENCE_SPAN_KIND)
    if isinstance(v, str) and v.upper() in OPENINFERENCE_KINDS:
        rec["kind"] = OPENINFERENCE_KINDS[v.upper()]
        return
    op = attrs.get(GEN_AI_OPERATION_NAME)
    if isinstance(op, str) and op in GEN_AI_OPERATION_KINDS:
        rec["kind"] = GEN_AI_OPERATION_KINDS[op]
        return
    v = attrs.get(LLM_REQUEST_TYPE)
    if isinstance(v, str) and v in _LLM_REQUEST_TYPES:
        rec["kind"] = _LLM_REQUEST_TYPES[v]
        return
    v = attrs.get(TRACELOOP_SPAN_KIND)
    if isinstance(v, str) and v in _TRACELOOP_KINDS:
        rec["kind"] = _TRACELOOP_KINDS[v]
        return
    if rec.get("request_model") or rec.get("response_model"):
        rec["kind"] = "llm"
        return
    rec["kind"] = "other"


def _set_model_and_params(rec: dict[str, Any], attrs: Attrs) -> None:
    params = attrs.get(_INVOCATION_PARAMETERS)
    if params is not None:
        p = _loads(params)
        if isinstance(p, dict):
            if rec.get("request_model") is None and isinstance(p.get("model"), str):
                rec["request_model"] = p["model"]
            for field, key in (("temperature", "temperature"), ("top_p", "top_p")):
                if rec.get(field) is None and p.get(key) is not None:
                    rec[field] = _as_float(p[key])
            for field, key in (("max_tokens", "max_tokens"), ("seed", "seed")):
                if rec.get(field) is None and p.get(key) is not None:
                    rec[field] = _as_int(p[key])
            if rec.get("is_streaming") is None and isinstance(p.get("stream"), bool):
                rec["is_streaming"] = p["stream"]
    if rec.get("model") is None:
        rec["model"] = rec.get("response_model") or rec.get("request_model")
    if rec.get("is_streaming") is None:
        for k in _STREAMING_ATTRS:
            v = attrs.get(k)
            if v is not None:
                rec["is_streaming"] = bool(v)
                break
    if rec.get("finish_reason") is None:
        for k in _FINISH_REASON_ATTRS:
            v = attrs.get(k)
            if v is not None:
                if isinstance(v, list | tuple):
                    v = v[0] if v else None
                if v is not None:
                    rec["finish_reason"] = str(v)
                    break


def _set_timing(rec: dict[str, Any], attrs: Attrs, events: list[Event] | None) -> None:
    if rec.get("ttft_ms") is None:
        for k, factor in _TTFT_ATTRS:
            v = attrs.get(k)
            if v is not None:
                fv = _as_float(v)
                if fv is not None and fv >= 0:
                    rec["ttft_ms"] = fv * factor
                    break
    if rec.get("ttft_ms") is None and events:
        start_ns = rec["start_ns"]
        for name, t, _ in events:
            if name in _FIRST_TOKEN_EVENTS and t >= start_ns:
                rec["ttft_ms"] = (t - start_ns) / 1e6
                break
    if rec.get("tpot_ms") is None and rec.get("ttft_ms") is not None:
        out = rec.get("output_tokens")
        if out is not None and out > 1:
            gen_ms = rec["duration_ms"] - rec["ttft_ms"]
            if gen_ms >= 0:
                rec["tpot_ms"] = gen_ms / (out - 1)


def _fix_tokens(rec: dict[str, Any]) -> None:
    """Bring token counts to one convention: cached within input, reasoning within output.

    OpenTelemetry GenAI and OpenAI count cached tokens inside the input count, Anthropic's API
    counts them apart; some instrumentations pass Anthropic's numbers through unchanged. A cache
    count larger than the input count can only be the exclusive convention, so it is added back.
    The same holds for reasoning tokens against output tokens (Gemini reports them apart).
    """
    inp = rec.get("input_tokens")
    cached = rec.get("cached_input_tokens") or 0
    written = rec.get("cache_write_tokens") or 0
    if inp is not None and cached + written > inp:
        rec["input_tokens"] = inp + cached + written
        rec.setdefault("_notes", []).append("cache_tokens_added_to_input")
    elif inp is None and cached + written:
        rec["input_tokens"] = cached + written
    out = rec.get("output_tokens")
    reasoning = rec.get("reasoning_tokens") or 0
    if out is not None and reasoning > out:
        rec["output_tokens"] = out + reasoning
        rec.setdefault("_notes", []).append("reasoning_tokens_added_to_output")
    if rec.get("total_tokens") is None:
        i, o = rec.get("input_tokens"), rec.get("output_tokens")
        if i is not None or o is not None:
            rec["total_tokens"] = (i or 0) + (o or 0)


# -- messages ----------------------------------------------------------------------------------


def _set_messages(
    rec: dict[str, Any], attrs: Attrs, indexed: dict[str, Any] | None, events: list[Event] | None
) -> None:
    inp: list[dict[str, Any]] | None = rec.get("input_messages")
    out: list[dict[str, Any]] | None = rec.get("output_messages")
    if inp is None:
        inp = _messages_from_json(attrs.get(GEN_AI_INPUT_MESSAGES))
        system = attrs.get(GEN_AI_SYSTEM_INSTRUCTIONS)
        if system is not None:
            sys_msg = {"role": "system", "content": _content_text(_loads(system))}
            inp = [sys_msg, *(inp or [])]
    if out is None:
        out = _messages_from_json(attrs.get(GEN_AI_OUTPUT_MESSAGES))
    if indexed:
        if inp is None:
            inp = _indexed_messages(indexed, "gen_ai.prompt.") or _indexed_messages(
                indexed, "llm.input_messages.", openinference=True
            )
        if out is None:
            out = _indexed_messages(indexed, "gen_ai.completion.") or _indexed_messages(
                indexed, "llm.output_messages.", openinference=True
            )
    if events and (inp is None or out is None):
        ev_in: list[dict[str, Any]] = []
        ev_out: list[dict[str, Any]] = []
        for name, _, a in events:
            role = _MESSAGE_EVENTS.get(name)
            if role is not None:
                ev_in.append(_event_message(a, role))
            elif name == _CHOICE_EVENT:
                msg = _event_message(a, "assistant")
                fr = a.get("finish_reason") or a.get("gen_ai.response.finish_reason")
                if fr is not None:
                    msg["finish_reason"] = str(fr)
                ev_out.append(msg)
            elif name == _PROMPT_EVENT and inp is None:
                inp = _messages_from_json(a.get("gen_ai.prompt"))
            elif name == _COMPLETION_EVENT and out is None:
                out = _messages_from_json(a.get("gen_ai.completion"))
        if inp is None and ev_in:
            inp = ev_in
        if out is None and ev_out:
            out = ev_out
    if inp is not None:
        rec["input_messages"] = inp
    if out is not None:
        rec["output_messages"] = out

    if rec.get("input") is None:
        text = _first_text(attrs, _TEXT_IN)
        if text is None and inp:
            text = _last_text(inp, "user")
        rec["input"] = text
    if rec.get("output") is None:
        text = _first_text(attrs, _TEXT_OUT)
        if text is None and out:
            text = _last_text(out, None)
        rec["output"] = text
    if rec.get("finish_reason") is None and out:
        fr = out[-1].get("finish_reason")
        if fr is not None:
            rec["finish_reason"] = str(fr)


def _messages_from_json(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    data = _loads(value)
    if isinstance(data, dict):
        data = data.get("messages", [data])
    if not isinstance(data, list):
        return [{"role": "user", "content": str(data)}]
    msgs = []
    for m in data:
        if isinstance(m, dict):
            msg = dict(m)
            if "content" not in msg or not isinstance(msg["content"], str):
                msg["content"] = _content_text(msg.get("parts", msg.get("content")))
            msg.setdefault("role", "user")
            msgs.append(msg)
        elif m is not None:
            msgs.append({"role": "user", "content": str(m)})
    return msgs


def _content_text(parts: Any) -> str:
    """Text of a content value: a string, or GenAI/OpenAI-style parts."""
    if parts is None:
        return ""
    if isinstance(parts, str):
        data = _loads(parts) if parts[:1] in ("[", "{") else parts
        if isinstance(data, str):
            return data
        parts = data
    if isinstance(parts, dict):
        parts = [parts]
    if isinstance(parts, list):
        texts = []
        for p in parts:
            if isinstance(p, str):
                texts.append(p)
            elif isinstance(p, dict):
                t = p.get("content", p.get("text"))
                if isinstance(t, str) and p.get("type", "text") in (
                    "text",
                    "input_text",
                    "output_text",
                ):
                    texts.append(t)
        return "\n".join(texts)
    return str(parts)


def _indexed_messages(
    indexed: dict[str, Any], prefix: str, *, openinference: bool = False
) -> list[dict[str, Any]] | None:
    by_index: dict[int, dict[str, Any]] = {}
    for k, v in indexed.items():
        if not k.startswith(prefix):
            continue
        idx_s, _, sub = k[len(prefix) :].partition(".")
        if not idx_s.isdigit() or not sub:
            continue
        msg = by_index.setdefault(int(idx_s), {})
        if openinference:
            if not sub.startswith("message."):
                continue
            sub = sub[len("message.") :]
            if sub.startswith("contents."):
                # message.contents.M.message_content.text
                m_s, _, rest = sub[len("contents.") :].partition(".")
                if rest == "message_content.text" and m_s.isdigit():
                    msg.setdefault("_parts", {})[int(m_s)] = v
                continue
            if sub.startswith("tool_calls."):
                msg.setdefault("tool_calls_flat", {})[sub[len("tool_calls.") :]] = v
                continue
        msg[sub] = v
    if not by_index:
        return None
    msgs = []
    for i in sorted(by_index):
        msg = by_index[i]
        parts = msg.pop("_parts", None)
        if "content" not in msg and parts:
            msg["content"] = "\n".join(str(parts[j]) for j in sorted(parts))
        elif "content" in msg:
            msg["content"] = _content_text(msg["content"])
        else:
            msg["content"] = ""
        msg.setdefault("role", "user")
        msgs.append(msg)
    return msgs


def _event_message(a: Attrs, role: str) -> dict[str, Any]:
    content = a.get("content", a.get("gen_ai.event.content", a.get("message")))
    if isinstance(content, str) and content[:1] == "{":
        data = _loads(content)
        if isinstance(data, dict):
            content = data.get("content", content)
    return {"role": str(a.get("role", role)), "content": _content_text(content)}


def _first_text(attrs: Attrs, keys: Iterable[str]) -> str | None:
    for k in keys:
        v = attrs.get(k)
        if v is not None:
            return v if isinstance(v, str) else json.dumps(v, default=str)
    return None


def _last_text(msgs: list[dict[str, Any]], role: str | None) -> str | None:
    for m in reversed(msgs):
        if role is None or m.get("role") == role:
            c = m.get("content")
            return c if isinstance(c, str) else None
    return None


# -- documents ---------------------------------------------------------------------------------


def _set_documents(rec: dict[str, Any], attrs: Attrs, indexed: dict[str, Any] | None) -> None:
    if rec.get("documents") is not None:
        return
    for k in _DOCUMENTS_JSON:
        v = attrs.get(k)
        if v is not None:
            data = _loads(v)
            if isinstance(data, list):
                rec["documents"] = [_document(d) for d in data]
                return
    if not indexed:
        return
    for prefix in ("retrieval.documents.", "reranker.output_documents."):
        by_index: dict[int, dict[str, Any]] = {}
        for k, v in indexed.items():
            if not k.startswith(prefix):
                continue
            idx_s, _, sub = k[len(prefix) :].partition(".")
            if idx_s.isdigit() and sub.startswith("document."):
                by_index.setdefault(int(idx_s), {})[sub[len("document.") :]] = v
        if by_index:
            rec["documents"] = [_document(by_index[i]) for i in sorted(by_index)]
            return


def _document(d: Any) -> dict[str, Any]:
    if not isinstance(d, dict):
        return {"id": None, "content": str(d), "score": None, "metadata": None}
    meta = d.get("metadata")
    if isinstance(meta, str):
        meta = _loads(meta)
    doc_id = d.get("id")
    return {
        "id": None if doc_id is None else str(doc_id),
        "content": _content_text(d.get("content", d.get("text", ""))),
        "score": _as_float(d.get("score")),
        "metadata": meta,
    }


# -- value helpers -----------------------------------------------------------------------------


def _loads(value: Any) -> Any:
    if not isinstance(value, str | bytes):
        return value
    try:
        return _json_loads(value)
    except ValueError:
        return value


def _as_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    try:
        return int(float(v))
    except (TypeError, ValueError, OverflowError):
        return None


def _as_float(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


_SPEC = _build_spec()
