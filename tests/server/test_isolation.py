"""Tenant isolation: with alpha's keys, no route returns or changes beta's data.

Parametrised over every operation of the app's OpenAPI schema: a new route fails this test
until it gets a case in CASES (what alpha's key tries against beta, and what must hold).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from _two_projects import KEYS, TwoProjects, spans_for, two_projects
from sightline.config import Settings
from sightline.model import Alert
from sightline.server import create_app
from sightline.store.base import LogQuery


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoProjects]:
    hh = next(gen := two_projects(tmp_path_factory.mktemp("iso")))
    b = hh.projects["beta"]
    now = hh.clock()
    hh.store.save_alerts([Alert(project_id="beta", alert_id="alert-beta-1", rule=b.rule,
                                rule_version=1, rule_type="threshold", severity="P2", group={},
                                group_key="", status="firing", pending_since=now,
                                started_at=now, last_evaluated_at=now,
                                summary=f"{b.marker} alert")], [])  # fmt: skip
    r = hh.api("POST", "/api/v1/datasets", project="beta",
               json={"name": f"{b.marker} set", "filter": {"user_id": b.user_id}})  # fmt: skip
    assert r.status_code == 201 and r.json()["num_rows"] > 0, r.text  # something to leak
    _BETA_DATASET.append(r.json()["dataset_id"])
    r = hh.api("POST", "/api/v1/prompts", project="beta",
               json={"name": BETA_PROMPT, "template": f"{b.marker} {{{{q}}}}",
                     "labels": ["production"]})  # fmt: skip
    assert r.status_code == 201, r.text
    r = hh.api("POST", "/api/v1/outcomes", project="beta",
               json={"trace_id": b.trace_ids[0], "name": "converted",
                     "metadata": {"note": f"{b.marker} outcome"}})  # fmt: skip
    assert r.status_code == 201, r.text
    ns = str(int(now.timestamp() * 1e9))
    r = hh.api("POST", "/v1/logs", project="beta", json=_logs_body(b.trace_ids[0], b.marker, ns))
    assert r.status_code == 200, r.text
    r = hh.api("POST", "/v1/metrics", project="beta", json=_metrics_body(f"{b.marker}_m", ns))
    assert r.status_code == 200, r.text
    r = hh.api("POST", "/api/v1/releases", project="beta",
               json={"service": b.marker, "version": "1", "notes": b.marker})  # fmt: skip
    assert r.status_code == 201, r.text
    _BETA_RELEASE.append(r.json()["release_id"])
    yield hh
    next(gen, None)


_BETA_DATASET: list[str] = []
BETA_PROMPT = "beta-support-answer"
_BETA_RELEASE: list[str] = []


def _releases(h: TwoProjects) -> None:
    r = h.api("GET", "/api/v1/releases")
    assert r.status_code == 200
    _no_beta(h, r)
    r = h.api("GET", f"/api/v1/releases/{_BETA_RELEASE[0]}/compare")
    assert r.status_code == 404
    _no_beta(h, r)
    r = h.api("POST", "/api/v1/releases", json={"service": "probe", "version": "2"})
    assert r.status_code == 201
    beta = h.api("GET", "/api/v1/releases", project="beta").json()["data"]
    assert [x["release_id"] for x in beta if x["kind"] == "manual"] == _BETA_RELEASE


def _logs_body(trace_id: str, body: str, ns: str) -> dict[str, object]:
    return {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": ns, "traceId": trace_id, "body": {"stringValue": body}}]}]}]}  # fmt: skip


def _metrics_body(name: str, ns: str) -> dict[str, object]:
    return {"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": name, "gauge": {"dataPoints": [{"timeUnixNano": ns, "asDouble": 1}]}},
    ]}]}]}  # fmt: skip


def _otlp_signals(h: TwoProjects) -> None:
    b = h.projects["beta"]
    ns = str(int(h.clock().timestamp() * 1e9))
    before = (h.store.list_otel_metrics("beta"), h.store.list_logs(LogQuery(project_id="beta")))
    assert h.api("POST", "/v1/logs", json=_logs_body(b.trace_ids[0], "x", ns)).status_code == 200
    assert h.api("POST", "/v1/metrics", json=_metrics_body("probe_m", ns)).status_code == 200
    after = (h.store.list_otel_metrics("beta"), h.store.list_logs(LogQuery(project_id="beta")))
    assert after == before


def _otel_metric_value(h: TwoProjects) -> None:
    b = h.projects["beta"]
    r = h.api("GET", "/api/v1/metrics", params={"name": f"otel:{b.marker}_m", "agg": "count"})
    assert r.status_code == 200, r.text
    assert all(p["value"] is None for s in r.json()["series"] for p in s["points"])
    _no_beta(h, r)


def _secrets_of(h: TwoProjects, name: str) -> list[str]:
    p = h.projects[name]
    return [p.marker, p.user_id, p.rule, p.silence_id, *p.trace_ids, *p.span_ids,
            *p.key_ids.values(), "alert-beta-1" if name == "beta" else "-",
            *(_BETA_DATASET if name == "beta" else [])]  # fmt: skip


def _no_beta(h: TwoProjects, r: object) -> None:
    """No beta value in the response, but those the request sent itself (echoed in errors)."""
    text = r.text  # type: ignore[attr-defined]
    req = r.request  # type: ignore[attr-defined]
    sent = str(req.url) + req.content.decode()
    for s in _secrets_of(h, "beta"):
        if s not in sent:
            assert s not in text, f"beta's {s!r} leaked: {text[:300]}"


def _beta_intact(h: TwoProjects) -> None:
    b = h.projects["beta"]
    r = h.api("GET", "/api/v1/spans", project="beta")
    assert len(r.json()["data"]) == 3
    assert h.api("GET", f"/api/v1/alerts/rules/{b.rule}", project="beta").status_code == 200
    sil = h.api("GET", "/api/v1/alerts/silences", project="beta").json()["data"]
    assert any(s["silence_id"] == b.silence_id for s in sil)
    assert h.api("GET", "/api/v1/keys", project="beta").status_code == 200
    assert len(h.store.list_scores("beta", b.trace_ids[0])) == 1
    pr = h.api("GET", "/api/v1/projects/beta/privacy", project="beta").json()
    assert pr["retention_days"] == 0
    alert = h.api("GET", "/api/v1/alerts/alert-beta-1", project="beta").json()
    assert alert["acknowledged_at"] is None if "acknowledged_at" in alert else True


def _get(path: str, **params: str) -> Callable[[TwoProjects], None]:
    def case(h: TwoProjects) -> None:
        b = h.projects["beta"]
        p = path.format(trace=b.trace_ids[0], rule=b.rule, silence=b.silence_id,
                        alert="alert-beta-1", key=b.key_ids["read"], user=b.user_id,
                        dataset=_BETA_DATASET[0])  # fmt: skip
        q = {k: v.format(trace=b.trace_ids[0], user=b.user_id, rule=b.rule)
             for k, v in params.items()}  # fmt: skip
        r = h.api("GET", p, params=q)
        assert r.status_code in (200, 404), r.text
        _no_beta(h, r)

    return case


def _change(method: str, path: str, json: object = None) -> Callable[[TwoProjects], None]:
    def case(h: TwoProjects) -> None:
        b = h.projects["beta"]
        p = path.format(rule=b.rule, silence=b.silence_id, alert="alert-beta-1",
                        key=b.key_ids["read"], user=b.user_id)  # fmt: skip
        r = h.api(method, p, json=json)
        assert r.status_code < 500, r.text
        _no_beta(h, r)
        _beta_intact(h)

    return case


def _ingest(h: TwoProjects) -> None:
    before = h.store.count_spans("beta")
    b = h.projects["beta"]
    spans = spans_for("alpha", 1, user=b.user_id, marker="iso", start=h.clock())
    assert h.api("POST", "/api/v1/spans", json=spans).status_code == 200
    assert h.store.count_spans("beta") == before
    # Alpha now holds a span of a user named like beta's: erased with alpha's key (which
    # must not touch beta's), so that no later case on this worker finds that name in
    # alpha's own data and takes it for a leak.
    r = h.api("DELETE", f"/api/v1/users/{b.user_id}/data")
    assert r.status_code == 200 and r.json()["deleted_spans"] >= 1, r.text
    assert h.store.count_spans("beta") == before


def _otlp(h: TwoProjects) -> None:
    before = h.store.count_spans("beta")
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "ab" * 16,
                                "spanId": "cd" * 8,
                                "name": "x",
                                "startTimeUnixNano": "1772452800000000000",
                                "endTimeUnixNano": "1772452801000000000",
                                "attributes": [
                                    {"key": "sightline.project", "value": {"stringValue": "beta"}}
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    r = h.api("POST", "/v1/traces", json=body)  # fmt: skip
    assert r.status_code == 200, r.text
    assert h.store.count_spans("beta") == before
    assert h.store.get_trace("beta", "ab" * 16) == []


def _feedback(h: TwoProjects) -> None:
    b = h.projects["beta"]
    # feedback naming beta's trace lands in alpha (the key's project), never in beta
    r = h.api("POST", "/api/v1/feedback", json={"trace_id": b.trace_ids[1], "score": -1})
    assert r.status_code == 201
    assert h.store.list_scores("beta", b.trace_ids[1]) == []
    r = h.api("POST", "/api/v1/feedback", json={"span_id": b.span_ids[1], "score": -1})
    assert r.status_code == 404  # beta's span is unknown to alpha


def _human_label(h: TwoProjects) -> None:
    b = h.projects["beta"]
    # a label naming beta's trace lands in alpha (the key's project); beta's span is unknown
    r = h.api("POST", "/api/v1/scores", json={"trace_id": b.trace_ids[1], "label": "incorrect"})
    assert r.status_code == 201, r.text
    assert h.store.list_scores("beta", b.trace_ids[1]) == []
    r = h.api("POST", "/api/v1/scores", json={"span_id": b.span_ids[1], "label": "incorrect"})
    assert r.status_code == 404
    _beta_intact(h)


def _dataset_from_filter(h: TwoProjects) -> None:
    b = h.projects["beta"]
    probe = {"name": "probe", "filter": {"user_id": b.user_id, "trace_id": b.trace_ids[0]}}
    r = h.api("POST", "/api/v1/datasets", json=probe)
    assert r.status_code == 201, r.text
    assert r.json()["num_rows"] == 0
    rows = h.api("GET", f"/api/v1/datasets/{r.json()['dataset_id']}/rows")
    assert rows.status_code == 200 and rows.text.strip() == ""
    _no_beta(h, r)


def _outcome(h: TwoProjects) -> None:
    b = h.projects["beta"]
    # an outcome naming beta's trace lands in alpha (the key's project), never in beta
    r = h.api("POST", "/api/v1/outcomes", json={"trace_id": b.trace_ids[1], "name": "converted"})
    assert r.status_code == 201, r.text
    assert h.store.list_outcomes("beta", trace_id=b.trace_ids[1]) == []
    assert len(h.store.list_outcomes("beta")) == 1
    _no_beta(h, r)


def _metrics_prom(h: TwoProjects) -> None:
    r = h.api("GET", "/metrics")
    assert r.status_code == 200
    assert 'project="beta"' not in r.text


def _metric_values(h: TwoProjects) -> None:
    q = {"name": "requests", "model": "model-beta", "from": "1772400000", "to": "1772460000"}
    r = h.api("GET", "/api/v1/metrics", params=q)
    assert r.status_code == 200, r.text
    assert "model-beta" not in r.text or all(
        p[1] in (None, 0) for s in r.json()["data"] for p in s["points"])  # fmt: skip
    _no_beta(h, r)


def _beta_prompt_intact(h: TwoProjects) -> None:
    r = h.api("GET", f"/api/v1/prompts/{BETA_PROMPT}", project="beta",
              params={"label": "production"})  # fmt: skip
    assert r.status_code == 200 and r.json()["version"] == 1, r.text
    assert h.projects["beta"].marker in r.json()["template"]
    vs = h.api("GET", f"/api/v1/prompts/{BETA_PROMPT}/versions", project="beta").json()["data"]
    assert len(vs) == 1


def _prompt_case(method: str, path: str, json: object = None,
                 **params: str) -> Callable[[TwoProjects], None]:  # fmt: skip
    def case(h: TwoProjects) -> None:
        r = h.api(method, path.format(name=BETA_PROMPT), json=json, params=params)
        assert r.status_code in (200, 404), r.text
        _no_beta(h, r)
        _beta_prompt_intact(h)

    return case


def _create_prompt(h: TwoProjects) -> None:
    # the same name in alpha is alpha's own prompt: version 1, beta's untouched
    body = {"name": BETA_PROMPT, "template": "alpha {{q}}", "labels": ["production"]}
    r = h.api("POST", "/api/v1/prompts", json=body)
    assert r.status_code == 201 and r.json()["version"] == 1, r.text
    _no_beta(h, r)
    _beta_prompt_intact(h)
    r = h.api("GET", "/api/v1/prompts/resolve", params={"name": BETA_PROMPT, "label": "production"})
    assert r.json()["template"] == "alpha {{q}}"


_WIDE = {"from": "1772000000", "to": "1773000000"}


def _compare(h: TwoProjects) -> None:
    q = {"dimension": "model", "a": "model-beta", "b": "model-alpha", **_WIDE}
    r = h.api("GET", "/api/v1/compare", params=q)
    assert r.status_code == 200, r.text
    assert r.json()["samples"]["a"]["calls"] == 0  # beta's calls are not alpha's group A
    assert r.json()["samples"]["b"]["calls"] > 0
    _no_beta(h, r)


def _costs(path: str, **params: str) -> Callable[[TwoProjects], None]:
    def case(h: TwoProjects) -> None:
        r = h.api("GET", path, params={**params, **_WIDE})
        assert r.status_code == 200, r.text
        assert "model-beta" not in r.text and "model-alpha" in r.text
        _no_beta(h, r)

    return case


def _prompt_length(h: TwoProjects) -> None:
    r = h.api("GET", "/api/v1/costs/prompt-length", params={"step": "1h", **_WIDE})
    assert r.status_code == 200, r.text
    calls = sum(p["calls"] for s in r.json()["data"] for p in s["points"])
    alpha_llm = h.api("GET", "/api/v1/spans", params={"kind": "llm", "limit": 1000})
    assert calls == len(alpha_llm.json()["data"])  # alpha's LLM calls, none of beta's
    _no_beta(h, r)


def _audit(h: TwoProjects) -> None:
    r = h.api("GET", "/api/v1/audit", params={"limit": 1000})
    assert r.status_code == 200
    beta_actors = {f"key:{k}" for k in h.projects["beta"].key_ids.values()}
    for e in r.json()["data"]:
        assert e["project_id"] == "alpha" and e["actor"] not in beta_actors, e


def _budgets(method: str) -> Callable[[TwoProjects], None]:
    def case(h: TwoProjects) -> None:
        b = h.projects["beta"]
        beta_budget = {"name": "budget-beta", "limit_usd": 0.5, "hard": True, "scope": "user",
                       "match": b.user_id}  # fmt: skip
        h.api("PUT", "/api/v1/budgets/budget-beta", project="beta", json=beta_budget)
        if method == "LIST":
            r = h.api("GET", "/api/v1/budgets")
        elif method == "CHECK":
            r = h.api("GET", "/api/v1/budgets/check", params={"user": b.user_id})
            assert r.json()["project"] == "alpha" and r.json()["budgets"] == [], r.text
        elif method == "POST":
            r = h.api("POST", "/api/v1/budgets", json={**beta_budget, "limit_usd": 9})
        elif method == "PUT":
            r = h.api("PUT", "/api/v1/budgets/budget-beta", json={**beta_budget, "limit_usd": 9})
        else:
            r = h.api(method, "/api/v1/budgets/budget-beta")
            assert r.status_code == 404 or method == "GET" and r.status_code in (200, 404)
        assert r.status_code < 500, r.text
        _no_beta(h, r)
        got = h.api("GET", "/api/v1/budgets/budget-beta", project="beta").json()
        assert got["limit_usd"] == 0.5, got
        if method in ("POST", "PUT"):  # alpha got its own budget; clean it up
            h.api("DELETE", "/api/v1/budgets/budget-beta")

    return case


CASES: dict[str, Callable[[TwoProjects], None]] = {
    "GET /healthz": _get("/healthz"),
    "GET /readyz": _get("/readyz"),
    "GET /metrics": _metrics_prom,
    "POST /v1/traces": _otlp,
    "POST /api/v1/spans": _ingest,
    "GET /api/v1/spans": _get("/api/v1/spans", user_id="{user}", trace_id="{trace}"),
    "GET /api/v1/traces/{trace_id}": _get("/api/v1/traces/{trace}"),
    "GET /api/v1/metrics": lambda h: (_metric_values(h), _otel_metric_value(h)) and None,
    "POST /v1/metrics": _otlp_signals,
    "POST /v1/logs": _otlp_signals,
    "GET /api/v1/logs": _get("/api/v1/logs", trace_id="{trace}"),
    "GET /api/v1/otel-metrics": _get("/api/v1/otel-metrics"),
    "GET /api/v1/releases": _releases,
    "GET /api/v1/digest": _get("/api/v1/digest"),
    "POST /api/v1/digest/send": _change("POST", "/api/v1/digest/send"),
    "POST /api/v1/releases": _releases,
    "GET /api/v1/releases/{release_id}/compare": _releases,
    "POST /api/v1/feedback": _feedback,
    "GET /api/v1/alerts/rules": _get("/api/v1/alerts/rules"),
    "POST /api/v1/alerts/rules": _change("POST", "/api/v1/alerts/rules",
        {"name": "rule-beta", "metric": "latency_ms", "threshold": 1, "window": "5m"}),
    "GET /api/v1/alerts/rules/{name}": _get("/api/v1/alerts/rules/{rule}"),
    "PUT /api/v1/alerts/rules/{name}": _change("PUT", "/api/v1/alerts/rules/{rule}",
        {"name": "rule-beta", "metric": "latency_ms", "threshold": 7, "window": "5m"}),
    "DELETE /api/v1/alerts/rules/{name}": _change("DELETE", "/api/v1/alerts/rules/{rule}"),
    "GET /api/v1/alerts/rules/{name}/versions": _get("/api/v1/alerts/rules/{rule}/versions"),
    "GET /api/v1/alerts/slos": _get("/api/v1/alerts/slos"),
    "GET /api/v1/alerts/channels": _get("/api/v1/alerts/channels"),
    "GET /api/v1/alerts/deliveries": _get("/api/v1/alerts/deliveries"),
    "GET /api/v1/alerts/silences": _get("/api/v1/alerts/silences"),
    "POST /api/v1/alerts/silences": _change("POST", "/api/v1/alerts/silences",
        {"matchers": {"rule": "rule-beta"}, "duration": "1h"}),
    "DELETE /api/v1/alerts/silences/{silence_id}": _change("DELETE",
        "/api/v1/alerts/silences/{silence}"),
    "GET /api/v1/alerts": _get("/api/v1/alerts", rule="{rule}"),
    "GET /api/v1/alerts/{alert_id}": _get("/api/v1/alerts/{alert}"),
    "POST /api/v1/alerts/{alert_id}/ack": _change("POST", "/api/v1/alerts/{alert}/ack", {}),
    "GET /api/v1/drift": _get("/api/v1/drift"),
    "GET /api/v1/drift/jobs": _get("/api/v1/drift/jobs"),
    "POST /api/v1/drift/run": _change("POST", "/api/v1/drift/run", {}),
    "GET /api/v1/projects/{project_id}/privacy": _get("/api/v1/projects/beta/privacy"),
    "PUT /api/v1/projects/{project_id}/privacy": _change("PUT", "/api/v1/projects/beta/privacy",
        {"retention_days": 1}),
    "DELETE /api/v1/users/{user_id}/data": _change("DELETE", "/api/v1/users/{user}/data"),
    "GET /api/v1/audit": lambda h: _audit(h),
    "GET /api/v1/keys": _get("/api/v1/keys"),
    "POST /api/v1/keys": _change("POST", "/api/v1/keys", {"role": "admin"}),
    "DELETE /api/v1/keys/{key_id}": _change("DELETE", "/api/v1/keys/{key}"),
    "GET /api/v1/scores": _get("/api/v1/scores", trace_id="{trace}"),
    "POST /api/v1/scores": _human_label,
    "GET /api/v1/evaluators": _get("/api/v1/evaluators"),
    "GET /api/v1/evaluators/agreement": _get("/api/v1/evaluators/agreement"),
    "POST /api/v1/datasets": _dataset_from_filter,
    "GET /api/v1/datasets": _get("/api/v1/datasets"),
    "GET /api/v1/datasets/{dataset_id}": _get("/api/v1/datasets/{dataset}"),
    "GET /api/v1/datasets/{dataset_id}/rows": _get("/api/v1/datasets/{dataset}/rows"),
    "GET /api/v1/prompts": _prompt_case("GET", "/api/v1/prompts"),
    "GET /api/v1/prompts/resolve": _prompt_case("GET", "/api/v1/prompts/resolve",
        name=BETA_PROMPT, label="production"),
    "GET /api/v1/prompts/{name}": _prompt_case("GET", "/api/v1/prompts/{name}"),
    "GET /api/v1/prompts/{name}/versions": _prompt_case("GET", "/api/v1/prompts/{name}/versions"),
    "PUT /api/v1/prompts/{name}/labels/{label}": _prompt_case("PUT",
        "/api/v1/prompts/{name}/labels/production", {"version": 1}),
    "DELETE /api/v1/prompts/{name}/labels/{label}": _prompt_case("DELETE",
        "/api/v1/prompts/{name}/labels/production"),
    "POST /api/v1/prompts/{name}/render": _prompt_case("POST", "/api/v1/prompts/{name}/render",
        {"label": "production", "variables": {"q": "x"}}),
    "POST /api/v1/prompts": _create_prompt,
    "GET /api/v1/compare": _compare,
    "GET /api/v1/costs": _costs("/api/v1/costs", by="model"),
    "GET /api/v1/costs/tasks": _costs("/api/v1/costs/tasks", group_by="model"),
    "GET /api/v1/costs/prompt-length": _prompt_length,
    "POST /api/v1/outcomes": _outcome,
    "GET /api/v1/guardrails": _get("/api/v1/guardrails", **{"from": "0"}),
    "GET /api/v1/outcomes": _get("/api/v1/outcomes", trace_id="{trace}"),
    "GET /api/v1/outcomes/metrics": _get("/api/v1/outcomes/metrics", group_by="user_id",
                                         **{"from": "0"}),
    "GET /api/v1/outcomes/ab": _get("/api/v1/outcomes/ab", a="{user}", b="x",
                                    dimension="user_id", **{"from": "0"}),
    "GET /api/v1/budgets": _budgets("LIST"),
    "POST /api/v1/budgets": _budgets("POST"),
    "GET /api/v1/budgets/check": _budgets("CHECK"),
    "GET /api/v1/budgets/{name}": _budgets("GET"),
    "PUT /api/v1/budgets/{name}": _budgets("PUT"),
    "DELETE /api/v1/budgets/{name}": _budgets("DELETE"),
}  # fmt: skip


def _operations() -> list[str]:
    app = create_app(Settings())
    return [f"{m.upper()} {p}" for p, ops in app.openapi()["paths"].items() for m in ops]


@pytest.mark.parametrize("op", _operations())
def test_alpha_key_cannot_reach_beta(h: TwoProjects, op: str) -> None:
    case = CASES.get(op)
    assert case is not None, (
        f"{op} has no isolation case: add one to CASES in {__file__} saying what alpha's key "
        "tries against beta's data and what must hold"
    )
    case(h)
    # alpha's own admin key still works and beta's keys still work for beta
    assert h.api("GET", "/api/v1/spans", project="beta", role="read").status_code == 200
    assert KEYS["beta"]["admin"] not in h.api("GET", "/api/v1/keys").text


# -- dashboard pages -----------------------------------------------------------------------------
# A user who belongs to alpha only, logged in through the form: no page shows beta's data, and
# no form changes it. Pages are not in the OpenAPI schema, so they are listed here.

_RANGE = {"project": "alpha", "from": "1772400000", "to": "1772500000"}


def _page_client(h: TwoProjects) -> Any:
    import re

    from fastapi.testclient import TestClient

    accounts = h.app.state.sightline_accounts
    store = h.store
    if store.get_user_by_email("alpha-only@example.com") is None:
        u = accounts.create_user("alpha-only@example.com", "alpha only password", is_admin=True)
        accounts.add_member(u.user_id, "alpha", "admin")
    c = TestClient(h.app, follow_redirects=False)
    form = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    r = c.post("/login", data={"email": "alpha-only@example.com",
                               "password": "alpha only password", "csrf": token})  # fmt: skip
    assert r.status_code == 303, r.text
    c.csrf = re.search(r'name="csrf" value="([^"]+)"',  # type: ignore[attr-defined]
                       c.get("/settings").text).group(1)  # type: ignore[union-attr]  # fmt: skip
    return c


def _page_get(path: str) -> Callable[[TwoProjects], None]:
    def case(h: TwoProjects) -> None:
        b = h.projects["beta"]
        c = _page_client(h)
        p = path.format(trace=b.trace_ids[0], release=_PAGE_BETA_RELEASE[0])
        for params in (_RANGE, {**_RANGE, "project": "beta"}, {**_RANGE, "user_id": b.user_id}):
            r = c.get(p, params=params)
            assert r.status_code in (200, 303, 404), (p, params, r.status_code)
            _no_beta(h, r)
        assert c.get(p, params={**_RANGE, "project": "beta"}).status_code in (404, 303)

    return case


def _page_post(path: str, data: dict[str, str]) -> Callable[[TwoProjects], None]:
    def case(h: TwoProjects) -> None:
        b = h.projects["beta"]
        c = _page_client(h)
        form = {k: v.format(span=b.span_ids[2], rule=b.rule) for k, v in data.items()}
        p = path.format(alert="alert-beta-1", key=b.key_ids["read"])
        for project in ("alpha", "beta"):
            r = c.post(p, params={"project": project}, data={**form, "csrf": c.csrf})
            assert r.status_code in (200, 303, 400, 403, 404, 409), (p, project, r.status_code)
            _no_beta(h, r)
        _beta_intact(h)
        assert h.store.list_scores("beta", b.trace_ids[2]) == []
        members = [u.email for u, _ in h.store.list_members("beta")]
        assert "alpha-only@example.com" not in members

    return case


def _beta_prompt_intact(h: TwoProjects) -> None:
    got = h.api("GET", f"/api/v1/prompts/{BETA_PROMPT}/versions", project="beta").json()["data"]
    assert [(v["version"], v["labels"]) for v in got] == [(1, ["production"])]


def _prompt_page_post(path: str, data: dict[str, str]) -> Callable[[TwoProjects], None]:
    """A registry form aimed at beta's prompt: beta's versions and labels stay as they were."""
    post = _page_post(path, data)

    def case(h: TwoProjects) -> None:
        post(h)
        _beta_prompt_intact(h)

    return case


PAGE_CASES: dict[str, Callable[[TwoProjects], None]] = {
    "GET /": _page_get("/"),
    "GET /traces": _page_get("/traces"),
    "GET /traces/{trace_id}": _page_get("/traces/{trace}"),
    "GET /quality": _page_get("/quality"),
    "POST /quality/label": _page_post("/quality/label", {"span_id": "{span}",
                                                          "label": "harmful"}),
    "GET /alerts": _page_get("/alerts"),
    "POST /alerts/{alert_id}/ack": _page_post("/alerts/{alert}/ack", {}),
    "POST /alerts/silence": _page_post("/alerts/silence", {"rule": "{rule}"}),
    "GET /drift": _page_get("/drift"),
    "GET /cost": _page_get("/cost"),
    "GET /prompts": _page_get("/prompts"),
    "GET /prompts/_new": _page_get("/prompts/_new"),
    "POST /prompts/_new": _prompt_page_post("/prompts/_new", {
        "name": BETA_PROMPT, "template": "alpha's own {{q}}", "existing": "1",
        "labels": "production"}),
    "GET /prompts/{name}": _page_get(f"/prompts/{BETA_PROMPT}"),
    "GET /prompts/{name}/edit": _page_get(f"/prompts/{BETA_PROMPT}/edit"),
    "POST /prompts/{name}/labels": _prompt_page_post(f"/prompts/{BETA_PROMPT}/labels",
                                                     {"label": "production", "version": "1"}),
    "POST /prompts/{name}/labels/{label}/delete": _prompt_page_post(
        f"/prompts/{BETA_PROMPT}/labels/production/delete", {}),
    "GET /releases/{release_id}": _page_get("/releases/{release}"),
    "GET /settings": _page_get("/settings"),
    "POST /settings/keys": _page_post("/settings/keys", {"role": "admin"}),
    "POST /settings/keys/{key_id}/revoke": _page_post("/settings/keys/{key}/revoke", {}),
    "POST /settings/members": _page_post("/settings/members",
                                         {"email": "alpha-only@example.com", "role": "admin"}),
}  # fmt: skip
"""Project-scoped pages. /login, /logout, /setup and /settings/projects are not scoped."""
_UNSCOPED = {"GET /login", "POST /login", "POST /logout", "GET /setup/{token}",
             "POST /setup/{token}", "POST /settings/projects"}  # fmt: skip


def _pages() -> list[str]:
    from sightline.server.routes import login, pages, pages_monitor, pages_prompts

    return [
        f"{m} {r.path}"  # type: ignore[attr-defined]
        for mod in (login, pages, pages_monitor, pages_prompts)
        for r in mod.router.routes
        for m in sorted(r.methods - {"HEAD"})  # type: ignore[attr-defined]
    ]


@pytest.fixture(scope="module")
def hp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoProjects]:
    """Fresh projects: the API cases above leave beta-like names in alpha (their own data)."""
    gen = two_projects(tmp_path_factory.mktemp("iso-pages"))
    hh = next(gen)
    now = hh.clock()
    b = hh.projects["beta"]
    hh.store.save_alerts([Alert(project_id="beta", alert_id="alert-beta-1", rule=b.rule,
                                rule_version=1, rule_type="threshold", severity="P2", group={},
                                group_key="", status="firing", pending_since=now,
                                started_at=now, last_evaluated_at=now,
                                summary=f"{b.marker} alert")], [])  # fmt: skip
    # beta's release markers, logs and budgets must not reach alpha's charts, traces or costs
    _PAGE_BETA_RELEASE.clear()
    r = hh.api("POST", "/api/v1/releases", project="beta",
               json={"service": b.marker, "version": f"{b.marker}-v1",
                     "time": (now - timedelta(minutes=5)).isoformat()})  # fmt: skip
    assert r.status_code == 201, r.text
    _PAGE_BETA_RELEASE.append(r.json()["release_id"])
    ns = str(int(now.timestamp() * 1e9))
    r = hh.api("POST", "/v1/logs", project="beta", json=_logs_body(b.trace_ids[0], b.marker, ns))
    assert r.status_code == 200, r.text
    r = hh.api("POST", "/api/v1/budgets", project="beta",
               json={"name": "beta-budget", "scope": "user", "limit_usd": 1})  # fmt: skip
    assert r.status_code == 201, r.text
    # beta's registry: the Prompts pages and their forms must neither show nor change it
    r = hh.api("POST", "/api/v1/prompts", project="beta",
               json={"name": BETA_PROMPT, "template": f"{b.marker} {{{{q}}}}",
                     "labels": ["production"], "message": f"{b.marker} msg"})  # fmt: skip
    assert r.status_code == 201, r.text
    yield hh
    next(gen, None)


_PAGE_BETA_RELEASE: list[str] = []


@pytest.mark.parametrize("op", _pages())
def test_a_member_of_alpha_cannot_see_beta_in_pages(hp: TwoProjects, op: str) -> None:
    h = hp
    if op in _UNSCOPED:
        return
    case = PAGE_CASES.get(op)
    assert case is not None, f"{op} has no page isolation case: add one to PAGE_CASES"
    case(h)
