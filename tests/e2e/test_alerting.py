"""End to end: a real `sightline serve --alerts ... --monitor-interval 1` fires an alert on
spans it ingests and delivers it to a real webhook receiver; the error clears and it resolves."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _alerting import HttpReceiver, span, wait_for
from _helpers import start_server


def test_serve_with_an_alerts_file_fires_notifies_and_resolves(tmp_path: Path) -> None:
    receiver = HttpReceiver().start()
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(
        f"""
channels:
  hook: {{type: webhook, url: "{receiver.url}/hook"}}
rules:
  - name: errors
    metric: error_rate
    threshold: 0.2
    window: 4s
    min_requests: 5
    severity: P1
    notify: [hook]
"""
    )
    srv = start_server(
        tmp_path,
        args=["--alerts", str(alerts), "--monitor-interval", "1"],
        env={"SIGHTLINE_NOTIFY_ALLOW_PRIVATE": "true"},
    )
    try:
        with srv.client() as c:
            rules = {r["name"]: r for r in c.get("/api/v1/alerts/rules").json()["data"]}
            assert rules["errors"]["source"] == "file"
            assert "error-rate-high" in rules  # the default pack is on by default
            now = datetime.now(UTC)
            spans = [span(now - timedelta(milliseconds=100 * i), error=True) for i in range(10)]
            assert c.post("/api/v1/spans", json=spans).status_code == 200
            wait_for(lambda: len(receiver.bodies("/hook")) >= 1, timeout_s=20)
            [body] = receiver.bodies("/hook")[:1]
            assert body["status"] == "firing" and body["rule"] == "errors"
            assert body["severity"] == "P1" and body["value"] == 1.0
            assert body["dashboard_url"].startswith(srv.url + "/api/v1/alerts/")
            firing = c.get("/api/v1/alerts", params={"status": "firing", "rule": "errors"}).json()
            assert [a["alert_id"] for a in firing["data"]] == [body["alert_id"]]
            # healthy traffic only: the 4 s window clears and the alert resolves
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(receiver.bodies("/hook")) < 2:
                ok = [span(datetime.now(UTC), error=False) for _ in range(10)]
                c.post("/api/v1/spans", json=ok)
                time.sleep(0.5)
            resolved = receiver.bodies("/hook")[1]
            assert resolved["status"] == "resolved" and resolved["alert_id"] == body["alert_id"]
            metrics = c.get("/metrics").text
            assert "sightline_alerts_firing" in metrics
    finally:
        srv.stop()
        receiver.stop()
