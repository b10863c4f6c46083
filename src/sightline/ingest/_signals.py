"""OTLP metrics and logs: decode to Arrow batches for ``otel_metric_points`` and ``otel_logs``.

Both signals go through the protobuf messages: OTLP/JSON is turned into the same message with
``json_format`` (hex trace/span ids first turned into base64, as proto3 JSON expects), so the
two encodings cannot drift apart. Per data point the Python work is a handful of attribute
reads and one ``orjson.dumps`` of the attributes, which are cached per identical attribute set
within a request (exporters repeat the same few sets across many points).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import orjson
import pyarrow as pa
from google.protobuf.json_format import ParseDict
from google.protobuf.json_format import ParseError as JsonParseError
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from sightline.errors import IngestError
from sightline.ingest._decode import _json_loads, _pb_attrs, _pb_value

__all__ = [
    "LOG_SCHEMA",
    "METRIC_SCHEMA",
    "MetricRows",
    "Signal",
    "SignalResult",
    "decode_logs",
    "decode_metrics",
    "exp_to_explicit",
]

Signal = Literal["metrics", "logs"]

_MAX_NAME = 255
_MAX_NS = 10_413_792_000 * 10**9  # year 2300: anything later is a broken clock
_TEMPORALITY = {1: "delta", 2: "cumulative"}

METRIC_SCHEMA = pa.schema(
    [
        ("project_id", pa.string()),
        ("name", pa.string()),
        ("alias", pa.string()),
        ("type", pa.string()),
        ("unit", pa.string()),
        ("temporality", pa.string()),
        ("monotonic", pa.bool_()),
        ("service_name", pa.string()),
        ("attributes", pa.string()),
        ("resource_attributes", pa.string()),
        ("source", pa.string()),
        ("time", pa.timestamp("ns")),
        ("start_time", pa.timestamp("ns")),
        ("value", pa.float64()),
        ("count", pa.float64()),
        ("sum", pa.float64()),
        ("min", pa.float64()),
        ("max", pa.float64()),
        ("bounds", pa.list_(pa.float64())),
        ("bucket_counts", pa.list_(pa.float64())),
        ("exp_scale", pa.int32()),
    ]
)
"""Columns of ``otel_metric_points`` as the writer receives them."""

LOG_SCHEMA = pa.schema(
    [
        ("project_id", pa.string()),
        ("time", pa.timestamp("ns")),
        ("observed_time", pa.timestamp("ns")),
        ("severity_number", pa.int32()),
        ("severity_text", pa.string()),
        ("body", pa.string()),
        ("event_name", pa.string()),
        ("attributes", pa.string()),
        ("resource_attributes", pa.string()),
        ("service_name", pa.string()),
        ("scope", pa.string()),
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
    ]
)
"""Columns of ``otel_logs`` as the writer receives them."""


@dataclass(slots=True)
class SignalResult:
    """Outcome of decoding one metrics or logs request."""

    rejected: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + n

    @property
    def num_rejected(self) -> int:
        return sum(self.rejected.values())


def _default(v: Any) -> Any:
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    return str(v)


def dumps_attrs(attrs: dict[str, Any]) -> str:
    """Attributes as canonical JSON (sorted keys): equal sets give equal strings."""
    return orjson.dumps(attrs, option=orjson.OPT_SORT_KEYS, default=_default).decode()


class MetricRows:
    """Column lists of metric points, turned into one Arrow table at the end."""

    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        self.cols: dict[str, list[Any]] = {f.name: [] for f in METRIC_SCHEMA}

    def __len__(self) -> int:
        return len(self.cols["name"])

    def add(
        self,
        *,
        name: str,
        type_: str,
        attributes: str,
        resource_attributes: str,
        service_name: str | None,
        time_ns: int,
        start_ns: int | None = None,
        unit: str | None = None,
        temporality: str | None = None,
        monotonic: bool | None = None,
        source: str = "otlp",
        alias: str | None = None,
        value: float | None = None,
        count: float | None = None,
        sum_: float | None = None,
        min_: float | None = None,
        max_: float | None = None,
        bounds: list[float] | None = None,
        bucket_counts: list[float] | None = None,
        exp_scale: int | None = None,
    ) -> None:
        """Append one data point."""
        c = self.cols
        c["project_id"].append(self.project_id)
        c["name"].append(name)
        c["alias"].append(alias)
        c["type"].append(type_)
        c["unit"].append(unit or None)
        c["temporality"].append(temporality)
        c["monotonic"].append(monotonic)
        c["service_name"].append(service_name)
        c["attributes"].append(attributes)
        c["resource_attributes"].append(resource_attributes)
        c["source"].append(source)
        c["time"].append(time_ns)
        c["start_time"].append(start_ns or None)
        c["value"].append(value)
        c["count"].append(count)
        c["sum"].append(sum_)
        c["min"].append(min_)
        c["max"].append(max_)
        c["bounds"].append(bounds)
        c["bucket_counts"].append(bucket_counts)
        c["exp_scale"].append(exp_scale)

    def table(self) -> pa.Table | None:
        """The rows as Arrow, or None if there are none."""
        if not len(self):
            return None
        return pa.table(self.cols, schema=METRIC_SCHEMA)


def exp_to_explicit(
    scale: int,
    zero_count: float,
    pos_offset: int,
    pos_counts: list[float],
    neg_offset: int,
    neg_counts: list[float],
) -> tuple[list[float], list[float]]:
    """An exponential histogram as explicit ``(bounds, counts)``, exactly.

    Bucket ``i`` of scale ``s`` holds values in ``(base**i, base**(i+1)]`` with
    ``base = 2**(2**-s)``; negative buckets mirror them. The result has ``len(bounds) + 1``
    counts: ``counts[0]`` is ``(-inf, bounds[0]]`` and the last is ``(bounds[-1], +inf)``.
    """
    base = 2.0 ** (2.0**-scale)
    bounds: list[float] = []
    counts: list[float] = []
    # negative buckets, most negative first: bucket k covers [-base**(k+1), -base**k)
    n = len(neg_counts)
    if n:
        bounds.append(-(base ** (neg_offset + n)))
        counts.append(0.0)
        for k in range(n - 1, -1, -1):
            bounds.append(-(base ** (neg_offset + k)))
            counts.append(float(neg_counts[k]))
    # the zero bucket
    bounds.append(0.0)
    counts.append(float(zero_count))
    if pos_counts:
        bounds.append(base**pos_offset)
        counts.append(0.0)
        for k, c in enumerate(pos_counts):
            bounds.append(base ** (pos_offset + k + 1))
            counts.append(float(c))
    counts.append(0.0)  # above the last bound
    return bounds, counts


def _ok_ns(ns: int) -> bool:
    return 0 < ns < _MAX_NS


def _fin(v: float) -> float | None:
    return v if not math.isnan(v) else None


# -- metrics ------------------------------------------------------------------------------------


_Req = TypeVar("_Req", ExportMetricsServiceRequest, ExportLogsServiceRequest)


def _parse_otlp(raw: bytes, fmt: str, req: _Req, field: str) -> _Req:
    """Fill ``req`` from an OTLP protobuf or JSON body (``field``: its top-level list)."""
    if fmt == "otlp_proto":
        try:
            req.ParseFromString(raw)
        except DecodeError as e:
            raise IngestError(f"malformed OTLP protobuf: {e}") from None
        return req
    data = _json_loads(raw)
    if not isinstance(data, dict):
        raise IngestError(f"OTLP JSON body must be an object with {field}")
    _ids_to_b64(data)
    try:
        ParseDict(data, req, ignore_unknown_fields=True)
    except (JsonParseError, ValueError, TypeError, AttributeError) as e:
        raise IngestError(f"malformed OTLP JSON: {e}") from None
    return req


def _parse_metrics(raw: bytes, fmt: str) -> ExportMetricsServiceRequest:
    return _parse_otlp(raw, fmt, ExportMetricsServiceRequest(), "resourceMetrics")


def _ids_to_b64(v: Any) -> None:
    """OTLP/JSON carries trace and span ids as hex; proto3 JSON reads bytes as base64."""
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            for k, val in x.items():
                if k in ("traceId", "spanId", "trace_id", "span_id") and isinstance(val, str):
                    try:
                        x[k] = base64.b64encode(bytes.fromhex(val)).decode()
                    except ValueError:
                        pass  # not hex: maybe already base64; ParseDict decides
                elif isinstance(val, dict | list):
                    stack.append(val)
        elif isinstance(x, list):
            stack.extend(i for i in x if isinstance(i, dict | list))


def decode_metrics(
    raw: bytes, fmt: str, project_id: str, *, max_points: int
) -> tuple[pa.Table | None, SignalResult]:
    """Decode an ``ExportMetricsServiceRequest`` (protobuf or JSON) into metric point rows."""
    req = _parse_metrics(raw, fmt)
    res = SignalResult()
    rows = MetricRows(project_id)
    cache: dict[tuple[tuple[str, Any], ...], str] = {}

    def attrs(kvs: Any) -> str:
        # exporters repeat a few attribute sets across many points: dump each set once
        if not kvs:
            return "{}"
        d = _pb_attrs(kvs)
        try:
            key = tuple(d.items())
            s = cache.get(key)
        except TypeError:  # list or map values: not hashable, dump them each time
            return dumps_attrs(d)
        if s is None:
            s = cache[key] = dumps_attrs(d)
        return s

    for rm in req.resource_metrics:
        res_attrs = _pb_attrs(rm.resource.attributes)
        service = res_attrs.get("service.name")
        service = str(service) if service is not None else None
        res_json = dumps_attrs(res_attrs)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                which = m.WhichOneof("data")
                name = m.name
                if not name or len(name) > _MAX_NAME:
                    res.reject("invalid_metric_name", _num_points(m, which))
                    continue
                common: dict[str, Any] = {
                    "name": name,
                    "unit": m.unit,
                    "resource_attributes": res_json,
                    "service_name": service,
                }
                if which == "gauge" or which == "sum":
                    _number_points(m, which, rows, res, common, attrs)
                elif which == "histogram":
                    temporality = _TEMPORALITY.get(m.histogram.aggregation_temporality)
                    for hp in m.histogram.data_points:
                        if not _ok_ns(hp.time_unix_nano):
                            res.reject("invalid_time")
                            continue
                        bounds = list(hp.explicit_bounds)
                        counts = [float(c) for c in hp.bucket_counts]
                        if counts and len(counts) != len(bounds) + 1:
                            res.reject("invalid_histogram_buckets")
                            continue
                        if any(b2 <= b1 for b1, b2 in zip(bounds, bounds[1:], strict=False)):
                            res.reject("invalid_histogram_buckets")
                            continue
                        rows.add(
                            type_="histogram",
                            attributes=attrs(hp.attributes),
                            time_ns=hp.time_unix_nano,
                            start_ns=hp.start_time_unix_nano,
                            temporality=temporality,
                            count=float(hp.count),
                            sum_=hp.sum if hp.HasField("sum") else None,
                            min_=hp.min if hp.HasField("min") else None,
                            max_=hp.max if hp.HasField("max") else None,
                            bounds=bounds if counts else None,
                            bucket_counts=counts or None,
                            **common,
                        )
                elif which == "exponential_histogram":
                    temporality = _TEMPORALITY.get(m.exponential_histogram.aggregation_temporality)
                    for ep in m.exponential_histogram.data_points:
                        if not _ok_ns(ep.time_unix_nano):
                            res.reject("invalid_time")
                            continue
                        if not -10 <= ep.scale <= 20:
                            res.reject("invalid_exponential_scale")
                            continue
                        try:
                            bounds, counts = exp_to_explicit(
                                ep.scale,
                                float(ep.zero_count),
                                ep.positive.offset,
                                [float(c) for c in ep.positive.bucket_counts],
                                ep.negative.offset,
                                [float(c) for c in ep.negative.bucket_counts],
                            )
                        except OverflowError:
                            res.reject("invalid_exponential_buckets")
                            continue
                        rows.add(
                            type_="exponential_histogram",
                            attributes=attrs(ep.attributes),
                            time_ns=ep.time_unix_nano,
                            start_ns=ep.start_time_unix_nano,
                            temporality=temporality,
                            count=float(ep.count),
                            sum_=ep.sum if ep.HasField("sum") else None,
                            min_=ep.min if ep.HasField("min") else None,
                            max_=ep.max if ep.HasField("max") else None,
                            bounds=bounds,
                            bucket_counts=counts,
                            exp_scale=ep.scale,
                            **common,
                        )
                elif which == "summary":
                    for sp in m.summary.data_points:
                        if not _ok_ns(sp.time_unix_nano):
                            res.reject("invalid_time")
                            continue
                        rows.add(
                            type_="summary",
                            attributes=attrs(sp.attributes),
                            time_ns=sp.time_unix_nano,
                            start_ns=sp.start_time_unix_nano,
                            temporality="cumulative",
                            count=float(sp.count),
                            sum_=_fin(sp.sum),
                            **common,
                        )
                else:
                    res.reject("metric_without_data")
                if len(rows) > max_points:
                    raise IngestError(f"more than {max_points} data points in one request")
    return rows.table(), res


def _number_points(
    m: Any,
    which: str,
    rows: MetricRows,
    res: SignalResult,
    common: dict[str, Any],
    attrs: Callable[[Any], str],
) -> None:
    """Gauge and sum points, appended straight to the columns (the hot loop of metrics)."""
    c = rows.cols
    if which == "sum":
        data = m.sum.data_points
        temporality = _TEMPORALITY.get(m.sum.aggregation_temporality)
        mono: bool | None = m.sum.is_monotonic
    else:
        data = m.gauge.data_points
        temporality = mono = None
    name, unit = common["name"], common["unit"] or None
    res_json, service = common["resource_attributes"], common["service_name"]
    cols = (
        c["project_id"], c["name"], c["alias"], c["type"], c["unit"], c["temporality"],
        c["monotonic"], c["service_name"], c["attributes"], c["resource_attributes"],
        c["source"], c["time"], c["start_time"], c["value"],
    )  # fmt: skip
    (c_pid, c_name, c_alias, c_type, c_unit, c_temp, c_mono, c_svc, c_attrs, c_res,
     c_src, c_time, c_start, c_value) = cols  # fmt: skip
    pid = rows.project_id
    n = 0
    for p in data:
        t = p.time_unix_nano
        if not 0 < t < _MAX_NS:
            res.reject("invalid_time")
            continue
        w = p.WhichOneof("value")
        if w is None:
            res.reject("missing_value")
            continue
        c_time.append(t)
        c_value.append(p.as_double if w == "as_double" else float(p.as_int))
        c_attrs.append(attrs(p.attributes))
        c_start.append(p.start_time_unix_nano or None)
        n += 1
    for col, v in (
        (c_pid, pid), (c_name, name), (c_alias, None), (c_type, which), (c_unit, unit),
        (c_temp, temporality), (c_mono, mono), (c_svc, service), (c_res, res_json),
        (c_src, "otlp"),
    ):  # fmt: skip
        col.extend([v] * n)
    for k in ("count", "sum", "min", "max", "bounds", "bucket_counts", "exp_scale"):
        c[k].extend([None] * n)


def _num_points(m: Any, which: str | None) -> int:
    if which is None:
        return 1
    return max(1, len(getattr(m, which).data_points))


# -- logs ---------------------------------------------------------------------------------------


def _parse_logs(raw: bytes, fmt: str) -> ExportLogsServiceRequest:
    return _parse_otlp(raw, fmt, ExportLogsServiceRequest(), "resourceLogs")


def decode_logs(
    raw: bytes,
    fmt: str,
    project_id: str,
    *,
    max_records: int,
    max_text_bytes: int,
    redact: Callable[[str], str] | None = None,
    now_ns: int = 0,
) -> tuple[pa.Table | None, SignalResult]:
    """Decode an ``ExportLogsServiceRequest`` (protobuf or JSON) into log rows.

    A record's time is its ``time_unix_nano``, else its observed time, else ``now_ns``. The
    body is kept as text (structured bodies as JSON), cut at ``max_text_bytes``, and redacted
    by the project's policy like span text.
    """
    req = _parse_logs(raw, fmt)
    res = SignalResult()
    if redact is not None:
        # attribute values repeat across records (model, system, route): redact each once
        base_redact = redact
        seen: dict[str, str] = {}

        def redact_cached(text: str) -> str:
            out = seen.get(text)
            if out is None:
                out = base_redact(text)
                if len(seen) < 10_000:
                    seen[text] = out
            return out

        redact_attr: Callable[[str], str] | None = redact_cached
    else:
        redact_attr = None
    attr_cache: dict[tuple[tuple[str, Any], ...], str] = {}

    def attrs_json(d: dict[str, Any]) -> str:
        # GenAI events repeat the same few attribute sets: redact and dump each set once
        if not d:
            return "{}"
        try:
            key = tuple(d.items())
            out = attr_cache.get(key)
        except TypeError:  # list or map values
            key, out = None, None
        if out is None:
            red = _redact_attrs(d, redact_attr) if redact_attr is not None else d
            out = dumps_attrs(red)
            if key is not None and len(attr_cache) < 10_000:
                attr_cache[key] = out
        return out

    cols: dict[str, list[Any]] = {f.name: [] for f in LOG_SCHEMA}
    for rl in req.resource_logs:
        res_attrs = _pb_attrs(rl.resource.attributes)
        service = res_attrs.get("service.name")
        service = str(service) if service is not None else None
        res_json = dumps_attrs(res_attrs)
        for sl in rl.scope_logs:
            scope = sl.scope.name or None
            for r in sl.log_records:
                t = r.time_unix_nano or r.observed_time_unix_nano or now_ns
                if not _ok_ns(t):
                    res.reject("invalid_time")
                    continue
                tid = r.trace_id.hex() if r.trace_id else None
                sid = r.span_id.hex() if r.span_id else None
                if (tid is not None and len(r.trace_id) != 16) or (
                    sid is not None and len(r.span_id) != 8
                ):
                    res.reject("invalid_trace_id")
                    continue
                if tid == "0" * 32:
                    tid = None
                if sid == "0" * 16:
                    sid = None
                attrs = _pb_attrs(r.attributes) if r.attributes else {}
                event_name = r.event_name or attrs.get("event.name")
                body = _body_text(r)
                if body is not None:
                    if len(body) > max_text_bytes:
                        body = body[:max_text_bytes]
                    if redact is not None:
                        body = redact(body)

                cols["project_id"].append(project_id)
                cols["time"].append(t)
                cols["observed_time"].append(r.observed_time_unix_nano or None)
                cols["severity_number"].append(int(r.severity_number) or None)
                cols["severity_text"].append(r.severity_text or None)
                cols["body"].append(body)
                cols["event_name"].append(str(event_name) if event_name else None)
                cols["attributes"].append(attrs_json(attrs))
                cols["resource_attributes"].append(res_json)
                cols["service_name"].append(service)
                cols["scope"].append(scope)
                cols["trace_id"].append(tid)
                cols["span_id"].append(sid)
                if len(cols["time"]) > max_records:
                    raise IngestError(f"more than {max_records} log records in one request")
    if not cols["time"]:
        return None, res
    return pa.table(cols, schema=LOG_SCHEMA), res


def _body_text(r: Any) -> str | None:
    if not r.HasField("body"):
        return None
    w = r.body.WhichOneof("value")
    if w == "string_value":
        return str(r.body.string_value)
    if w is None:
        return None
    v = _pb_value(r.body)
    return (
        v
        if isinstance(v, str)
        else dumps_attrs(v)
        if isinstance(v, dict)
        else orjson.dumps(v, default=_default).decode()
    )


def _redact_attrs(attrs: dict[str, Any], redact: Callable[[str], str]) -> dict[str, Any]:
    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return redact(v)
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return {k: walk(v) for k, v in attrs.items()}
