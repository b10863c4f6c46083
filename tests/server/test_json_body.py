"""A JSON route's body that is not JSON, against a real `sightline serve`.

``curl -d '{...}'`` without ``-H 'content-type: application/json'`` sends the JSON as
``application/x-www-form-urlencoded``: the server used to answer 400 "Input should be a valid
dictionary", and a JSON body with a syntax error "1: JSON decode error". Each answer now says
what is wrong, in the usual ``{"error": {"code", "message"}}`` shape.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from _helpers import Server, start_server

BUDGET = b'{"name": "per-user-daily", "scope": "user", "period": "day", "limit_usd": 2}'
RULE = b'{"name": "slow", "metric": "latency_ms", "threshold": 2000, "window": "5m"}'


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("json_body"))
    yield s
    s.stop()


@pytest.fixture
def c(srv: Server) -> Iterator[httpx.Client]:
    with srv.client() as c:
        yield c


def _error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert err["code"] == code, r.text
    return str(err["message"])


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/budgets", BUDGET),
        ("PUT", "/api/v1/budgets/per-user-daily", BUDGET),
        ("POST", "/api/v1/alerts/rules", RULE),
    ],
)
def test_a_form_content_type_is_a_415_that_asks_for_json(
    c: httpx.Client, method: str, path: str, body: bytes
) -> None:
    """What ``curl -d`` sends without a content-type header."""
    r = c.request(
        method, path, content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    msg = _error(r, 415, "unsupported_media_type")
    assert msg == (
        "expected a JSON body (Content-Type: application/json), "
        "got application/x-www-form-urlencoded"
    )
    # nothing was created
    assert c.get("/api/v1/budgets").json()["data"] == []


def test_text_plain_is_named_in_the_answer(c: httpx.Client) -> None:
    r = c.post(
        "/api/v1/budgets", content=BUDGET, headers={"content-type": "text/plain; charset=utf-8"}
    )
    assert "got text/plain; charset=utf-8" in _error(r, 415, "unsupported_media_type")


def test_no_content_type_is_a_415_that_asks_for_json(c: httpx.Client) -> None:
    r = c.post("/api/v1/budgets", content=BUDGET)
    assert "content-type" not in r.request.headers
    msg = _error(r, 415, "unsupported_media_type")
    assert msg == "expected a JSON body (Content-Type: application/json), got no Content-Type"


def test_no_body_says_one_is_required(c: httpx.Client) -> None:
    r = c.post("/api/v1/budgets", headers={"content-type": "application/json"})
    assert _error(r, 400, "invalid_request") == "a JSON body is required"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"name": "b", limit_usd: 2}', "line 1, column 15"),
        (b'{\n  "name": "b",\n  "limit_usd": 2,\n}', "line 4, column 1"),
        (b'{"name": "b", "limit_usd": 2', "line 1, column 29"),
    ],
)
def test_invalid_json_says_where_and_what(c: httpx.Client, body: bytes, where: str) -> None:
    r = c.post("/api/v1/budgets", content=body, headers={"content-type": "application/json"})
    msg = _error(r, 400, "invalid_request")
    assert msg.startswith(f"invalid JSON body at {where}: "), msg
    assert "JSON decode error" not in msg
    what = msg.split(": ", 1)[1]
    assert what.startswith(("Expecting", "Illegal")), msg  # json's own words for what is wrong


def test_a_json_body_still_works(c: httpx.Client) -> None:
    r = c.post(
        "/api/v1/budgets",
        content=b'{"name": "ok", "limit_usd": 1}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 201, r.text
    assert c.delete("/api/v1/budgets/ok").status_code == 200


def test_a_json_body_of_the_wrong_type_keeps_its_validation_message(c: httpx.Client) -> None:
    r = c.post("/api/v1/budgets", json=[1, 2])
    assert "valid dictionary" in _error(r, 400, "invalid_request")
