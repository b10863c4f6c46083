"""OTLP messages that keep data-point, log-record and span attributes as raw bytes.

Reading attributes through upb costs ~1.3 µs per key-value pair (a message object, a oneof
lookup, two reads), and exporters repeat the same few attribute sets across thousands of
points. These messages are the OTLP ones with each ``repeated KeyValue attributes`` of a data
point or log record declared ``repeated bytes`` instead: the wire format is the same (both are
length-delimited), so one body parses as either, and ``tuple(point.attributes)`` is a hashable
key of the set, made at C speed, that the decoder turns into JSON once per distinct set
(``KeyValue.FromString`` checks each distinct pair as strictly as the full message would).

They are built at import from the installed ``opentelemetry-proto`` descriptors, so they follow
its version; ``MetricsData``, ``LogsData`` and ``TracesData`` have the same single field as the
collector's ``Export*ServiceRequest`` messages and parse their bodies. In ``LiteTracesData``
only the spans' own attributes are bytes (not their events', links' or resource's): a span's
~20 attributes repeat in part from span to span (model, provider, system prompt), and each
distinct pair is decoded once per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = ["LiteLogsData", "LiteMetricsData", "LiteTracesData", "copy_proto_file"]

_KEY_VALUE = ".opentelemetry.proto.common.v1.KeyValue"
_BYTES = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
_ATTRIBUTE_OWNERS = frozenset(
    (
        "NumberDataPoint",
        "HistogramDataPoint",
        "ExponentialHistogramDataPoint",
        "SummaryDataPoint",
        "LogRecord",
    )
)


def copy_proto_file(
    module: Any,
    name: str,
    package: str,
    rewrite: Callable[[str, Any, Any], None],
    dependency: Callable[[str], str] | None = None,
) -> Any:
    """A copy of ``module``'s proto file as ``name`` in ``package``, added to the default pool.

    ``rewrite(scope, message, field)`` may change each field's descriptor (``scope``: the
    message's enclosing full name); ``dependency`` renames the files it imports. Built once per
    process: a second call returns the file already in the pool.
    """
    fdp = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(fdp)
    fdp.name = name
    fdp.package = package
    if dependency is not None:
        for i, dep in enumerate(fdp.dependency):
            fdp.dependency[i] = dependency(dep)

    def walk(msg: Any, scope: str) -> None:
        for f in msg.field:
            rewrite(scope, msg, f)
        for nested in msg.nested_type:
            walk(nested, f"{scope}.{msg.name}")

    for msg in fdp.message_type:
        walk(msg, package)
    pool = descriptor_pool.Default()
    try:
        return pool.FindFileByName(fdp.name)
    except KeyError:
        pool.Add(fdp)
        return pool.FindFileByName(fdp.name)


def _lite_file(module: Any, package: str, owners: frozenset[str] = _ATTRIBUTE_OWNERS) -> Any:
    """A copy of ``module``'s proto file in ``package`` with ``owners``' attributes as bytes."""
    old = f".{module.DESCRIPTOR.package}."

    def rewrite(scope: str, msg: Any, f: Any) -> None:
        if f.type_name.startswith(old):
            f.type_name = f".{package}.{f.type_name[len(old) :]}"
        elif msg.name in owners and f.name == "attributes" and f.type_name == _KEY_VALUE:
            f.type = _BYTES
            f.ClearField("type_name")

    return copy_proto_file(module, f"sightline/lite/{module.DESCRIPTOR.name}", package, rewrite)


LiteMetricsData: Any = message_factory.GetMessageClass(
    _lite_file(metrics_pb2, "sightline.lite.metrics.v1").message_types_by_name["MetricsData"]
)
"""``MetricsData`` (wire-compatible with ``ExportMetricsServiceRequest``), attributes as bytes."""

LiteLogsData: Any = message_factory.GetMessageClass(
    _lite_file(logs_pb2, "sightline.lite.logs.v1").message_types_by_name["LogsData"]
)
"""``LogsData`` (wire-compatible with ``ExportLogsServiceRequest``), attributes as bytes."""

LiteTracesData: Any = message_factory.GetMessageClass(
    _lite_file(trace_pb2, "sightline.lite.trace.v1", frozenset(("Span",))).message_types_by_name[
        "TracesData"
    ]
)
"""``TracesData`` (wire-compatible with ``ExportTraceServiceRequest``), span attributes as bytes."""
