"""Bad input to the REST API is a 4xx with the usual JSON error, never a 500; near-limit good
input still works (cursors, times, steps, durations, free-form JSON, attribute keys)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from _two_projects import TwoProjects, two_projects
from sightline.config import Settings
from sightline.server import create_app


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoProjects]:
    yield from two_projects(tmp_path_factory.mktemp("bad"))


def _bad(r: httpx.Response) -> str:
    """The message of a 400 in the app's error shape."""
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] in ("invalid_config", "invalid_request"), r.text
    return str(err["message"])


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _walk(h: TwoProjects, params: dict[str, Any]) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        r = h.api(
            "GET", "/api/v1/spans", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert r.status_code == 200, r.text
        seen += [s["span_id"] for s in r.json()["data"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return seen


class TestCursors:
    @pytest.mark.parametrize(
        "start", ["2040-04-29T05:00:16.188379Z", "1974-04-23T12:30:52.834150Z"]
    )
    def test_pages_walk_every_span_sharing_one_start_time(self, h: TwoProjects, start: str) -> None:
        model = f"m-{start[:4]}"
        spans = [
            {"trace_id": secrets.token_hex(16), "span_id": secrets.token_hex(8), "name": "n",
             "kind": "llm", "model": model, "start_time": start, "duration_ms": 10}
            for _ in range(15)
        ]  # fmt: skip
        r = h.api("POST", "/api/v1/spans", json=spans)
        assert r.status_code == 200 and r.json()["accepted"] == 15, r.text
        want = sorted(s["span_id"] for s in spans)
        for limit in (1, 7):
            assert sorted(_walk(h, {"model": model, "limit": limit})) == want, limit

    @pytest.mark.parametrize(
        ("path", "raw"),
        [
            ("/api/v1/spans", "99999999999999999999999:aa:bb"),
            ("/api/v1/spans", "-99999999999999999999999:aa:bb"),
            ("/api/v1/spans", "1:aa"),
            ("/api/v1/alerts", "99999999999999999999999:x"),
            ("/api/v1/alerts", "-99999999999999999:x"),
            ("/api/v1/alerts", "nope"),
            ("/api/v1/scores", "99999999999999999999999:x"),
            ("/api/v1/logs", "1:aa"),
            ("/api/v1/logs", f"1:{1 << 64}:1"),
            ("/api/v1/logs", "1:5:0"),
            ("/api/v1/logs", "99999999999999999999999:5:1"),
        ],
    )
    def test_a_forged_cursor_is_a_400(self, h: TwoProjects, path: str, raw: str) -> None:
        assert _bad(h.api("GET", path, params={"cursor": _b64(raw)})) == "invalid cursor"


def _walk_logs(h: TwoProjects, params: dict[str, Any]) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = h.api(
            "GET", "/api/v1/logs", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert page.status_code == 200, page.text
        assert len(page.json()["data"]) <= params["limit"]
        seen += [x["body"] for x in page.json()["data"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return seen


class TestLogCursors:
    def test_pages_walk_every_record_once_in_order(self, h: TwoProjects) -> None:
        """Past ``limit`` records, most of them sharing a timestamp; with and without a trace."""
        tid, svc = secrets.token_hex(16), f"svc-{secrets.token_hex(4)}"
        ns = str(int(h.clock().timestamp() * 1e9))
        recs = [
            {"timeUnixNano": ns if i % 4 else str(int(ns) - i * 1000),
             "traceId": tid if i % 3 == 0 else "", "spanId": f"{i % 2:016x}" if i % 3 == 0 else "",
             "severityNumber": 17 if i % 2 else 9, "body": {"stringValue": f"r{i}"}}
            for i in range(45)
        ]  # fmt: skip
        recs.append(dict(recs[1]))  # an exact copy: both are returned
        body = {"resourceLogs": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": svc}}]},
            "scopeLogs": [{"logRecords": recs}]}]}  # fmt: skip
        assert h.api("POST", "/v1/logs", json=body).status_code == 200
        for filters in ({}, {"trace_id": tid}, {"min_severity": 17}):
            params = {"service_name": svc, **filters}
            whole = h.api("GET", "/api/v1/logs", params={**params, "limit": 1000}).json()
            assert whole["next_cursor"] is None
            want = [x["body"] for x in whole["data"]]
            assert len(want) == {"trace_id": 15, "min_severity": 23}.get(
                next(iter(filters), ""), 46
            )
            for limit in (1, 7):
                assert _walk_logs(h, {**params, "limit": limit}) == want, (filters, limit)
        page = h.api("GET", "/api/v1/logs", params={"service_name": svc, "limit": 7}).json()
        assert len(page["data"]) == 7 and page["next_cursor"] is not None
        other = h.api(
            "GET", "/api/v1/logs", params={"trace_id": tid, "cursor": page["next_cursor"]}
        )
        assert _bad(other) == "invalid cursor"  # a newest-first cursor in a trace's order


def _time_params() -> list[tuple[str, str]]:
    """Every (GET route, time parameter) of the API, from its OpenAPI schema."""
    app = create_app(Settings())
    out = []
    for path, ops in app.openapi()["paths"].items():
        if "get" in ops and path.startswith("/api/v1") and "{" not in path:
            out += [(path, p["name"]) for p in ops["get"].get("parameters", [])
                    if p["in"] == "query" and p["name"] in ("from", "to", "before")]  # fmt: skip
    return out


# the other parameters a route needs before it reads the time
_REQUIRED = {
    "/api/v1/metrics": {"name": "latency_ms"},
    "/api/v1/costs": {"by": "model"},
    "/api/v1/compare": {"dimension": "model", "a": "x", "b": "y"},
    "/api/v1/outcomes/ab": {"dimension": "model", "a": "x", "b": "y"},
}
# each names a time past year 9999 or before year 1 once in UTC, or outside 1900..9000
_BAD_TIMES = [
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01",
    "9999-12-31T23:59:59Z",
    "1899-12-31T23:59:59Z",
    "9000-01-01T00:00:01Z",
    "-3000000000",
]


class TestTimes:
    @pytest.mark.parametrize(("path", "name"), _time_params())
    def test_a_time_outside_the_range_is_a_400(self, h: TwoProjects, path: str, name: str) -> None:
        for v in _BAD_TIMES:
            msg = _bad(h.api("GET", path, params={**_REQUIRED.get(path, {}), name: v}))
            assert msg.startswith(f"{name}: ") and "out of range" in msg, (v, msg)

    def test_time_params_are_found(self) -> None:
        assert len(_time_params()) >= 25

    @pytest.mark.parametrize(
        "path", ["/api/v1/spans", "/api/v1/metrics", "/api/v1/logs", "/api/v1/scores"]
    )
    def test_the_range_ends_are_accepted(self, h: TwoProjects, path: str) -> None:
        params = {**_REQUIRED.get(path, {}), "from": "1900-01-01T00:00:00Z", "to": "9000-01-01"}
        if path == "/api/v1/metrics":
            params["step"] = "366d"
        r = h.api("GET", path, params=params)
        assert r.status_code == 200, r.text
        r = h.api("GET", path, params={**params, "from": "1900-01-01T00:00:00+00:00",
                                        "to": "9000-01-01T01:00:00+01:00"})  # fmt: skip
        assert r.status_code == 200, r.text

    def test_an_offset_is_read_as_the_same_instant(self, h: TwoProjects) -> None:
        span = {
            "trace_id": secrets.token_hex(16),
            "span_id": secrets.token_hex(8),
            "name": "n",
            "kind": "llm",
            "model": "m-offset",
            "start_time": "2026-02-03T12:30:52.83415Z",
        }
        assert h.api("POST", "/api/v1/spans", json=[span]).status_code == 200
        at = {"from": "2026-02-03T13:30:52.834150+01:00", "model": "m-offset"}
        r = h.api("GET", "/api/v1/spans", params={**at, "to": "2026-02-03T11:30:52.834151-01:00"})
        assert r.status_code == 200 and len(r.json()["data"]) == 1, r.status_code
        r = h.api("GET", "/api/v1/spans", params={**at, "to": "2026-02-03T11:30:52.834150-01:00"})
        assert r.status_code == 200 and r.json()["data"] == [], r.status_code

    @pytest.mark.parametrize("t", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-23:59"])
    def test_a_body_time_outside_the_range_is_a_400(self, h: TwoProjects, t: str) -> None:
        r = h.api("POST", "/api/v1/releases", json={"service": "s", "version": "v", "time": t})
        assert "time: " in _bad(r) and "out of range" in _bad(r)
        r = h.api("POST", "/api/v1/datasets", json={"name": "d", "filter": {"from": t}})
        assert _bad(r).startswith("filter.from: ")
        body = {"matchers": {"rule": "x"}, "starts_at": "2026-01-01T00:00:00Z", "ends_at": t}
        r = h.api("POST", "/api/v1/alerts/silences", json=body)
        assert "ends_at: " in _bad(r)

    def test_a_release_too_old_to_compare_is_a_400(self, h: TwoProjects) -> None:
        # it was stored, and its compare endpoint answered 400 whatever the hours
        body = {"service": "s", "version": "v", "time": "1950-01-01T00:00:00Z"}
        r = h.api("POST", "/api/v1/releases", json=body)
        assert _bad(r).startswith("time: before 1971-01-31"), r.text

    def test_a_body_time_in_range_is_stored_in_utc(self, h: TwoProjects) -> None:
        body = {"service": "s", "version": "v", "time": "2026-03-02T14:00:00+02:00"}
        r = h.api("POST", "/api/v1/releases", json=body)
        assert r.status_code == 201, r.text
        assert datetime.fromisoformat(r.json()["at"]) == datetime(2026, 3, 2, 12, tzinfo=UTC)


_STEP_ROUTES = [
    ("/api/v1/metrics", {"name": "latency_ms"}),
    ("/api/v1/metrics", {"name": "feedback_positive_rate"}),  # from scores
    ("/api/v1/metrics", {"name": "otel:x"}),  # OTLP metrics
    ("/api/v1/costs/prompt-length", {}),
    ("/api/v1/outcomes/metrics", {}),
]
# around the spans two_projects seeds (2 minutes before 2026-03-02T12:00Z)
_WINDOW = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-03T00:00:00Z"}


class TestSteps:
    @pytest.mark.parametrize(("path", "params"), _STEP_ROUTES)
    def test_a_step_over_a_year_is_a_400(
        self, h: TwoProjects, path: str, params: dict[str, str]
    ) -> None:
        for step in ("106751992d", "367d", "31622401", "9" * 5000):
            msg = _bad(h.api("GET", path, params={**params, **_WINDOW, "step": step}))
            assert msg.startswith("step: "), msg

    @pytest.mark.parametrize(("path", "params"), _STEP_ROUTES)
    def test_a_step_of_a_year_is_accepted(
        self, h: TwoProjects, path: str, params: dict[str, str]
    ) -> None:
        for step in ("366d", "31622400"):
            r = h.api("GET", path, params={**params, **_WINDOW, "step": step})
            assert r.status_code == 200, r.text


class TestSilences:
    @pytest.mark.parametrize(
        ("extra", "field"),
        [
            ({"duration": "999999999999d"}, "duration"),
            ({"duration": "367d"}, "duration"),
            ({"duration": "9" * 400}, "duration"),
            ({"starts_at": "9999-12-31T00:00:00Z", "duration": "2d"}, "starts_at"),
            ({"starts_at": "8999-12-31T00:00:00Z", "duration": "2d"}, "duration"),
            ({"ends_at": "9999-12-31T23:59:59Z"}, "ends_at"),
        ],
    )
    def test_a_silence_past_the_limits_is_a_400(
        self, h: TwoProjects, extra: dict[str, str], field: str
    ) -> None:
        r = h.api("POST", "/api/v1/alerts/silences", json={"matchers": {"rule": "x"}, **extra})
        assert _bad(r).startswith(f"{field}: "), r.text

    def test_a_silence_of_a_year_is_accepted(self, h: TwoProjects) -> None:
        r = h.api("POST", "/api/v1/alerts/silences",
                  json={"matchers": {"rule": "x"}, "duration": "366d"})  # fmt: skip
        assert r.status_code == 201, r.text
        ends = datetime.fromisoformat(r.json()["ends_at"])
        assert ends - datetime.fromisoformat(r.json()["starts_at"]) == timedelta(days=366)

    @pytest.mark.parametrize("expires_in", ["999999999999d", "367d", "9" * 400])
    def test_an_acknowledgement_past_the_limits_is_a_400(
        self, h: TwoProjects, expires_in: str
    ) -> None:
        r = h.api("POST", "/api/v1/alerts/a1/ack", json={"expires_in": expires_in})
        assert _bad(r).startswith("expires_in: "), r.text


def _raw(h: TwoProjects, path: str, body: str) -> httpx.Response:
    """A body sent as written: NaN, Infinity and huge integers are valid to Python's reader."""
    return h.api("POST", path, content=body, headers={"content-type": "application/json"})


_OUTCOME = '{"session_id": "s1", "name": "converted", "metadata": {"x": %s}}'
_PROMPT = '{"name": "p-json", "template": "hi {{x}}", "parameters": {"a": [{"seed": %s}]}}'
_MESSAGES = '{"name": "p-json", "template": [{"role": "user", "content": "hi", "name": %s}]}'
_BAD_NUMBERS = ["100000000000000000000000000000", "9223372036854775808", "-9223372036854775809",
                "NaN", "Infinity", "-Infinity", "1e400"]  # fmt: skip


class TestFreeFormJson:
    @pytest.mark.parametrize("number", _BAD_NUMBERS)
    @pytest.mark.parametrize(
        ("path", "body", "where"),
        [
            ("/api/v1/outcomes", _OUTCOME, "metadata.x"),
            ("/api/v1/prompts", _PROMPT, "parameters.a[0].seed"),
        ],
    )
    def test_a_number_json_cannot_store_is_a_400(
        self, h: TwoProjects, path: str, body: str, where: str, number: str
    ) -> None:
        msg = _bad(_raw(h, path, body % number))
        assert f"(at {where})" in msg, msg
        assert "64 bits" in msg or "NaN and Infinity" in msg, msg

    @pytest.mark.parametrize("number", [*_BAD_NUMBERS, "7"])
    def test_a_message_name_that_is_a_number_is_a_400(self, h: TwoProjects, number: str) -> None:
        # a message's name was free-form JSON; it is now a string, whatever the number
        msg = _bad(_raw(h, "/api/v1/prompts", _MESSAGES % number))
        assert "message 0: name must be a string" in msg, msg

    def test_the_64_bit_limits_and_floats_are_stored_as_sent(self, h: TwoProjects) -> None:
        meta = {"lo": -(2**63), "hi": 2**63 - 1, "f": 1.5e300, "b": True, "n": None}
        r = h.api("POST", "/api/v1/outcomes",
                  json={"session_id": "s-json", "name": "converted", "metadata": meta})  # fmt: skip
        assert r.status_code == 201, r.text
        r = h.api("GET", "/api/v1/outcomes", params={"session_id": "s-json"})
        assert r.status_code == 200 and r.json()["data"][0]["metadata"] == meta, r.text
        params = {"seed": 2**63 - 1, "nested": [{"t": -0.5}]}
        r = h.api("POST", "/api/v1/prompts",
                  json={"name": "p-json-ok", "template": "hi", "parameters": params})  # fmt: skip
        assert r.status_code == 201, r.text
        r = h.api("GET", "/api/v1/prompts/p-json-ok")
        assert r.status_code == 200 and r.json()["parameters"] == params, r.text


class TestAttributeKeys:
    def test_a_wildcard_attribute_key_is_read_literally(self, h: TwoProjects) -> None:
        t0 = int(h.clock().timestamp()) * 10**9
        points = [
            {"timeUnixNano": str(t0 - i * 10**9), "asDouble": float(i),
             "attributes": [{"key": "*", "value": {"stringValue": f"s{i % 2}"}},
                            {"key": "model_name", "value": {"stringValue": "m"}}]}
            for i in range(4)
        ]  # fmt: skip
        body = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "star_gauge", "gauge": {"dataPoints": points}}]}]}]}  # fmt: skip
        r = h.api("POST", "/v1/metrics", json=body, headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        window = {"name": "star_gauge", "agg": "max", "from": str(t0 // 10**9 - 60),
                  "to": str(t0 // 10**9 + 1)}  # fmt: skip
        r = h.api("GET", "/api/v1/metrics", params={**window, "group_by": "*"})
        assert r.status_code == 200, r.text
        got = {s["group"]["*"]: s["points"][0]["value"] for s in r.json()["series"]}
        assert got == {"s0": 2.0, "s1": 3.0}
        r = h.api("GET", "/api/v1/metrics", params={**window, "attr": "*=s1"})
        assert [s["points"][0]["value"] for s in r.json()["series"]] == [3.0], r.text
        r = h.api("GET", "/api/v1/metrics", params={**window, "attr": "*=x"})
        assert r.status_code == 200 and r.json()["series"] == [], r.text
        assert "attribute name" in _bad(h.api("GET", "/api/v1/metrics",
                                               params={**window, "group_by": 'a"b'}))  # fmt: skip
