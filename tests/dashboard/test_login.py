"""Login, sessions, CSRF, first-run bootstrap and memberships, over real HTTP."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from _dashboard import ADMIN_EMAIL, ADMIN_PASSWORD, login
from _helpers import Server, free_port, start_server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(
        tmp_path_factory.mktemp("login"),
        env={"SIGHTLINE_INIT_ADMIN_EMAIL": ADMIN_EMAIL,
             "SIGHTLINE_INIT_ADMIN_PASSWORD": ADMIN_PASSWORD,
             "SIGHTLINE_AUTH_FAIL_LIMIT": "1000"},
    )  # fmt: skip
    yield s
    s.stop()


def _client(srv: Server) -> httpx.Client:
    return httpx.Client(base_url=srv.url, follow_redirects=False, timeout=30)


def _form_csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


class TestLogin:
    def test_pages_redirect_to_login_and_back(self, srv: Server) -> None:
        with _client(srv) as c:
            r = c.get("/traces", params={"range": "1h"})
            assert r.status_code == 303
            assert r.headers["location"] == "/login?next=%2Ftraces%3Frange%3D1h"
            form = c.get(r.headers["location"])
            assert 'name="next" value="/traces?range=1h"' in form.text
            data = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                    "csrf": _form_csrf(form.text), "next": "/traces?range=1h"}  # fmt: skip
            r = c.post("/login", data=data)
            assert r.status_code == 303 and r.headers["location"] == "/traces?range=1h"
            cookie = r.headers["set-cookie"]
            assert "sl_session=" in cookie and "HttpOnly" in cookie
            assert "samesite=lax" in cookie.lower()
            page = c.get("/traces", params={"range": "1h"})
            assert page.status_code == 200
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert "unsafe-inline" not in page.headers["content-security-policy"]

    def test_wrong_password_and_unknown_email_get_the_same_answer(self, srv: Server) -> None:
        with _client(srv) as c:
            answers = []
            for email, pw in ((ADMIN_EMAIL, "wrong password!"), ("nobody@example.com", "x" * 12)):
                form = c.get("/login")
                r = c.post("/login", data={"email": email, "password": pw,
                                           "csrf": _form_csrf(form.text)})  # fmt: skip
                answers.append((r.status_code, "Wrong email or password." in r.text))
                assert "sl_session" not in r.headers.get("set-cookie", "")
            assert answers == [(401, True), (401, True)]

    def test_login_without_its_csrf_cookie_is_refused(self, srv: Server) -> None:
        with _client(srv) as c:
            r = c.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                       "csrf": "forged"})  # fmt: skip
            assert r.status_code == 403
            assert "sl_session" not in r.headers.get("set-cookie", "")

    @pytest.mark.parametrize("nxt", ["//evil.example", "https://evil.example/", "/\\evil", ""])
    def test_next_never_leaves_the_site(self, srv: Server, nxt: str) -> None:
        with _client(srv) as c:
            form = c.get("/login")
            r = c.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                       "csrf": _form_csrf(form.text), "next": nxt})  # fmt: skip
            assert r.status_code == 303 and r.headers["location"] == "/"

    def test_a_non_ascii_csrf_token_is_a_wrong_one(self, srv: Server) -> None:
        """403, never a 500 (secrets.compare_digest raises TypeError on non-ASCII str)."""
        with _client(srv) as c:
            c.get("/login")  # the login form's CSRF cookie
            r = c.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                       "csrf": "é" * 20})  # fmt: skip
            assert r.status_code == 403 and "sl_session" not in r.headers.get("set-cookie", "")
            token = login(c)
            for path, data in (("/logout", {}),
                               ("/settings/keys?project=test", {"role": "read"}),
                               ("/quality/label", {"span_id": "ab" * 8, "label": "correct"}),
                               ("/alerts/silence", {"rule": "r"})):  # fmt: skip
                r = c.post(path, data={**data, "csrf": token[:-1] + "é"})
                assert r.status_code == 403, (path, r.status_code, r.text[-300:])
                assert "this form expired" in r.text
            assert c.get("/settings").status_code == 200  # still logged in, still serving

    @pytest.mark.parametrize(
        ("action", "page"),
        [("/settings/keys?project=test", "/settings?project=test"),
         ("/settings/keys/0123456789abcdef/revoke?project=test", "/settings?project=test"),
         ("/alerts/some-alert/ack?project=test&range=1h", "/alerts?project=test&range=1h"),
         ("/quality/label?project=test", "/quality?project=test"),
         ("/prompts/greeting/labels?project=test", "/prompts/greeting?project=test"),
         ("/logout", "/")],
    )  # fmt: skip
    def test_a_form_sent_without_a_session_comes_back_to_its_page(
        self, srv: Server, action: str, page: str
    ) -> None:
        """An expired session: after logging in, the form's page (a GET of the form's action
        was a 405 JSON answer)."""
        with _client(srv) as c:
            r = c.post(action, data={"csrf": "x"})
            assert r.status_code == 303
            nxt = httpx.URL(r.headers["location"]).params["next"]
            assert nxt == page
            form = c.get(r.headers["location"])
            r = c.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                       "csrf": _form_csrf(form.text), "next": nxt})  # fmt: skip
            assert r.status_code == 303 and r.headers["location"] == page
            back = c.get(page)
            assert back.status_code in (200, 404), back.text  # 404: no prompt "greeting"
            assert "text/html" in back.headers["content-type"]

    def test_logout_ends_the_session(self, srv: Server) -> None:
        with _client(srv) as c:
            token = login(c)
            cookie = c.cookies["sl_session"]
            assert c.post("/logout", data={"csrf": token}).status_code == 303
            with _client(srv) as other:
                other.cookies.set("sl_session", cookie)
                assert other.get("/").status_code == 303  # the old cookie is dead server-side

    def test_bad_query_values_get_a_4xx_page(self, srv: Server) -> None:
        with _client(srv) as c:
            login(c)
            assert c.get("/", params={"range": "3y"}).status_code == 400
            assert c.get("/traces", params={"from": "yesterday"}).status_code == 400
            assert c.get("/traces", params={"cursor": "%%%"}).status_code == 400
            assert c.get("/traces", params={"status": "<b>"}).status_code == 400
            assert c.get("/traces/not-a-trace").status_code == 404
            assert c.get("/traces/" + "ab" * 16).status_code == 404
            r = c.post("/quality/label", data={"csrf": "x", "span_id": "zz", "label": "nope"})
            assert r.status_code in (400, 403)


class TestMemberships:
    def test_a_viewer_sees_only_their_projects_and_changes_nothing(self, srv: Server) -> None:
        with _client(srv) as admin:
            token = login(admin)
            r = admin.post("/settings/projects", data={"csrf": token, "name": "secret-proj"})
            assert r.status_code == 303
            r = admin.post("/settings/members?project=test",
                           data={"csrf": token, "email": "viewer@example.com",
                                 "password": "viewer password 1", "role": "viewer"})  # fmt: skip
            assert r.status_code == 303, r.text
            settings = admin.get("/settings", params={"project": "secret-proj"})
            assert "secret-proj" in settings.text
            # no key was made with it: its secret could not be shown (a redirect answers), and
            # a live admin key nobody holds is clutter; the creator makes the keys wanted
            keys = re.search(r"<h2>API keys of secret-proj</h2>(.*?)</table>", settings.text, re.S)
            assert keys is not None and "<code>" not in keys.group(1), settings.text
            # a new, empty project: every page renders (dashes and empty tables)
            for path in ("/", "/traces", "/quality", "/alerts", "/drift", "/cost", "/prompts"):
                r = admin.get(path, params={"project": "secret-proj"})
                assert r.status_code == 200, (path, r.text[-500:])
        with _client(srv) as viewer:
            vtoken = login(viewer, "viewer@example.com", "viewer password 1")
            home = viewer.get("/")
            assert home.status_code == 200
            assert "secret-proj" not in home.text
            assert viewer.get("/", params={"project": "secret-proj"}).status_code == 404
            assert viewer.get("/traces", params={"project": "nope"}).status_code == 404
            r = viewer.post("/settings/keys?project=test", data={"csrf": vtoken, "role": "admin"})
            assert r.status_code == 403
            r = viewer.post("/settings/projects", data={"csrf": vtoken, "name": "mine"})
            assert r.status_code == 403
            assert "Only the project's admins see its API keys" in viewer.get("/settings").text

    def test_an_admin_creates_a_key_shown_once_and_revokes_it(self, srv: Server) -> None:
        with _client(srv) as c:
            token = login(c)
            r = c.post("/settings/keys?project=test", data={"csrf": token, "role": "read",
                                                            "name": "<i>grafana</i>"})  # fmt: skip
            assert r.status_code == 200
            key = re.search(r'id="new-key">([^<]+)<', r.text).group(1)  # type: ignore[union-attr]
            assert "&lt;i&gt;grafana&lt;/i&gt;" in r.text and "<i>grafana" not in r.text
            assert key not in c.get("/settings").text  # shown once
            api = httpx.get(f"{srv.url}/api/v1/spans", headers={"authorization": f"Bearer {key}"})
            assert api.status_code == 200
            key_id = re.findall(r'action="/settings/keys/([0-9a-f]+)/revoke', r.text)
            from sightline.server._auth import hash_key

            assert hash_key(key)[:16] in key_id
            r = c.post(f"/settings/keys/{hash_key(key)[:16]}/revoke?project=test",
                       data={"csrf": token})  # fmt: skip
            assert r.status_code == 303
            api = httpx.get(f"{srv.url}/api/v1/spans", headers={"authorization": f"Bearer {key}"})
            assert api.status_code == 401


def _setup_path(s: Server) -> str:
    """The path of the one-time setup link the server logs at its first start."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in s.log().splitlines():
            if "no_dashboard_user" in line:
                return httpx.URL(json.loads(line)["setup_url"]).path
        time.sleep(0.1)
    raise AssertionError(f"no setup link logged:\n{s.log()}")


