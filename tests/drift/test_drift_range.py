"""Drift results of a time range: the dashboard page and GET /api/v1/drift honour its end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from _alerting import T0, Harness, harness
from _dashboard import ADMIN_EMAIL, ADMIN_PASSWORD, login

YAML = """
drift:
  - name: early-job
    detectors: [psi]
  - name: late-job
    detectors: [psi]
"""


@pytest.fixture
def hd(tmp_path: Path) -> Iterator[Harness]:
    yield from harness(
        tmp_path,
        alerts_yaml=YAML,
        start=T0 - timedelta(days=2),
        init_admin_email=ADMIN_EMAIL,
        init_admin_password=ADMIN_PASSWORD,
    )


def test_results_after_the_range_are_not_shown(hd: Harness) -> None:
    h = hd
    drift = h.state.drift
    drift.run("alerts", "early-job")  # two days before T0
    h.clock.advance(days=2)
    drift.run("alerts", "late-job")  # at T0
    frm, to = (T0 - timedelta(days=3)).isoformat(), (T0 - timedelta(days=1)).isoformat()

    # The page of a past range listed the results up to now (only its start was applied):
    # a range ending a day before T0 showed the run at T0, and the newest 300 results
    # could push the range's own out of the table.
    h.client.follow_redirects = False  # the login form answers 303
    login(h.client)
    page = h.client.get("/drift", params={"project": "alerts", "from": frm, "to": to})
    assert page.status_code == 200, page.text
    assert "<td>early-job</td>" in page.text
    assert "late-job</td>" not in page.text

    r = h.api("GET", "/api/v1/drift", params={"from": frm, "to": to})
    assert r.status_code == 200, r.text
    assert {x["job"] for x in r.json()["data"]} == {"early-job"}
    assert {x["job"] for x in r.json()["latest"]} == {"early-job"}
    r = h.api("GET", "/api/v1/drift", params={"to": "not a time"})
    assert r.status_code == 400, r.text
