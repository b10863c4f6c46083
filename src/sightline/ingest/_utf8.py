"""Invalid UTF-8 in an OTLP protobuf body, repaired instead of refusing the whole request.

proto3 requires ``string`` fields to be valid UTF-8, and upb refuses a message with one bad
byte anywhere in it. Exporters do send such bytes: protobuf.js (the OpenTelemetry JS
exporters) writes a lone surrogate, what a text cut inside an emoji holds, as a 3-byte sequence
that is not UTF-8; a Go program's strings are bytes and may hold anything. Refusing the request
loses a batch of 512 spans for one cut emoji, so the decoders come here when a parse fails.

The messages here are the OTLP ones (traces, metrics, logs, and the common and resource files
they use) with every ``string`` field declared ``bytes``: the wire format is the same, so a
body that fails only on UTF-8 parses as these. Each bad string is decoded with U+FFFD in place
of its bad bytes, and the message is serialized again: a body the normal decoders read. Only
the failing requests pay for this.
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from sightline.ingest._otlp_lite import copy_proto_file

__all__ = ["repair_logs", "repair_metrics", "repair_traces"]

_PREFIX = "sightline.utf8."
_STRING = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
_BYTES = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
_WAS_STRING: set[str] = set()
"""Full names (in this module's packages) of the fields that are ``string`` in OTLP."""


def _bytes_file(module: Any) -> Any:
    package = _PREFIX + module.DESCRIPTOR.package

    def rewrite(scope: str, msg: Any, f: Any) -> None:
        if f.type_name.startswith(".opentelemetry."):
            f.type_name = f".{_PREFIX}{f.type_name[1:]}"
        if f.type == _STRING:
            f.type = _BYTES
            _WAS_STRING.add(f"{scope}.{msg.name}.{f.name}")

    return copy_proto_file(
        module,
        f"sightline/utf8/{module.DESCRIPTOR.name}",
        package,
        rewrite,
        lambda dep: f"sightline/utf8/{dep}",
    )


# dependencies first: a file is added to the pool after the files it imports
for _m in (common_pb2, resource_pb2):
    _bytes_file(_m)
_TRACES: Any = message_factory.GetMessageClass(
    _bytes_file(trace_pb2).message_types_by_name["TracesData"]
)
_METRICS: Any = message_factory.GetMessageClass(
    _bytes_file(metrics_pb2).message_types_by_name["MetricsData"]
)
_LOGS: Any = message_factory.GetMessageClass(
    _bytes_file(logs_pb2).message_types_by_name["LogsData"]
)
_MESSAGE = FieldDescriptor.TYPE_MESSAGE


def _valid(b: bytes) -> bool:
    if b.isascii():
        return True
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_FFFD_RUN = re.compile("\ufffd{2,}")


def _fixed(b: bytes) -> bytes:
    # one U+FFFD for a run of bad bytes, not one per byte: a cut emoji (3 bytes) is one lost
    # character, and a body of 16 MiB of 0xFF does not become 48 MiB of replacement characters
    return _FFFD_RUN.sub("\ufffd", b.decode("utf-8", "replace")).encode("utf-8")


def _fix(msg: Any, skip: str = "") -> bool:
    """Repair the strings of ``msg`` in place, but those under ``skip``; whether any was bad."""
    changed = False
    for fd, value in msg.ListFields():
        # the value's type says whether the field repeats (FieldDescriptor.label is gone from
        # newer protobuf releases, and is_repeated is absent from older ones)
        if fd.type == _MESSAGE:
            if fd.name == skip:
                continue
            if isinstance(value, Message):
                changed |= _fix(value)
            else:
                for m in value:
                    changed |= _fix(m)
        elif fd.full_name in _WAS_STRING:
            if isinstance(value, bytes):
                if not _valid(value):
                    setattr(msg, fd.name, _fixed(value))
                    changed = True
            else:
                for i, b in enumerate(value):
                    if not _valid(b):
                        value[i] = _fixed(b)
                        changed = True
    return changed


def _repair(body: bytes, cls: Any, fields: tuple[str, str, str]) -> tuple[bytes, list[Any]] | None:
    """``body`` with its strings repaired, and the items (spans, records...) that had one.

    ``fields``: the request's resource-level field, the scope-level field of those, and the
    items' field of those (``resource_spans``, ``scope_spans``, ``spans``). An item counts as
    repaired when a string of its own, of its scope or of its resource was; each message is
    walked once. None when ``body`` is malformed for another reason than UTF-8.
    """
    try:
        req = cls.FromString(body)
    except DecodeError:
        return None
    resources, scopes, items_field = fields
    hit: list[Any] = []
    for outer in getattr(req, resources):
        every: list[Any] = []
        found: list[Any] = []
        for scope in getattr(outer, scopes):
            items = list(getattr(scope, items_field))
            own = [it for it in items if _fix(it)]
            found.extend(items if _fix(scope, items_field) else own)
            every.extend(items)
        hit.extend(every if _fix(outer, scopes) else found)
    return req.SerializeToString(), hit


def repair_traces(body: bytes) -> tuple[bytes, set[tuple[str, str]]] | None:
    """The repaired body and the (trace id, span id) in hex of the spans that were repaired."""
    out = _repair(body, _TRACES, ("resource_spans", "scope_spans", "spans"))
    if out is None:
        return None
    fixed, spans = out
    return fixed, {(s.trace_id.hex(), s.span_id.hex()) for s in spans}


def repair_logs(body: bytes) -> tuple[bytes, int] | None:
    """The repaired body and how many log records were repaired."""
    out = _repair(body, _LOGS, ("resource_logs", "scope_logs", "log_records"))
    return None if out is None else (out[0], len(out[1]))


def repair_metrics(body: bytes) -> tuple[bytes, int] | None:
    """The repaired body and how many metrics (each with its data points) were repaired."""
    out = _repair(body, _METRICS, ("resource_metrics", "scope_metrics", "metrics"))
    return None if out is None else (out[0], len(out[1]))