def test_first_run_without_an_admin_prints_a_one_time_setup_link(tmp_path: Path) -> None:
    s = Server(data_dir=tmp_path / "data", port=free_port()).start()
    try:
        path = _setup_path(s)
        with httpx.Client(base_url=s.url, follow_redirects=False) as c:
            assert c.get(path[:-3] + "abc").status_code == 404
            # a token with a non-ASCII character is just a wrong token (was a 500: TypeError
            # from secrets.compare_digest), for the form and for a claim
            assert c.get(path[:-3] + "%C3%A9").status_code == 404
            r = c.post(path[:-3] + "%C3%A9", data={"email": "x@example.com", "password": "y" * 12})
            assert r.status_code == 404
            form = c.get("/login")
            assert "one-time setup link" in form.text
            assert c.get(path).status_code == 200
            r = c.post(path, data={"email": "first@example.com", "password": "short"})
            assert r.status_code == 400 and "12 characters" in r.text
            r = c.post(path, data={"email": "first@example.com", "password": "long enough pw!"})
            assert r.status_code == 303 and "sl_session" in r.headers["set-cookie"]
            assert c.get("/settings").status_code == 200
            # used: the link is dead, for everyone
            assert c.get(path).status_code == 404
            r = c.post(path, data={"email": "second@example.com", "password": "long enough pw!"})
            assert r.status_code == 404
    finally:
        s.stop()


