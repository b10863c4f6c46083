"""A page asked for without a range shows 24 hours, or less while the project is younger.

A fresh ``make demo`` had minutes of data: over 24 hours (buckets of 30 minutes) each chart
drew one point at its right edge.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

import httpx
import pytest

from _dashboard import ADMIN_EMAIL, ADMIN_PASSWORD, login
from _helpers import Server, free_port


def _span(age_s: float) -> dict[str, object]:
    return {"trace_id": secrets.token_hex(16), "span_id": secrets.token_hex(8), "kind": "llm",
            "name": "chat", "model": "m1", "start_time": time.time() - age_s,
            "duration_ms": 100.0}  # fmt: skip


def _selected(web: httpx.Client, path: str = "/", **params: str) -> str:
    page = web.get(path, params=params)
    assert page.status_code == 200, page.text
    select = page.text[page.text.index('name="range"') :]
    m = re.search(r'<option value="([^"]+)" selected>', select)
    assert m, select[:500]
    return m.group(1)


@pytest.mark.parametrize(
    ("ages_s", "want"),
    [([], "24h"), ([300, 60], "15m"), ([2 * 3600, 300], "6h"), ([3 * 86400, 300], "24h")],
)
def test_the_default_range_covers_a_young_projects_data(
    tmp_path: Path, ages_s: list[float], want: str
) -> None:
    srv = Server(data_dir=tmp_path, port=free_port(),
                 env={"SIGHTLINE_INIT_ADMIN_EMAIL": ADMIN_EMAIL,
                      "SIGHTLINE_INIT_ADMIN_PASSWORD": ADMIN_PASSWORD}).start()  # fmt: skip
    try:
        if ages_s:
            with srv.client() as c:
                r = c.post("/api/v1/spans", json=[_span(a) for a in ages_s])
                assert r.status_code == 200, r.text
        with httpx.Client(base_url=srv.url, timeout=30) as web:
            login(web)
            assert _selected(web) == want
            assert _selected(web, "/traces") == want
            assert f"range={want}" in web.get("/").text  # the page's links keep it
            assert _selected(web, range="7d") == "7d"  # a range asked for wins
    finally:
        srv.stop()
