"""The dashboard in a real browser: Playwright driving Debian's Chromium against `sightline serve`.

Every page is opened with listeners on dialogs, console errors and page errors: hostile text in
spans (script tags, onerror images, javascript: links) must render as text and run nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    Response,
    sync_playwright,
)

from _dashboard import ADMIN_EMAIL, ADMIN_PASSWORD, MARKER, XSS, Seeded, start_dashboard_server

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium: `make install` installs it"
)

PAGES = ("/", "/traces", "/quality", "/alerts", "/drift", "/cost", "/prompts", "/settings")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    s = start_dashboard_server(tmp_path_factory.mktemp("dash"))
    yield s
    s.server.stop()


def text(where: Page | Locator, selector: str | None = None) -> str:
    """The text content of a page's element or of a locator ('' when empty)."""
    if isinstance(where, Locator):
        return where.text_content() or ""
    assert selector is not None
    return where.text_content(selector) or ""


class Watch:
    """What a page did that it must not: dialogs, console errors, uncaught errors."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("response", self._response)

    def _dialog(self, d: Dialog) -> None:
        self.dialogs.append(d.message)
        d.dismiss()

    def _response(self, r: Response) -> None:
        if r.status == 404:
            self.errors.append(f"404 {r.url}")

    def _console(self, m: ConsoleMessage) -> None:
        if m.type == "error":
            self.errors.append(m.text)

    def assert_clean(self, where: str) -> None:
        assert self.dialogs == [], f"{where}: a dialog opened: {self.dialogs}"
        assert self.errors == [], f"{where}: console errors: {self.errors}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, seeded: Seeded) -> Iterator[tuple[Page, Watch]]:
    ctx = browser.new_context(base_url=seeded.url)
    pg = ctx.new_page()
    watch = Watch(pg)
    pg.goto("/login")
    pg.fill("input[name=email]", ADMIN_EMAIL)
    pg.fill("input[name=password]", ADMIN_PASSWORD)
    pg.click("button[type=submit]")
    pg.wait_for_url(f"{seeded.url}/")
    yield pg, watch
    ctx.close()


def test_login_rejects_a_wrong_password_then_logs_in_and_out(
    browser: Browser, seeded: Seeded
) -> None:
    ctx = browser.new_context(base_url=seeded.url)
    pg = ctx.new_page()
    watch = Watch(pg)
    pg.goto("/traces")
    assert "/login" in pg.url  # no session: sent to the login form, coming back after
    pg.fill("input[name=email]", ADMIN_EMAIL)
    pg.fill("input[name=password]", "not the password")
    pg.click("button[type=submit]")
    assert "Wrong email or password" in text(pg, ".error")
    pg.fill("input[name=email]", ADMIN_EMAIL)
    pg.fill("input[name=password]", ADMIN_PASSWORD)
    pg.click("button[type=submit]")
    pg.wait_for_url("**/traces")
    cookie = next(c for c in ctx.cookies() if c["name"] == "sl_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    pg.click("form.logout button")
    pg.wait_for_url("**/login")
    pg.goto("/")
    assert "/login" in pg.url
    # 401 on the wrong password is the only error the console shows
    assert watch.dialogs == []
    ctx.close()


def test_every_page_opens_and_runs_no_injected_script(
    page: tuple[Page, Watch], seeded: Seeded
) -> None:
    pg, watch = page
    for path in PAGES:
        resp = pg.goto(path)
        assert resp is not None and resp.status == 200, path
        assert "script-src 'self'" in resp.headers["content-security-policy"]
        pg.wait_for_load_state("networkidle")
        assert pg.locator("h1").count() >= 1
        # no inline script anywhere: only script files, and JSON data blocks
        inline = "script:not([src]):not([type='application/json'])"
        assert pg.locator(inline).count() == 0, path
        watch.assert_clean(path)
    # the overview drew its charts with the vendored uPlot
    pg.goto("/")
    pg.wait_for_selector("#chart-requests .uplot")
    watch.assert_clean("overview charts")


def test_hostile_text_renders_as_text_on_every_page_that_shows_it(
    page: tuple[Page, Watch], seeded: Seeded
) -> None:
    pg, watch = page
    shows = ("/traces", f"/traces/{seeded.xss_trace}", "/quality", "/alerts", "/cost")
    for path in (*PAGES, f"/traces/{seeded.xss_trace}"):
        pg.goto(path)
        pg.wait_for_load_state("networkidle")
        body = text(pg, "main")
        if path not in shows:
            assert pg.locator("main img").count() == 0, path
            watch.assert_clean(path)
            continue
        assert "<script>alert('xss-script')</script>" in body or "<script>alert('xss-scr" in body, (
            path
        )
        assert pg.locator("main script:not(.chart-data)").count() == 0, path
        assert pg.locator("main img").count() == 0, path
        assert pg.locator("a[href^='javascript:']").count() == 0, path
        watch.assert_clean(path)


def test_filter_traces_and_open_a_timeline(page: tuple[Page, Watch], seeded: Seeded) -> None:
    pg, watch = page
    pg.goto("/traces")
    assert pg.locator("table.traces tbody tr").count() == 7
    pg.fill("input[name=q]", MARKER)
    pg.click("form.filters button[type=submit]")
    pg.wait_for_url(f"**q={MARKER}**")
    rows = pg.locator("table.traces tbody tr")
    assert rows.count() == 1
    assert MARKER in text(rows.first)
    pg.click("a.trace-link")
    pg.wait_for_url(f"**/traces/{seeded.plain_traces[0]}**")
    timeline = pg.locator("#timeline tbody tr")
    assert timeline.count() == 4
    names = [text(timeline.nth(i).locator("td").first).strip() for i in range(4)]
    assert names[1:] == ["retrieve", "chat", "safety filter"]
    ms = [float(text(timeline.nth(i).locator(".span-ms"))) for i in range(4)]
    assert ms == [500.0, 80.0, 300.0, 12.0]
    assert pg.locator("#timeline svg.bar rect").count() == 4
    watch.assert_clean("trace")


def test_label_an_item_of_the_annotation_queue(page: tuple[Page, Watch], seeded: Seeded) -> None:
    pg, watch = page
    pg.goto("/quality")
    row = pg.locator(f"#queue tr[data-span='{seeded.llm_span}']")
    assert row.count() == 1
    row.locator("button[value=incorrect]").click()
    pg.wait_for_url("**labelled=**")
    assert "Label saved" in text(pg, "main")
    assert pg.locator(f"#queue tr[data-span='{seeded.llm_span}']").count() == 0
    with seeded.server.client() as c:
        got = c.get("/api/v1/scores", params={"span_id": seeded.llm_span, "source": "human"})
    [score] = got.json()["data"]
    assert score["label"] == "incorrect" and score["user_id"] == ADMIN_EMAIL
    watch.assert_clean("quality")


def test_acknowledge_a_firing_alert(page: tuple[Page, Watch], seeded: Seeded) -> None:
    pg, watch = page
    pg.goto("/alerts")
    row = pg.locator("#active tbody tr[data-alert]").first
    alert_id = row.get_attribute("data-alert")
    row.locator("input[name=comment]").fill("on it <b>now</b>")
    row.locator("button.ack").click()
    pg.wait_for_url("**done=acknowledged**")
    assert f"by {ADMIN_EMAIL}" in text(pg, f"#active tr[data-alert='{alert_id}']")
    with seeded.server.client() as c:
        a = c.get(f"/api/v1/alerts/{alert_id}").json()
    assert a["acknowledged_by"] == ADMIN_EMAIL
    assert any(e["kind"] == "acknowledged" and e["message"] == "on it <b>now</b>"
               for e in a["events"])  # fmt: skip
    watch.assert_clean("alerts")


def test_a_chart_point_links_to_its_traces(page: tuple[Page, Watch], seeded: Seeded) -> None:
    pg, watch = page
    pg.goto("/")
    over = pg.wait_for_selector("#chart-requests .u-over")
    assert over is not None
    box = over.bounding_box()
    assert box is not None
    # the last bucket holds the newest spans: click at the right edge, where its point is
    pg.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    pg.mouse.click(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    pg.wait_for_url("**/traces?**from=**")
    assert pg.locator("table.traces tbody tr a.trace-link").count() >= 1
    watch.assert_clean("chart link")


def test_the_header_keeps_a_custom_range_or_leaves_it(
    page: tuple[Page, Watch], seeded: Seeded
) -> None:
    """On a custom range (a chart point's bucket) the header's selects still work: the project
    select keeps the range (it sent range=custom without from/to: a 400 page), the range
    select leaves it for the one chosen."""
    pg, watch = page
    now = int(time.time())
    pg.goto(f"/traces?project=test&from={now - 7200}&to={now + 60}")
    assert pg.locator("table.traces tbody tr a.trace-link").count() >= 1
    with pg.expect_navigation():
        pg.select_option("header select[name=project]", "test")
    assert pg.title().startswith("Traces"), text(pg, "main")
    assert f"from={now - 7200}" in pg.url and pg.locator("a.trace-link").count() >= 1
    assert pg.locator("header select[name=range] option:checked").text_content() == "custom"
    with pg.expect_navigation():
        pg.select_option("header select[name=range]", "1h")
    assert pg.title().startswith("Traces"), text(pg, "main")
    assert pg.locator("header select[name=range] option:checked").text_content() == "1h"
    assert pg.locator("header input[name=from]").count() == 0  # left the custom range
    watch.assert_clean("header selects on a custom range")


_RECORD_TIMERS = """
window.__timers = [];
const _setTimeout = window.setTimeout;
window.setTimeout = function (f, ms) {
  window.__timers.push(ms);
  return _setTimeout.apply(this, arguments);
};
"""


def test_auto_refresh_never_sends_a_form_again(page: tuple[Page, Watch], seeded: Seeded) -> None:
    """The answer to "Create key" is not reloaded by auto-refresh: a reload sent the form
    again, 30 s later, and made another key."""
    pg, watch = page
    pg.add_init_script(_RECORD_TIMERS)
    pg.goto("/settings?project=test")
    pg.check("#autorefresh")
    pg.reload()
    assert 30000 in pg.evaluate("window.__timers")  # a page of its own: reloaded every 30 s
    form = pg.locator("form:has(input[name=name][maxlength='100'])")  # "Create key"
    form.locator("input[name=name]").fill("auto-refresh probe")
    with pg.expect_navigation():
        form.locator("button[type=submit]").click()
    assert pg.locator("#new-key").count() == 1
    assert 30000 not in pg.evaluate("window.__timers"), "the answer to the form would reload"
    assert pg.locator("#autorefresh").is_disabled()
    pg.evaluate("window.localStorage.setItem('sl-autorefresh', '0')")
    watch.assert_clean("auto-refresh after a form")


def test_forms_without_the_csrf_token_are_refused(seeded: Seeded) -> None:
    from _dashboard import login

    with httpx.Client(base_url=seeded.url, follow_redirects=False) as c:
        token = login(c)
        r = c.post("/quality/label", data={"span_id": seeded.llm_span, "label": "harmful"})
        assert r.status_code == 403
        r = c.post("/quality/label", data={"span_id": seeded.llm_span, "label": "harmful",
                                           "csrf": "x" + token[1:]})  # fmt: skip
        assert r.status_code == 403
        r = c.post("/logout", data={})
        assert r.status_code == 403


def test_silence_a_rule(page: tuple[Page, Watch], seeded: Seeded) -> None:
    pg, watch = page
    pg.goto("/alerts")
    row = pg.locator("#rules tbody tr", has_text=seeded.rule)
    row.locator("select[name=duration]").select_option("4h")
    row.locator("button", has_text="Silence").click()
    pg.wait_for_url("**done=silenced**")
    with seeded.server.client() as c:
        silences = c.get("/api/v1/alerts/silences").json()["data"]
    assert any(s["matchers"] == {"rule": seeded.rule} and s["active"]
               and s["created_by"] == ADMIN_EMAIL for s in silences)  # fmt: skip
    watch.assert_clean("silence")


def test_the_cost_page_shows_each_budget_with_its_spend(
    page: tuple[Page, Watch], seeded: Seeded
) -> None:
    pg, watch = page
    pg.goto("/cost")
    rows = pg.locator("#budgets tbody tr.budget")
    per_user = pg.locator("#budgets tr.budget", has_text="per-user")
    # one row per user who spent this month, each over its tiny soft limit
    assert per_user.count() == 7
    assert pg.locator("#budgets tr.budget.level-over", has_text="per-user").count() == 7
    assert "over, alerts only" in text(per_user.first)
    assert XSS[:40] in text(pg, "#budgets")  # the hostile user id, as text
    cap = pg.locator("#budgets tr.budget", has_text="project-cap")
    assert cap.count() == 1 and "level-ok" in (cap.get_attribute("class") or "")
    cells = [text(cap.locator("td").nth(i)).strip() for i in range(8)]
    assert cells[1] == "project" and cells[3] == "$1,000.00"
    assert cells[5].endswith("%") and "hard" in cells[7] and "refused" not in cells[7]
    assert cells[6] == "50% · 90%"
    assert rows.count() == 8
    assert "none are configured" not in text(pg, "main")
    assert pg.locator("main img").count() == 0
    watch.assert_clean("cost budgets")


def test_release_markers_are_drawn_and_link_to_the_comparison(
    page: tuple[Page, Watch], seeded: Seeded
) -> None:
    pg, watch = page
    pg.goto("/?range=24h")  # the seeded spans are hours old: without it, the page shows 6h
    # the posted marker (the first model seen in spans is marked on its own too)
    marker = pg.wait_for_selector(f"#chart-requests a.release-marker[href*='{seeded.release_id}']")
    assert marker is not None
    assert marker.text_content() == seeded.release_label
    assert f"/releases/{seeded.release_id}" in (marker.get_attribute("href") or "")
    # every chart with data carries it; none of its text became markup
    assert pg.locator("a.release-marker").count() >= 3
    assert pg.locator("main img").count() == 0
    box = marker.bounding_box()
    over = pg.locator("#chart-requests .u-over").bounding_box()
    assert box is not None and over is not None
    # 6 h before now in a 24 h range: three quarters across the plot
    assert abs((box["x"] - over["x"]) / over["width"] - 0.75) < 0.03
    assert seeded.release_label in text(pg, "#releases")
    marker.click()
    pg.wait_for_url(f"**/releases/{seeded.release_id}**")
    assert "v2 <script>" in text(pg, "h1")
    assert pg.locator("#compare tbody tr").count() >= 1
    assert pg.locator("main img").count() == 0
    watch.assert_clean("release markers")


def test_the_trace_page_lists_logs_under_their_span(
    page: tuple[Page, Watch], seeded: Seeded
) -> None:
    pg, watch = page
    pg.goto(f"/traces/{seeded.xss_trace}")
    under_span = pg.locator(f"#logs tbody.log-group[data-span='{seeded.llm_span}']")
    assert under_span.count() == 1
    assert "chat" in text(under_span.locator("tr.log-span"))
    assert f"span log {XSS}" in text(under_span.locator("tr.log"))
    assert "WARN" in text(under_span.locator("tr.log"))
    loose = pg.locator("#logs tbody.log-group[data-span='']")
    assert "trace-level log" in text(loose) and "Trace (no span)" in text(loose)
    assert pg.locator("#logs tr.log").count() == 2
    assert pg.locator("main img").count() == 0
    pg.goto(f"/traces/{seeded.plain_traces[1]}")
    assert "No log records for this trace" in text(pg, "main")
    watch.assert_clean("trace logs")


def test_the_quality_page_shows_guardrail_effectiveness(
    page: tuple[Page, Watch], seeded: Seeded
) -> None:
    pg, watch = page
    pg.goto("/quality")
    row = pg.locator("#guardrails tbody tr", has_text="safety filter")
    assert row.count() == 1
    cells = [text(row.locator("td").nth(i)).strip() for i in range(7)]
    assert cells[2] == "7"  # one guardrail span per seeded trace
    assert cells[3].startswith("0.0%")  # none blocked
    assert cells[4] == "12 ms / 12 ms"
    watch.assert_clean("guardrails")
