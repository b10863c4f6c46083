"""OTLP/gRPC receiver (Trace, Metrics and Logs services), for exporters that default to gRPC."""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures
from typing import Any, Literal

import grpc
import structlog
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from sightline.errors import (
    AuthError,
    IngestError,
    Overloaded,
    SightlineError,
    TooManyRequests,
    UnstorableBatch,
)
from sightline.ingest import IngestResult, IngestService
from sightline.server._auth import KeyRing, key_from_headers
from sightline.server._prom import Metrics
from sightline.server._security import AuthLimiter

__all__ = ["start_grpc_server"]

log = structlog.get_logger("sightline.grpc")


class _Auth:
    def __init__(self, keys: KeyRing, limiter: AuthLimiter | None) -> None:
        self._keys = keys
        self._limiter = limiter

    def project(self, context: grpc.ServicerContext) -> str:
        """The project of the call's ingest key; aborts the call otherwise."""
        md = {k.lower(): v for k, v in context.invocation_metadata()}
        auth = md.get("authorization")
        api_key = md.get("x-api-key")
        key = key_from_headers(
            auth if isinstance(auth, str) else None,
            api_key if isinstance(api_key, str) else None,
        )
        addr = _peer_address(context.peer())
        try:
            if self._limiter is not None:
                self._limiter.check(addr)
            found = self._keys.resolve(key)
        except TooManyRequests as e:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
        except AuthError as e:
            if self._limiter is not None and key:
                self._limiter.fail(addr)
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(e))
        if found.role not in ("ingest", "admin"):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "a read key cannot send telemetry")
        return found.project_id


def _export_signal(
    ingest: IngestService,
    metrics: Metrics,
    auth: _Auth,
    signal: Literal["metrics", "logs"],
    request: bytes,
    context: grpc.ServicerContext,
) -> IngestResult:
    project_id = auth.project(context)
    endpoint = f"otlp_grpc_{signal}"
    try:
        res = ingest.ingest_signal_sync(signal, request, project_id=project_id)
    except Overloaded as e:
        metrics.observe_request(project_id, endpoint, e.status)
        context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
    except (IngestError, UnstorableBatch) as e:
        metrics.observe_request(project_id, endpoint, e.status)
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
    except SightlineError as e:
        log.error("grpc_export_failed", signal=signal, error=str(e))
        context.abort(grpc.StatusCode.INTERNAL, "internal error")
    metrics.observe_request(project_id, endpoint, 200, 0, res.rejected, res.repaired)
    return res


def _rejections(res: IngestResult, what: str) -> str:
    return f"rejected {what}: " + ", ".join(f"{k}={v}" for k, v in sorted(res.rejected.items()))


class _MetricsService:
    def __init__(self, ingest: IngestService, metrics: Metrics, auth: _Auth) -> None:
        self._args = (ingest, metrics, auth)

    def Export(  # noqa: N802 - the OTLP service's method name
        self, request: bytes, context: grpc.ServicerContext
    ) -> ExportMetricsServiceResponse:
        res = _export_signal(*self._args, "metrics", request, context)
        resp = ExportMetricsServiceResponse()
        if res.num_rejected:
            resp.partial_success.rejected_data_points = res.num_rejected
            resp.partial_success.error_message = _rejections(res, "data points")
        return resp


class _LogsService:
    def __init__(self, ingest: IngestService, metrics: Metrics, auth: _Auth) -> None:
        self._args = (ingest, metrics, auth)

    def Export(  # noqa: N802 - the OTLP service's method name
        self, request: bytes, context: grpc.ServicerContext
    ) -> ExportLogsServiceResponse:
        res = _export_signal(*self._args, "logs", request, context)
        resp = ExportLogsServiceResponse()
        if res.num_rejected:
            resp.partial_success.rejected_log_records = res.num_rejected
            resp.partial_success.error_message = _rejections(res, "log records")
        return resp


