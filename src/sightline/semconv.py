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
from collections.abc import Callable
from marshal import dumps as _marshal_dumps
from marshal import loads as _marshal_loads
from math import isfinite as _isfinite
from typing import Any

from sightline._digits import ascii_int

_json_loads: Callable[[str | bytes], Any]
try:  # orjson is several times faster; the SDK does not require it
    from orjson import loads as _json_loads
except ImportError:  # pragma: no cover
    _json_loads = json.loads

__all__ = [
    "GEN_AI_OPERATION_KINDS",
    "OPENINFERENCE_KINDS",
    "USER_ID_ATTRIBUTES",
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
}
# ``operation`` is filled from GEN_AI_OPERATION_NAME, else LLM_REQUEST_TYPE; both names also
# decide the kind, so they fill special slots (below) and normalise derives the field.
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
        "First Token Stream Event",  # OpenInference
    )
)
_STREAMING_ATTRS = (
    "sightline.streaming",
    "gen_ai.request.stream",
    "llm.is_streaming",
    "gen_ai.is_streaming",  # OpenLLMetry
)
_FINISH_REASON_ATTRS = (
    "gen_ai.response.finish_reasons",
    "llm.response.finish_reason",
    "llm.response.stop_reason",
    "llm.finish_reason",  # OpenInference
)

# -- text, messages, documents -----------------------------------------------------------------

_JSON_MIME = "application/json"
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


# Special slots: consumed names that feed a derivation rather than one field. Within a slot the
# lowest rank present wins, as for fields.
_SPECIAL_SLOTS: dict[str, tuple[str, ...]] = {
    "_kind_sightline": (SIGHTLINE_KIND,),
    "_kind_openinference": (OPENINFERENCE_SPAN_KIND,),
    "_kind_traceloop": (TRACELOOP_SPAN_KIND,),
    "_gen_ai_operation": (GEN_AI_OPERATION_NAME,),
    "_llm_request_type": (LLM_REQUEST_TYPE,),
    "_input_messages": (GEN_AI_INPUT_MESSAGES,),
    "_output_messages": (GEN_AI_OUTPUT_MESSAGES,),
    "_system_instructions": (GEN_AI_SYSTEM_INSTRUCTIONS,),
    "_invocation_parameters": (_INVOCATION_PARAMETERS,),
    "_text_in": _TEXT_IN,
    "_text_out": _TEXT_OUT,
    "_streaming": _STREAMING_ATTRS,
    "_finish_reason": _FINISH_REASON_ATTRS,
    "_input_mime": ("input.mime_type",),
    "_output_mime": ("output.mime_type",),
}
_INPUT_VALUE_RANK = _TEXT_IN.index(INPUT_VALUE)
_OUTPUT_VALUE_RANK = _TEXT_OUT.index(OUTPUT_VALUE)


def _as_str(v: Any) -> str:
    return v if isinstance(v, str) else str(v)


def _as_documents(v: Any) -> list[Any] | None:
    data = _loads(v)
    return data if isinstance(data, list) else None


def _ttft_converter(factor: float) -> Callable[[Any], float | None]:
    def conv(v: Any) -> float | None:
        fv = _as_float(v)
        return fv * factor if fv is not None and fv >= 0 else None

    return conv


_Spec = tuple[str | None, int, Callable[[Any], Any] | None]


def _build_spec() -> dict[str, _Spec]:
    """Attribute name -> (slot it fills, rank among that slot's names, converter).

    One dict lookup per attribute, then nothing searches the attributes again: this runs for
    every attribute of every span ingested. A converter returning None makes the attribute
    count as absent, so the next-ranked name of the same slot can fill it. Slots without a
    converter keep the raw value (any value but None).
    """
    spec: dict[str, _Spec] = {}
    for slot, keys in _SPECIAL_SLOTS.items():
        for rank, k in enumerate(keys):
            spec[k] = (slot, rank, None)
    for rank, k in enumerate(_DOCUMENTS_JSON):
        spec[k] = ("_documents", rank, _as_documents)
    for rank, (k, factor) in enumerate(_TTFT_ATTRS):
        spec[k] = ("ttft_ms", rank, _ttft_converter(factor))
    for table, conv in ((_STR_FIELDS, _as_str), (_INT_FIELDS, _as_int), (_FLOAT_FIELDS, _as_float)):
        for field, keys in table.items():
            for rank, k in enumerate(keys):
                spec[k] = (field, rank, conv)
    return spec


