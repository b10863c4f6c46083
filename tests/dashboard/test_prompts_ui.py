"""The Prompts pages as a management UI, against a real `sightline serve`.

Chromium (Playwright) logs in, writes a prompt and a second version, promotes it to production
and diffs the two; the REST API and `sightline.get_prompt` then see what the dashboard did. Over
plain HTTP: a viewer cannot edit, and bad input comes back as the form with its problem named and
a 4xx status (never a traceback).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import sightline
from _dashboard import ADMIN_EMAIL, ADMIN_PASSWORD, XSS, admin_server, login
from _helpers import API_KEY, PROJECT, Server

CHROMIUM = Path("/usr/bin/chromium")
VIEWER_EMAIL = "viewer@example.com"
VIEWER_PASSWORD = "viewer password 1234"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with a dashboard admin, and a viewer the admin added through Settings."""
    s = admin_server(tmp_path_factory.mktemp("promptui"))
    try:
        with httpx.Client(base_url=s.url, timeout=30) as c:
            csrf = login(c)
            member = {"csrf": csrf, "email": VIEWER_EMAIL, "password": VIEWER_PASSWORD,
                      "role": "viewer"}  # fmt: skip
            r = c.post("/settings/members", data=member)
            assert r.status_code == 303, r.text
        yield s
    finally:
        s.stop()


@pytest.fixture
def admin(srv: Server) -> Iterator[tuple[httpx.Client, str]]:
    """An httpx client logged in as the admin, and its CSRF token."""
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        yield c, login(c)


def _error(html: str) -> str:
    """The text of the form's error banner."""
    m = re.search(r'id="form-error"[^>]*>([^<]*)<', html)
    assert m, html[-3000:]
    return m.group(1).replace("&#39;", "'").replace("&#34;", '"')


def _create(c: httpx.Client, csrf: str, **fields: str) -> httpx.Response:
    return c.post(f"/prompts/_new?project={PROJECT}", data={"csrf": csrf, **fields})


