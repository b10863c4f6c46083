"""Bad input to the REST API is a 4xx with the usual JSON error, never a 500; near-limit good
input still works (cursors, times, steps, durations, free-form JSON, attribute keys)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from _two_projects import TwoProjects, two_projects


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
        ],
    )
    def test_a_forged_cursor_is_a_400(self, h: TwoProjects, path: str, raw: str) -> None:
        assert _bad(h.api("GET", path, params={"cursor": _b64(raw)})) == "invalid cursor"