class _Plan:
    """How to read one set of attribute names, worked out once per distinct set.

    Spans of one instrumentation carry the same names span after span, so the name-to-slot
    resolution (and the ranking of names competing for a slot) is done once per name tuple
    instead of once per attribute of every span.
    """

    __slots__ = ("fields", "indexed", "rest", "specials")

    def __init__(self, keys: tuple[str, ...]) -> None:
        slots: dict[str, list[tuple[int, str, Callable[[Any], Any] | None]]] = {}
        rest: list[str] = []
        indexed: list[str] = []
        for k in keys:
            spec = _SPEC.get(k)
            if spec is not None:
                slot, rank, conv = spec
                if slot is not None:
                    slots.setdefault(slot, []).append((rank, k, conv))
            elif k.startswith(_INDEXED_PREFIXES):
                indexed.append(k)
            else:
                rest.append(k)
        fields = []
        specials = []
        for slot, cands in slots.items():
            cands.sort(key=lambda c: c[0])
            if slot[0] == "_":
                # the text slots also record which name filled them, under "<slot>_rank"
                rank_slot = slot + "_rank" if slot in ("_text_in", "_text_out") else None
                specials.append(
                    (slot, rank_slot, tuple((k, conv, rank) for rank, k, conv in cands))
                )
            else:
                # None stands for _as_str, inlined by normalise (most fields are strings)
                fields.append(
                    (slot, tuple((k, None if conv is _as_str else conv) for _, k, conv in cands))
                )
        self.fields: tuple[tuple[str, tuple[tuple[str, Callable[[Any], Any] | None], ...]], ...]
        self.fields = tuple(fields)
        self.specials: tuple[
            tuple[str, str | None, tuple[tuple[str, Callable[[Any], Any] | None, int], ...]], ...
        ] = tuple(specials)
        self.rest = tuple(rest)
        self.indexed = tuple(indexed)


_PLANS: dict[tuple[str, ...], _Plan] = {}
_MAX_PLANS = 4096  # name sets are attacker-controlled: the cache must stay bounded


_MAX_PLAN_KEYS = 512
"""Longer name sets (a span past ``Limits.max_attributes``, capped only after mapping) are
planned each time, not kept: 4,096 plans of 100,000 names would be gigabytes."""


def _plan_for(keys: tuple[str, ...]) -> _Plan:
    plan = _Plan(keys)
    if len(keys) > _MAX_PLAN_KEYS:
        return plan
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[keys] = plan
    return plan


Attrs = dict[str, Any]
Event = tuple[str, int, Attrs]
"""A span event as decoded: (name, time in Unix nanoseconds, attributes)."""

