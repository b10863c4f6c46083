"""Dashboard pages: quality, alerts, drift, cost, prompts and settings (with their forms)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from sightline.alerts import parse_duration
from sightline.budgets import crossed, parse_budget
from sightline.errors import SightlineError
from sightline.evals import HUMAN_LABELS, agreement_by_evaluator, human_passed
from sightline.model import MAX_SCORE_NAME_CHARS, SCORE_NAME_PATTERN, Score
from sightline.server._auth import create_project as create_project_record
from sightline.server._auth import hash_key, new_key
from sightline.server._security import new_audit
from sightline.server._state import AppState, state_of
from sightline.server._web import Page, PageError, PageRoute, WebPage, check_csrf, render
from sightline.server.routes.pages import (
    chart_data,
    metric,
    release_markers,
    step_for,
    summary,
    with_markers,
)
from sightline.server.routes.releases import release_comparison
from sightline.store import AlertQuery, DriftQuery, ScoreQuery, SpanQuery
from sightline.store.base import SCORE_METRICS, ApiKey, AuditEntry

log = structlog.get_logger("sightline.server")

router = APIRouter(include_in_schema=False, route_class=PageRoute)

LABELS = tuple(HUMAN_LABELS)
"""The annotation queue's buttons: correct, incorrect, harmful, off-topic."""


def _project(page: Page) -> str:
    if page.project is None:
        raise PageError(404, "you belong to no project yet")
    return page.project


def _actor(page: Page) -> str:
    return f"user:{page.login.user.email}"


def _back(page: Page, path: str, **params: Any) -> RedirectResponse:
    return RedirectResponse(page.url(path, **params), status_code=303)


def _require_changer(st: AppState, page: Page) -> str:
    """The project, if the user may change it (acknowledge, silence, label): its admins.

    A ``viewer`` reads, as a ``read`` key does: the API's equivalents (``POST
    /api/v1/alerts/{id}/ack``, ``/alerts/silences``, ``/scores``) refuse a read key too.
    """
    project = _project(page)
    if not _is_project_admin(st, page):
        raise PageError(403, "viewers read only: ask one of the project's admins")
    return project


async def _audit(st: AppState, entry: AuditEntry) -> None:
    """Record a dashboard change in the audit log, as the API's changes are."""
    try:
        await run_in_threadpool(st.store.add_audit, entry)
    except SightlineError as e:  # the change is done: log a lost row, don't fail it
        log.error("audit_write_failed", action=entry.action, error=str(e))


# -- quality -------------------------------------------------------------------------------------


def _quality(st: AppState, page: Page) -> dict[str, Any]:
    project = _project(page)
    store = st.store
    # the distributions count the newest score of each span (one aggregate in the store); the
    # worst examples and the annotation queue read the newest scores only
    dists = [
        {"name": d.name, "n": d.num_scores, "bins": list(d.bins), "top": max(d.bins),
         "mean": d.mean, "pass_rate": d.pass_rate}
        for d in store.score_distributions(project, page.start, page.end, source="evaluator")
    ]  # fmt: skip
    recent = store.query_scores(
        ScoreQuery(
            project_id=project, source="evaluator", start=page.start, end=page.end, limit=2000
        )  # fmt: skip
    ).scores
    worst = sorted(
        (s for s in recent if s.passed is False or (s.value is not None and s.value < 0.5)),
        key=lambda s: s.value if s.value is not None else 0.0,
    )[:15]
    step = step_for(page)
    trends = {
        name: chart_data(metric(store, page, name, step_s=step), step_s=step)
        for name in ("relevance", "faithfulness", "hallucination_rate", "toxicity")
        if name in SCORE_METRICS
    }
    labelled = {
        s.span_id
        for s in store.query_scores(
            ScoreQuery(project_id=project, source="human", limit=1000)
        ).scores
    }
    queue: list[dict[str, Any]] = []
    seen: set[str] = set()
    flagged = [s for s in recent if s.passed is False and s.span_id]
    spans_by_trace = store.get_traces(project, list({s.trace_id for s in flagged[:40]}))
    for s in flagged[:40]:
        if s.span_id in labelled or s.span_id in seen:
            continue
        span = next((x.span for x in spans_by_trace.get(s.trace_id, [])
                     if x.span.span_id == s.span_id), None)  # fmt: skip
        if span is not None:
            seen.add(span.span_id)
            # labelled under the evaluator's score name, so the label counts in its agreement
            queue.append({"span": span, "why": f"{s.name} failed ({s.label or s.value})",
                          "name": s.name})  # fmt: skip
        if len(queue) >= 10:
            break
    sampled = store.list_spans(
        SpanQuery(project_id=project, kind="llm", start=page.start, end=page.end, limit=40)
    ).spans
    for span in sampled:
        if len(queue) >= 20:
            break
        if span.span_id not in labelled and span.span_id not in seen:
            seen.add(span.span_id)
            queue.append({"span": span, "why": "sampled", "name": "label"})
    agreement = agreement_by_evaluator(store.list_agreement_pairs(project))
    with_markers(trends.values(), release_markers(store, page))
    guardrails = [g.to_dict() for g in store.guardrail_stats(project, page.start, page.end)]
    return {"dists": dists, "worst": worst, "trends": trends, "queue": queue,
            "agreement": agreement, "step": step, "guardrails": guardrails,
            "editor": _is_project_admin(st, page)}  # fmt: skip


