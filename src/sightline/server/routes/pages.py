"""Dashboard pages: the overview, the trace list and a trace's timeline."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, cast

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from sightline.errors import ConfigError
from sightline.model import LogRecord, Span
from sightline.server._state import state_of
from sightline.server._web import Page, PageError, PageRoute, WebPage, render
from sightline.server.routes.traces import TRACE_SPANS_DEFAULT, load_trace_page
from sightline.store.base import (
    METRICS,
    Agg,
    LogQuery,
    MetricQuery,
    MetricSeries,
    SpanQuery,
    TraceRollup,
    TraceStore,
    WindowAgg,
)

router = APIRouter(include_in_schema=False, route_class=PageRoute)

_PAGE_SIZE = 50
_STATUSES = ("ok", "error", "unset")
_TRACE_STATUSES = ("ok", "error")
_CLOCK_SKEW = timedelta(hours=1)
"""How much earlier than its trace's root a span may start (the trace list's rollup)."""
"""A trace's status on the trace list: error if any of its spans errored."""


def step_for(page: Page) -> int:
    """A bucket width giving ~60 points over the page's range."""
    span_s = (page.end - page.start).total_seconds()
    for step in (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 86400):
        if span_s / step <= 90:
            return step
    return 86400


def metric_query(
    page: Page,
    name: str,
    agg: str | None = None,
    *,
    step_s: int | None = None,
    group_by: tuple[str, ...] = (),
    filters: dict[str, str] | None = None,
) -> MetricQuery:
    """One metric of the page's project and range (the same query as GET /api/v1/metrics)."""
    m = METRICS[name]
    if page.project is None:
        raise PageError(404, "you belong to no project yet")
    return MetricQuery(
        project_id=page.project,
        metric=m,
        agg=cast(Agg, agg or m.default_agg),
        start=page.start,
        end=page.end,
        step_s=step_s,
        group_by=group_by,
        filters=filters or {},
    )


def metric(
    store: TraceStore,
    page: Page,
    name: str,
    agg: str | None = None,
    *,
    step_s: int | None = None,
    group_by: tuple[str, ...] = (),
    filters: dict[str, str] | None = None,
) -> list[MetricSeries]:
    """One metric of the page's project and range, as :func:`metric_query` asks it."""
    q = metric_query(page, name, agg, step_s=step_s, group_by=group_by, filters=filters)
    return store.query_metric(q)


def summary(
    store: TraceStore,
    page: Page,
    aggs: tuple[tuple[str, str], ...],
    group_sets: tuple[tuple[str, ...], ...],
) -> dict[tuple[str, ...], dict[tuple[Any, ...], dict[str, float | None]]]:
    """Many aggregates over the page's range in one SQL pass (the monitor's batched windows).

    Keyed by group set, then group values, then ``"metric:agg"``.
    """
    if page.project is None:
        raise PageError(404, "you belong to no project yet")
    window_s = max(int((page.end - page.start).total_seconds()), 1)
    asks = [
        WindowAgg(metric=METRICS[name], agg=agg, window_s=window_s, group_by=g, approx=True)
        for g in group_sets
        for name, agg in aggs
    ]
    results = store.query_windows(page.project, page.end, asks)
    out: dict[tuple[str, ...], dict[tuple[Any, ...], dict[str, float | None]]] = {
        g: {} for g in group_sets
    }
    for a, values in zip(asks, results, strict=True):
        for v in values:
            key = tuple(v.group.get(d) for d in a.group_by)
            out[a.group_by].setdefault(key, {})[f"{a.metric.name}:{a.agg}"] = v.value
    return out


def chart_data(
    series: list[MetricSeries], label_of: str | None = None, *, step_s: int | None = None
) -> dict[str, Any]:
    """Columnar data for uPlot: shared x (epoch s) and one y column per series.

    ``step_s`` is the bucket width: a click on a point opens the traces of its bucket.
    """
    xs = sorted({int(t.timestamp()) for s in series for t, _ in s.points})
    index = {x: i for i, x in enumerate(xs)}
    out: dict[str, Any] = {"x": xs, "step": step_s, "series": []}
    for s in series:
        ys: list[float | None] = [None] * len(xs)
        for t, v in s.points:
            ys[index[int(t.timestamp())]] = v
        name = str(s.group.get(label_of)) if label_of and s.group.get(label_of) else "all"
        out["series"].append({"name": name, "values": ys})
    return out


def release_markers(store: TraceStore, page: Page) -> list[dict[str, Any]]:
    """The release markers of the page's range, as the charts draw them (epoch s, label, link)."""
    if page.project is None:
        return []
    rows = store.list_releases(page.project, start=page.start, end=page.end, limit=50)
    return [
        {
            "t": int(r.at.timestamp()),
            "label": f"{r.service} {r.version}" if r.service else r.version,
            "kind": r.kind,
            "link": page.url(f"/releases/{r.release_id}"),
        }
        for r in rows
    ]