_RESOURCE_FIELDS = (
    ("service.name", "service_name"),
    ("service.version", "service_version"),
    ("deployment.environment.name", "environment"),
    ("deployment.environment", "environment"),
)


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
    keys = tuple(attrs)
    plan = _PLANS.get(keys)
    if plan is None:
        plan = _plan_for(keys)
    for field, cands in plan.fields:
        if rec.get(field) is not None:  # set natively: the native value wins
            continue
        for k, conv in cands:
            v = attrs[k]
            if v is None:
                continue
            tv = type(v)
            # exact str, int and float first (the decoders' values): same results as the
            # converters, without the call; ``v == ""`` can only hold for a str (or an exotic)
            if tv is str:
                if not v:
                    continue
                if conv is not None:
                    v = conv(v)
                    if v is None:
                        continue
            elif tv is int and conv is _as_int:
                pass
            elif tv is float and conv is _as_float:
                if not _isfinite(v):
                    continue
            elif tv is not int and tv is not float and v == "":
                continue
            elif conv is None:
                v = str(v)
            else:
                v = conv(v)
                if v is None:
                    continue
            rec[field] = v
            break
    special: dict[str, Any] = {}
    for slot, rank_slot, rank_cands in plan.specials:
        for k, conv, rank in rank_cands:
            v = attrs[k]
            if v is None:
                continue
            if conv is not None:
                if v == "":
                    continue
                v = conv(v)
                if v is None:
                    continue
            special[slot] = v
            if rank_slot is not None:
                special[rank_slot] = rank
            break
    rest: Attrs = {k: attrs[k] for k in plan.rest} if plan.rest else {}
    indexed = {k: attrs[k] for k in plan.indexed} if plan.indexed else None
    if VERCEL_OPERATION_ID in rest:
        _vercel(rec, rest, special)
    if rec.get("operation") is None:
        op = special.get("_gen_ai_operation", special.get("_llm_request_type"))
        if op is not None and op != "":
            rec["operation"] = op if isinstance(op, str) else str(op)

    _set_kind(rec, special)
    _set_model_and_params(rec, special)
    _set_messages(rec, special, indexed, events)
    _set_documents(rec, special, indexed)
    _set_timing(rec, events)
    _fix_tokens(rec)
    if events:
        rest["events"] = [{"name": n, "time_ns": t, "attributes": a} for n, t, a in events]
        if rec.get("status") == "error" and not rec.get("status_message"):
            for n, _, a in events:
                if n == _EXCEPTION_EVENT:
                    msg = a.get("exception.message") or a.get("exception.type")
                    if msg is not None:  # any attribute value: an int must not fail the batch
                        rec["status_message"] = _as_str(msg)
                    break
    if resource:
        for rk, field in _RESOURCE_FIELDS:
            if rec.get(field) is None:
                v = resource.get(rk)
                if v is not None:
                    rec[field] = v if isinstance(v, str) else str(v)
    return rest


def _set_kind(rec: dict[str, Any], special: dict[str, Any]) -> None:
    if rec.get("kind") in _KINDS:
        return
    v = special.get("_kind_sightline")
    if isinstance(v, str) and v in _KINDS:
        rec["kind"] = v
        return
    v = special.get("_kind_openinference")
    if isinstance(v, str) and v.upper() in OPENINFERENCE_KINDS:
        rec["kind"] = OPENINFERENCE_KINDS[v.upper()]
        return
    v = special.get("_gen_ai_operation")
    if isinstance(v, str) and v in GEN_AI_OPERATION_KINDS:
        rec["kind"] = GEN_AI_OPERATION_KINDS[v]
        return
    v = special.get("_llm_request_type")
    if isinstance(v, str) and v in _LLM_REQUEST_TYPES:
        rec["kind"] = _LLM_REQUEST_TYPES[v]
        return
    v = special.get("_kind_traceloop")
    if isinstance(v, str) and v in _TRACELOOP_KINDS:
        rec["kind"] = _TRACELOOP_KINDS[v]
        return
    v = special.get("_kind_vercel")
    if v is not None:
        rec["kind"] = v
        return
    if rec.get("request_model") or rec.get("response_model"):
        rec["kind"] = "llm"
        return
    rec["kind"] = "other"


def _set_model_and_params(rec: dict[str, Any], special: dict[str, Any]) -> None:
    params = special.get("_invocation_parameters")
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
        v = special.get("_streaming")
        if v is not None:
            rec["is_streaming"] = bool(v)
    if rec.get("finish_reason") is None:
        v = special.get("_finish_reason")
        if isinstance(v, list | tuple):
            v = v[0] if v else None
        if v is not None:
            rec["finish_reason"] = _as_str(v)