@router.get("/quality")
async def quality(request: Request, page: WebPage) -> Response:
    _project(page)
    data = await run_in_threadpool(_quality, state_of(request), page)
    return render(request, "quality.html", page=page, data=data, labels=LABELS,
                  done=request.query_params.get("labelled"))  # fmt: skip


@router.post("/quality/label")
async def label(
    request: Request,
    page: WebPage,
    csrf: str = Form("", max_length=100),
    span_id: str = Form(..., pattern="^[0-9a-f]{16}$"),
    label: str = Form(..., max_length=20),
    name: str = Form("label", max_length=MAX_SCORE_NAME_CHARS, pattern=SCORE_NAME_PATTERN),
) -> Response:
    check_csrf(page, csrf)
    st = state_of(request)
    project = await run_in_threadpool(_require_changer, st, page)
    if label not in HUMAN_LABELS:
        raise PageError(400, f"label: expected one of {', '.join(LABELS)}")
    trace_id = await run_in_threadpool(st.store.find_span_trace, project, span_id)
    if trace_id is None:
        raise PageError(404, "no such span in this project")
    value = 1.0 if HUMAN_LABELS[label] else 0.0
    score = Score(project_id=project, score_id=secrets.token_hex(8), trace_id=trace_id,
                  span_id=span_id, name=name, value=value, label=label,
                  passed=human_passed(label, value), source="human",
                  user_id=page.login.user.email, created_at=datetime.now(UTC))  # fmt: skip
    await run_in_threadpool(st.store.add_scores, [score])
    details = {"score_id": score.score_id, "name": name, "label": label}
    await _audit(st, new_audit(project, _actor(page), "score.label", span_id, details))
    return _back(page, "/quality", labelled=span_id)


# -- alerts --------------------------------------------------------------------------------------


def _alerts(st: AppState, page: Page) -> dict[str, Any]:
    project = _project(page)
    store = st.store
    active = store.list_alerts(AlertQuery(project_id=project, status=("firing", "pending"),
                                          limit=200))  # fmt: skip
    # the alerts that went pending in the page's range (a past range ends before now)
    history = store.list_alerts(
        AlertQuery(project_id=project, start=page.start, end=page.end, limit=100)
    )
    rules = st.monitor.list_rules(project) if st.monitor is not None else []
    runbooks = {v.version.name: v.version.spec.get("runbook") for v in rules}
    now = datetime.now(UTC)
    silences = store.list_silences(project)
    return {"active": active, "history": history, "rules": rules, "runbooks": runbooks,
            "silences": [(s, s.starts_at <= now < s.ends_at) for s in silences[:50]],
            "monitor": st.monitor is not None, "editor": _is_project_admin(st, page)}  # fmt: skip


@router.get("/alerts")
async def alerts(request: Request, page: WebPage) -> Response:
    _project(page)
    data = await run_in_threadpool(_alerts, state_of(request), page)
    return render(request, "alerts.html", page=page, data=data,
                  flash=request.query_params.get("done"))  # fmt: skip


@router.post("/alerts/{alert_id}/ack")
async def ack(
    request: Request,
    page: WebPage,
    alert_id: str,
    csrf: str = Form("", max_length=100),
    comment: str = Form("", max_length=2000),
) -> Response:
    check_csrf(page, csrf)
    st = state_of(request)
    project = await run_in_threadpool(_require_changer, st, page)
    if st.monitor is None:
        raise PageError(404, "alerting is not running")
    monitor = st.monitor
    try:
        await run_in_threadpool(
            lambda: monitor.acknowledge(
                project,
                alert_id,
                by=page.login.user.email,
                comment=comment or None,
                expires_at=None,
            )
        )
    except SightlineError as e:
        raise PageError(e.status, str(e)) from None  # fmt: skip
    await _audit(st, new_audit(project, _actor(page), "alert.ack", alert_id,
                               {"comment": comment or None}))  # fmt: skip
    return _back(page, "/alerts", done="acknowledged")


