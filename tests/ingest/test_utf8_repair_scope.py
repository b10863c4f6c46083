"""Invalid UTF-8 repaired: what counts as repaired is the item whose strings, or whose own
scope's or resource's, were bad; a bad string outside every item does not refuse the request."""

from __future__ import annotations

import time

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sightline.ingest._decode import Limits, decode_otlp_proto
from sightline.ingest._signals import decode_logs

T0 = 1_700_000_000_000_000_000


def test_a_bad_scope_marks_its_own_spans_not_its_resources_other_scopes() -> None:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for k, (scope, n) in enumerate((("BADX", 1), ("clean", 3))):
        ss = rs.scope_spans.add()
        ss.scope.name = scope
        for i in range(n):
            s = ss.spans.add(trace_id=b"\x01" * 16, span_id=bytes([k + 1, i + 1]) + b"\0" * 6)
            s.name, s.start_time_unix_nano, s.end_time_unix_nano = "x", T0, T0 + 1
    body = req.SerializeToString().replace(b"BADX", b"BA\xff\xfe")
    res = decode_otlp_proto(body, "p", limits=Limits())
    assert len(res.records) == 4
    assert res.repaired == {"invalid_utf8": 1}
    assert sorted(r["ingest_notes"] for r in res.records) == [[], [], [], ["invalid_utf8"]]


def test_a_bad_string_in_a_resource_without_records_does_not_refuse_the_others() -> None:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.add(key="service.name").value.string_value = "BADX"
    rl.scope_logs.add()  # no records
    rec = req.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=T0)
    rec.body.string_value = "kept"
    body = req.SerializeToString().replace(b"BADX", b"BA\xff\xfe")
    table, res = decode_logs(
        body, "otlp_proto", "p", max_records=10, max_text_bytes=1 << 20, redact=None,
        now_ns=time.time_ns(),
    )  # fmt: skip
    assert table is not None and table.column("body").to_pylist() == ["kept"]
    assert "invalid_utf8" not in res.repaired