def _set_timing(rec: dict[str, Any], events: list[Event] | None) -> None:
    if rec.get("ttft_ms") is None and events:
        start_ns = rec["start_ns"]
        for name, t, _ in events:
            if name in _FIRST_TOKEN_EVENTS and t >= start_ns:
                rec["ttft_ms"] = (t - start_ns) / 1e6
                break
    ttft = rec.get("ttft_ms")
    if ttft is not None and rec.get("tpot_ms") is None:
        out = rec.get("output_tokens")
        if out is not None and out > 1:
            gen_ms = rec["duration_ms"] - ttft
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
    out = rec.get("output_tokens")
    cached = rec.get("cached_input_tokens") or 0
    written = rec.get("cache_write_tokens") or 0
    if cached or written:
        if inp is not None and cached + written > inp:
            inp = rec["input_tokens"] = inp + cached + written
            rec.setdefault("_notes", []).append("cache_tokens_added_to_input")
        elif inp is None:
            inp = rec["input_tokens"] = cached + written
    reasoning = rec.get("reasoning_tokens") or 0
    if out is not None and reasoning > out:
        out = rec["output_tokens"] = out + reasoning
        rec.setdefault("_notes", []).append("reasoning_tokens_added_to_output")
    if rec.get("total_tokens") is None and (inp is not None or out is not None):
        rec["total_tokens"] = (inp or 0) + (out or 0)


# -- Vercel AI SDK -----------------------------------------------------------------------------

VERCEL_OPERATION_ID = "ai.operationId"
"""What each span of the Vercel AI SDK's telemetry (``experimental_telemetry``) is: the call
(``ai.generateText``, ``ai.streamText``...), each provider request within it
(``ai.generateText.doGenerate``, ``ai.streamText.doStream``), and ``ai.toolCall``."""
_VERCEL_CALLERS = frozenset(
    (
        "ai.generateText",
        "ai.streamText",
        "ai.generateObject",
        "ai.streamObject",
        "ai.embed",
        "ai.embedMany",
    )
)
_VERCEL_IDENTITY = (
    ("user_id", "ai.telemetry.metadata.userId"),
    ("session_id", "ai.telemetry.metadata.sessionId"),
    ("tenant_id", "ai.telemetry.metadata.tenantId"),
    ("feature", "ai.telemetry.functionId"),
)
USER_ID_ATTRIBUTES: tuple[str, ...] = (
    *_STR_FIELDS["user_id"],
    *(name for field, name in _VERCEL_IDENTITY if field == "user_id"),
)
"""Every attribute name a user id is read from (spans), or may be carried in (OTLP log records).

Erasure looks for the user in log records' attributes by these names.
"""
# field -> names, first present wins (AI SDK 5 names, then those of 3 and 4)
_VERCEL_TOKENS = (
    ("input_tokens", ("ai.usage.inputTokens", "ai.usage.promptTokens", "ai.usage.tokens")),
    ("output_tokens", ("ai.usage.outputTokens", "ai.usage.completionTokens")),
    ("total_tokens", ("ai.usage.totalTokens",)),
    # AI SDK 6 adds the details (its inputTokens counts the cache reads and writes)
    (
        "cached_input_tokens",
        ("ai.usage.cachedInputTokens", "ai.usage.inputTokenDetails.cacheReadTokens"),
    ),
    ("cache_write_tokens", ("ai.usage.inputTokenDetails.cacheWriteTokens",)),
    (
        "reasoning_tokens",
        ("ai.usage.reasoningTokens", "ai.usage.outputTokenDetails.reasoningTokens"),
    ),
)
_OTEL_DOTTED_PROVIDERS = ("gcp.", "aws.", "azure.")
_VERCEL_CALL_STR = (
    ("request_model", "ai.model.id"),
    ("response_model", "ai.response.model"),
    ("provider", "ai.model.provider"),
)