@router.post("/alerts/silence")
async def silence(
    request: Request,
    page: WebPage,
    csrf: str = Form("", max_length=100),
    rule: str = Form(..., max_length=100),
    duration: str = Form("1h", max_length=20),
    comment: str = Form("", max_length=2000),
) -> Response:
    check_csrf(page, csrf)
    st = state_of(request)
    project = await run_in_threadpool(_require_changer, st, page)
    if st.monitor is None:
        raise PageError(404, "alerting is not running")
    monitor = st.monitor
    try:
        secs = parse_duration(duration)
    except ValueError as e:
        raise PageError(400, f"duration: {e}") from None
    try:
        made = await run_in_threadpool(
            lambda: monitor.add_silence(
                project,
                {"rule": rule},
                starts_at=None,
                ends_at=monitor.now() + timedelta(seconds=secs),
                by=page.login.user.email,
                comment=comment or None,
            )
        )
    except SightlineError as e:
        raise PageError(e.status, str(e)) from None  # fmt: skip
    await _audit(st, new_audit(project, _actor(page), "silence.create", made.silence_id,
                               {"matchers": made.matchers, "ends_at": made.ends_at.isoformat(),
                                "comment": made.comment}))  # fmt: skip
    return _back(page, "/alerts", done="silenced")


# -- drift ---------------------------------------------------------------------------------------


def _drift(st: AppState, page: Page) -> dict[str, Any]:
    project = _project(page)
    results = st.store.list_drift_results(
        DriftQuery(project_id=project, start=page.start, end=page.end, limit=300)
    )
    series: dict[str, list[tuple[int, float | None]]] = {}
    for r in results:
        series.setdefault(f"{r.job}/{r.detector}/{r.feature}", []).append(
            (int(r.current_end.timestamp()), r.score)
        )
    xs = sorted({x for pts in series.values() for x, _ in pts})
    idx = {x: i for i, x in enumerate(xs)}
    chart: dict[str, Any] = {"x": xs, "series": []}
    for name, pts in sorted(series.items()):
        ys: list[float | None] = [None] * len(xs)
        for x, v in pts:
            ys[idx[x]] = v
        chart["series"].append({"name": name, "values": ys})
    return {"results": results[:100], "chart": chart}


@router.get("/drift")
async def drift(request: Request, page: WebPage) -> Response:
    _project(page)
    data = await run_in_threadpool(_drift, state_of(request), page)
    return render(request, "drift.html", page=page, data=data)


# -- cost ----------------------------------------------------------------------------------------

_COST_DIMS = (("model", "Model"), ("user_id", "User"), ("tenant_id", "Tenant"),
              ("feature", "Feature"))  # fmt: skip


def _cost(st: AppState, page: Page) -> dict[str, Any]:
    store = st.store
    dims = tuple((d,) for d, _ in _COST_DIMS)
    sums = summary(store, page, (("cost_usd", "sum"), ("requests", "count")), ((), *dims))
    tables = []
    for dim, title in _COST_DIMS:
        rows = []
        for key, v in sums[(dim,)].items():
            c, n = v.get("cost_usd:sum"), v.get("requests:count")
            rows.append({"key": key[0], "cost": c, "requests": n,
                         "per_request": (c / n) if c is not None and n else None})  # fmt: skip
        rows.sort(key=lambda r: -(r["cost"] or 0.0))
        tables.append({"dim": dim, "title": title, "rows": rows[:25]})
    total = sums[()].get((), {}).get("cost_usd:sum")
    step = step_for(page)
    chart = chart_data(
        metric(store, page, "cost_usd", step_s=step, group_by=("model",)), "model", step_s=step
    )
    with_markers([chart], release_markers(store, page))
    return {"tables": tables, "chart": chart, "total": total, "step": step,
            "budgets": _budgets(st, _project(page))}  # fmt: skip


