"""OTLP/gRPC honours key roles and the failed-authentication limit (a real server)."""

from __future__ import annotations

from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from _helpers import free_port, start_server
from _payload import llm_request


def test_grpc_roles_and_failed_auth_limit(tmp_path: Path) -> None:
    srv = start_server(tmp_path, grpc_port=free_port(), env={"SIGHTLINE_AUTH_FAIL_LIMIT": "3"})
    try:
        with srv.client() as c:
            keys = {r: c.post("/api/v1/keys", json={"role": r}).json()["key"]
                    for r in ("read", "ingest")}  # fmt: skip
        req: ExportTraceServiceRequest = llm_request(2)[0]
        with grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}") as ch:
            stub = trace_service_pb2_grpc.TraceServiceStub(ch)  # type: ignore[no-untyped-call]

            def export(key: str) -> grpc.StatusCode:
                try:
                    stub.Export(req, metadata=[("authorization", f"Bearer {key}")], timeout=30)
                except grpc.RpcError as e:
                    return e.code()  # type: ignore[no-any-return]
                return grpc.StatusCode.OK

            assert export(keys["ingest"]) == grpc.StatusCode.OK
            assert export(keys["read"]) == grpc.StatusCode.PERMISSION_DENIED
            for i in range(3):
                assert export(f"wrong-key-{i}") == grpc.StatusCode.UNAUTHENTICATED
            assert export("wrong-key-x") == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert export(keys["ingest"]) == grpc.StatusCode.RESOURCE_EXHAUSTED
        with srv.client() as c:  # HTTP from the same address shares the budget
            assert c.get("/api/v1/spans").status_code == 429
            assert c.get("/healthz").status_code == 200
    finally:
        srv.stop()


def test_ingest_key_over_http_cannot_read(tmp_path: Path) -> None:
    srv = start_server(tmp_path, grpc_port=0)
    try:
        with srv.client() as c:
            key = c.post("/api/v1/keys", json={"role": "ingest"}).json()["key"]
        with srv.client(key) as c:
            assert c.get("/api/v1/spans").status_code == 403
    finally:
        srv.stop()
