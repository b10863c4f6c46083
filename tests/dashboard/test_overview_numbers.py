"""The overview's numbers against the API's exact ones, over 60,000 stored calls.

The page reads sampled quantiles (WindowAgg.approx) and one SQL pass for its charts; the API
(GET /api/v1/metrics) stays exact. Latencies are uniform over 200-3,200 ms (bench/query.py's
fill), so a quantile within 2% in rank is within 60 ms of the exact value.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from _dashboard import ADMIN_EMAIL, ADMIN_PASSWORD, login
from _helpers import API_KEY, Server, free_port
from pages import fill_lower
from query import END, START

RANGE = {"from": START.isoformat(), "to": END.isoformat()}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("overview") / "data"
    data.mkdir()
    fill_lower(data, 60_000)  # project "bench": 12,000 calls per model, 60,000 in all
    if os.environ.get("SIGHTLINE_TEST_STORE") == "clickhouse":  # make test-clickhouse
        subprocess.run(
            [sys.executable, "-m", "sightline", "migrate",
             "--from", f"duckdb://{data / 'sightline.duckdb'}", "--to", f"chdb://{data / 'ch'}"],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip
    s = Server(data_dir=data, port=free_port(),
               env={"SIGHTLINE_INIT_PROJECT": "bench",
                    "SIGHTLINE_INIT_ADMIN_EMAIL": ADMIN_EMAIL,
                    "SIGHTLINE_INIT_ADMIN_PASSWORD": ADMIN_PASSWORD,
                    "SIGHTLINE_MONITOR_INTERVAL_S": "0"}).start()  # fmt: skip
    yield s
    s.stop()


def _api(srv: Server, **params: str) -> list[dict[str, object]]:
    with srv.client(API_KEY) as c:
        r = c.get("/api/v1/metrics", params={**RANGE, **params})
        assert r.status_code == 200, r.text
        return r.json()["series"]  # type: ignore[no-any-return]


def _chart(html: str, chart_id: str) -> dict[str, object]:
    m = re.search(
        rf'id="{chart_id}".*?<script type="application/json" class="chart-data">(.*?)</script>',
        html,
        re.S,
    )
    assert m, chart_id
    return json.loads(m.group(1).replace("&#34;", '"'))  # type: ignore[no-any-return]


def test_the_overview_matches_the_exact_api(srv: Server) -> None:
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        login(c)
        html = c.get("/", params={"project": "bench", **RANGE}).text
    cards = re.search(r"Latency p50 / p95 / p99</span><b>(\d+) ms / (\d+) ms / (\d+) ms", html)
    assert cards, html[:2000]
    for shown, agg in zip(cards.groups(), ("p50", "p95", "p99"), strict=True):
        [exact] = _api(srv, name="latency_ms", agg=agg)
        want = exact["points"][0]["value"]  # type: ignore[index]
        assert abs(float(shown) - want) <= 60, (agg, shown, want)
    step = str(_chart(html, "chart-requests")["step"])
    # the charts are exact: their groups (a model's calls in 3 hours) are far below the sample
    for chart_id, name, agg, by in (
        ("chart-requests", "requests", "count", "model"),
        ("chart-latency", "latency_ms", "p95", "model"),
        ("chart-cost", "cost_usd", "sum", "model"),
        ("chart-errors", "error_rate", "rate", ""),  # drawn from errors and requests by model
    ):
        chart = _chart(html, chart_id)
        series = _api(srv, name=name, agg=agg, step=step, group_by=by)
        want = {str(s["group"].get(by, "all")) if by else "all": s for s in series}  # type: ignore[attr-defined]
        assert {s["name"] for s in chart["series"]} == set(want)  # type: ignore[attr-defined]
        for s in chart["series"]:  # type: ignore[attr-defined]
            values = [v for v in s["values"] if v is not None]
            exact = [p["value"] for p in want[s["name"]]["points"]]  # type: ignore[index]
            assert values == pytest.approx(exact), chart_id
            assert len(values) == 56  # 7 days of 3-hour buckets
