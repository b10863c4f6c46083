"""OTLP log severities: numbers outside OTLP's 1-24 and records that carry only a text.

Against a real ``sightline serve``, over OTLP/JSON and protobuf, read back with
``GET /api/v1/logs`` and its ``min_severity`` filter.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from _helpers import Server

_REPAIRED = re.compile(
    r'^sightline_ingest_spans_repaired_total\{reason="invalid_severity_number"\} (\S+)$', re.M
)


def _post(server: Server, records: list[dict[str, Any]], fmt: str) -> None:
    """Send ``records`` (number, text, body) as one OTLP logs request in ``fmt``."""
    now = time.time_ns()
    if fmt == "json":
        recs = []
        for i, r in enumerate(records):
            rec: dict[str, Any] = {
                "timeUnixNano": str(now + i),
                "body": {"stringValue": r["body"]},
            }
            if r.get("number") is not None:
                rec["severityNumber"] = r["number"]
            if r.get("text") is not None:
                rec["severityText"] = r["text"]
            recs.append(rec)
        body = json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": recs}]}]}).encode()
        ctype = "application/json"
    else:
        req = ExportLogsServiceRequest()
        scope = req.resource_logs.add().scope_logs.add()
        for i, r in enumerate(records):
            rec_pb = scope.log_records.add()
            rec_pb.time_unix_nano = now + i
            rec_pb.body.string_value = r["body"]
            if r.get("number") is not None:
                rec_pb.severity_number = r["number"]  # an open enum: any int32 is sent
            if r.get("text") is not None:
                rec_pb.severity_text = r["text"]
        body = req.SerializeToString()
        ctype = "application/x-protobuf"
    with server.client() as c:
        resp = c.post("/v1/logs", content=body, headers={"content-type": ctype})
    assert resp.status_code == 200, resp.text
    # repaired, never rejected
    if fmt == "json":
        assert not resp.json().get("partialSuccess"), resp.text
    else:
        ok = ExportLogsServiceResponse.FromString(resp.content)
        assert ok.partial_success.rejected_log_records == 0, ok


def _logs(server: Server, tag: str, **params: Any) -> dict[str, tuple[int | None, str | None]]:
    with server.client() as c:
        r = c.get("/api/v1/logs", params={"q": tag, "limit": 1000, **params})
    assert r.status_code == 200, r.text
    return {x["body"].split(" ", 1)[1]: (x["severity_number"], x["severity_text"])
            for x in r.json()["data"]}  # fmt: skip


def _num_repaired(server: Server) -> float:
    with server.client() as c:
        text = c.get("/metrics").text
    m = _REPAIRED.search(text)
    return float(m.group(1)) if m else 0.0


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
class TestLogSeverity:
    def test_a_number_outside_1_to_24_is_unspecified_and_counted(
        self, server: Server, fmt: str
    ) -> None:
        # 99, 25 and -3 were stored as sent: min_severity=17 took 99 and 25 for errors
        tag = uuid.uuid4().hex
        before = _num_repaired(server)
        _post(
            server,
            [
                {"number": 99, "body": f"{tag} n99"},
                {"number": 25, "body": f"{tag} n25"},
                {"number": -3, "body": f"{tag} n-3"},
                {"number": 24, "body": f"{tag} n24"},
                {"number": 1, "body": f"{tag} n1"},
                {"number": 0, "body": f"{tag} n0"},
            ],
            fmt,
        )
        assert _logs(server, tag) == {
            "n99": (None, None),
            "n25": (None, None),
            "n-3": (None, None),
            "n24": (24, None),
            "n1": (1, None),
            "n0": (None, None),
        }
        assert set(_logs(server, tag, min_severity=17)) == {"n24"}
        assert _num_repaired(server) == before + 3

    def test_a_record_with_only_a_severity_text_is_found_by_min_severity(
        self, server: Server, fmt: str
    ) -> None:
        # a record without a number (or 0) was invisible to min_severity whatever its text
        tag = uuid.uuid4().hex
        before = _num_repaired(server)
        _post(
            server,
            [
                {"text": "ERROR", "body": f"{tag} error"},
                {"text": "warn", "body": f"{tag} warn"},
                {"text": "Critical", "body": f"{tag} critical"},
                {"text": "WARNING", "body": f"{tag} warning"},
                {"text": " Info ", "body": f"{tag} info"},
                {"text": "debug", "body": f"{tag} debug"},
                {"text": "ERROR3", "body": f"{tag} error3"},
                {"number": 0, "text": "fatal", "body": f"{tag} fatal"},
                # an out-of-range number is unspecified: its text decides
                {"number": 99, "text": "error", "body": f"{tag} bad number"},
                # a valid number wins over the text, which is kept as sent
                {"number": 9, "text": "ERROR", "body": f"{tag} number wins"},
                {"text": "loud", "body": f"{tag} unknown"},
                {"body": f"{tag} none"},
            ],
            fmt,
        )
        assert _logs(server, tag) == {
            "error": (17, "ERROR"),
            "warn": (13, "warn"),
            "critical": (21, "Critical"),
            "warning": (13, "WARNING"),
            "info": (9, " Info "),
            "debug": (5, "debug"),
            "error3": (19, "ERROR3"),
            "fatal": (21, "fatal"),
            "bad number": (17, "error"),
            "number wins": (9, "ERROR"),
            "unknown": (None, "loud"),
            "none": (None, None),
        }
        assert set(_logs(server, tag, min_severity=17)) == {
            "error",
            "critical",
            "error3",
            "fatal",
            "bad number",
        }
        assert set(_logs(server, tag, min_severity=13)) == {
            "error",
            "critical",
            "error3",
            "fatal",
            "bad number",
            "warn",
            "warning",
        }
        assert _num_repaired(server) == before + 1


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("TRACE", 1),
        ("trace4", 4),
        ("Debug", 5),
        ("INFO", 9),
        ("Information", 9),
        ("notice", 10),
        ("Warn", 13),
        ("WARNING", 13),
        ("Error", 17),
        ("err", 17),
        ("SEVERE", 17),
        ("critical", 21),
        ("FATAL", 21),
        ("fatal4", 24),
        ("SEVERITY_NUMBER_ERROR2", 18),
        ("emergency", 21),
        ("", 0),
        ("loud", 0),
        ("error5", 0),
    ],
)
def test_severity_texts_map_to_the_data_models_ranges(text: str, number: int) -> None:
    from sightline.ingest._signals import severity_from_text

    assert severity_from_text(text) == number
