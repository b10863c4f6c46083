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
from _helpers import Server

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium: `make install` installs it"
)


def _trace(now: datetime, calls: list[dict[str, Any]], *, tool_status: str) -> list[dict[str, Any]]:
    """A chain root (status unset, as an SDK sends it), its LLM calls and a tool call."""
    tid, root = secrets.token_hex(16), secrets.token_hex(8)
    t0 = now - timedelta(seconds=30)

    def at(ms: float) -> str:
        return (t0 + timedelta(milliseconds=ms)).isoformat()

    spans = [{"trace_id": tid, "span_id": root, "name": "rag-request", "kind": "chain",
              "start_time": at(0), "duration_ms": 900, "input": "q", "output": "a"}]  # fmt: skip
    for i, c in enumerate(calls):
        spans.append({"trace_id": tid, "span_id": secrets.token_hex(8), "parent_span_id": root,
                      "name": "chat", "kind": "llm", "provider": "openai", "status": "ok",
                      "start_time": at(10 + i), "duration_ms": 300, **c})  # fmt: skip
    spans.append({"trace_id": tid, "span_id": secrets.token_hex(8), "parent_span_id": root,
                  "name": "lookup", "kind": "tool", "status": tool_status,
                  "start_time": at(400), "duration_ms": 20})  # fmt: skip
    return spans


class Seeded:
    def __init__(self, server: Server, failed: str, fine: str) -> None:
        self.server, self.failed, self.fine = server, failed, fine


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    srv = admin_server(tmp_path_factory.mktemp("ux"))
    now = datetime.now(UTC)
    failed = _trace(now, [{"model": "gpt-4o", "input_tokens": 400, "output_tokens": 80,
                           "cost_usd": 0.0123}], tool_status="error")  # fmt: skip
    fine = _trace(now - timedelta(minutes=1),
                  [{"model": "gpt-4o-mini", "input_tokens": 300, "output_tokens": 20,
                    "cost_usd": 0.000042},
                   {"model": "claude-3-5-haiku", "provider": "anthropic", "input_tokens": 1000,
                    "output_tokens": 200, "cost_usd": 0.0082}], tool_status="unset")  # fmt: skip
    with srv.client() as c:
        r = c.post("/api/v1/spans", json=failed + fine)
        assert r.status_code == 200 and r.json()["accepted"] == len(failed + fine), r.text
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