# -- in a real browser ---------------------------------------------------------------------------


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: `make install`")
def test_browser_creates_versions_promotes_to_production_and_the_sdk_follows(
    srv: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    name = "support-answer"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            ctx = browser.new_context(base_url=srv.url)
            pg = ctx.new_page()
            pg.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            pg.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
            pg.goto("/login")
            pg.fill("input[name=email]", ADMIN_EMAIL)
            pg.fill("input[name=password]", ADMIN_PASSWORD)
            pg.click("button[type=submit]")
            pg.wait_for_url(f"{srv.url}/")

            # a new prompt: first a mistake (parameters that are not JSON), then fixed
            pg.goto("/prompts")
            pg.click("#new-prompt")
            pg.fill("input[name=name]", name)
            pg.fill("textarea[name=template]", "Answer {{question}} about {{product}}.")
            pg.fill("input[name=model]", "gpt-4o-mini")
            pg.fill("textarea[name=parameters]", '{"temperature": 0.2,}')
            pg.fill("input[name=labels]", "production")
            pg.fill("input[name=message]", "first version")
            pg.click("button:has-text('Save version')")
            assert "parameters: not valid JSON" in (pg.text_content("#form-error") or "")
            # the browser reports the form's 400 answer in the console: that one is expected
            assert [e for e in errors if "status of 400" not in e] == [], errors
            errors.clear()
            # the form kept what was typed
            assert pg.input_value("textarea[name=template]") == (
                "Answer {{question}} about {{product}}."
            )
            pg.fill("textarea[name=parameters]", '{"temperature": 0.2}')
            pg.click("button:has-text('Save version')")
            pg.wait_for_url(re.compile(rf"/prompts/{name}\?"))
            assert "Version 1 created" in (pg.text_content("#flash") or "")
            assert pg.text_content("#prompt-name") == name

            # version 2 from version 1, labelled staging; then promoted from the version list
            pg.click("#new-version")
            assert pg.input_value("input[name=model]") == "gpt-4o-mini"  # prefilled from v1
            pg.fill("textarea[name=template]", "Answer {{question}} about {{product}}.\nCite docs.")
            pg.fill("textarea[name=parameters]", '{"temperature": 0.1, "max_tokens": 300}')
            pg.fill("input[name=labels]", "staging")
            pg.fill("input[name=message]", "ask for citations")
            pg.click("button:has-text('Save version')")
            pg.wait_for_url(re.compile(r"version=2"))
            row = pg.locator("#versions tr[data-version='2']")
            assert "staging" in (row.text_content() or "")
            row.locator("button.promote-production").click()
            pg.wait_for_url(re.compile(r"done=production"))
            assert "Production now points at version 2 (was 1)." == pg.text_content("#flash")
            assert "production" in (
                pg.locator("#versions tr[data-version='2'] td").nth(1).text_content() or ""
            )

            # the template of version 1, and the diff of 1 → 2
            pg.click("#versions tr[data-version='1'] a")
            assert "Answer {{question}} about {{product}}." in (pg.text_content("#template") or "")
            pg.select_option("#diff-form select[name=a]", "1")
            pg.select_option("#diff-form select[name=b]", "2")
            pg.click("#diff-form button")
            pg.wait_for_url(re.compile(r"a=1&b=2"))
            added = pg.locator("#diff .d-add").all_text_contents()
            removed = pg.locator("#diff .d-del").all_text_contents()
            assert "+Cite docs." in added
            assert '-parameters: {"temperature": 0.2}' in removed

            # hostile text in a template, a message and a model renders as text, runs nothing
            with srv.client() as api:
                for v in (1, 2):
                    r = api.post("/api/v1/prompts", json={
                        "name": "hostile", "template": f"{XSS} v{v}", "model": XSS[:150],
                        "message": XSS, "labels": ["production"] if v == 1 else []})  # fmt: skip
                    assert r.status_code == 201, r.text
            pg.goto(f"/prompts/hostile?project={PROJECT}&a=1&b=2")
            assert f"{XSS} v2" in (pg.text_content("#template") or "")
            assert f"+{XSS} v2" in pg.locator("#diff .d-add").all_text_contents()
            assert pg.locator("#template script, #diff script, #versions img").count() == 0
            ctx.close()
        finally:
            browser.close()
    assert errors == [], errors

    # the REST API sees the dashboard's versions, author and labels
    with srv.client() as api:
        v = api.get(f"/api/v1/prompts/{name}", params={"label": "production"}).json()
        assert (v["version"], v["author"], v["message"]) == (2, ADMIN_EMAIL, "ask for citations")
        assert v["parameters"] == {"temperature": 0.1, "max_tokens": 300}
        assert sorted(v["labels"]) == ["production", "staging"]
        audit = api.get("/api/v1/audit").json()["data"]
        moves = [a for a in audit if a["action"] == "prompt.label.set"]
        assert moves and moves[0]["actor"] == f"user:{ADMIN_EMAIL}"
        assert moves[0]["details"]["previous_version"] == 1

    # and so does the application's SDK
    sightline.clear_prompt_cache()
    monkeypatch.setenv("SIGHTLINE_ENDPOINT", srv.url)
    monkeypatch.setenv("SIGHTLINE_API_KEY", API_KEY)
    try:
        prompt = sightline.get_prompt(name, label="production")
        assert (prompt.version, prompt.is_fallback, prompt.model) == (2, False, "gpt-4o-mini")
        assert prompt.render(question="Refunds?", product="Acme") == (
            "Answer Refunds? about Acme.\nCite docs."
        )
    finally:
        sightline.clear_prompt_cache()


# -- over HTTP -----------------------------------------------------------------------------------


def test_a_rubric_is_created_and_labelled_from_the_form(admin: tuple[httpx.Client, str]) -> None:
    c, csrf = admin
    rubric_text = "Grade the answer.\nQuestion: {{question}}\nAnswer: {{answer}}"
    r = _create(c, csrf, name="accuracy-rubric", kind="rubric", labels="staging",
                template=rubric_text)  # fmt: skip
    assert r.status_code == 303, r.text
    page = c.get("/prompts", params={"project": PROJECT})
    assert 'id="new-rubric"' in page.text and "/prompts/accuracy-rubric" in page.text
    r = c.post(f"/prompts/accuracy-rubric/labels?project={PROJECT}",
               data={"csrf": csrf, "label": "production", "version": "1"})  # fmt: skip
    assert r.status_code == 303, r.text
    rows = c.get("/api/v1/prompts", params={"kind": "rubric"}, headers=_key()).json()["data"]
    rubric = next(x for x in rows if x["name"] == "accuracy-rubric")
    assert rubric["labels"] == {"production": 1, "staging": 1}
    # a new version must stay a rubric
    r = _create(c, csrf, name="accuracy-rubric", kind="prompt", existing="1", template="x")
    assert r.status_code == 409
    assert "is a rubric; a new version cannot make it a prompt" in _error(r.text)
    # labels are removed from the page too
    r = c.post(f"/prompts/accuracy-rubric/labels/staging/delete?project={PROJECT}",
               data={"csrf": csrf})  # fmt: skip
    assert r.status_code == 303
    got = c.get("/api/v1/prompts/accuracy-rubric", headers=_key()).json()
    assert got["labels"] == ["production"]


def _key() -> dict[str, str]:
    return {"authorization": f"Bearer {API_KEY}"}


def test_a_chat_prompt_round_trips_through_the_form(admin: tuple[httpx.Client, str]) -> None:
    c, csrf = admin
    msgs = '[{"role": "system", "content": "You help with {{product}}."},' \
           ' {"role": "user", "content": "{{question}}"}]'  # fmt: skip
    r = _create(c, csrf, name="chat-one", format="chat", template=msgs)
    assert r.status_code == 303, r.text
    got = c.get("/api/v1/prompts/chat-one", headers=_key()).json()
    assert got["type"] == "chat" and got["variables"] == ["product", "question"]
    assert got["author"] == ADMIN_EMAIL
    # the edit form offers the messages back as JSON, to change into version 2
    form = c.get("/prompts/chat-one/edit", params={"project": PROJECT}).text
    assert 'value="chat" checked' in form and "&#34;role&#34;: &#34;system&#34;" in form


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"name": "", "template": "x"}, 400, "name: give the prompt a name"),
        ({"name": "   ", "template": "x"}, 400, "name: give the prompt a name"),
        ({"name": "has space", "template": "x"}, 400, "name 'has space': letters, digits"),
        ({"name": "resolve", "template": "x"}, 400, "'resolve' is reserved"),
        ({"name": "bad-params", "template": "x", "parameters": '{"temperature": }'}, 400,
         "parameters: not valid JSON"),
        ({"name": "bad-params", "template": "x", "parameters": "[0.2]"}, 400,
         "parameters: expected a JSON object"),
        ({"name": "empty", "template": "  "}, 400, "template: write the template"),
        ({"name": "chat", "format": "chat", "template": "not json"}, 400,
         "template: a chat template is a JSON list of messages"),
        ({"name": "chat", "format": "chat", "template": '[{"role": "robot", "content": "x"}]'},
         400, "message 0: role must be one of"),
        ({"name": "lbl", "template": "x", "labels": "Production"}, 400, "label 'Production'"),
        ({"name": "lbl", "template": "x", "labels": "latest"}, 400, "'latest' is not a label"),
        ({"name": "k", "kind": "judge", "template": "x"}, 400, "kind: expected one of"),
        ({"name": "m", "template": "x", "model": "m" * 250}, 400, "model: String should have at"),
    ],
)  # fmt: skip
def test_bad_input_shows_the_form_with_the_problem(
    admin: tuple[httpx.Client, str], fields: dict[str, str], status: int, message: str
) -> None:
    c, csrf = admin
    r = _create(c, csrf, **fields)
    assert r.status_code == status, r.text[-2000:]
    assert r.headers["content-type"].startswith("text/html")
    assert message in _error(r.text)
    assert "Traceback" not in r.text and 'id="prompt-form"' in r.text
    if fields.get("template", "").strip():
        # what was typed comes back, escaped
        typed = fields["template"].replace('"', "&#34;")
        assert f"{typed}</textarea>" in r.text


