"""OTLP/HTTP receiver: POST /v1/traces, /v1/metrics and /v1/logs (protobuf or JSON, gzip)."""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from sightline.errors import SightlineError, UnsupportedMediaType
from sightline.ingest import Format, IngestResult
from sightline.server._body import read_body
from sightline.server._state import project_of, state_of

router = APIRouter(tags=["otlp"])

_PROTO = "application/x-protobuf"
_JSON = "application/json"


def _format(content_type: str | None) -> Format:
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct in (_PROTO, "application/protobuf"):
        return "otlp_proto"
    if ct == _JSON:
        return "otlp_json"
    raise UnsupportedMediaType(
        f"unsupported Content-Type {content_type!r}: send {_PROTO} or {_JSON}"
    )


@router.post(
    "/v1/traces",
    summary="OTLP/HTTP trace export",
    description="The OpenTelemetry OTLP/HTTP endpoint. Answers 200 only once the spans are "
    "committed; spans that cannot be stored are reported in `partialSuccess`.",
    responses={200: {"content": {_PROTO: {}, _JSON: {}}}},
)
async def export_traces(request: Request, project_id: str = Depends(project_of)) -> Response:
    """Receive an ExportTraceServiceRequest."""
    st = state_of(request)
    fmt = _format(request.headers.get("content-type"))
    try:
        body = await read_body(request, st.settings.max_body_bytes)
        res = await st.ingest.ingest(
            fmt, body, encoding=request.headers.get("content-encoding"), project_id=project_id
        )
    except SightlineError as e:
        st.metrics.observe_request(project_id, fmt, e.status)
        raise
    st.metrics.observe_request(project_id, fmt, 200, res.accepted, res.rejected, res.repaired)
    if fmt == "otlp_proto":
        msg = ExportTraceServiceResponse()
        if res.num_rejected:
            msg.partial_success.rejected_spans = res.num_rejected
            msg.partial_success.error_message = res.error_message()
        return Response(msg.SerializeToString(), media_type=_PROTO)
    payload = "{}"
    if res.num_rejected:
        payload = json.dumps(
            {
                "partialSuccess": {
                    "rejectedSpans": str(res.num_rejected),
                    "errorMessage": res.error_message(),
                }
            }
        )
    return Response(payload, media_type=_JSON)


async def _export_signal(
    request: Request, project_id: str, signal: Literal["metrics", "logs"]
) -> Response:
    st = state_of(request)
    fmt = _format(request.headers.get("content-type"))
    endpoint = f"otlp_{signal}"
    try:
        body = await read_body(request, st.settings.max_body_bytes)
        res = await st.ingest.ingest_signal(
            signal,
            fmt,
            body,
            encoding=request.headers.get("content-encoding"),
            project_id=project_id,
        )
    except SightlineError as e:
        st.metrics.observe_request(project_id, endpoint, e.status)
        raise
    st.metrics.observe_request(project_id, endpoint, 200, 0, res.rejected, res.repaired)
    return _signal_response(signal, fmt, res)


def _signal_response(signal: str, fmt: Format, res: IngestResult) -> Response:
    what = "data points" if signal == "metrics" else "log records"
    message = f"rejected {what}: " + ", ".join(f"{k}={v}" for k, v in sorted(res.rejected.items()))
    if fmt == "otlp_proto":
        msg: ExportMetricsServiceResponse | ExportLogsServiceResponse
        if signal == "metrics":
            msg = ExportMetricsServiceResponse()
            if res.num_rejected:
                msg.partial_success.rejected_data_points = res.num_rejected
                msg.partial_success.error_message = message
        else:
            msg = ExportLogsServiceResponse()
            if res.num_rejected:
                msg.partial_success.rejected_log_records = res.num_rejected
                msg.partial_success.error_message = message
        return Response(msg.SerializeToString(), media_type=_PROTO)
    payload: dict[str, object] = {}
    if res.num_rejected:
        key = "rejectedDataPoints" if signal == "metrics" else "rejectedLogRecords"
        payload = {"partialSuccess": {key: str(res.num_rejected), "errorMessage": message}}
    return Response(json.dumps(payload), media_type=_JSON)


@router.post(
    "/v1/metrics",
    summary="OTLP/HTTP metrics export",
    description="Gauges, sums, histograms (explicit and exponential) and summaries. Answers "
    "200 once the data points are committed; points that cannot be stored are reported in "
    "`partialSuccess`.",
    responses={200: {"content": {_PROTO: {}, _JSON: {}}}},
)
async def export_metrics(request: Request, project_id: str = Depends(project_of)) -> Response:
    """Receive an ExportMetricsServiceRequest."""
    return await _export_signal(request, project_id, "metrics")


@router.post(
    "/v1/logs",
    summary="OTLP/HTTP logs export",
    description="Log records (GenAI content events included), linked to their spans by "
    "trace and span id. Answers 200 once the records are committed.",
    responses={200: {"content": {_PROTO: {}, _JSON: {}}}},
)
async def export_logs(request: Request, project_id: str = Depends(project_of)) -> Response:
    """Receive an ExportLogsServiceRequest."""
    return await _export_signal(request, project_id, "logs")
