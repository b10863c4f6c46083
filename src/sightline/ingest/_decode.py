"""Decode OTLP trace payloads (protobuf or JSON) and native JSON spans into span records.

A record is a plain dict keyed by :data:`sightline.model.SPAN_FIELDS` (with ``start_ns`` and
``end_ns`` as Unix nanoseconds). Plain dicts, not ``Span`` objects, because this is the hot path:
at 20k spans/s every microsecond per span is 2% of a core.
"""

from __future__ import annotations

import base64
import binascii
import gc
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from sightline import semconv
from sightline.errors import IngestError
from sightline.ingest._evaluations import (
    EVALUATION_EVENT,
    EVALUATION_NAME,
    MAX_EVALUATIONS_PER_REQUEST,
    evaluation,
)
from sightline.ingest._otlp_lite import LiteTracesData
from sightline.ingest._utf8 import repair_traces
from sightline.model import SPAN_KINDS
from sightline.redact import JSON_TEXTS, Redactor
from sightline.redact._redactor import _json_bytes

__all__ = ["DecodeResult", "Limits", "decode_native", "decode_otlp_json", "decode_otlp_proto"]

_STATUS = {0: "unset", 1: "ok", 2: "error"}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_TEXT_FIELDS = (
    "input",
    "output",
    "status_message",
    "name",
    "service_name",
    "service_version",
    "environment",
    "operation",
    "provider",
    "request_model",
    "response_model",
    "model",
    "finish_reason",
    "user_id",
    "session_id",
    "tenant_id",
    "feature",
    "prompt_name",
    "prompt_version",
    "variant",
)
"""The record's text fields: each is cut at ``max_text_bytes`` (note ``<field>_truncated``)."""
_NESTED_FIELDS = (
    ("output_messages", "message_truncated"),
    ("input_messages", "message_truncated"),
    ("documents", "document_truncated"),
)
"""The record's JSON fields (lists of objects) bounded string by string, in budget order."""
_SPAN_TEXT_FACTOR = 8
"""A span's messages, documents and attributes may hold ``8 * max_text_bytes`` of text in all."""
_MAX_WALK_DEPTH = 256
"""Values deeper than this are not walked (orjson, and so the store, refuses them anyway)."""
_TOKENS_MAX = 1 << 40
_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_INT_BOUNDS = (
    *((f, 0, _TOKENS_MAX) for f in (*_TOKEN_FIELDS, "max_tokens")),
    ("seed", -(1 << 63), 1 << 63),
)
# Years past 2300 overflow DuckDB's microsecond timestamps and are never real telemetry.
_MAX_NS = 10_413_792_000 * 10**9


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-span bounds applied while decoding."""

    max_text_bytes: int = 1 << 20
    """Longer text is truncated, with a note: a text field (input, output, name, model...), and
    any string inside the messages, documents, attributes and events. A span's messages,
    documents and attributes together hold at most 8 times this (``text_budget_exceeded``)."""
    max_attributes: int = 512
    """Attributes past this count are dropped, with a note."""
    max_events: int = 256
    max_spans: int = 100_000
    """A request with more spans than this is refused whole (413)."""
    redaction: Redactor | None = None
    """Applied to every span after normalisation (the project's privacy policy), or None."""


@dataclass(slots=True)
class DecodeResult:
    """Records decoded from one request and what was rejected."""

    records: list[dict[str, Any]] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    """Spans dropped, by reason."""
    repaired: dict[str, int] = field(default_factory=dict)
    """Spans kept but repaired or noted (truncated text, unknown model...), by reason."""
    scores: list[dict[str, Any]] = field(default_factory=list)
    """``gen_ai.evaluation.result`` verdicts found in the spans (``ingest._evaluations``)."""

    @property
    def num_rejected(self) -> int:
        return sum(self.rejected.values())

    def count(self, reason: str) -> None:
        self.repaired[reason] = self.repaired.get(reason, 0) + 1

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


# -- protobuf ----------------------------------------------------------------------------------


def _pb_array(v: AnyValue) -> list[Any]:
    return [_pb_value(x) for x in v.array_value.values]


def _pb_kvlist(v: AnyValue) -> dict[str, Any]:
    return {kv.key: _pb_value(kv.value) for kv in v.kvlist_value.values}


_PB_GETTERS: dict[str | None, Callable[[AnyValue], Any]] = {
    "string_value": lambda v: v.string_value,
    "int_value": lambda v: v.int_value,
    "double_value": lambda v: v.double_value,
    "bool_value": lambda v: v.bool_value,
    "array_value": _pb_array,
    "kvlist_value": _pb_kvlist,
    "bytes_value": lambda v: base64.b64encode(v.bytes_value).decode(),
    None: lambda v: None,
}


def _pb_value(v: AnyValue) -> Any:
    return _PB_GETTERS[v.WhichOneof("value")](v)


def _pb_attrs(kvs: Iterable[Any]) -> dict[str, Any]:
    # An if-chain on the common types, not a dispatch table: ~1 µs per attribute through upb
    # either way, but this saves a call and a second .value access (27 -> 20 µs per span).
    out: dict[str, Any] = {}
    for kv in kvs:
        v = kv.value
        w = v.WhichOneof("value")
        if w == "string_value":
            out[kv.key] = v.string_value
        elif w == "int_value":
            out[kv.key] = v.int_value
        elif w == "double_value":
            out[kv.key] = v.double_value
        elif w == "bool_value":
            out[kv.key] = v.bool_value
        else:
            out[kv.key] = _PB_GETTERS[w](v)
    return out


_MAX_CACHED_PAIRS = 8192


class _MalformedPair(Exception):
    """A span attribute (read apart from its message by ``_lite_attrs_reader``) that upb refused."""


def _lite_attrs_reader() -> Callable[[Any], dict[str, Any]]:
    """Span attributes as raw pairs (``_otlp_lite``) to a dict, each distinct pair read once.

    A malformed pair raises :class:`_MalformedPair`: the caller repairs the body if only its
    UTF-8 is wrong, else refuses it with the full message's error.

    Per request: the spans of a batch repeat many of their pairs (operation, provider, model,
    parameters, system prompt). Only scalar values are kept (a list or map is built anew for
    every span, as ``_pb_attrs`` does, so no two spans share a mutable value).
    """
    pairs: dict[bytes, tuple[str, Any]] = {}
    from_string = KeyValue.FromString

    def read(s: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for b in s.attributes:
            kv = pairs.get(b)
            if kv is None:
                try:
                    m = from_string(b)
                except DecodeError as e:
                    raise _MalformedPair(str(e)) from None
                v = m.value
                w = v.WhichOneof("value")
                if w == "string_value":
                    x: Any = v.string_value
                elif w == "int_value":
                    x = v.int_value
                elif w == "double_value":
                    x = v.double_value
                elif w == "bool_value":
                    x = v.bool_value
                else:
                    out[m.key] = _PB_GETTERS[w](v)
                    continue
                kv = (m.key, x)
                if len(pairs) < _MAX_CACHED_PAIRS:
                    pairs[b] = kv
            out[kv[0]] = kv[1]  # a repeated key: the last wins, as in _pb_attrs
        return out

    return read


def _full_attrs(s: Any) -> dict[str, Any]:
    return _pb_attrs(s.attributes)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic GC off while a batch is decoded (~8% of decoding).

    A batch's records hold no cycles, and each collection of the older generations walks
    every object of the process. Reference counting still frees everything; the GC resumes,
    and catches up, after.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def decode_otlp_proto(
    body: bytes, project_id: str, *, limits: Limits, now_ns: int | None = None
) -> DecodeResult:
    """Decode an ``ExportTraceServiceRequest`` protobuf body.

    Invalid UTF-8 in a string field does not refuse the request: the bad bytes become U+FFFD
    and each span that had some is noted ``invalid_utf8``.
    """
    with _gc_paused():
        try:
            req = LiteTracesData.FromString(body)
        except DecodeError:
            return _decode_repaired(body, project_id, limits, now_ns)
        try:
            return _decode_pb(req, project_id, limits, now_ns, _lite_attrs_reader())
        except _MalformedPair as e:
            return _decode_repaired(body, project_id, limits, now_ns, str(e))


def _decode_repaired(
    body: bytes,
    project_id: str,
    limits: Limits,
    now_ns: int | None,
    pair_error: str | None = None,
) -> DecodeResult:
    """Decode ``body`` with its invalid UTF-8 repaired, or refuse it as malformed.

    Reached when the fast parse failed (or one of its span attributes did, ``pair_error``):
    a body that only its UTF-8 spoils is parsed twice more here, one malformed otherwise once
    or twice (the full message says what is wrong, as it always did).
    """
    fixed = repair_traces(body)
    if fixed is None:
        try:
            full = ExportTraceServiceRequest.FromString(body)
        except DecodeError as e:
            raise IngestError(f"malformed OTLP protobuf: {e}") from None
        if pair_error is not None:
            raise IngestError(f"malformed OTLP protobuf: {pair_error}")
        return _decode_pb(full, project_id, limits, now_ns, _full_attrs)
    repaired, ids = fixed
    try:
        req = LiteTracesData.FromString(repaired)
        res = _decode_pb(req, project_id, limits, now_ns, _lite_attrs_reader())
    except (DecodeError, _MalformedPair) as e:  # not a UTF-8 fault after all
        raise IngestError(f"malformed OTLP protobuf: {pair_error or e}") from None
    for rec in res.records:
        if (rec["trace_id"], rec["span_id"]) in ids:
            rec["ingest_notes"].append("invalid_utf8")
            res.count("invalid_utf8")
    return res


def decode_otlp_message(
    req: ExportTraceServiceRequest, project_id: str, *, limits: Limits, now_ns: int | None = None
) -> DecodeResult:
    """Decode an already-parsed ``ExportTraceServiceRequest`` (the gRPC receiver's input)."""
    with _gc_paused():
        return _decode_pb(req, project_id, limits, now_ns, _full_attrs)


def _decode_pb(
    req: Any,
    project_id: str,
    limits: Limits,
    now_ns: int | None,
    span_attrs: Callable[[Any], dict[str, Any]],
) -> DecodeResult:
    res = DecodeResult()
    now_ns = now_ns or time.time_ns()
    # every resource's copies share one budget: the spans of the whole request count
    n_spans = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    for rs in req.resource_spans:
        resource, rnotes = _bound_resource(_pb_attrs(rs.resource.attributes), n_spans, limits)
        for ss in rs.scope_spans:
            scope = ss.scope.name[:_MAX_SCOPE_CHARS]
            for s in ss.spans:
                # read first, also on a span rejected below: with the lite message this is
                # where a malformed attribute is found, and it refuses the request whole
                attrs = span_attrs(s)
                tid = s.trace_id
                sid = s.span_id
                if len(tid) != 16:
                    res.reject("invalid_trace_id")
                    continue
                if len(sid) != 8:
                    res.reject("invalid_span_id")
                    continue
                pid = s.parent_span_id
                events = (
                    [(e.name, e.time_unix_nano, _pb_attrs(e.attributes)) for e in s.events]
                    if s.events
                    else None
                )
                rec: dict[str, Any] = {
                    "project_id": project_id,
                    "trace_id": tid.hex(),
                    "span_id": sid.hex(),
                    "parent_span_id": pid.hex() if len(pid) == 8 else None,
                    "name": s.name,
                    "start_ns": s.start_time_unix_nano,
                    "end_ns": s.end_time_unix_nano,
                    "status": _STATUS.get(s.status.code, "unset"),
                    "status_message": s.status.message or None,
                }
                if pid and len(pid) != 8:
                    res.count("invalid_parent_span_id")
                if s.links:
                    links = [
                        _link(x.trace_id.hex(), x.span_id.hex(), _pb_attrs(x.attributes))
                        for x in s.links[: limits.max_events]
                        if len(x.trace_id) == 16 and len(x.span_id) == 8
                    ]
                    _link_notes(rec, len(s.links), len(links), limits)
                    if links:
                        attrs[LINKS_ATTRIBUTE] = links
                _finish(rec, attrs, events, resource, scope, res, limits, now_ns, rnotes)
    return res


# -- OTLP JSON ---------------------------------------------------------------------------------


def _js_value(v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    for k, val in v.items():
        if k in (
            "stringValue",
            "string_value",
            "boolValue",
            "bool_value",
            "doubleValue",
            "double_value",
        ):
            return val
        if k in ("intValue", "int_value"):
            try:
                return int(val)
            except (TypeError, ValueError):
                return None
        if k in ("arrayValue", "array_value"):
            return [_js_value(x) for x in _list(_obj(val).get("values"))]
        if k in ("kvlistValue", "kvlist_value"):
            return _js_attrs(_obj(val).get("values"))
        if k in ("bytesValue", "bytes_value"):
            return val
    return None


def _js_attrs(kvs: Any) -> dict[str, Any]:
    if not isinstance(kvs, list):
        return {}
    out = {}
    for kv in kvs:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = _js_value(kv.get("value"))
    return out


def _g(d: dict[str, Any], camel: str, snake: str) -> Any:
    v = d.get(camel)
    return d.get(snake) if v is None else v


def _js_id(v: Any, nbytes: int) -> str | None:
    """OTLP/JSON carries ids as hex (not base64 as proto3 JSON would); accept both."""
    if not isinstance(v, str) or not v:
        return None
    if len(v) == nbytes * 2:
        try:
            bytes.fromhex(v)
        except ValueError:
            return None
        return v.lower()
    try:
        raw = base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == nbytes else None


def _js_ns(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def decode_otlp_json(
    body: bytes, project_id: str, *, limits: Limits, now_ns: int | None = None
) -> DecodeResult:
    """Decode an OTLP/JSON ``ExportTraceServiceRequest`` body."""
    with _gc_paused():
        return _decode_otlp_json(body, project_id, limits, now_ns)


def _decode_otlp_json(
    body: bytes, project_id: str, limits: Limits, now_ns: int | None
) -> DecodeResult:
    data = _json_loads(body)
    if not isinstance(data, dict):
        raise IngestError("OTLP JSON body must be an object with resourceSpans")
    res = DecodeResult()
    now_ns = now_ns or time.time_ns()
    resource_spans = _list(_g(data, "resourceSpans", "resource_spans"))
    # every resource's copies share one budget: the spans of the whole request count
    n_spans = sum(
        len(_list(_obj(ss).get("spans")))
        for rs in resource_spans
        for ss in _list(_g(_obj(rs), "scopeSpans", "scope_spans"))
    )
    for rs in resource_spans:
        if not isinstance(rs, dict):
            res.count("invalid_resource_spans")
            continue
        scope_spans = [
            ss for ss in _list(_g(rs, "scopeSpans", "scope_spans")) if isinstance(ss, dict)
        ]
        resource, rnotes = _bound_resource(
            _js_attrs(_obj(rs.get("resource")).get("attributes")), n_spans, limits
        )
        for ss in scope_spans:
            scope = str(_obj(ss.get("scope")).get("name") or "")[:_MAX_SCOPE_CHARS]
            for s in _list(ss.get("spans")):
                if not isinstance(s, dict):
                    res.reject("invalid_span")
                    continue
                tid = _js_id(_g(s, "traceId", "trace_id"), 16)
                sid = _js_id(_g(s, "spanId", "span_id"), 8)
                if tid is None:
                    res.reject("invalid_trace_id")
                    continue
                if sid is None:
                    res.reject("invalid_span_id")
                    continue
                raw_pid = _g(s, "parentSpanId", "parent_span_id")
                pid = _js_id(raw_pid, 8)
                if raw_pid and pid is None:
                    res.count("invalid_parent_span_id")
                status = s.get("status") or {}
                code = status.get("code", 0) if isinstance(status, dict) else 0
                if isinstance(code, str):
                    code = _STATUS_NAMES.get(code, 0)
                elif not isinstance(code, int):  # a list or an object: untrusted JSON
                    code = 0
                events = [
                    (
                        str(e.get("name", "")),
                        _js_ns(_g(e, "timeUnixNano", "time_unix_nano")),
                        _js_attrs(e.get("attributes")),
                    )
                    for e in _list(s.get("events"))
                    if isinstance(e, dict)
                ] or None
                rec: dict[str, Any] = {
                    "project_id": project_id,
                    "trace_id": tid,
                    "span_id": sid,
                    "parent_span_id": pid,
                    "name": str(s.get("name") or ""),
                    "start_ns": _js_ns(_g(s, "startTimeUnixNano", "start_time_unix_nano")),
                    "end_ns": _js_ns(_g(s, "endTimeUnixNano", "end_time_unix_nano")),
                    "status": _STATUS.get(code, "unset"),
                    "status_message": (str(status.get("message") or "") or None)
                    if isinstance(status, dict)
                    else None,
                }
                attrs = _js_attrs(s.get("attributes"))
                sent = _list(s.get("links"))
                if sent:
                    links = [
                        _link(lt, ls, _js_attrs(x.get("attributes")))
                        for x in sent[: limits.max_events]
                        if isinstance(x, dict)
                        and (lt := _js_id(_g(x, "traceId", "trace_id"), 16))
                        and (ls := _js_id(_g(x, "spanId", "span_id"), 8))
                    ]
                    _link_notes(rec, len(sent), len(links), limits)
                    if links:
                        attrs[LINKS_ATTRIBUTE] = links
                _finish(
                    rec,
                    attrs,
                    events,
                    resource,
                    scope,
                    res,
                    limits,
                    now_ns,
                    rnotes,
                )
    return res


# -- native JSON -------------------------------------------------------------------------------

_NATIVE_INT = (*_TOKEN_FIELDS, "max_tokens", "seed")
_NATIVE_FLOAT = ("ttft_ms", "tpot_ms", "temperature", "top_p", "cost_usd")
_NON_NEGATIVE = frozenset(("ttft_ms", "tpot_ms", "cost_usd"))
_NATIVE_STR = _TEXT_FIELDS
_NATIVE_LIST = ("input_messages", "output_messages", "documents")


def _native_time(v: Any) -> int | None:
    """Epoch seconds (number) or ISO-8601 string to Unix nanoseconds."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        # beyond ~year 2300 (or inf/nan) is not a time: treat as missing, _finish repairs it
        return int(v * 1e9) if 0 < v < _MAX_NS / 1e9 else None
    if isinstance(v, str):
        try:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)  # ISO strings without an offset are UTC
        return (dt - _EPOCH) // timedelta(microseconds=1) * 1000
    return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def decode_native(
    body: bytes, project_id: str, *, limits: Limits, now_ns: int | None = None
) -> DecodeResult:
    """Decode the native JSON batch of ``POST /api/v1/spans``: a list of span objects."""
    with _gc_paused():
        return _decode_native(body, project_id, limits, now_ns)


def _decode_native(
    body: bytes, project_id: str, limits: Limits, now_ns: int | None
) -> DecodeResult:
    data = _json_loads(body)
    if isinstance(data, dict) and isinstance(data.get("spans"), list):
        data = data["spans"]
    if not isinstance(data, list):
        raise IngestError('body must be a JSON list of span objects (or {"spans": [...]})')
    res = DecodeResult()
    now_ns = now_ns or time.time_ns()
    for s in data:
        if not isinstance(s, dict):
            res.reject("invalid_span")
            continue
        tid = _js_id(s.get("trace_id"), 16)
        sid = _js_id(s.get("span_id"), 8)
        if tid is None:
            res.reject("invalid_trace_id")
            continue
        if sid is None:
            res.reject("invalid_span_id")
            continue
        pid = _js_id(s.get("parent_span_id"), 8)
        if s.get("parent_span_id") and pid is None:
            res.count("invalid_parent_span_id")
        start = _native_time(s.get("start_time"))
        end = _native_time(s.get("end_time"))
        duration = s.get("duration_ms")
        if end is None and start is not None and isinstance(duration, int | float):
            if 0 <= duration < 1e12:  # under ~30 years; anything else is left to _finish
                end = start + int(duration * 1e6)
        status = s.get("status")
        rec: dict[str, Any] = {
            "project_id": project_id,
            "trace_id": tid,
            "span_id": sid,
            "parent_span_id": pid,
            "name": "",  # optional here; an OTLP span without one has "" too
            "start_ns": start or 0,
            "end_ns": end or 0,
            "status": status if status in ("ok", "error", "unset") else "unset",
        }
        kind = s.get("kind")
        if isinstance(kind, str) and kind in SPAN_KINDS:
            rec["kind"] = kind
        elif kind is not None:
            res.count("unknown_kind")
        for f in _NATIVE_STR:
            v = s.get(f)
            if v is not None:
                rec[f] = v if isinstance(v, str) else str(v)
        for f in _NATIVE_INT:
            v = s.get(f)
            if v is not None:
                iv = semconv._as_int(v)
                if iv is None or iv < 0:
                    res.count(f"invalid_{f}")
                else:
                    rec[f] = iv
        for f in _NATIVE_FLOAT:
            v = s.get(f)
            if v is not None:
                fv = semconv._as_float(v)
                # a negative cost would take spend off budgets (and unblock a hard limit):
                # dropped, the span is priced from its tokens instead; a negative TTFT/TPOT
                # (dropped by the OTLP path too) would take time off /metrics' histogram sums
                if fv is None or (f in _NON_NEGATIVE and fv < 0):
                    res.count(f"invalid_{f}")
                else:
                    rec[f] = fv
        if isinstance(s.get("is_streaming"), bool):
            rec["is_streaming"] = s["is_streaming"]
        for f in _NATIVE_LIST:
            v = s.get(f)
            if isinstance(v, list):
                rec[f] = [x if isinstance(x, dict) else {"content": str(x)} for x in v]
        if rec.get("documents"):
            rec["documents"] = [semconv._document(d) for d in rec["documents"]]
        attrs = s.get("attributes")
        attrs = attrs if isinstance(attrs, dict) else {}
        resource = s.get("resource_attributes")
        resource = resource if isinstance(resource, dict) else {}
        _finish(rec, attrs, None, resource, "", res, limits, now_ns)
    return res


# -- shared ------------------------------------------------------------------------------------


# A JSON escape: a surrogate pair, a lone surrogate (group 1), or any other (kept as it is).
# Matched left to right, so an escaped backslash followed by "ud83d" is never read as one.
_ESCAPE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|(\\u[dD][89a-fA-F][0-9a-fA-F]{2})|\\."
)


def _unpaired_to_fffd(m: re.Match[bytes]) -> bytes:
    return b"\\ufffd" if m.group(1) else m.group(0)


def _json_loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        if "utf-8" not in str(e).lower() and "surrogate" not in str(e).lower():
            raise IngestError(f"malformed JSON: {e}") from None
    # Repair rather than lose a batch for one bad character: invalid UTF-8 sequences and
    # escaped lone surrogates (a text cut in the middle of an emoji by JSON.stringify or
    # json.dumps, which escape it as "\ud83d") become U+FFFD.
    repaired = _ESCAPE.sub(_unpaired_to_fffd, body.decode("utf-8", "replace").encode())
    try:
        return orjson.loads(repaired)
    except orjson.JSONDecodeError as e2:
        raise IngestError(f"malformed JSON: {e2}") from None


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _obj(v: Any) -> dict[str, Any]:
    """``v`` if it is a JSON object, else an empty one: untrusted JSON has any shape."""
    return v if isinstance(v, dict) else {}


LINKS_ATTRIBUTE = "otel.links"
"""The attribute that keeps a span's OTLP links (to spans of other traces, e.g. the requests an
agent step fans in): ``[{"trace_id", "span_id", "attributes"?}]``."""


def _link_notes(rec: dict[str, Any], sent: int, kept: int, limits: Limits) -> None:
    """Note on ``rec`` the links past ``max_events`` and those without a valid trace and span id."""
    first = min(sent, limits.max_events)
    if kept < first:
        rec.setdefault("_notes", []).append("invalid_link")
    if sent > first:
        rec.setdefault("_notes", []).append("links_dropped")


def _link(trace_id: str, span_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
    link: dict[str, Any] = {"trace_id": trace_id, "span_id": span_id}
    if attrs:
        link["attributes"] = attrs
    return link


_RESOURCE_BYTES_PER_REQUEST = 16 << 20
"""Resource attributes are stored with each of their spans: what one request's resources may
add up to that way (one 1 MiB attribute on 300 spans took DuckDB past its memory limit)."""
_MAX_SCOPE_CHARS = 256
"""An instrumentation scope's name, stored with each of its spans."""


def _bound_resource(
    resource: dict[str, Any], n_spans: int, limits: Limits
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``resource`` within the request's budget for copies of it, and the note if it was cut.

    ``n_spans`` is the number of spans of the whole request: each span holds one resource, so
    a resource may take ``_RESOURCE_BYTES_PER_REQUEST / n_spans`` (and at most
    ``max_text_bytes``), whichever resources the spans belong to. The largest values go first.
    """
    sizes = {k: _json_size(v) for k, v in resource.items()}
    allowed = min(limits.max_text_bytes, _RESOURCE_BYTES_PER_REQUEST // max(n_spans, 1))
    total = sum(sizes.values()) + sum(len(k) for k in resource)
    if len(resource) <= limits.max_attributes and total <= allowed:
        return resource, ()
    keep = dict(list(resource.items())[: limits.max_attributes])
    total = sum(sizes[k] + len(k) for k in keep)
    for k in sorted(keep, key=lambda k: sizes[k] + len(k), reverse=True):
        if total <= allowed:
            break
        total -= sizes[k] + len(k)
        del keep[k]
    return keep, ("resource_attributes_dropped",)


def _json_size(v: Any) -> int:
    if isinstance(v, str):
        return len(v)
    b = _json_bytes(v)
    return len(str(v)) if b is None else len(b)


def _evaluations(
    rec: dict[str, Any],
    attrs: dict[str, Any],
    events: list[semconv.Event] | None,
    res: DecodeResult,
    limits: Limits,
) -> None:
    """Keep the evaluation results the span carries, as events or as attributes of its own."""
    red = limits.redaction
    redact = None if red is None else lambda t: red.redact_text(t, "attributes", {})
    found = []
    if events:
        for name, t, a in events:
            if name == EVALUATION_EVENT:
                found.append(evaluation(rec["trace_id"], rec["span_id"], t or rec["end_ns"], a,
                                        redact))  # fmt: skip
    if EVALUATION_NAME in attrs:  # an evaluation span: what it judges is its parent
        target = rec["parent_span_id"] or rec["span_id"]
        found.append(evaluation(rec["trace_id"], target, rec["end_ns"], attrs, redact))
    for s in found:
        if s is None:
            continue
        if len(res.scores) < MAX_EVALUATIONS_PER_REQUEST:
            res.scores.append(s)
        else:
            res.count("evaluations_dropped")


def _utf8_len(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


def _utf8_cut(s: str, nbytes: int) -> str:
    """``s`` cut to at most ``nbytes`` bytes of UTF-8, at a character boundary."""
    if s.isascii():
        return s[:nbytes]
    return s.encode("utf-8", "surrogatepass")[:nbytes].decode("utf-8", "ignore")


class _TextBound:
    """Cuts the strings of JSON-like values: each at ``max_text_bytes``, all at a budget.

    Walks build new lists and dicts (the values may be shared with other records or the
    caller); only a span with more text than ``max_text_bytes`` in all is walked.
    """

    __slots__ = ("left", "max_bytes", "note", "notes")

    def __init__(self, max_bytes: int, budget: int) -> None:
        self.max_bytes = max_bytes
        self.left = budget
        """What is left of the span's budget (UTF-8 bytes of string values)."""
        self.note = ""
        """The note for a string cut at ``max_bytes`` in the value being walked."""
        self.notes: dict[str, None] = {}

    def text(self, s: str) -> str:
        if not s:
            return s
        b = _utf8_len(s)
        if b > self.max_bytes:
            s = _utf8_cut(s, self.max_bytes)
            b = _utf8_len(s)
            self.notes[self.note] = None
        if b > self.left:
            s = _utf8_cut(s, self.left)
            b = _utf8_len(s)
            self.notes["text_budget_exceeded"] = None
        self.left -= b
        return s

    def key(self, k: str) -> str:
        """A key is cut at ``max_bytes`` but not counted: keys say what the values are."""
        if len(k) > self.max_bytes // 4 and _utf8_len(k) > self.max_bytes:
            self.notes[self.note] = None
            return _utf8_cut(k, self.max_bytes)
        return k

    def walk(self, v: Any, depth: int = 0) -> Any:
        t = type(v)
        if t is str:
            return self.text(v)
        if depth >= _MAX_WALK_DEPTH:
            return v
        if t is dict:
            out: dict[Any, Any] = {}
            for k, x in v.items():
                if type(k) is str:
                    k = self.key(k)
                out[k] = self.walk(x, depth + 1)
            return out
        if t is list or t is tuple:
            items = []
            for x in v:
                items.append(self.walk(x, depth + 1))
            return items
        return v


def _bound_texts(
    rec: dict[str, Any],
    rest: dict[str, Any],
    has_events: bool,
    limits: Limits,
    notes: list[str],
) -> dict[str, Any]:
    """Cut the span's long texts in place (``rest``, the attributes, is returned anew).

    Each text field, and each string in the messages, documents, attributes and events, is cut
    at ``max_text_bytes``. The strings of the messages, documents and attributes then share a
    budget of ``_SPAN_TEXT_FACTOR * max_text_bytes``, spent in the order output messages,
    input messages, documents, attributes: the strings past it are cut to what is left, then
    emptied.
    """
    lim = limits.max_text_bytes
    for f in _TEXT_FIELDS:
        v = rec.get(f)
        if isinstance(v, str) and len(v) > lim // 4 and _utf8_len(v) > lim:
            rec[f] = _utf8_cut(v, lim)
            notes.append(f"{f}_truncated")
    bound = _TextBound(lim, _SPAN_TEXT_FACTOR * lim)
    for f, note in _NESTED_FIELDS:
        v = rec.get(f)
        if v:
            bound.note = note
            rec[f] = bound.walk(v)
    out: dict[str, Any] = {}
    for k, v in rest.items():
        bound.note = "event_truncated" if has_events and k == "events" else "attribute_truncated"
        out[bound.key(k)] = bound.walk(v)
    notes.extend(bound.notes)
    return out


def _finish(
    rec: dict[str, Any],
    attrs: dict[str, Any],
    events: list[semconv.Event] | None,
    resource: dict[str, Any],
    scope: str,
    res: DecodeResult,
    limits: Limits,
    now_ns: int,
    resource_notes: tuple[str, ...] = (),
) -> None:
    """Validate times and sizes, map the conventions, and append the record."""
    notes: list[str] = list(resource_notes)
    if rec["trace_id"] == _ZERO_TRACE:
        res.reject("invalid_trace_id")
        return
    if rec["span_id"] == _ZERO_SPAN:
        res.reject("invalid_span_id")
        return
    if rec["parent_span_id"] == _ZERO_SPAN:
        rec["parent_span_id"] = None  # how some exporters (and Zipkin/Jaeger translations) say root
    start, end = rec["start_ns"], rec["end_ns"]
    if not 0 < start < _MAX_NS:
        if 0 < end < _MAX_NS:
            start = end
        else:
            start = end = now_ns
        notes.append("missing_start_time")
    if not 0 < end < _MAX_NS:
        end = start
        notes.append("missing_end_time")
    if end < start:
        end = start
        notes.append("negative_duration")
    rec["start_ns"], rec["end_ns"] = start, end
    rec["duration_ms"] = (end - start) / 1e6

    if events is not None and len(events) > limits.max_events:
        events = events[: limits.max_events]
        notes.append("events_dropped")
    rest = semconv.normalise(rec, attrs, events, resource)
    if events is not None or EVALUATION_NAME in attrs:
        _evaluations(rec, attrs, events, res, limits)
    # The cap applies to what no field took: instrumentations set the model and token counts
    # after a long conversation's message attributes, and those must not be the ones dropped.
    if len(rest) > limits.max_attributes:
        rest = dict(list(rest.items())[: limits.max_attributes])
        notes.append("attributes_dropped")
    if scope:
        rest["otel.scope.name"] = scope
    extra = rec.pop("_notes", None)
    if extra:
        notes.extend(extra)
    # Counts past 2**40 are garbage, and any integer past int64 would fail the whole batch's
    # Arrow conversion; both are dropped from the span with a note.
    for f, lo, hi in _INT_BOUNDS:
        v = rec.get(f)
        if v is not None and not lo <= v < hi:
            rec[f] = None
            notes.append(f"invalid_{f}")
    # One serialization of the whole record, at C speed (~1 µs for a span of ~1 KB): when it
    # is within max_text_bytes (every span of normal size), no text in it can be longer, nor
    # can they add up past the span's budget, and nothing is walked.
    rec["attributes"] = rest
    size = _json_bytes(rec)
    if size is None or len(size) > limits.max_text_bytes:
        rest = _bound_texts(rec, rest, events is not None, limits, notes)
    for n in notes:
        res.count(n)
    rec["attributes"] = rest
    rec["resource_attributes"] = resource
    rec["ingest_notes"] = notes
    if limits.redaction is not None:
        texts: dict[str, tuple[Any, str]] = {}
        limits.redaction.redact_record(rec, json_texts=texts)
        if texts:
            rec[JSON_TEXTS] = texts  # serialized by the check: the Arrow table reuses them
    res.records.append(rec)