def _budgets(st: AppState, project: str) -> list[dict[str, Any]] | None:
    """Each budget's spend this period per scope value: limit, spent, % and the level reached.

    ``level``: ``over`` (limit spent; a hard budget refuses calls), ``warn`` (a threshold
    crossed), ``ok``. None when budgets are not running on this server.
    """
    svc = st.budgets
    if svc is None:
        return None
    out: list[dict[str, Any]] = []
    for row in svc.list_budgets(project):
        spec = parse_budget(row.spec)
        statuses = svc.statuses(project, spec)
        for bs in statuses[:50]:
            frac = bs.spent_usd / spec.limit_usd
            hit = crossed(spec, bs.spent_usd)
            out.append({
                "name": spec.name, "scope": spec.scope, "scope_value": bs.scope_value,
                "period": spec.period, "limit": spec.limit_usd, "spent": bs.spent_usd,
                "fraction": frac, "hard": spec.hard, "thresholds": spec.thresholds,
                "crossed": max(hit) if hit else None, "source": row.source,
                "level": "over" if bs.exceeded else ("warn" if hit else "ok"),
            })  # fmt: skip
        if not statuses:  # a per-value budget nobody has spent against yet
            out.append({
                "name": spec.name, "scope": spec.scope, "scope_value": None,
                "period": spec.period, "limit": spec.limit_usd, "spent": 0.0, "fraction": 0.0,
                "hard": spec.hard, "thresholds": spec.thresholds, "crossed": None,
                "source": row.source, "level": "ok",
            })  # fmt: skip
    return out


@router.get("/cost")
async def cost(request: Request, page: WebPage) -> Response:
    _project(page)
    data = await run_in_threadpool(_cost, state_of(request), page)
    return render(request, "cost.html", page=page, data=data)


# -- releases ------------------------------------------------------------------------------------


@router.get("/releases/{release_id}")
async def release(
    request: Request,
    page: WebPage,
    release_id: str = Path(max_length=64),
) -> Response:
    """A release marker's before/after comparison (the charts' markers link here)."""
    project = _project(page)
    rid = release_id.lower()
    if len(rid) != 32 or any(c not in "0123456789abcdef" for c in rid):
        raise PageError(404, "no such release")
    store = state_of(request).store
    rel = await run_in_threadpool(store.get_release, project, rid)
    if rel is None:
        raise PageError(404, "no such release in this project")
    try:
        data = await run_in_threadpool(release_comparison, store, project, rel)
    except SightlineError as e:
        raise PageError(e.status, str(e)) from None
    return render(request, "release.html", page=page, data=data)


# -- prompts -------------------------------------------------------------------------------------


def _registered_prompts(st: AppState, project: str) -> list[dict[str, Any]]:
    """The prompt registry's prompts and templates (rubrics included) of the project."""
    return [r.to_dict() for r in st.store.list_prompts(project, None)]


def _prompts(st: AppState, page: Page) -> dict[str, Any]:
    store = st.store
    versions = ("prompt_name", "prompt_version")
    cols = (("requests", "count"), ("latency_ms", "p95"), ("error_rate", "rate"),
            ("cost_per_request", "avg"))  # fmt: skip
    sums = summary(store, page, cols, (versions, ("variant",)))

    def version_key(name: Any, version: Any) -> tuple[str, str | None]:
        # a prompt without a version stays versionless (not the string "None")
        return str(name), None if version is None else str(version)

    rows: dict[tuple[str, str | None], dict[str, Any]] = {}
    for key, v in sums[versions].items():
        if key[0] is not None:
            rows[version_key(*key)] = {k.split(":")[0]: x for k, x in v.items()}
    variants: dict[str, dict[str, Any]] = {}
    for key, v in sums[("variant",)].items():
        if key[0] is not None:
            variants[str(key[0])] = {k.split(":")[0]: x for k, x in v.items()}
    # score-derived columns: one query each, over spans that carry a prompt or a variant (a
    # join of the range's scores and spans: not asked when no span of the range has either)
    for name in ("relevance",):
        for s in metric(store, page, name, group_by=versions) if rows else ():
            key = version_key(s.group.get("prompt_name"), s.group.get("prompt_version"))
            if key in rows:
                rows[key][name] = s.points[0][1] if s.points else None
        for s in metric(store, page, name, group_by=("variant",)) if variants else ():
            if str(s.group.get("variant")) in variants:
                variants[str(s.group.get("variant"))][name] = s.points[0][1] if s.points else None
    # versionless first under each name (None does not compare with a str)
    by_version = sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1] is not None,
                                                      kv[0][1] or ""))  # fmt: skip
    return {"versions": by_version, "variants": sorted(variants.items()),
            "registry": _registered_prompts(st, _project(page)),
            "editor": _is_project_admin(st, page)}  # fmt: skip


@router.get("/prompts")
async def prompts(request: Request, page: WebPage) -> Response:
    _project(page)
    data = await run_in_threadpool(_prompts, state_of(request), page)
    return render(request, "prompts.html", page=page, data=data)


# -- settings ------------------------------------------------------------------------------------


def _is_project_admin(st: AppState, page: Page) -> bool:
    if page.login.user.is_admin:
        return True
    ms = st.store.list_memberships(page.login.user.user_id)
    return any(m.project_id == page.project and m.role == "admin" for m in ms)


