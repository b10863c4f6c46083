"""Drift results of a time range: the dashboard page and GET /api/v1/drift honour its end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from _alerting import T0, Harness, harness, span
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


def test_latest_is_the_current_score_whatever_fired_and_limit_say(hd: Harness) -> None:
    # docs/drift.md: latest holds the newest result of each (job, detector, feature). It was
    # read off the filtered, limited data: with ?fired=true (the docs' own example) an old
    # fired result passed for the current score, and with a small limit the features past
    # it had no latest at all.
    h = hd
    h.post_spans(
        [span(h.clock() - timedelta(hours=2) - timedelta(minutes=5 * i), output_tokens=10 + i)
         for i in range(60)]
        + [span(h.clock() - timedelta(seconds=30 * (i + 1)), output_tokens=400)
           for i in range(60)]
    )  # fmt: skip
    drift = h.state.drift
    first = {r.feature: r for r in drift.run("alerts", "early-job")}
    assert first["output_tokens"].fired  # the jump from 10-70 to 400 tokens
    h.clock.advance(days=3)  # nothing in either window any more
    drift.run("alerts", "early-job")

    r = h.api("GET", "/api/v1/drift", params={"fired": "true", "job": "early-job"})
    assert r.status_code == 200, r.text
    assert [x["feature"] for x in r.json()["data"]] == ["output_tokens"]
    latest = {x["feature"]: x for x in r.json()["latest"]}
    assert set(latest) == {"prompt_length", "response_length", "input_tokens",
                           "output_tokens", "latency_ms"}  # fmt: skip
    now = latest["output_tokens"]
    assert not now["fired"] and now["status"] == "insufficient_data"
    assert now["created_at"] == h.clock().isoformat()

    r = h.api("GET", "/api/v1/drift", params={"job": "early-job", "limit": 1})
    assert len(r.json()["data"]) == 1 and len(r.json()["latest"]) == 5