def _vercel_exclusive_input(rec: dict[str, Any], rest: Attrs) -> tuple[int, int, int] | None:
    """AI SDK 5's Anthropic counts, read before ``_vercel`` takes them: input, cache reads, writes.

    Before AI SDK 6, each provider passed its own input count through: OpenAI's includes the
    cached tokens, Anthropic's (``input_tokens``) counts neither the cache reads
    (``cachedInputTokens``) nor the cache writes (only in ``ai.response.providerMetadata``).
    AI SDK 6 made ``inputTokens`` the total and added ``inputTokenDetails``, so a span with
    those is left alone. ``None`` when nothing is to be added.
    """
    p = rec.get("provider")
    if not isinstance(p, str):
        p = rest.get("ai.model.provider")
    if not isinstance(p, str) or "anthropic" not in p:
        return None
    if any(k.startswith("ai.usage.inputTokenDetails.") for k in rest):
        return None
    inp = _as_int(rest.get("ai.usage.inputTokens"))
    if inp is None:
        inp = rec.get("input_tokens")  # from the GenAI names, read before
    cached = _as_int(rest.get("ai.usage.cachedInputTokens")) or 0
    written = 0
    meta = _loads(rest.get("ai.response.providerMetadata"))
    if isinstance(meta, dict) and isinstance(meta.get("anthropic"), dict):
        written = _as_int(meta["anthropic"].get("cacheCreationInputTokens")) or 0
    if inp is None or inp < 0 or cached < 0 or written < 0 or not (cached or written):
        return None
    return inp, cached, written


def _vercel_cache_inclusive(rec: dict[str, Any], inp: int, cached: int, written: int) -> None:
    # the GenAI names on the same span repeat the exclusive count: the total replaces both
    rec["input_tokens"] = inp + cached + written
    if cached:
        rec["cached_input_tokens"] = cached
    if written and rec.get("cache_write_tokens") is None:
        rec["cache_write_tokens"] = written
    total = rec.get("total_tokens")
    out = rec.get("output_tokens")
    if total is not None and out is not None and total == inp + out:
        rec["total_tokens"] = inp + cached + written + out