def _settings(st: AppState, page: Page) -> dict[str, Any]:
    admin = page.project is not None and _is_project_admin(st, page)
    return {
        "admin": admin,
        "keys": st.store.list_api_keys(page.project) if admin and page.project else [],
        "members": st.store.list_members(page.project) if page.project else [],
    }


@router.get("/settings")
async def settings_page(request: Request, page: WebPage) -> Response:
    data = await run_in_threadpool(_settings, state_of(request), page)
    return render(request, "settings.html", page=page, data=data, new_key=None,
                  flash=request.query_params.get("done"))  # fmt: skip


def _require_admin(st: AppState, page: Page) -> str:
    project = _project(page)
    if not _is_project_admin(st, page):
        raise PageError(403, "only the project's admins may change its settings")
    return project


@router.post("/settings/keys")
async def create_key(
    request: Request,
    page: WebPage,
    csrf: str = Form("", max_length=100),
    role: str = Form(..., pattern="^(ingest|read|admin)$"),
    name: str = Form("", max_length=100),
) -> Response:
    check_csrf(page, csrf)
    st = state_of(request)
    project = await run_in_threadpool(_require_admin, st, page)
    secret = new_key()
    rec = ApiKey(hash_key(secret), secret[:10], project, role, datetime.now(UTC), name or None)
    await run_in_threadpool(st.store.add_api_key, rec)
    st.keys.forget_new_keys()
    await run_in_threadpool(st.store.add_audit, new_audit(
        project, _actor(page), "key.create", rec.key_id, {"role": role, "name": name}))  # fmt: skip
    data = await run_in_threadpool(_settings, st, page)
    # shown once, on this response only (never in a URL)
    return render(request, "settings.html", page=page, data=data, new_key=secret, flash=None)


@router.post("/settings/keys/{key_id}/revoke")
async def revoke_key(
    request: Request,
    page: WebPage,
    key_id: str,
    csrf: str = Form("", max_length=100),
) -> Response:
    check_csrf(page, csrf)
    st = state_of(request)
    project = await run_in_threadpool(_require_admin, st, page)
    keys = await run_in_threadpool(st.store.list_api_keys, project)
    target = next((k for k in keys if k.key_id == key_id and k.revoked_at is None), None)
    if target is None:
        raise PageError(404, "no such live key in this project")
    revoked = await run_in_threadpool(st.store.revoke_api_key, project, key_id)
    if revoked is not None:
        st.keys.forget(revoked.key_hash)
        await run_in_threadpool(st.store.add_audit,
                                new_audit(project, _actor(page), "key.revoke", key_id))  # fmt: skip
    return _back(page, "/settings", done="key revoked")


@router.post("/settings/members")
async def add_member(
    request: Request,
    page: WebPage,
    csrf: str = Form("", max_length=100),
    email: str = Form(..., max_length=254),
    password: str = Form("", max_length=1024),
    role: str = Form("viewer", pattern="^(viewer|admin)$"),
) -> Response:
    check_csrf(page, csrf)
    st = state_of(request)
    project = await run_in_threadpool(_require_admin, st, page)
    accounts = page.accounts

    def work() -> None:
        user = st.store.get_user_by_email(email)
        if user is None:
            if not password:
                raise PageError(400, "new user: give a password (12+ characters)")
            user = accounts.create_user(email, password)
        accounts.add_member(user.user_id, project, role)
        st.store.add_audit(new_audit(project, _actor(page), "member.add", user.email,
                                     {"role": role}))  # fmt: skip

    try:
        await run_in_threadpool(work)
    except SightlineError as e:
        raise PageError(e.status, str(e)) from None
    return _back(page, "/settings", done="member added")


@router.post("/settings/projects")
async def create_project(
    request: Request,
    page: WebPage,
    csrf: str = Form("", max_length=100),
    name: str = Form(..., max_length=63),
) -> Response:
    check_csrf(page, csrf)
    if not page.login.user.is_admin:
        raise PageError(403, "only server admins create projects")
    st = state_of(request)

    def work() -> None:
        # no key: one made here could not be shown (the answer is a redirect), and a live
        # admin key nobody holds is only clutter; the creator, a member, makes the keys
        create_project_record(st.store, name, actor=_actor(page))
        page.accounts.add_member(page.login.user.user_id, name, "admin")

    try:
        await run_in_threadpool(work)
    except SightlineError as e:
        raise PageError(e.status, str(e)) from None
    return RedirectResponse(page.url("/settings", project=name, done="project created"),
                            status_code=303)  # fmt: skip
