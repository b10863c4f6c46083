"""A trace of more spans than one page holds: the trace page and the API answer a bounded part.

A trace of 100,000 spans (an agent loop, a batch job) used to render every span on the page
and come back whole from the API.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from _dashboard import admin_server, login
from _helpers import PROJECT, Server

NUM_SPANS = 2_345
PAGE = 2_000


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, list[str]]]:
    tmp: Path = tmp_path_factory.mktemp("big-trace")
    srv = admin_server(tmp)
    try:
        tid = secrets.token_hex(16)
        t0 = datetime.now(UTC) - timedelta(minutes=5)
        root = secrets.token_hex(8)
        spans: list[dict[str, Any]] = [
            {"trace_id": tid, "span_id": root, "name": "agent loop", "kind": "agent",
             "start_time": t0.isoformat(), "duration_ms": 60_000.0}
        ]  # fmt: skip
        for i in range(1, NUM_SPANS):
            spans.append(
                {"trace_id": tid, "span_id": secrets.token_hex(8), "parent_span_id": root,
                 "name": f"step {i}", "kind": "llm", "model": "gpt-4o-mini",
                 "start_time": (t0 + timedelta(milliseconds=10 * i)).isoformat(),
                 "duration_ms": 5.0, "input_tokens": 10, "output_tokens": 2,
                 "input": f"question {i}", "output": f"answer {i}"}
            )  # fmt: skip
        with srv.client() as c:
            r = c.post("/api/v1/spans", json=spans)
            assert r.status_code == 200 and r.json()["accepted"] == NUM_SPANS, r.text
        yield srv, tid, [s["span_id"] for s in spans]  # in start order
    finally:
        srv.stop()


def _walk(roots: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for n in roots:
        out.append(n["span_id"])
        out += _walk(n["children"])
    return out


class TestTheApi:
    def test_answers_the_first_spans_with_the_whole_traces_figures(
        self, big: tuple[Server, str, list[str]]
    ) -> None:
        srv, tid, ids = big
        with srv.client() as c:
            r = c.get(f"/api/v1/traces/{tid}")
        assert r.status_code == 200, r.text
        t = r.json()
        assert t["num_spans"] == NUM_SPANS
        assert t["num_spans_returned"] == PAGE and t["truncated"] is True
        assert t["next_cursor"]
        assert set(_walk(t["spans"])) == set(ids[:PAGE])
        assert t["input_tokens"] == 10 * (NUM_SPANS - 1)  # the whole trace's
        assert t["duration_ms"] == pytest.approx(60_000.0)
        assert {"trace_id", "start_time", "end_time", "cost_usd", "output_tokens", "scores",
                "logs"} <= t.keys()  # fmt: skip

    def test_next_cursor_pages_through_every_span_once(
        self, big: tuple[Server, str, list[str]]
    ) -> None:
        srv, tid, ids = big
        got: list[str] = []
        cursor = None
        with srv.client() as c:
            for _ in range(10):
                params: dict[str, Any] = {"limit": 1000}
                if cursor:
                    params["cursor"] = cursor
                t = c.get(f"/api/v1/traces/{tid}", params=params).json()
                assert t["num_spans"] == NUM_SPANS and t["truncated"] is True
                got += sorted(_walk(t["spans"]), key=ids.index)
                cursor = t["next_cursor"]
                if cursor is None:
                    break
        assert got == ids

    def test_a_limit_that_holds_the_trace_is_not_truncated(
        self, big: tuple[Server, str, list[str]]
    ) -> None:
        srv, tid, _ = big
        with srv.client() as c:
            t = c.get(f"/api/v1/traces/{tid}", params={"limit": 10_000}).json()
        assert t["truncated"] is False and t["next_cursor"] is None
        assert t["num_spans_returned"] == NUM_SPANS == len(_walk(t["spans"]))

    @pytest.mark.parametrize(
        ("params", "status"),
        [({"limit": 10_001}, 400), ({"limit": 0}, 400), ({"cursor": "not-a-cursor"}, 400)],
    )
    def test_bad_limits_and_cursors_are_json_errors(
        self, big: tuple[Server, str, list[str]], params: dict[str, Any], status: int
    ) -> None:
        srv, tid, _ = big
        with srv.client() as c:
            r = c.get(f"/api/v1/traces/{tid}", params=params)
        assert r.status_code == status, r.text
        assert "error" in r.json()


def test_the_trace_page_shows_the_first_spans_and_says_where_the_rest_are(
    big: tuple[Server, str, list[str]],
) -> None:
    srv, tid, ids = big
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        login(c)
        r = c.get(f"/traces/{tid}", params={"project": PROJECT})
    assert r.status_code == 200, r.text[:500]
    rows = re.findall(r'class="span-row[^"]*" data-span="([0-9a-f]+)"', r.text)
    assert len(rows) == PAGE
    assert set(rows) == set(ids[:PAGE])
    notice = re.search(r'<p class="notice" id="spans-truncated">(.*?)</p>', r.text, re.S)
    assert notice, "no notice that the page holds only part of the trace"
    assert f"Showing 2,000 of {NUM_SPANS:,} spans" in notice.group(1)
    assert f"/api/v1/traces/{tid}" in notice.group(1) and "next_cursor" in notice.group(1)
    assert f"<b>{NUM_SPANS}</b>" in r.text  # the Spans card counts the whole trace


def test_a_trace_that_fits_has_no_notice(big: tuple[Server, str, list[str]]) -> None:
    srv, _, _ = big
    tid = secrets.token_hex(16)
    span = {"trace_id": tid, "span_id": secrets.token_hex(8), "name": "one", "kind": "llm",
            "start_time": datetime.now(UTC).isoformat(), "duration_ms": 5.0}  # fmt: skip
    with srv.client() as c:
        assert c.post("/api/v1/spans", json=[span]).status_code == 200
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        login(c)
        r = c.get(f"/traces/{tid}", params={"project": PROJECT})
    assert r.status_code == 200
    assert 'id="spans-truncated"' not in r.text
    assert r.text.count('class="span-row') == 1