def _vercel(rec: dict[str, Any], rest: Attrs, special: dict[str, Any]) -> None:
    """Fill ``rec`` from the Vercel AI SDK's ``ai.*`` attributes, taking them out of ``rest``.

    Its provider-request spans (``.doGenerate``, ``.doStream``, ``.doEmbed``) also carry the
    GenAI names, which win; the ``ai.*`` ones fill what those leave out: the prompt messages,
    the answer, the time to the first chunk, the user and session. The enclosing call span
    repeats its requests' token counts summed: it becomes a ``chain`` span with the prompt and
    the answer, and its counts stay in the attributes, so tokens and cost are counted once.
    """
    op = rest[VERCEL_OPERATION_ID]
    if not isinstance(op, str):
        return
    for field, key in _VERCEL_IDENTITY:
        v = rest.pop(key, None)
        if v is not None and v != "" and rec.get(field) is None:
            rec[field] = v if isinstance(v, str) else str(v)
    if op.endswith((".doGenerate", ".doStream", ".doEmbed")):
        special.setdefault("_kind_vercel", "embedding" if op.endswith(".doEmbed") else "llm")
        for field, key in _VERCEL_CALL_STR:
            v = rest.pop(key, None)
            if isinstance(v, str) and v and rec.get(field) is None:
                rec[field] = v
        # its provider ids name the API too ("openai.chat", "anthropic.messages"), in
        # gen_ai.system as well: one provider is one name in the per-provider figures
        p = rec.get("provider")
        if isinstance(p, str) and "." in p and not p.startswith(_OTEL_DOTTED_PROVIDERS):
            rec["provider"] = p.split(".", 1)[0]
        exclusive = _vercel_exclusive_input(rec, rest)
        for field, keys in _VERCEL_TOKENS:
            for key in keys:
                v = _as_int(rest.pop(key, None))
                if v is not None and rec.get(field) is None:
                    rec[field] = v
        if exclusive is not None:
            _vercel_cache_inclusive(rec, *exclusive)
        for key in ("ai.response.msToFirstChunk", "ai.stream.msToFirstChunk"):
            ttft = _as_float(rest.pop(key, None))
            if ttft is not None and ttft >= 0 and rec.get("ttft_ms") is None:
                rec["ttft_ms"] = ttft
        if rec.get("is_streaming") is None and not op.endswith(".doEmbed"):
            rec["is_streaming"] = op.endswith(".doStream")
        fr = _pop_first(rest, ("ai.response.finishReason", "ai.finishReason"))
        if fr is not None and "_finish_reason" not in special:
            special["_finish_reason"] = fr
        msgs = rest.pop("ai.prompt.messages", None)
        if msgs is not None and rec.get("input_messages") is None:
            rec["input_messages"] = _messages_from_json(msgs)
        text = _pop_first(rest, _VERCEL_OUTPUT)
        calls = _pop_first(rest, ("ai.response.toolCalls", "ai.result.toolCalls"))
        if rec.get("output_messages") is None and (text is not None or calls is not None):
            msg: dict[str, Any] = {"role": "assistant", "content": _as_str(text or "")}
            if calls is not None:
                msg["tool_calls"] = _loads(calls)
            rec["output_messages"] = [msg]
        if text is not None and rec.get("output") is None:
            rec["output"] = _as_str(text)
    elif op in _VERCEL_CALLERS:
        special.setdefault("_kind_vercel", "chain")
        prompt = rest.pop("ai.prompt", None)
        if prompt is not None and rec.get("input") is None:
            rec["input"] = _vercel_prompt_text(prompt)
        v = _pop_first(rest, _VERCEL_OUTPUT)
        if v is not None and rec.get("output") is None:
            rec["output"] = _as_str(v)
    elif op == "ai.toolCall":
        special.setdefault("_kind_vercel", "tool")
        for field, keys in (
            ("input", ("ai.toolCall.args", "ai.toolCall.input")),
            ("output", ("ai.toolCall.result", "ai.toolCall.output")),
        ):
            for key in keys:
                v = rest.pop(key, None)
                if v is not None and rec.get(field) is None:
                    rec[field] = _as_str(v)


# the answer: text, or generateObject's JSON; AI SDK 3's names last
_VERCEL_OUTPUT = ("ai.response.text", "ai.response.object", "ai.result.text", "ai.result.object")


def _pop_first(rest: Attrs, keys: tuple[str, ...]) -> Any:
    """The first of ``keys`` present in ``rest``; all of them are taken out."""
    found = None
    for k in keys:
        v = rest.pop(k, None)
        if found is None:
            found = v
    return found


def _vercel_prompt_text(prompt: Any) -> str:
    """The question in ``ai.prompt`` (``{"system", "prompt"}`` or ``{"system", "messages"}``)."""
    data = _loads(prompt)
    if isinstance(data, dict):
        p = data.get("prompt")
        if isinstance(p, str):
            return p
        if isinstance(data.get("messages"), list):
            text = _last_text(_read_messages(data["messages"]), "user")
            if text is not None:
                return text
    return _as_str(prompt)


# -- messages ----------------------------------------------------------------------------------


