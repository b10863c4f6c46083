"""Who may change a project from the dashboard, and the audit log of what they changed.

A ``viewer`` reads: acknowledging an alert, silencing a rule and labelling a span answer 403
(as the API refuses a ``read`` key), change nothing and show no buttons. A project admin may,
and each change is in ``GET /api/v1/audit`` with the dashboard user as its actor, as the API's
changes are. Real server, real logins through the login form.
"""

from __future__ import annotations

import html
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from _dashboard import ADMIN_EMAIL, Seeded, login, start_dashboard_server
from _helpers import PROJECT

VIEWER = "viewer@example.com"
VIEWER_PASSWORD = "viewer password 1"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    s = start_dashboard_server(tmp_path_factory.mktemp("changes"))
    with httpx.Client(base_url=s.url, follow_redirects=False, timeout=30) as admin:
        token = login(admin)
        r = admin.post(f"/settings/members?project={PROJECT}",
                       data={"csrf": token, "email": VIEWER, "password": VIEWER_PASSWORD,
                             "role": "viewer"})  # fmt: skip
        assert r.status_code == 303, r.text
    yield s
    s.server.stop()


def _client(s: Seeded) -> httpx.Client:
    return httpx.Client(base_url=s.url, follow_redirects=False, timeout=30)


def _firing(s: Seeded) -> str:
    with s.server.client() as c:
        firing = c.get("/api/v1/alerts", params={"status": "firing"}).json()["data"]
    assert firing
    return str(firing[0]["alert_id"])


def _audit(s: Seeded) -> list[dict[str, object]]:
    with s.server.client() as c:
        r = c.get("/api/v1/audit", params={"limit": 200})
        assert r.status_code == 200, r.text
        data: list[dict[str, object]] = r.json()["data"]
    return data


def _act(c: httpx.Client, csrf: str, seeded: Seeded, alert: str, *, label: str) -> list[int]:
    """Acknowledge ``alert``, silence its rule and label the LLM span: the three statuses."""
    forms = [
        (f"/alerts/{alert}/ack", {"comment": "on it"}),
        ("/alerts/silence", {"rule": seeded.rule, "duration": "1h"}),
        ("/quality/label", {"span_id": seeded.llm_span, "label": label}),
    ]
    return [
        c.post(f"{path}?project={PROJECT}", data={"csrf": csrf, **data}).status_code
        for path, data in forms
    ]


def test_a_viewer_may_not_ack_silence_or_label(seeded: Seeded) -> None:
    alert = _firing(seeded)
    before = len(_audit(seeded))
    with _client(seeded) as viewer:
        csrf = login(viewer, VIEWER, VIEWER_PASSWORD)
        assert _act(viewer, csrf, seeded, alert, label="harmful") == [403, 403, 403]
        # the pages still open for the viewer, without the buttons that would be refused
        page = viewer.get("/alerts", params={"project": PROJECT})
        assert page.status_code == 200
        assert "/ack" not in page.text and "/alerts/silence" not in page.text
        page = viewer.get("/quality", params={"project": PROJECT, "range": "24h"})
        assert page.status_code == 200 and "/quality/label" not in page.text
    with seeded.server.client() as c:
        got = c.get(f"/api/v1/alerts/{alert}").json()
        assert got.get("acknowledged_by") is None, got
        assert c.get("/api/v1/alerts/silences").json()["data"] == []
        scores = c.get("/api/v1/scores", params={"span_id": seeded.llm_span}).json()["data"]
        assert [s for s in scores if s.get("source") == "human"] == []
    assert len(_audit(seeded)) == before


def test_an_admin_acks_silences_and_labels_and_each_is_audited(seeded: Seeded) -> None:
    alert = _firing(seeded)
    with _client(seeded) as admin:
        csrf = login(admin)
        assert "/ack" in admin.get("/alerts", params={"project": PROJECT}).text
        assert _act(admin, csrf, seeded, alert, label="correct") == [303, 303, 303]
    with seeded.server.client() as c:
        assert c.get(f"/api/v1/alerts/{alert}").json()["acknowledged_by"] == ADMIN_EMAIL
        silences = c.get("/api/v1/alerts/silences").json()["data"]
        assert [s["created_by"] for s in silences] == [ADMIN_EMAIL]
    entries = {e["action"]: e for e in _audit(seeded) if e["actor"] == f"user:{ADMIN_EMAIL}"}
    assert entries["alert.ack"]["target"] == alert
    assert entries["alert.ack"]["details"] == {"comment": "on it"}
    assert entries["silence.create"]["target"] == silences[0]["silence_id"]
    details = entries["silence.create"]["details"]
    assert isinstance(details, dict) and details["matchers"] == {"rule": seeded.rule}
    assert entries["score.label"]["target"] == seeded.llm_span
    details = entries["score.label"]["details"]
    assert isinstance(details, dict) and details["label"] == "correct"
    assert all(e["project_id"] == PROJECT for e in entries.values())


