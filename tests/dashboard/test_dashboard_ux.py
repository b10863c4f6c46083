"""What a new user saw on the demo's dashboard, in Chromium: the trace list's rows sum their
traces, chart labels stay inside their charts, small costs keep their digits."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from _dashboard import ADMIN_EMAIL, ADMIN_PASSWORD, admin_server
from _helpers import PROJECT, Server
from sightline.model import Score
from sightline.store import open_store
from store._spans import batch, span_record

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium: `make install` installs it"
)


def _trace(now: datetime, calls: list[dict[str, Any]], *, tool_status: str) -> list[dict[str, Any]]:
    """A chain root (status unset, as an SDK sends it), its LLM calls and a tool call."""
    tid, root = secrets.token_hex(16), secrets.token_hex(8)
    t0 = now - timedelta(seconds=30)
    bare = {"model": None, "provider": None, "input_tokens": None, "output_tokens": None,
            "total_tokens": None, "cost_usd": None}  # fmt: skip
    spans = [
        span_record(
            project_id=PROJECT,
            trace_id=tid,
            span_id=root,
            name="rag-request",
            kind="chain",
            status="unset",
            start=t0,
            duration_ms=900,
            **bare,
        )
    ]
    for i, c in enumerate(calls):
        spans.append(span_record(project_id=PROJECT, trace_id=tid, parent_span_id=root,
                                 name="chat", start=t0 + timedelta(milliseconds=10 + i),
                                 duration_ms=300, **c))  # fmt: skip
    spans.append(span_record(project_id=PROJECT, trace_id=tid, parent_span_id=root, name="lookup",
                             kind="tool", status=tool_status, **bare,
                             start=t0 + timedelta(milliseconds=400), duration_ms=20))  # fmt: skip
    return spans


class Seeded:
    def __init__(self, server: Server, failed: str, fine: str) -> None:
        self.server, self.failed, self.fine = server, failed, fine


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    tmp = tmp_path_factory.mktemp("ux")
    now = datetime.now(UTC)
    failed = _trace(now, [{"model": "gpt-4o", "input_tokens": 400, "output_tokens": 80,
                           "cost_usd": 0.0123}], tool_status="error")  # fmt: skip
    fine = _trace(now - timedelta(minutes=1),
                  [{"model": "gpt-4o-mini", "input_tokens": 300, "output_tokens": 20,
                    "cost_usd": 0.000042},
                   {"model": "claude-3-5-haiku", "provider": "anthropic", "input_tokens": 1000,
                    "output_tokens": 200, "cost_usd": 0.0082}], tool_status="unset")  # fmt: skip
    # the store the server then opens: the spans, and a toxicity score of each LLM call (the
    # evaluator's score: 1 = clean)
    (tmp / "data").mkdir()
    store = open_store(str(tmp / "data" / "sightline.duckdb"))
    store.migrate()
    store.insert_batches([batch(*failed, *fine)])
    store.add_scores([
        Score(project_id=PROJECT, score_id=f"tox{i}", trace_id=s["trace_id"],
              span_id=s["span_id"], name="toxicity", value=0.92, passed=True,
              source="evaluator", evaluator="toxicity", created_at=now)
        for i, s in enumerate(x for x in failed + fine if x["kind"] == "llm")
    ])  # fmt: skip
    store.close()
    srv = admin_server(tmp)
    with srv.client() as c:
        # a deploy's releases in the last minutes, at the charts' right edge (as in the demo)
        for i in range(7):
            at = (now - timedelta(minutes=i)).isoformat()
            release = {"service": f"acme-support-bot-{i}", "version": f"2.{i}.0-rc", "time": at}
            r = c.post("/api/v1/releases", json=release)
            assert r.status_code == 201, r.text
    yield Seeded(srv, failed[0]["trace_id"], fine[0]["trace_id"])
    srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, seeded: Seeded) -> Iterator[Page]:
    ctx = browser.new_context(base_url=seeded.server.url, viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto("/login")
    pg.fill("input[name=email]", ADMIN_EMAIL)
    pg.fill("input[name=password]", ADMIN_PASSWORD)
    pg.click("button[type=submit]")
    pg.wait_for_url(f"{seeded.server.url}/")
    yield pg
    ctx.close()
    assert errors == []


def _row(pg: Page, trace_id: str) -> dict[str, str]:
    heads = [h.strip() for h in pg.locator("table.traces thead th").all_text_contents()]
    row = pg.locator(f"table.traces tbody tr:has(a[href*='/traces/{trace_id}'])")
    assert row.count() == 1
    cells = [c.strip() for c in row.locator("td").all_text_contents()]
    return dict(zip(heads, cells, strict=True))


def test_a_trace_row_shows_its_spans_models_tokens_cost_and_errors(
    page: Page, seeded: Seeded
) -> None:
    page.goto("/traces")
    failed, fine = _row(page, seeded.failed), _row(page, seeded.fine)
    assert failed["Kind"] == "chain" and fine["Kind"] == "chain"
    assert failed["Model"] == "gpt-4o"
    assert fine["Model"] == "claude-3-5-haiku, gpt-4o-mini"
    assert (failed["Tokens"], fine["Tokens"]) == ("480", "1,520")
    assert (failed["Cost"], fine["Cost"]) == ("$0.0123", "$0.0082")
    # the roots' own status is unset; a trace errored if any span did
    assert (failed["Status"], fine["Status"]) == ("error", "ok")
    assert "status-error" in (
        page.locator(f"tr:has(a[href*='{seeded.failed}'])").get_attribute("class") or ""
    )
    # the status filter picks traces by the same rule
    for status, shown in (("error", seeded.failed), ("ok", seeded.fine)):
        page.select_option("select[name=status]", status)
        page.click("form.filters button[type=submit]")
        page.wait_for_url(f"**status={status}**")
        links = page.locator("table.traces a.trace-link")
        assert links.count() == 1
        assert shown in (links.first.get_attribute("href") or "")
    assert page.locator("select[name=status] option").all_text_contents() == ["any", "ok", "error"]


@pytest.mark.parametrize("path", ["/", "/quality", "/cost"])
def test_release_labels_stay_inside_their_charts(page: Page, path: str) -> None:
    page.goto(path)
    page.wait_for_selector("a.release-marker")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    charts = page.locator(".u-over")
    assert charts.count() >= 1
    for i in range(charts.count()):
        over = charts.nth(i)
        ob = over.bounding_box()
        assert ob is not None
        boxes = []
        for label in over.locator("a.release-marker, .release-more").all():
            b = label.bounding_box()
            assert b is not None
            assert ob["x"] - 0.5 <= b["x"] and b["x"] + b["width"] <= ob["x"] + ob["width"] + 0.5
            boxes.append(b)
        # no two labels overlap: the ones past the stack are counted in "+N more"
        for j, a in enumerate(boxes):
            for b in boxes[j + 1 :]:
                apart = (
                    a["x"] + a["width"] <= b["x"]
                    or b["x"] + b["width"] <= a["x"]
                    or a["y"] + a["height"] <= b["y"]
                    or b["y"] + b["height"] <= a["y"]
                )
                assert apart, (a, b)
        more = over.locator(".release-more")
        if boxes:
            assert more.count() >= 1
            assert "more" in (more.first.text_content() or "")


def test_small_costs_keep_their_digits(page: Page, seeded: Seeded) -> None:
    # one gpt-4o-mini call of $0.000042: four decimals showed $0.0000; over 24 hours its
    # bucket is the newest (the default range of this young project is shorter)
    page.goto("/cost?range=24h")
    row = page.locator("table.grid tbody tr:has(a:text-is('gpt-4o-mini'))").first
    cells = [c.strip() for c in row.locator("td").all_text_contents()]
    assert cells[1:] == ["$0.000042", "1", "$0.000042"]
    # the cost chart's legend, under the cursor at the newest bucket (app.js formats it alike)
    over = page.locator("#chart-cost .u-over")
    box = over.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] / 2)
    legend = page.locator("#chart-cost .u-legend .u-series:has-text('gpt-4o-mini') .u-value")
    assert legend.text_content() == "$0.000042"
    # the trace page: the call's own cost; the trace's total, $0.008242, keeps four decimals
    page.goto(f"/traces/{seeded.fine}")
    assert "$0.000042" in (page.text_content("main") or "")
    assert page.locator(".card:has-text('Cost') b").first.text_content() == "$0.0082"


def test_toxicity_says_which_way_it_reads(page: Page) -> None:
    # the evaluator scores 0.92 (1 = clean); the toxicity metric is 1 - that
    page.goto("/")
    card = page.locator(".cards.quality .card:has(span:text-matches('^toxicity'))")
    assert (card.locator("span").text_content() or "").strip() == "toxicity (0 = clean)"
    assert card.locator("b").text_content() == "0.080"
    page.goto("/quality")
    row = page.locator("tr:has(td:first-child:text-matches('^toxicity')) td")
    assert (row.nth(0).text_content() or "").strip() == "toxicity (toxicity-free score: 1 = clean)"
    assert row.nth(2).text_content() == "0.920"
    assert page.locator("#chart-toxicity figcaption").text_content() == "toxicity trend (0 = clean)"