def _set_messages(
    rec: dict[str, Any],
    special: dict[str, Any],
    indexed: dict[str, Any] | None,
    events: list[Event] | None,
) -> None:
    inp: list[dict[str, Any]] | None = rec.get("input_messages")
    out: list[dict[str, Any]] | None = rec.get("output_messages")
    if inp is None:
        inp = _messages_from_json(special.get("_input_messages"))
        system = special.get("_system_instructions")
        if system is not None:
            sys_msg = {"role": "system", "content": _content_text(_loads(system))}
            inp = [sys_msg, *(inp or [])]
    if out is None:
        out = _messages_from_json(special.get("_output_messages"))
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

    # OpenInference's input.value/output.value on an LLM span is the raw JSON request/response
    # body (mime type application/json): the messages say better what was asked and answered.
    if (
        inp
        and special.get("_text_in_rank") == _INPUT_VALUE_RANK
        and special.get("_input_mime") == _JSON_MIME
    ):
        special.pop("_text_in")
    if (
        out
        and special.get("_text_out_rank") == _OUTPUT_VALUE_RANK
        and special.get("_output_mime") == _JSON_MIME
    ):
        special.pop("_text_out")
    if rec.get("input") is None:
        v = special.get("_text_in")
        if v is not None:
            rec["input"] = v if isinstance(v, str) else json.dumps(v, default=str)
        elif inp:
            rec["input"] = _last_text(inp, "user")
        else:
            rec["input"] = None
    if rec.get("output") is None:
        v = special.get("_text_out")
        if v is not None:
            rec["output"] = v if isinstance(v, str) else json.dumps(v, default=str)
        elif out:
            rec["output"] = _last_text(out, None)
        else:
            rec["output"] = None
    if rec.get("finish_reason") is None and out:
        fr = out[-1].get("finish_reason")
        if fr is not None:
            rec["finish_reason"] = str(fr)


# Message JSON text -> the messages read from it, marshalled. Spans of one application repeat
# the same system prompts and questions: a repeated text is rebuilt by one ``marshal.loads``
# (fresh objects, owned by the caller as before; ~2x faster than a JSON parse) instead of a JSON
# parse and a Python walk. marshal gives back the same types, values and key order (JSON values
# only here); a value it cannot take (too deep) is simply not cached. Bounded: texts are
# attacker-controlled.
_MSG_CACHE: dict[str | bytes, bytes] = {}
_MSG_CACHE_MAX = 1024
_MSG_CACHE_MAX_TEXT = 1 << 13  # characters: with the marshalled copies, tens of MiB at worst


