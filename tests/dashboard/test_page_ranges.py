"""The pages show the URL's time range: all of it, and nothing outside it.

``?from=…&to=…`` names a past range (a chart point's bucket, a link a colleague sent): what
happened after ``to`` is not in it. Alerts and drift results are written to the store the real
server then opens, an old one and a recent one of each; and more evaluator scores than the
quality page reads one by one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from _dashboard import ADMIN_EMAIL, ADMIN_PASSWORD, login
from _helpers import PROJECT, Server, free_port
from sightline.model import Alert, DriftResult, Score
from sightline.store import open_store

NOW = datetime.now(UTC).replace(microsecond=0)
OLD = NOW - timedelta(days=2)


def _alert(alert_id: str, rule: str, at: datetime) -> Alert:
    return Alert(project_id=PROJECT, alert_id=alert_id, rule=rule, rule_version=1,
                 rule_type="threshold", severity="P2", group={}, group_key="", status="resolved",
                 value=3.0, threshold=1.0, window="5m", pending_since=at, started_at=at,
                 ended_at=at + timedelta(minutes=10), last_evaluated_at=at + timedelta(minutes=10),
                 summary=f"{rule} breached")  # fmt: skip


def _drift(result_id: str, feature: str, at: datetime) -> DriftResult:
    return DriftResult(project_id=PROJECT, result_id=result_id, job="prompts",
                       detector="psi", feature=feature, created_at=at,
                       current_start=at - timedelta(hours=1), current_end=at, num_baseline=100,
                       num_current=100, score=0.4, threshold=0.2, fired=True)  # fmt: skip


def _score(score_id: str, name: str, value: float, at: datetime, span: int) -> Score:
    # a span each: the newest score of a span is the one that counts
    return Score(project_id=PROJECT, score_id=score_id, trace_id="ab" * 16,
                 span_id=f"{span:016x}", name=name, value=value, passed=value >= 0.5,
                 source="evaluator", evaluator=name, created_at=at)  # fmt: skip


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("ranges") / "data"
    data.mkdir()
    # the store the server opens (the same backend as `sightline serve` picks for the suite)
    if os.environ.get("SIGHTLINE_TEST_STORE") == "clickhouse":
        store = open_store(f"chdb://{data / 'ch'}")
    else:
        store = open_store(str(data / "sightline.duckdb"))
    store.migrate()
    recent = NOW - timedelta(minutes=30)
    store.save_alerts(
        [_alert("alert-old", "old-rule", OLD), _alert("alert-new", "new-rule", recent)], []
    )
    store.add_drift_results(
        [_drift("drift-old", "old_feature", OLD), _drift("drift-new", "new_feature", recent)]
    )
    # 2,050 recent scores of one evaluator, 40 older ones of another, all within the last hour
    scores = [_score(f"a{i}", "busy_eval", 0.9, NOW - timedelta(minutes=5), i)
              for i in range(2050)]  # fmt: skip
    scores += [_score(f"b{i}", "rare_eval", 0.1, NOW - timedelta(minutes=40), i)
               for i in range(40)]  # fmt: skip
    store.add_scores(scores)
    store.close()
    s = Server(data_dir=data, port=free_port(),
               env={"SIGHTLINE_INIT_ADMIN_EMAIL": ADMIN_EMAIL,
                    "SIGHTLINE_INIT_ADMIN_PASSWORD": ADMIN_PASSWORD,
                    "SIGHTLINE_DEFAULT_ALERT_RULES": "false"}).start()  # fmt: skip
    yield s
    s.stop()


def _history(html: str) -> str:
    m = re.search(r'<table class="grid" id="history">(.*?)</table>', html, re.S)
    assert m, html
    return m.group(1)


@pytest.mark.parametrize("path", ["/alerts", "/drift"])
def test_a_past_range_leaves_out_what_came_after_it(srv: Server, path: str) -> None:
    old, new = ("old-rule", "new-rule") if path == "/alerts" else ("old_feature", "new_feature")
    past = {"from": str(int((OLD - timedelta(hours=1)).timestamp())),
            "to": str(int((OLD + timedelta(hours=1)).timestamp()))}  # fmt: skip
    with httpx.Client(base_url=srv.url, follow_redirects=False, timeout=30) as c:
        login(c)
        recent = c.get(path, params={"range": "1h"})
        assert recent.status_code == 200, recent.text
        then = c.get(path, params=past)
        assert then.status_code == 200, then.text
    if path == "/alerts":  # the history table: the rules table lists no stored alert
        recent_text, then_text = _history(recent.text), _history(then.text)
    else:
        recent_text, then_text = recent.text, then.text
    assert new in recent_text and old not in recent_text
    assert old in then_text
    assert new not in then_text, f"{path}: what happened after `to` is on the page"


def test_the_quality_page_counts_every_score_of_the_range(srv: Server) -> None:
    """Distribution, mean and pass rate of each evaluator over the whole range (they were of
    the newest 2,000 scores: an evaluator whose scores were older vanished from the table)."""
    with httpx.Client(base_url=srv.url, follow_redirects=False, timeout=30) as c:
        login(c)
        page = c.get("/quality", params={"range": "1h"})
    assert page.status_code == 200, page.text
    row = r"<tr><td>(\w+_eval)</td><td>(\d+)</td><td>([^<]+)</td><td>([^<]+)</td>"
    got = {name: (n, mean, rate) for name, n, mean, rate in re.findall(row, page.text)}
    assert got == {"busy_eval": ("2050", "0.900", "100.0%"), "rare_eval": ("40", "0.100", "0.0%")}