def test_unknown_versions_and_labels_are_4xx_pages(admin: tuple[httpx.Client, str]) -> None:
    c, csrf = admin
    assert _create(c, csrf, name="known", template="one {{x}}").status_code == 303
    base = f"/prompts/known?project={PROJECT}"
    # an unknown version to move a label to, a malformed label or version: the page + the problem
    r = c.post(f"/prompts/known/labels?project={PROJECT}",
               data={"csrf": csrf, "label": "production", "version": "7"})  # fmt: skip
    assert r.status_code == 404 and _error(r.text) == "prompt 'known' has no version 7"
    r = c.post(f"/prompts/known/labels?project={PROJECT}",
               data={"csrf": csrf, "label": "Prod!", "version": "1"})  # fmt: skip
    assert r.status_code == 400 and "label 'Prod!'" in _error(r.text)
    r = c.post(f"/prompts/known/labels?project={PROJECT}",
               data={"csrf": csrf, "label": "staging", "version": "one"})  # fmt: skip
    assert r.status_code == 400 and "version: expected a version number" in _error(r.text)
    r = c.post(f"/prompts/known/labels/nolabel/delete?project={PROJECT}", data={"csrf": csrf})
    assert r.status_code == 404 and "has no label 'nolabel'" in _error(r.text)
    # unknown versions to view or diff, an unknown prompt
    for url, status, text in (
        (f"{base}&version=9", 404, "prompt &#39;known&#39; has no version 9"),
        (f"{base}&version=x", 400, "version: expected a version number"),
        (f"{base}&a=1&b=5", 404, "has no version 5"),
        (f"{base}&a=1", 400, "a diff needs two versions"),
        (f"/prompts/nothing-here?project={PROJECT}", 404, "no prompt &#39;nothing-here&#39;"),
        (f"/prompts/known/edit?project={PROJECT}&base=4", 404, "has no version 4"),
    ):
        r = c.get(url)
        assert r.status_code == status and text in r.text, (url, r.text[-1500:])
        assert "Traceback" not in r.text
    # a form without its CSRF token changes nothing
    r = c.post(f"/prompts/known/labels?project={PROJECT}",
               data={"label": "production", "version": "1"})  # fmt: skip
    assert r.status_code == 403
    assert c.get("/api/v1/prompts/known", headers=_key()).json()["labels"] == []