def _messages_from_json(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if (type(value) is str or type(value) is bytes) and len(value) <= _MSG_CACHE_MAX_TEXT:
        cached = _MSG_CACHE.get(value)
        if cached is not None:
            msgs: list[dict[str, Any]] = _marshal_loads(cached)  # noqa: S302 - ours
            return msgs
        msgs = _read_messages(value)
        try:
            text = _marshal_dumps(msgs)
        except ValueError:
            return msgs
        if len(_MSG_CACHE) >= _MSG_CACHE_MAX:
            _MSG_CACHE.clear()
        _MSG_CACHE[value] = text
        return msgs
    return _read_messages(value)


def _read_messages(value: Any) -> list[dict[str, Any]]:
    # Messages parsed here from a string are ours to complete in place; anything else may be
    # shared with the caller and is copied.
    owned = isinstance(value, str | bytes)
    data = _loads(value)
    if isinstance(data, dict):
        data = data.get("messages", [data])
    if not isinstance(data, list):
        return [{"role": "user", "content": str(data)}]
    msgs = []
    for m in data:
        if isinstance(m, dict):
            msg = m if owned else dict(m)
            content = msg.get("content")
            if not isinstance(content, str):
                parts = msg.get("parts")
                if parts is None:
                    msg["content"], kept = _content(content)
                    if kept is not None:
                        msg["parts"] = kept
                else:
                    msg["content"] = _content_text(parts)
            if "role" not in msg:
                msg["role"] = "user"
            msgs.append(msg)
        elif m is not None:
            msgs.append({"role": "user", "content": str(m)})
    return msgs


_TEXT_PART_TYPES = frozenset(("text", "input_text", "output_text"))


def _part_text(p: Any) -> str | None:
    if isinstance(p, str):
        return p
    if isinstance(p, dict) and p.get("type", "text") in _TEXT_PART_TYPES:
        t = p.get("content")
        if t is None:
            t = p.get("text")
        if isinstance(t, str):
            return t
    return None


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
        if len(parts) == 1:
            return _part_text(parts[0]) or ""
        return "\n".join(t for t in map(_part_text, parts) if t is not None)
    return str(parts)


def _content(parts: Any) -> tuple[str, list[Any] | None]:
    """Text of a content value, and its parts as sent when some are not text.

    Tool calls and results (Anthropic's ``tool_use``/``tool_result`` blocks), images and files
    have no text: the text alone lost them, and a turn of tool results read as an empty
    message. Inline data (an image's base64) is cut to its first characters.
    """
    if isinstance(parts, str):
        if parts[:1] not in ("[", "{"):
            return parts, None
        parts = _loads(parts)
        if isinstance(parts, str):
            return parts, None
    text = _content_text(parts)
    items = [parts] if isinstance(parts, dict) else parts
    if isinstance(items, list) and any(p is not None and _part_text(p) is None for p in items):
        return text, [_shorten_data(p) for p in items if p is not None]
    return text, None


_MAX_INLINE_DATA = 256
"""Characters kept of an inline payload (a data: URL, base64 ``data``) in a kept part."""


def _shorten_data(v: Any, key: str = "") -> Any:
    if isinstance(v, dict):
        return {k: _shorten_data(x, k) for k, x in v.items()}
    if isinstance(v, list):
        return [_shorten_data(x) for x in v]
    if (
        isinstance(v, str)
        and len(v) > _MAX_INLINE_DATA
        and (key in ("data", "b64_json") or v.startswith("data:"))
    ):
        return f"{v[:_MAX_INLINE_DATA]}… ({len(v):,} characters)"
    return v


def _indexed_messages(
    indexed: dict[str, Any], prefix: str, *, openinference: bool = False
) -> list[dict[str, Any]] | None:
    by_index: dict[int, dict[str, Any]] = {}
    for k, v in indexed.items():
        if not k.startswith(prefix):
            continue
        idx_s, _, sub = k[len(prefix) :].partition(".")
        idx = ascii_int(idx_s)
        if idx is None or not sub:
            continue
        msg = by_index.setdefault(idx, {})
        if openinference:
            if not sub.startswith("message."):
                continue
            sub = sub[len("message.") :]
            if sub.startswith("contents."):
                # message.contents.M.message_content.text
                m_s, _, rest = sub[len("contents.") :].partition(".")
                m = ascii_int(m_s)
                if rest == "message_content.text" and m is not None:
                    msg.setdefault("_parts", {})[m] = v
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
            msg["content"], kept = _content(msg["content"])
            if kept is not None:
                msg["parts"] = kept
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


def _last_text(msgs: list[dict[str, Any]], role: str | None) -> str | None:
    for m in reversed(msgs):
        if role is None or m.get("role") == role:
            c = m.get("content")
            return c if isinstance(c, str) else None
    return None


# -- documents ---------------------------------------------------------------------------------


def _set_documents(
    rec: dict[str, Any], special: dict[str, Any], indexed: dict[str, Any] | None
) -> None:
    if rec.get("documents") is not None:
        return
    docs = special.get("_documents")
    if docs is not None:
        rec["documents"] = [_document(d) for d in docs]
        return
    if not indexed:
        return
    for prefix in ("retrieval.documents.", "reranker.output_documents."):
        by_index: dict[int, dict[str, Any]] = {}
        for k, v in indexed.items():
            if not k.startswith(prefix):
                continue
            idx_s, _, sub = k[len(prefix) :].partition(".")
            idx = ascii_int(idx_s)
            if idx is not None and sub.startswith("document."):
                by_index.setdefault(idx, {})[sub[len("document.") :]] = v
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
    return f if _isfinite(f) else None


_SPEC = _build_spec()
