"""OTLP/HTTP trace receiver: POST /v1/traces (protobuf or JSON, optionally gzip)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from sightline.errors import SightlineError, UnsupportedMediaType
from sightline.ingest import Format
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
        import json

        payload = json.dumps(
            {
                "partialSuccess": {
                    "rejectedSpans": str(res.num_rejected),
                    "errorMessage": res.error_message(),
                }
            }
        )
    return Response(payload, media_type=_JSON)