def test_a_viewer_reads_but_cannot_edit(srv: Server, admin: tuple[httpx.Client, str]) -> None:
    c, csrf = admin
    assert _create(c, csrf, name="guarded", template="v1", labels="production").status_code == 303
    with httpx.Client(base_url=srv.url, timeout=30) as v:
        vcsrf = login(v, VIEWER_EMAIL, VIEWER_PASSWORD)
        listing = v.get("/prompts", params={"project": PROJECT})
        assert listing.status_code == 200 and "/prompts/guarded" in listing.text
        assert 'id="new-prompt"' not in listing.text
        detail = v.get("/prompts/guarded", params={"project": PROJECT})
        assert detail.status_code == 200 and "v1" in detail.text
        assert "label-form" not in detail.text and 'id="new-version"' not in detail.text
        assert v.get("/prompts/_new", params={"project": PROJECT}).status_code == 403
        assert v.get("/prompts/guarded/edit", params={"project": PROJECT}).status_code == 403
        # even with a valid session and CSRF token, every change is refused
        r = _create(v, vcsrf, name="guarded", template="v2 by a viewer", existing="1")
        assert r.status_code == 403 and "only the project&#39;s admins may change" in r.text
        r = v.post(f"/prompts/guarded/labels?project={PROJECT}",
                   data={"csrf": vcsrf, "label": "staging", "version": "1"})  # fmt: skip
        assert r.status_code == 403
        r = v.post(f"/prompts/guarded/labels/production/delete?project={PROJECT}",
                   data={"csrf": vcsrf})  # fmt: skip
        assert r.status_code == 403
    got = c.get("/api/v1/prompts/guarded/versions", headers=_key()).json()["data"]
    assert [(x["version"], x["labels"]) for x in got] == [(1, ["production"])]
