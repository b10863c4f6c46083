"""deploy/grafana/sightline.json queries only series that /metrics exposes.

The exposition of a real server (spans ingested, evaluation and the monitor on) is parsed with
prometheus_client's own parser; every metric an ``expr`` of the dashboard names must be there.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from _alerting import span
from _helpers import ROOT, start_server

DASHBOARD = ROOT / "deploy" / "grafana" / "sightline.json"


def _exprs(dash: dict[str, object]) -> list[str]:
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]  # type: ignore[attr-defined,index]


def test_the_grafana_dashboard_reads_series_the_server_exposes(tmp_path: Path) -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "sightline-overview" and len(dash["panels"]) >= 10
    srv = start_server(tmp_path, env={"SIGHTLINE_EVAL_ENABLED": "true",
                                      "SIGHTLINE_EVALUATORS": "format"},
                       args=["--monitor-interval", "1"])  # fmt: skip
    try:
        with srv.client() as c:
            now = datetime.now(UTC)
            spans = [span(now - timedelta(seconds=i), error=i % 4 == 0, cost_usd=0.01)
                     for i in range(20)]  # fmt: skip
            assert c.post("/api/v1/spans", json=spans).status_code == 200
            text = c.get("/metrics").text
    finally:
        srv.stop()
    samples: set[str] = set()
    families: set[str] = set()
    for fam in text_string_to_metric_families(text):  # raises on a malformed exposition
        families.add(fam.name)
        samples.update(s.name for s in fam.samples)
    assert "sightline_llm_requests_total" in samples
    assert "sightline_llm_request_duration_seconds_bucket" in samples
    for expr in _exprs(dash):
        for name in re.findall(r"\b(sightline_[a-z_]+)", expr):
            # a labelled counter nothing has counted yet is a family without samples
            family = re.sub(r"_(total|bucket|count|sum)$", "", name)
            assert name in samples or family in families, f"{name} (in {expr!r}) is not exposed"