def test_the_label_form_takes_the_name_an_opentelemetry_evaluator_reported(
    seeded: Seeded,
) -> None:
    # the review queue labels a failed score under its evaluator's name, kept as its emitter
    # sent it (capitals, spaces): the form must accept what the queue gives it
    name = "Answer Relevancy"
    with _client(seeded) as admin:
        csrf = login(admin)
        r = admin.post(f"/quality/label?project={PROJECT}",
                       data={"csrf": csrf, "span_id": seeded.llm_span, "label": "incorrect",
                             "name": name})  # fmt: skip
        assert r.status_code == 303, r.text
    with seeded.server.client() as c:
        scores = c.get("/api/v1/scores", params={"span_id": seeded.llm_span, "name": name}).json()
    assert [(s["source"], s["label"]) for s in scores["data"]] == [("human", "incorrect")]


def _otlp_span_with_evaluation(trace_id: str, span_id: str, evaluation: str) -> dict[str, Any]:
    """An LLM span carrying a failed ``gen_ai.evaluation.result`` event named ``evaluation``."""
    ns = time.time_ns()

    def kv(k: str, v: str) -> dict[str, Any]:
        return {"key": k, "value": {"stringValue": v}}

    event = {"name": "gen_ai.evaluation.result", "timeUnixNano": str(ns),
             "attributes": [kv("gen_ai.evaluation.name", evaluation),
                            kv("gen_ai.evaluation.score.label", "fail")]}  # fmt: skip
    span = {"traceId": trace_id, "spanId": span_id, "name": "chat", "kind": 3,
            "startTimeUnixNano": str(ns - 10**9), "endTimeUnixNano": str(ns),
            "attributes": [kv("gen_ai.operation.name", "chat"), kv("gen_ai.request.model", "m1")],
            "events": [event]}  # fmt: skip
    return {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}


def test_the_queue_labels_an_answer_an_outside_evaluator_failed(seeded: Seeded) -> None:
    """An OTel evaluation named as frameworks name them ("Answer Relevancy") is labelled from
    the queue under that name (was a JSON 400: the form's name had to be lowercase ASCII)."""
    trace_id, span_id, name = secrets.token_hex(16), secrets.token_hex(8), "Answer Relevancy"
    with seeded.server.client() as c:
        r = c.post("/v1/traces", json=_otlp_span_with_evaluation(trace_id, span_id, name))
        assert r.status_code == 200, r.text
    with _client(seeded) as admin:
        login(admin)
        page = admin.get("/quality", params={"project": PROJECT, "range": "1h"})
        row = re.search(rf'<tr data-span="{span_id}">(.*?)</tr>', page.text, re.S)
        assert row, "the failed answer is not in the annotation queue"
        form = re.search(r'<form method="post" action="([^"]+)">(.*?)</form>', row.group(1))
        assert form
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">',
                                 form.group(2)))  # fmt: skip
        assert fields["name"] == name
        r = admin.post(html.unescape(form.group(1)), data={**fields, "label": "incorrect"})
        assert r.status_code == 303, r.text
        page = admin.get("/quality", params={"project": PROJECT, "range": "1h"}).text
        agreement = re.search(r'id="agreement">(.*?)</table>', page, re.S)
        assert agreement and name in agreement.group(1)  # judge and human paired by the name
    with seeded.server.client() as c:
        got = c.get("/api/v1/scores", params={"span_id": span_id, "source": "human"}).json()
    assert [(s["name"], s["label"]) for s in got["data"]] == [(name, "incorrect")]


def test_the_overview_row_of_calls_without_a_model_is_not_a_link_to_every_call(
    seeded: Seeded,
) -> None:
    # it linked to /traces with no model filter: every trace, not the calls without a model
    now = time.time()
    span = {"trace_id": secrets.token_hex(16), "span_id": secrets.token_hex(8), "kind": "llm",
            "name": "chat", "start_time": now - 5, "duration_ms": 100.0}  # fmt: skip
    with seeded.server.client() as c:
        assert c.post("/api/v1/spans", json=[span]).status_code == 200
    with _client(seeded) as admin:
        login(admin)
        page = admin.get("/", params={"project": PROJECT, "range": "1h"}).text
    row = re.search(r"<tr><td>(<a [^>]*>)?\(none\)(</a>)?</td>", page)
    assert row is not None, page
    assert row.group(1) is None, row.group(0)
