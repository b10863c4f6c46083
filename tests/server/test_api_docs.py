"""/docs (Swagger UI) and /redoc work offline, against a real `sightline serve`.

FastAPI's default pages load Swagger UI and ReDoc from a CDN (and a favicon and fonts from
other hosts): on a machine without internet, which is where Sightline and these tests run, the
page stayed blank. The server now serves those assets itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from _helpers import Server, start_server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("api_docs"))
    yield s
    s.stop()


def _urls(html: str) -> list[str]:
    """Every URL the page loads or points at: src/href attributes, spec-url, url: '...'."""
    found = re.findall(r"""\b(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""", html)
    found += re.findall(r"""\burl\s*:\s*["']([^"']+)["']""", html)
    return found


@pytest.mark.parametrize(
    ("page", "kinds"),
    [
        ("/docs", {"javascript", "css"}),
        ("/redoc", {"javascript"}),
    ],
)
def test_the_page_loads_only_what_the_server_serves(
    srv: Server, page: str, kinds: set[str]
) -> None:
    with httpx.Client(base_url=srv.url, timeout=30) as c:  # no key: the pages are public
        r = c.get(page)
        assert r.status_code == 200, r.text
        html = r.text
        assert not re.search(r"https?://", html), html  # no other host, not even a favicon
        csp = r.headers["content-security-policy"]
        assert "https:" not in csp and "http:" not in csp, csp
        urls = _urls(html)
        assert "/openapi.json" in urls, urls
        seen = set()
        for url in urls:
            assert url.startswith("/"), url
            got = c.get(url)
            assert got.status_code == 200, (url, got.status_code)
            ct = got.headers["content-type"]
            for kind in ("javascript", "css"):
                if kind in ct:
                    seen.add(kind)
                    assert len(got.content) > 100_000, (url, len(got.content))
        assert seen == kinds, (page, urls)


def test_swagger_ui_is_a_version_that_renders_openapi_3_1(srv: Server) -> None:
    """FastAPI writes OpenAPI 3.1; Swagger UI before 5 answers "Unable to render this
    definition" for it."""
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        assert c.get("/openapi.json").json()["openapi"].startswith("3.1")
        js = next(u for u in _urls(c.get("/docs").text) if u.endswith(".js"))
        bundle = c.get(js).text
        assert "isOpenAPI31" in bundle
        version = re.search(r'PACKAGE_VERSION:"(\d+)\.', bundle)
        assert version is not None and int(version.group(1)) >= 5


def test_swagger_ui_does_not_call_the_public_validator(srv: Server) -> None:
    """Swagger UI shows a badge from validator.swagger.io unless ``validatorUrl`` is null."""
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        assert '"validatorUrl": null' in c.get("/docs").text
