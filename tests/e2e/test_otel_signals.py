"""OTLP metrics and logs: the real OpenTelemetry SDK exporters against `sightline serve`."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import (
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from _helpers import API_KEY, Server

AUTH = {"authorization": f"Bearer {API_KEY}"}
PB = {**AUTH, "content-type": "application/x-protobuf"}


def _meter_provider(server: Server, service: str, views: list[View]) -> MeterProvider:
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{server.url}/v1/metrics", headers=AUTH),
        export_interval_millis=3_600_000,
    )
    return MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": service}),
        views=views,
    )


def _metric(server: Server, **params: Any) -> dict[str, Any]:
    with server.client() as c:
        r = c.get("/api/v1/metrics", params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _value(server: Server, **params: Any) -> float | None:
    series = _metric(server, **params)["series"]
    assert len(series) == 1, series
    points = series[0]["points"]
    assert len(points) == 1
    v = points[0]["value"]
    return None if v is None else float(v)


class TestMetricsExporter:
    def test_histogram_percentiles_merge_buckets_across_series(self, server: Server) -> None:
        """Hand-computed: buckets (≤100, ≤200, ≤500, >500), two attribute sets.

        route=a: 50, 110, 120, 130, 300 (min 50, max 300)
        route=b: 60, 140, 150, 160, 400 (min 60, max 400)
        Each bucket spreads its values evenly between its bounds; the first starts at the
        series' min and the last non-empty one ends at its max. Merged CDF: 2 at 100, 8 at 200.
          p50: rank 5 -> 100 + 100 * (5 - 2) / 6 = 150
          p90: rank 9; on (200, 300] a adds 1/100 per unit, b 1/200 -> 200 + 1 / 0.015 = 266.67
          p10: rank 1; cdf(60) = 10/50 = 0.2, then slope 1/50 + 1/40 = 0.045
               -> 60 + 0.8 / 0.045 = 77.78
        (Averaging the per-series p90s, 250 and 300, would give 275.)
        """
        name = f"latency_{uuid.uuid4().hex[:8]}"
        mp = _meter_provider(
            server,
            "hist-svc",
            [
                View(
                    instrument_name=name,
                    aggregation=ExplicitBucketHistogramAggregation(boundaries=[100, 200, 500]),
                )
            ],
        )
        h = mp.get_meter("t").create_histogram(name, unit="ms")
        for v in (50, 110, 120, 130, 300):
            h.record(v, {"route": "a"})
        for v in (60, 140, 150, 160, 400):
            h.record(v, {"route": "b"})
        assert mp.force_flush()
        mp.shutdown()
        assert _value(server, name=name, agg="p50") == pytest.approx(150)
        assert _value(server, name=name, agg="p90") == pytest.approx(200 + 1 / 0.015)
        assert _value(server, name=name, agg="p50", attr="route=a") == pytest.approx(150)
        assert _value(server, name=name, agg="count") == 10
        assert _value(server, name=name, agg="avg") == pytest.approx(1620 / 10)
        by_route = _metric(server, name=name, agg="p90", group_by="route")["series"]
        got = {s["group"]["route"]: s["points"][0]["value"] for s in by_route}
        assert got == {"a": pytest.approx(250), "b": pytest.approx(300)}
        # otel:<name> is the same metric, the form alert rules use
        assert _value(server, name=f"otel:{name}", agg="p90") == pytest.approx(266.6667, 1e-4)

    def test_exponential_histogram_and_counter_and_gauge(self, server: Server) -> None:
        suffix = uuid.uuid4().hex[:8]
        exp_name, ctr_name, gauge_name = f"ttft_{suffix}", f"tokens_{suffix}", f"kv_{suffix}"
        mp = _meter_provider(
            server,
            "exp-svc",
            [View(instrument_name=exp_name, aggregation=ExponentialBucketHistogramAggregation())],
        )
        meter = mp.get_meter("t")
        h = meter.create_histogram(exp_name, unit="s")
        for v in range(1, 101):
            h.record(float(v))
        c = meter.create_counter(ctr_name)
        c.add(5, {"model": "llama"})
        c.add(7, {"model": "llama"})
        g = meter.create_gauge(gauge_name)
        g.set(0.25)
        assert mp.force_flush()
        mp.shutdown()
        p50 = _value(server, name=exp_name, agg="p50")
        assert p50 is not None and abs(p50 - 50) / 50 < 0.05  # within one bucket (scale 20 -> ~1%)
        assert _value(server, name=exp_name, agg="max") == 100
        assert _value(server, name=ctr_name, agg="sum") == 12
        assert _value(server, name=gauge_name) == 0.25
        with server.client() as cl:
            names = {m["name"]: m for m in cl.get("/api/v1/otel-metrics").json()["data"]}
        assert names[exp_name]["type"] == "exponential_histogram"
        assert names[ctr_name]["type"] == "sum"

    def test_grpc_metrics_exporter(self, server: Server) -> None:
        name = f"grpc_gauge_{uuid.uuid4().hex[:8]}"
        reader = PeriodicExportingMetricReader(
            GrpcMetricExporter(
                endpoint=f"127.0.0.1:{server.grpc_port}",
                insecure=True,
                headers={"authorization": f"Bearer {API_KEY}"},
            ),
            export_interval_millis=3_600_000,
        )
        mp = MeterProvider(metric_readers=[reader])
        mp.get_meter("t").create_gauge(name).set(42)
        assert mp.force_flush()
        mp.shutdown()
        assert _value(server, name=name, agg="max") == 42


def _metrics_json(name: str, points: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "resourceMetrics": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "j"}}]
                    },
                    "scopeMetrics": [
                        {"metrics": [{"name": name, "gauge": {"dataPoints": points}}]}
                    ],
                }
            ]
        }
    ).encode()


class TestMetricsHttp:
    def test_json_gzip_and_partial_success(self, server: Server) -> None:
        name = f"json_gauge_{uuid.uuid4().hex[:8]}"
        now = time.time_ns()
        body = _metrics_json(
            name,
            [
                {"timeUnixNano": str(now), "asDouble": 3.5},
                {"timeUnixNano": str(now), "asInt": "4"},
                {"timeUnixNano": "0", "asDouble": 1.0},  # no time: rejected
                {"timeUnixNano": str(now)},  # no value: rejected
            ],
        )
        with server.client() as c:
            r = c.post(
                "/v1/metrics",
                content=gzip.compress(body),
                headers={"content-type": "application/json", "content-encoding": "gzip"},
            )
        assert r.status_code == 200, r.text
        ps = r.json()["partialSuccess"]
        assert ps["rejectedDataPoints"] == "2"
        assert "invalid_time=1" in ps["errorMessage"] and "missing_value=1" in ps["errorMessage"]
        assert _value(server, name=name, agg="sum") == 7.5

    def test_nan_infinite_and_no_recorded_value_points_do_not_null_the_window(
        self, server: Server
    ) -> None:
        # a Prometheus staleness marker arrives as a NaN with FLAG_NO_RECORDED_VALUE; a NaN or
        # infinity stored as a value made avg, p50 and sum of the whole window null
        name = f"stale_gauge_{uuid.uuid4().hex[:8]}"
        now = time.time_ns()
        body = _metrics_json(
            name,
            [
                {"timeUnixNano": str(now), "asDouble": 2.0},
                {"timeUnixNano": str(now), "asDouble": 4.0},
                {"timeUnixNano": str(now), "asDouble": "NaN", "flags": 1},  # a gap: skipped
                {"timeUnixNano": str(now), "asDouble": "NaN"},  # rejected
                {"timeUnixNano": str(now), "asDouble": "Infinity"},  # rejected
            ],
        )
        hname = f"inf_hist_{uuid.uuid4().hex[:8]}"
        hist = {
            "resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": hname, "histogram": {
                "aggregationTemporality": 1,
                "dataPoints": [
                    {"timeUnixNano": str(now), "count": "4", "sum": 10.0, "max": 5.0,
                     "bucketCounts": ["2", "2"], "explicitBounds": [2.0]},
                    {"timeUnixNano": str(now), "count": "1", "sum": "Infinity",
                     "max": "Infinity", "bucketCounts": ["0", "1"], "explicitBounds": [2.0]},
                    {"timeUnixNano": str(now), "count": "1", "bucketCounts": ["1", "0"],
                     "explicitBounds": ["NaN"]},  # refused: a NaN bound
                ],
            }}]}]}]
        }  # fmt: skip
        with server.client() as c:
            r = c.post("/v1/metrics", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 200, r.text
            ps = r.json()["partialSuccess"]
            assert ps["rejectedDataPoints"] == "2" and "invalid_value=2" in ps["errorMessage"]
            r = c.post(
                "/v1/metrics",
                content=json.dumps(hist).encode(),
                headers={"content-type": "application/json"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["partialSuccess"]["rejectedDataPoints"] == "1"
        assert _value(server, name=name, agg="avg") == 3.0
        assert _value(server, name=name, agg="max") == 4.0
        assert _value(server, name=name, agg="count") == 2
        assert _value(server, name=hname, agg="count") == 5
        assert _value(server, name=hname, agg="max") == 5.0
        assert _value(server, name=hname, agg="p50") is not None

    def test_dcgm_over_otlp_gets_its_shared_name(self, server: Server) -> None:
        now = time.time_ns()
        pts = [
            {"timeUnixNano": str(now), "asDouble": v,
             "attributes": [{"key": "gpu", "value": {"stringValue": g}}]}
            for g, v in (("0", 0.5), ("1", 0.7))
        ]  # fmt: skip
        with server.client() as c:
            r = c.post(
                "/v1/metrics",
                content=_metrics_json("DCGM_FI_PROF_SM_ACTIVE", pts),
                headers={"content-type": "application/json"},
            )
        assert r.status_code == 200, r.text
        assert _value(server, name="gpu_sm_active_ratio", agg="avg") == pytest.approx(0.6)
        got = _metric(server, name="gpu_sm_active_ratio", agg="max", group_by="gpu")["series"]
        assert {s["group"]["gpu"]: s["points"][0]["value"] for s in got} == {"0": 0.5, "1": 0.7}

    @pytest.mark.parametrize(
        "params",
        [
            {"name": "otel:x", "attr": "novalue"},
            {"name": "otel:x", "agg": "median"},
            {"name": "otel:x", "group_by": 'a"b'},
            {"name": "otel:x", "step": "1s", "from": "0"},
            {"name": "no_such_metric_anywhere"},
        ],
    )
    def test_bad_metric_queries_are_400(self, server: Server, params: dict[str, str]) -> None:
        with server.client() as c:
            r = c.get("/api/v1/metrics", params=params)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"]

    def test_protobuf_partial_success_response(self, server: Server) -> None:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
        )

        req = ExportMetricsServiceRequest()
        m = req.resource_metrics.add().scope_metrics.add().metrics.add()
        m.name = ""  # nameless: its point is rejected
        m.gauge.data_points.add(time_unix_nano=time.time_ns(), as_double=1)
        with server.client() as c:
            r = c.post(
                "/v1/metrics",
                content=req.SerializeToString(),
                headers={"content-type": "application/x-protobuf"},
            )
        assert r.status_code == 200
        resp = ExportMetricsServiceResponse.FromString(r.content)
        assert resp.partial_success.rejected_data_points == 1

    @pytest.mark.parametrize(
        ("path", "headers", "body", "status"),
        [
            ("/v1/metrics", {"content-type": "application/x-protobuf"}, b"\xff\xff\xff", 400),
            ("/v1/metrics", {"content-type": "application/json"}, b"{not json", 400),
            ("/v1/metrics", {"content-type": "application/json"}, b"[1, 2]", 400),
            ("/v1/logs", {"content-type": "application/json"}, b'{"resourceLogs": 5}', 400),
            ("/v1/logs", {"content-type": "text/plain"}, b"hello", 415),
            (
                "/v1/logs",
                {"content-type": "application/json", "content-encoding": "gzip"},
                b"not gzip",
                400,
            ),
        ],
    )
    def test_bad_input_is_a_4xx_with_a_message(
        self, server: Server, path: str, headers: dict[str, str], body: bytes, status: int
    ) -> None:
        with server.client() as c:
            r = c.post(path, content=body, headers=headers)
            assert r.status_code == status, r.text
            assert r.json()["error"]["message"]
            assert c.get("/readyz").status_code == 200

    def test_keys_and_roles(self, server: Server) -> None:
        with server.client(key=None) as c:
            r = c.post("/v1/logs", content=b"{}", headers={"content-type": "application/json"})
        assert r.status_code == 401
        with server.client() as c:
            # the admin key makes an ingest key; it may send metrics and logs, not read them
            r = c.post("/api/v1/keys", json={"role": "ingest", "name": "otel"})
            assert r.status_code in (200, 201), r.text
            key = r.json()["key"]
        with server.client(key=key) as c:
            for path in ("/v1/metrics", "/v1/logs"):
                r = c.post(path, content=b"{}", headers={"content-type": "application/json"})
                assert r.status_code == 200, (path, r.text)
            assert c.get("/api/v1/logs").status_code == 403


class TestLogsExporter:
    def test_logs_land_linked_to_their_trace_and_span(self, server: Server) -> None:
        resource = Resource.create({"service.name": "log-svc"})
        tp = TracerProvider(resource=resource)
        tp.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", headers=AUTH))
        )
        lp = LoggerProvider(resource=resource)
        lp.add_log_record_processor(
            SimpleLogRecordProcessor(
                OTLPLogExporter(endpoint=f"{server.url}/v1/logs", headers=AUTH)
            )
        )
        logger = lp.get_logger("gen_ai")
        tracer = tp.get_tracer("t")
        with tracer.start_as_current_span(
            "chat llama", attributes={"gen_ai.operation.name": "chat"}
        ) as span:
            # GenAI content events, as instrumentations that send them as logs do
            logger.emit(
                event_name="gen_ai.user.message",
                body={"content": "What is the capital of France?"},
                attributes={"gen_ai.system": "openai"},
                severity_number=SeverityNumber.INFO,
            )
            logger.emit(
                event_name="gen_ai.choice",
                body={"index": 0, "message": {"content": "Paris."}},
                severity_number=SeverityNumber.INFO,
            )
            logger.emit(body="slow upstream", severity_number=SeverityNumber.WARN)
            trace_id = format(span.get_span_context().trace_id, "032x")
            span_id = format(span.get_span_context().span_id, "016x")
        tp.shutdown()
        lp.shutdown()
        with server.client() as c:
            r = c.get("/api/v1/logs", params={"trace_id": trace_id})
            assert r.status_code == 200, r.text
            recs = r.json()["data"]
            assert [x["event_name"] for x in recs] == ["gen_ai.user.message", "gen_ai.choice", None]
            assert all(x["span_id"] == span_id for x in recs)
            assert json.loads(recs[0]["body"]) == {"content": "What is the capital of France?"}
            assert recs[2]["body"] == "slow upstream"
            assert recs[2]["severity_number"] == SeverityNumber.WARN.value
            assert recs[0]["service_name"] == "log-svc"
            params = {"trace_id": trace_id, "min_severity": 13}
            warn = c.get("/api/v1/logs", params=params).json()["data"]
            assert [x["body"] for x in warn] == ["slow upstream"]
            tree = c.get(f"/api/v1/traces/{trace_id}").json()
            assert len(tree["logs"]) == 3
            (root,) = tree["spans"]
            assert [x["event_name"] for x in root["logs"]][:2] == [
                "gen_ai.user.message",
                "gen_ai.choice",
            ]
            assert c.get("/api/v1/logs", params={"trace_id": "zz"}).status_code == 400

    def test_a_record_with_an_invalid_trace_or_span_id_is_kept_without_it(
        self, server: Server
    ) -> None:
        # OTLP: an id of the wrong length means "not associated with a trace (span)"; the
        # record was rejected whole
        tag = uuid.uuid4().hex
        tid, sid = "ab" * 16, "cd" * 8
        recs = [
            {"traceId": "abcd", "spanId": sid, "body": {"stringValue": f"{tag} short trace"}},
            {"traceId": tid, "spanId": "cdcd", "body": {"stringValue": f"{tag} short span"}},
            {"traceId": tid, "spanId": sid, "body": {"stringValue": f"{tag} valid ids"}},
            # neither hex nor base64 (OTLP/JSON only): the whole request was a 400
            {"traceId": "abcde", "spanId": sid, "body": {"stringValue": f"{tag} garbled"}},
        ]
        for r in recs:
            r["timeUnixNano"] = str(time.time_ns())
        body = {"resourceLogs": [{"scopeLogs": [{"logRecords": recs}]}]}
        with server.client() as c:
            r = c.post(
                "/v1/logs", content=json.dumps(body), headers={"content-type": "application/json"}
            )
            assert r.status_code == 200, r.text
            assert not r.json().get("partialSuccess"), r.text
            got = {
                x["body"].split(" ", 1)[1]: (x["trace_id"], x["span_id"])
                for x in c.get("/api/v1/logs", params={"q": tag}).json()["data"]
            }
        assert got == {
            "short trace": (None, sid),
            "short span": (tid, None),
            "valid ids": (tid, sid),
            "garbled": (None, sid),
        }

    def test_grpc_logs_service(self, server: Server) -> None:
        body = f"grpc-log-{uuid.uuid4().hex}"
        req = ExportLogsServiceRequest()
        rec = req.resource_logs.add().scope_logs.add().log_records.add()
        rec.time_unix_nano = time.time_ns()
        rec.body.string_value = body
        rec.trace_id = bytes(range(16))
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
            stub = logs_service_pb2_grpc.LogsServiceStub(ch)  # type: ignore[no-untyped-call]
            stub.Export(req, metadata=[("authorization", f"Bearer {API_KEY}")])
            with pytest.raises(grpc.RpcError) as e:
                stub.Export(req, metadata=[("authorization", "Bearer nope")])
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with server.client() as c:
            recs = c.get("/api/v1/logs", params={"q": body}).json()["data"]
        assert [r["trace_id"] for r in recs] == [bytes(range(16)).hex()]


def _num_points(server: Server, name: str) -> int:
    with server.client() as c:
        data = c.get("/api/v1/otel-metrics").json()["data"]
    return sum(int(m["num_points"]) for m in data if m["name"] == name)


def _logs_json(body: str, attrs: dict[str, str]) -> bytes:
    record = {
        "timeUnixNano": str(time.time_ns()),
        "body": {"stringValue": body},
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()],
    }
    return json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}).encode()


class TestOutOfRangeTimes:
    def test_a_start_or_observed_time_past_int64_is_dropped_not_a_500(self, server: Server) -> None:
        # uint64 nanoseconds past 2**63 (year 2262) did not fit the timestamp column: the
        # whole request answered 500
        now = time.time_ns()
        name = f"far_start_{uuid.uuid4().hex[:8]}"
        metrics = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": name, "sum": {
            "aggregationTemporality": 1, "isMonotonic": True,
            "dataPoints": [{"timeUnixNano": str(now), "startTimeUnixNano": str(10**19),
                            "asDouble": 3.0}],
        }}]}]}]}  # fmt: skip
        tag = uuid.uuid4().hex
        logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
            {"timeUnixNano": str(now), "observedTimeUnixNano": str(10**19),
             "body": {"stringValue": tag}},
        ]}]}]}  # fmt: skip
        with server.client() as c:
            for path, body in (("/v1/metrics", metrics), ("/v1/logs", logs)):
                r = c.post(
                    path, content=json.dumps(body), headers={"content-type": "application/json"}
                )
                assert r.status_code == 200, r.text
            [rec] = c.get("/api/v1/logs", params={"q": tag}).json()["data"]
        assert rec["observed_time"] is None and rec["time"] is not None
        assert _value(server, name=name, agg="sum") == 3.0
        # an event time there is a broken clock: the point is rejected, not the request
        late = {"timeUnixNano": str(10**19), "asDouble": 1.0}
        with server.client() as c:
            r = c.post(
                "/v1/metrics",
                content=_metrics_json(name, [late]),
                headers={"content-type": "application/json"},
            )
        assert r.status_code == 200, r.text
        assert "invalid_time=1" in r.json()["partialSuccess"]["errorMessage"]

    def test_a_log_record_with_a_broken_event_time_takes_its_observed_time(
        self, server: Server
    ) -> None:
        # it was rejected (invalid_time), though its observed time was good
        now = time.time_ns()
        tag = uuid.uuid4().hex
        rec = {"timeUnixNano": str(13 * 10**18), "observedTimeUnixNano": str(now),
               "body": {"stringValue": tag}}  # fmt: skip
        body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [rec]}]}]}
        with server.client() as c:
            r = c.post(
                "/v1/logs", content=json.dumps(body), headers={"content-type": "application/json"}
            )
            assert r.status_code == 200, r.text
            assert not r.json().get("partialSuccess"), r.text
            [got] = c.get("/api/v1/logs", params={"q": tag}).json()["data"]
        assert got["time"] == got["observed_time"] is not None


class TestResentBatches:
    """An exporter resends a request whose answer it lost: it is stored once."""

    def test_a_resent_metrics_request_is_stored_once(self, server: Server) -> None:
        name = f"resent_gauge_{uuid.uuid4().hex[:8]}"
        now = time.time_ns()
        body = _metrics_json(name, [{"timeUnixNano": str(now), "asDouble": 2.0}] * 3)
        with server.client() as c:
            for content, headers in (
                (body, {"content-type": "application/json"}),
                (body, {"content-type": "application/json"}),
                # the same request gzip-compressed: its content is what identifies it
                (
                    gzip.compress(body),
                    {"content-type": "application/json", "content-encoding": "gzip"},
                ),
            ):
                r = c.post("/v1/metrics", content=content, headers=headers)
                assert r.status_code == 200, r.text
                assert "partialSuccess" not in r.json() or not r.json()["partialSuccess"]
        assert _num_points(server, name) == 3
        assert _value(server, name=name, agg="sum") == 6.0
        # a request that differs (one more point) is a new one
        other = _metrics_json(name, [{"timeUnixNano": str(now), "asDouble": 2.0}] * 4)
        with server.client() as c:
            r = c.post("/v1/metrics", content=other, headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        assert _num_points(server, name) == 7

    def test_a_resent_logs_request_is_stored_once(self, server: Server) -> None:
        marker = f"resent-{uuid.uuid4().hex}"
        body = _logs_json(f"job {marker} done", {"job": marker})
        with server.client() as c:
            for _ in range(3):
                r = c.post("/v1/logs", content=body, headers={"content-type": "application/json"})
                assert r.status_code == 200, r.text
            recs = c.get("/api/v1/logs", params={"q": marker}).json()["data"]
        assert len(recs) == 1


class TestLogRedaction:
    def test_log_bodies_and_string_attributes_are_redacted_by_default(self, server: Server) -> None:
        marker = uuid.uuid4().hex
        body = _logs_json(
            f"{marker} reset for jane.doe@example.com",
            {"user.email": "bob@example.org", "gen_ai.system": "openai"},
        )
        with server.client() as c:
            r = c.post("/v1/logs", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 200, r.text
            (rec,) = c.get("/api/v1/logs", params={"q": marker}).json()["data"]
        assert rec["body"] == f"{marker} reset for <EMAIL>"
        assert rec["attributes"] == {"gen_ai.system": "openai", "user.email": "<EMAIL>"}


class TestMalformedAttributes:
    def test_a_malformed_attribute_inside_a_point_is_a_400(self, server: Server) -> None:
        from sightline.ingest._otlp_lite import LiteLogsData, LiteMetricsData

        m = LiteMetricsData()
        metric = m.resource_metrics.add().scope_metrics.add().metrics.add()
        metric.name = "malformed_attrs"
        p = metric.gauge.data_points.add(time_unix_nano=time.time_ns(), as_double=1.0)
        p.attributes.append(b"\x0a\xff\xff\xff")  # a key whose length runs past the pair
        logs = LiteLogsData()
        rec = logs.resource_logs.add().scope_logs.add().log_records.add()
        rec.time_unix_nano = time.time_ns()
        rec.attributes.append(b"\x0a\x01k\x12\x09\x0a\x01")  # a value running past the pair
        with server.client() as c:
            for path, msg in (("/v1/metrics", m), ("/v1/logs", logs)):
                r = c.post(
                    path,
                    content=msg.SerializeToString(),
                    headers={"content-type": "application/x-protobuf"},
                )
                assert r.status_code == 400, r.text
                assert "malformed OTLP protobuf" in r.json()["error"]["message"]
            assert _num_points(server, "malformed_attrs") == 0


def _bad_utf8(msg: Any, marks: dict[bytes, bytes]) -> bytes:
    """``msg`` serialized with each mark replaced by bytes of the same length (not UTF-8)."""
    body = msg.SerializeToString()
    for old, new in marks.items():
        assert body.count(old) == 1 and len(old) == len(new)
        body = body.replace(old, new)
    return body


class TestInvalidUtf8:
    """protobuf.js and Go exporters can send bytes that are not UTF-8; the request is kept."""

    def _raw_grpc(self, server: Server, service: str, body: bytes, response: Any) -> Any:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
            export = ch.unary_unary(
                f"/opentelemetry.proto.collector.{service}/Export",
                response_deserializer=response.FromString,
            )
            return export(body, metadata=[("authorization", f"Bearer {API_KEY}")], timeout=30)

    def test_logs_and_metrics_over_http_and_grpc(self, server: Server) -> None:
        tag = uuid.uuid4().hex[:8]
        sent = {}
        for via in ("http", "grpc"):
            logs = ExportLogsServiceRequest()
            recs = logs.resource_logs.add().scope_logs.add().log_records
            for i in range(3):
                r = recs.add(time_unix_nano=time.time_ns())
                r.body.string_value = f"{via}-{tag}-log{i} @@@"
                r.attributes.add(key="who").value.string_value = f"user{i}"
            body = _bad_utf8(logs, {b"log1 @@@": b"log1 \xed\xa0\xbd", b"user2": b"us\xffr2"})
            sent[via] = body
            if via == "http":
                resp = httpx.post(f"{server.url}/v1/logs", content=body, headers=PB)
                assert resp.status_code == 200, resp.text
            else:
                self._raw_grpc(server, "logs.v1.LogsService", body, ExportLogsServiceResponse)
        metrics = ExportMetricsServiceRequest()
        metric = metrics.resource_metrics.add().scope_metrics.add().metrics.add()
        metric.name = f"utf8_{tag}"
        metric.description = "caf@"
        metric.gauge.data_points.add(time_unix_nano=time.time_ns(), as_double=2.0)
        mbody = _bad_utf8(metrics, {b"caf@": b"caf\xe9"})
        resp = httpx.post(f"{server.url}/v1/metrics", content=mbody, headers=PB)
        assert resp.status_code == 200, resp.text
        metric.name = f"utf8_grpc_{tag}"
        self._raw_grpc(
            server, "metrics.v1.MetricsService", _bad_utf8(metrics, {b"caf@": b"caf\xe9"}),
            ExportMetricsServiceResponse,
        )  # fmt: skip
        assert _num_points(server, f"utf8_{tag}") == 1
        assert _num_points(server, f"utf8_grpc_{tag}") == 1
        with server.client() as c:
            for via in ("http", "grpc"):
                got = c.get("/api/v1/logs", params={"q": f"{via}-{tag}"}).json()["data"]
                assert sorted(x["body"] for x in got) == [
                    f"{via}-{tag}-log0 @@@",
                    f"{via}-{tag}-log1 \ufffd",  # a cut emoji: one character lost
                    f"{via}-{tag}-log2 @@@",
                ]
            prom = c.get("/metrics").text
        assert 'reason="invalid_utf8"' in prom

    def test_spans_over_grpc_are_repaired(self, server: Server) -> None:
        req = ExportTraceServiceRequest()
        spans = req.resource_spans.add().scope_spans.add().spans
        trace_id = uuid.uuid4().bytes
        for i in range(2):
            s = spans.add(trace_id=trace_id, span_id=bytes([i + 1]) * 8, name=f"chat-{i}")
            s.start_time_unix_nano = time.time_ns()
            s.end_time_unix_nano = s.start_time_unix_nano + 1000
            s.attributes.add(key="output.value").value.string_value = f"answer {i} ##"
        body = _bad_utf8(req, {b"answer 1 ##": b"answer 1 \xf0\x9f"})
        resp = self._raw_grpc(server, "trace.v1.TraceService", body, ExportTraceServiceResponse)
        assert resp.partial_success.rejected_spans == 0
        with server.client() as c:
            tree = c.get(f"/api/v1/traces/{trace_id.hex()}").json()
        got = {s["name"]: (s["output"], s["ingest_notes"]) for s in _flat(tree["spans"])}
        assert got == {
            "chat-0": ("answer 0 ##", []),
            "chat-1": ("answer 1 \ufffd", ["invalid_utf8"]),
        }
        with pytest.raises(grpc.RpcError) as e:  # malformed beyond its UTF-8: still refused
            self._raw_grpc(server, "trace.v1.TraceService", body[:-2], ExportTraceServiceResponse)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _flat(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [x for n in nodes for x in (n, *_flat(n.get("children", [])))]