def with_markers(charts: Iterable[dict[str, Any]], marks: list[dict[str, Any]]) -> None:
    """Give every chart the release markers (drawn as labelled vertical lines by app.js)."""
    for c in charts:
        c["markers"] = marks


def _single(series: list[MetricSeries]) -> dict[str, float | None]:
    """Group-less values of a step-less metric, keyed by the first group value."""
    out: dict[str, float | None] = {}
    for s in series:
        key = str(next(iter(s.group.values()), "")) if s.group else ""
        out[key] = s.points[0][1] if s.points else None
    return out


def _rate(num: list[MetricSeries], den: list[MetricSeries]) -> list[MetricSeries]:
    """One series of Σnum / Σden per bucket, summed over the groups.

    The error rate of all models from each model's errors and requests: exactly error_rate
    without group_by, without a second pass over the spans.
    """
    tops: dict[datetime, float] = {}
    bottoms: dict[datetime, float] = {}
    for series, acc in ((num, tops), (den, bottoms)):
        for s in series:
            for t, v in s.points:
                acc[t] = acc.get(t, 0.0) + (v or 0.0)
    points: list[tuple[datetime, float | None]] = [
        (t, tops.get(t, 0.0) / n if n else None) for t, n in sorted(bottoms.items())
    ]
    return [MetricSeries({}, points)] if points else []


_OVERVIEW = (
    ("requests", "count"), ("errors", "count"), ("error_rate", "rate"),
    ("latency_ms", "p50"), ("latency_ms", "p95"), ("latency_ms", "p99"),
    ("ttft_ms", "p50"), ("ttft_ms", "p95"), ("tpot_ms", "p50"),
    ("token_weighted_latency_ms", "avg"), ("input_tokens", "sum"), ("output_tokens", "sum"),
    ("cost_usd", "sum"),
)  # fmt: skip
# Score metrics read the (few) scores first. feedback_positive_rate is left out: end-user
# feedback is per trace, and its join scans the spans (~380 ms over 1M spans here).
_QUALITY = ("relevance", "faithfulness", "hallucination_rate", "toxicity", "refusal_rate")


def _overview(store: TraceStore, page: Page, monitor: Any) -> dict[str, Any]:
    step = step_for(page)
    sums = summary(store, page, _OVERVIEW, ((), ("model",)))
    # every key present (None: no data), so an empty project renders dashes
    blank: dict[str, float | None] = {f"{n}:{a}": None for n, a in _OVERVIEW}
    totals = {**blank, **sums[()].get((), {})}
    by_model = {
        str(k[0]) if k[0] is not None else "": {**blank, **v} for k, v in sums[("model",)].items()
    }
    by = ("model",)
    asks = {
        # the charts are one SQL pass by model; each score metric is one query
        "requests": metric_query(page, "requests", step_s=step, group_by=by),
        "errors": metric_query(page, "errors", step_s=step, group_by=by),
        "latency": metric_query(page, "latency_ms", "p95", step_s=step, group_by=by),
        "cost": metric_query(page, "cost_usd", step_s=step, group_by=by),
        **{q: metric_query(page, q) for q in _QUALITY},
    }
    got = dict(zip(asks, store.query_metrics(list(asks.values())), strict=True))
    quality = {q: _single(got[q]).get("", None) for q in _QUALITY}
    charts = {
        "requests": chart_data(got["requests"], "model", step_s=step),
        "latency": chart_data(got["latency"], "model", step_s=step),
        "errors": chart_data(_rate(got["errors"], got["requests"]), step_s=step),
        "cost": chart_data(got["cost"], "model", step_s=step),
    }
    marks = release_markers(store, page)
    with_markers(charts.values(), marks)
    if page.project is None:
        raise PageError(404, "you belong to no project yet")
    firing = monitor.firing(page.project) if monitor is not None else []
    return {
        "by_model": sorted(by_model.items(), key=lambda kv: -(kv[1].get("requests:count") or 0)),
        "totals": totals,
        "quality": quality,
        "charts": charts,
        "step": step,
        "firing": firing,
        "releases": marks,
    }


@router.get("/")
async def overview(request: Request, page: WebPage) -> Response:
    if page.project is None:
        return render(request, "overview.html", page=page, data=None)
    st = state_of(request)
    data = await run_in_threadpool(_overview, st.store, page, st.monitor)
    return render(request, "overview.html", page=page, data=data)


