"""The read routes of the REST API refuse what they cannot answer as asked, with a 400 naming
the mistake, instead of answering other data: misspelt parameters, swapped time bounds, epoch
texts that float() alone would read, metric filters that do not apply, unbounded groupings."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from _helpers import Server, start_server

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
TRACE = "cd" * 16
NUM_SESSIONS = 1001  # one past the most series a metric answers


@pytest.fixture(scope="module", params=["duckdb", "clickhouse"])
def srv(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("reads")
    args = ["--store", f"chdb://{tmp / 'ch'}"] if request.param == "clickhouse" else []
    server = start_server(tmp, args=args)
    spans = [
        {"trace_id": TRACE if i < 3 else secrets.token_hex(16), "span_id": f"{i + 1:016x}",
         "name": "chat", "kind": "llm", "model": f"m{i % 2}", "session_id": f"s{i}",
         "start_time": T0 + i, "duration_ms": 10.0 + i, "input": f"q{i}", "output": f"a{i}"}
        for i in range(NUM_SESSIONS)
    ]  # fmt: skip
    with server.client() as c:
        r = c.post("/api/v1/spans", json=spans)
        assert r.status_code == 200 and r.json()["accepted"] == NUM_SESSIONS, r.text
    yield server
    server.stop()


def _get(srv: Server, path: str, **params: Any) -> httpx.Response:
    with srv.client() as c:
        return c.get(path, params=params)


def _bad(r: httpx.Response) -> str:
    assert r.status_code == 400, r.text
    return str(r.json()["error"]["message"])


READ_ROUTES = [
    ("/api/v1/spans", {}),
    ("/api/v1/scores", {}),
    ("/api/v1/logs", {}),
    ("/api/v1/metrics", {"name": "latency_ms"}),
    ("/api/v1/otel-metrics", {}),
    (f"/api/v1/traces/{TRACE}", {}),
]


class TestUnknownParameters:
    @pytest.mark.parametrize(("path", "needed"), READ_ROUTES)
    def test_a_misspelt_filter_is_a_400_not_unfiltered_data(
        self, srv: Server, path: str, needed: dict[str, str]
    ) -> None:
        msg = _bad(_get(srv, path, **needed, modle="m0"))
        assert "unknown query parameter 'modle'" in msg
        assert _get(srv, path, **needed).status_code == 200

    def test_the_message_lists_the_parameters_the_route_takes(self, srv: Server) -> None:
        msg = _bad(_get(srv, "/api/v1/spans", sesion_id="s1"))
        for name in ("from", "to", "model", "session_id", "q", "limit", "cursor"):
            assert name in msg
        r = _get(srv, "/api/v1/spans", **{
            "from": T0, "to": T0 + 10, "kind": "llm", "model": "m0", "user_id": "u",
            "session_id": "s0", "trace_id": TRACE, "status": "ok", "q": "q", "limit": 5,
        })  # fmt: skip
        assert r.status_code == 200, r.text
        r = _get(srv, "/api/v1/metrics", name="latency_ms", group_by="model", model="m0",
                 **{"from": T0, "to": T0 + 10})  # fmt: skip
        assert r.status_code == 200, r.text
        assert [s["group"] for s in r.json()["series"]] == [{"model": "m0"}]


class TestTimeBounds:
    @pytest.mark.parametrize("path", ["/api/v1/spans", "/api/v1/scores", "/api/v1/logs"])
    def test_from_after_to_is_a_400(self, srv: Server, path: str) -> None:
        msg = _bad(_get(srv, path, **{"from": T0 + 10, "to": T0}))
        assert "from" in msg and "after to" in msg

    @pytest.mark.parametrize("value", ["２０２６", "1_767_225_600", "٢٠٢٦"])
    def test_epoch_seconds_are_ascii_digits_only(self, srv: Server, value: str) -> None:
        """float() reads these as numbers (year 1970); they are mistakes, not times."""
        assert "expected epoch seconds or ISO-8601" in _bad(_get(srv, "/api/v1/spans", to=value))


class TestMetricFilters:
    def test_attr_on_a_span_metric_is_a_400(self, srv: Server) -> None:
        msg = _bad(_get(srv, "/api/v1/metrics", name="latency_ms", attr="model=m0"))
        assert msg.startswith("attr: filters OTLP and scraped metrics only")

    @pytest.mark.parametrize(
        ("name", "value", "valid"),
        [("kind", "LLM", "llm, retrieval"), ("status", "failed", "ok, error")],
    )
    def test_a_value_outside_a_closed_set_is_a_400(
        self, srv: Server, name: str, value: str, valid: str
    ) -> None:
        msg = _bad(_get(srv, "/api/v1/metrics", name="latency_ms", **{name: value}))
        assert msg.startswith(f"{name}: expected one of {valid}")

    def test_a_span_filter_on_an_otlp_metric_is_a_400(self, srv: Server) -> None:
        msg = _bad(_get(srv, "/api/v1/metrics", name="serving_ttft_seconds", model="m0"))
        assert msg.startswith("model: filters of span metrics") and "attr=key=value" in msg

    def test_a_name_repeated_in_group_by_groups_once(self, srv: Server) -> None:
        r = _get(srv, "/api/v1/metrics", name="requests", group_by="model, model",
                 **{"from": T0, "to": T0 + 4})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["group_by"] == ["model"]
        got = {s["group"]["model"]: s["points"][0]["value"] for s in r.json()["series"]}
        assert got == {"m0": 2, "m1": 2}

    def test_more_groups_than_the_bound_is_a_400(self, srv: Server) -> None:
        window = {"from": T0, "to": T0 + NUM_SESSIONS}
        msg = _bad(_get(srv, "/api/v1/metrics", name="requests", group_by="session_id", **window))
        assert "more than 1000 groups" in msg
        r = _get(srv, "/api/v1/metrics", name="requests", group_by="session_id",
                 **{"from": T0, "to": T0 + 1000})  # fmt: skip
        assert r.status_code == 200 and len(r.json()["series"]) == 1000
