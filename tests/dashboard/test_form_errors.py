"""A dashboard form posted with a malformed field answers the dashboard's HTML error page.

It used to answer the API's JSON body ({"error": {"code": "invalid_request", ...}}), which a
browser user saw raw. The API keeps its JSON errors.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from _dashboard import admin_server, login
from _helpers import PROJECT, Server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp: Path = tmp_path_factory.mktemp("form-errors")
    s = admin_server(tmp)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def admin(srv: Server) -> Iterator[tuple[httpx.Client, str]]:
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        yield c, login(c)


def _page_error(r: httpx.Response) -> str:
    """The message the error page shows."""
    assert r.headers["content-type"].startswith("text/html"), r.text[:300]
    m = re.search(r'id="page-error">([^<]*)<', r.text)
    assert m, r.text[-2000:]
    return html.unescape(m.group(1))


@pytest.mark.parametrize(
    ("action", "fields", "message"),
    [
        ("/alerts/silence", {"rule": "r" * 101}, "rule: String should have at most 100"),
        ("/alerts/silence", {"duration": "1h"}, "rule: Field required"),
        ("/quality/label", {"span_id": "not-hex", "label": "good"}, "span_id: String should match"),
        ("/quality/label", {"span_id": "ab" * 8}, "label: Field required"),
        ("/settings/keys", {"role": "root"}, "role: String should match"),
        ("/settings/members", {"email": "x" * 300 + "@a.example"}, "email: String should have"),
        ("/prompts/_new", {"name": "n" * 301, "template": "x"}, "name: String should have"),
    ],
)
def test_a_malformed_field_is_the_dashboards_400_page(
    admin: tuple[httpx.Client, str], action: str, fields: dict[str, str], message: str
) -> None:
    c, csrf = admin
    r = c.post(action, params={"project": PROJECT}, data={"csrf": csrf, **fields})
    assert r.status_code == 400, r.text[:500]
    assert message in _page_error(r)
    assert "invalid_request" not in r.text and "Traceback" not in r.text
    assert r.text.startswith("<!doctype html>") and "/static/app.css" in r.text
    back = re.search(r'<a href="([^"]+)" id="back-to-form">', r.text)
    assert back, "no way back to the form"
    assert html.unescape(back.group(1)).startswith(action.rsplit("/", 1)[0] or "/")


def test_the_login_form_with_an_overlong_email_is_a_400_page(srv: Server) -> None:
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        r = c.post("/login", data={"email": "e" * 300, "password": "x", "csrf": "x"})
    assert r.status_code == 400
    assert "email: String should have at most 254" in _page_error(r)


def test_a_form_body_that_cannot_be_parsed_is_a_400_page(admin: tuple[httpx.Client, str]) -> None:
    c, _ = admin
    r = c.post(
        "/alerts/silence",
        params={"project": PROJECT},
        content=b"rule=x",
        headers={"content-type": "multipart/form-data"},  # no boundary
    )
    assert r.status_code == 400, r.text[:500]
    assert "this form could not be read" in _page_error(r)


def test_a_malformed_page_url_is_a_400_page(admin: tuple[httpx.Client, str]) -> None:
    c, _ = admin
    r = c.get("/traces/" + "a" * 65, params={"project": PROJECT})
    assert r.status_code == 400
    assert "trace_id: String should have at most 64" in _page_error(r)


def test_a_malformed_form_without_a_session_still_goes_to_login(srv: Server) -> None:
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        r = c.post("/alerts/silence", params={"project": PROJECT}, data={"rule": "r" * 101})
    assert r.status_code == 303 and r.headers["location"].startswith("/login?")


@pytest.mark.parametrize(
    ("method", "path", "kw"),
    [
        ("POST", "/api/v1/alerts/silences", {"json": {"matchers": "nope"}}),
        ("GET", "/api/v1/spans", {"params": {"limit": "many"}}),
        ("GET", "/api/v1/traces/not-a-trace-id", {}),
    ],
)
def test_the_api_keeps_its_json_errors(
    srv: Server, method: str, path: str, kw: dict[str, object]
) -> None:
    with srv.client() as c:
        r = c.request(method, path, **kw)  # type: ignore[arg-type]
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["code"] == "invalid_request"