def _trace_query(page: Page) -> SpanQuery:
    q = page.request.query_params
    status = q.get("status") or None
    if status is not None and status not in _STATUSES:
        raise PageError(400, f"status: expected one of {', '.join(_STATUSES)}")
    model = q.get("model") or None
    text = (q.get("q") or "").strip()[:200] or None
    if page.project is None:
        raise PageError(404, "you belong to no project yet")
    root_only = model is None and not q.get("kind")
    trace_status = None
    if root_only and status is not None:
        # a trace's status: error if any of its spans errored, else ok (OTel's unset is no
        # error: an old link's status=unset lists the traces without one)
        status, trace_status = None, ("error" if status == "error" else "ok")
    return SpanQuery(
        project_id=page.project,
        start=page.start,
        end=page.end,
        # With a model filter the rows are that model's calls (each links to its trace);
        # otherwise one row per trace: its root span.
        kind="llm" if model else (q.get("kind") or None),
        model=model,
        user_id=q.get("user_id") or None,
        session_id=q.get("session_id") or None,
        status=status,
        trace_status=trace_status,
        text=text,
        root_only=root_only,
        limit=_PAGE_SIZE,
        cursor=q.get("cursor") or None,
    )


@router.get("/traces")
async def traces(request: Request, page: WebPage) -> Response:
    if page.project is None:
        return render(request, "traces.html", page=page, rows=[], next_cursor=None)
    query = _trace_query(page)
    store = state_of(request).store
    try:
        result = await run_in_threadpool(store.list_spans, query)
    except ConfigError as e:
        raise PageError(400, str(e)) from None
    rollups: dict[str, TraceRollup] = {}
    if query.root_only and result.spans:
        # a trace's row is its root span (a chain, say) with its spans' models, tokens, cost
        # and errors
        ids = [s.trace_id for s in result.spans]
        # a child starts after its root but for clock skew between services
        since = min(s.start_time for s in result.spans) - _CLOCK_SKEW
        got = await run_in_threadpool(store.summarize_traces, query.project_id, ids, since=since)
        rollups = {r.trace_id: r for r in got}
    return render(request, "traces.html", page=page, rows=result.spans, rollups=rollups,
                  next_cursor=result.next_cursor,
                  statuses=_TRACE_STATUSES if query.root_only else _STATUSES)  # fmt: skip


def _flatten(tree: dict[str, Any], total_ms: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    total = max(total_ms, 0.001)

    def walk(node: dict[str, Any], depth: int) -> None:
        node["depth"] = depth
        node["bar_x"] = round(node["offset_ms"] / total * 1000, 2)
        node["bar_w"] = round(max(node["duration_ms"] / total * 1000, 2), 2)
        rows.append(node)
        for c in node["children"]:
            walk(c, depth + 1)

    for root in tree["spans"]:
        walk(root, 0)
    return rows


def _trace(store: TraceStore, project: str, trace_id: str) -> dict[str, Any] | None:
    # bounded: a trace of 100k spans (an agent loop, a batch job) made a page of hundreds of MB
    tree = load_trace_page(store, project, trace_id, limit=TRACE_SPANS_DEFAULT)
    if tree is None:
        return None
    scores = store.list_scores(project, trace_id)
    by_span: dict[str | None, list[Any]] = {}
    for sc in scores:
        by_span.setdefault(sc.span_id, []).append(sc)
    rows = _flatten(tree, tree["duration_ms"])
    logs = store.list_logs(LogQuery(project_id=project, trace_id=trace_id, limit=1000)).records
    logs_by_span: dict[str | None, list[LogRecord]] = {}
    for rec in logs:
        logs_by_span.setdefault(rec.span_id, []).append(rec)
    span_ids = set()
    log_groups: list[dict[str, Any]] = []
    for r in rows:
        r["score_list"] = by_span.get(r["span_id"], [])
        span_ids.add(r["span_id"])
        if r["span_id"] in logs_by_span:
            log_groups.append({"span": r, "logs": logs_by_span[r["span_id"]]})
    # logs without a span id, or whose span never arrived: the trace's own
    loose = [rec for rec in logs if rec.span_id not in span_ids]
    if loose:
        log_groups.append({"span": None, "logs": loose})
    return {
        "logs": log_groups,
        "num_logs": len(logs),
        "tree": tree,
        "rows": rows,
        "scores": [s for s in scores if s.source == "evaluator"],
        "labels": [s for s in scores if s.source == "human"],
        "feedback": [s for s in scores if s.source == "user"],
    }


@router.get("/traces/{trace_id}")
async def trace(
    request: Request,
    page: WebPage,
    trace_id: str = Path(max_length=64),
) -> Response:
    tid = trace_id.lower()
    if len(tid) != 32 or any(c not in "0123456789abcdef" for c in tid):
        raise PageError(404, "no such trace")
    if page.project is None:
        raise PageError(404, "no such trace")
    data = await run_in_threadpool(_trace, state_of(request).store, page.project, tid)
    if data is None:
        # Maybe another of the user's projects holds it: go there (never a foreign project).
        for p in page.login.projects:
            if p == page.project:
                continue
            found: list[Span] = await run_in_threadpool(
                functools.partial(state_of(request).store.get_trace, p, tid, limit=1)
            )
            if found:
                return RedirectResponse(page.url(f"/traces/{tid}", project=p), status_code=303)
        raise PageError(404, "no such trace in this project")
    return render(request, "trace.html", page=page, t=data)