class _TraceService:
    def __init__(
        self,
        ingest: IngestService,
        keys: KeyRing,
        metrics: Metrics,
        limiter: AuthLimiter | None = None,
    ) -> None:
        self._ingest = ingest
        self._auth = _Auth(keys, limiter)
        self._metrics = metrics

    def Export(  # noqa: N802 - the OTLP service's method name
        self, request: bytes, context: grpc.ServicerContext
    ) -> ExportTraceServiceResponse:
        project_id = self._auth.project(context)
        try:
            res = self._ingest.ingest_sync(
                "otlp_proto", request, encoding=None, project_id=project_id
            )
        except Overloaded as e:
            self._metrics.observe_request(project_id, "otlp_grpc", e.status)
            context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
        except (IngestError, UnstorableBatch) as e:
            self._metrics.observe_request(project_id, "otlp_grpc", e.status)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except SightlineError as e:
            log.error("grpc_export_failed", error=str(e))
            context.abort(grpc.StatusCode.INTERNAL, "internal error")
        self._metrics.observe_request(
            project_id, "otlp_grpc", 200, res.accepted, res.rejected, res.repaired
        )
        resp = ExportTraceServiceResponse()
        if res.num_rejected:
            resp.partial_success.rejected_spans = res.num_rejected
            resp.partial_success.error_message = res.error_message()
        return resp


def _peer_address(peer: str) -> str:
    """The client address as HTTP sees it: "ipv4:127.0.0.1:5555" -> "127.0.0.1"."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer


def _raw_export(
    module: Any, service: str, export: Callable[[bytes, grpc.ServicerContext], Any], response: Any
) -> grpc.GenericRpcHandler:
    """``service``'s ``Export`` method, handed the request's bytes as they came.

    The generated servicers parse each request into a message, which the decoders would
    serialize again to read it their way (the lite messages, the UTF-8 repair); and a message
    with invalid UTF-8 would be refused before any of our code saw it.
    """
    return grpc.method_handlers_generic_handler(
        module.DESCRIPTOR.services_by_name[service].full_name,
        {
            "Export": grpc.unary_unary_rpc_method_handler(
                export, response_serializer=response.SerializeToString
            )
        },
    )


def _bind_reason(host: str, port: int) -> str:
    """Why gRPC could not bind, which grpcio does not say.

    ": address already in use" where a plain socket cannot bind that port either, else "".
    """
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)
    except OSError:
        return ""
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(addr)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    return f": address already in use (another process listens on port {port})"
    return ""


def start_grpc_server(
    host: str,
    port: int,
    ingest: IngestService,
    keys: KeyRing,
    metrics: Metrics,
    *,
    max_message_bytes: int,
    limiter: AuthLimiter | None = None,
) -> tuple[grpc.Server, int]:
    """Start the receiver; return it and the bound port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="sightline-grpc"),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            # gRPC sets SO_REUSEPORT by default: a second server on the same port would bind
            # too, and the kernel would split the exporters' connections between two stores.
            ("grpc.so_reuseport", 0),
        ],
    )
    auth = _Auth(keys, limiter)
    server.add_generic_rpc_handlers(
        (
            _raw_export(
                trace_service_pb2,
                "TraceService",
                _TraceService(ingest, keys, metrics, limiter).Export,
                ExportTraceServiceResponse,
            ),
            _raw_export(
                metrics_service_pb2,
                "MetricsService",
                _MetricsService(ingest, metrics, auth).Export,
                ExportMetricsServiceResponse,
            ),
            _raw_export(
                logs_service_pb2,
                "LogsService",
                _LogsService(ingest, metrics, auth).Export,
                ExportLogsServiceResponse,
            ),
        )
    )
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpcio raises where it used to answer 0
        bound = 0
    if bound == 0:
        raise OSError(f"cannot bind OTLP/gRPC to {host}:{port}{_bind_reason(host, port)}")
    server.start()
    return server, bound