def test_concurrent_claims_of_the_setup_link_make_one_admin(tmp_path: Path) -> None:
    """Eight POST /setup/<token> at once: one creates the admin, the others get 404."""
    s = Server(data_dir=tmp_path / "data", port=free_port()).start()
    try:
        path = _setup_path(s)
        gate = threading.Barrier(8)

        def claim(i: int) -> httpx.Response:
            with httpx.Client(base_url=s.url, follow_redirects=False, timeout=60) as c:
                gate.wait()
                return c.post(path, data={"email": f"admin{i}@example.com",
                                          "password": f"long enough pw {i}"})  # fmt: skip

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(claim, range(8)))
        codes = sorted(r.status_code for r in answers)
        assert codes == [303] + [404] * 7, [(r.status_code, r.text[-300:]) for r in answers]
        won = next(i for i, r in enumerate(answers) if r.status_code == 303)
        assert answers[won].headers["location"] == "/settings"
        email = f"admin{won}@example.com"
        for i in range(8):  # only the winner can log in: no other account was made
            with httpx.Client(base_url=s.url, follow_redirects=False, timeout=30) as c:
                form = c.get("/login")
                r = c.post("/login", data={"email": f"admin{i}@example.com",
                                           "password": f"long enough pw {i}",
                                           "csrf": _form_csrf(form.text)})  # fmt: skip
                assert r.status_code == (303 if f"admin{i}@example.com" == email else 401)
        with httpx.Client(base_url=s.url, follow_redirects=False, timeout=30) as c:
            assert login(c, email, f"long enough pw {won}")
            members = c.get("/settings").text
            assert set(re.findall(r"admin\d@example\.com", members)) == {email}, members
            assert c.get(path).status_code == 404  # and the link is dead
    finally:
        s.stop()
