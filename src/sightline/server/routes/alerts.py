"""Alert rules (CRUD, versioned), alerts and their history, acknowledgements, silences, SLOs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from sightline._cursor import decode_cursor, encode_cursor
from sightline.alerts import Monitor, parse_duration
from sightline.errors import ConfigError, NotFound
from sightline.model import ALERT_STATUSES, SEVERITIES
from sightline.server._params import ApiTime, check_time, parse_time
from sightline.server._state import project_of, state_of
from sightline.store.base import AlertQuery

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

# The longest `duration` of a silence or `expires_in` of an acknowledgement: a year is past any
# real mute; a longer one can name ends_at (a time up to 9000-01-01).
MAX_HOLD_S = 366 * 86400


def _monitor(request: Request) -> Monitor:
    m = state_of(request).monitor
    if m is None:
        raise NotFound("alerting is not running")
    return m


# -- rules -------------------------------------------------------------------------------------


@router.get("/rules", summary="List alert rules")
async def list_rules(request: Request, project_id: str = Depends(project_of)) -> dict[str, Any]:
    """Every rule of the project: its current version, spec and last evaluation state."""
    views = await run_in_threadpool(_monitor(request).list_rules, project_id)
    return {"data": [v.to_dict() for v in views]}


@router.post("/rules", status_code=201, summary="Create an alert rule")
async def create_rule(
    request: Request,
    spec: Annotated[dict[str, Any], Body()],
    project_id: str = Depends(project_of),
) -> dict[str, Any]:
    """Create a rule (409 if the name exists); the body is the rule as in the alerts file."""
    m = _monitor(request)
    v = await run_in_threadpool(lambda: m.put_rule(project_id, spec, author="api", create=True))
    return (await run_in_threadpool(m.get_rule, project_id, v.name)).to_dict()


@router.get("/rules/{name}", summary="Get an alert rule")
async def get_rule(
    request: Request, name: str, project_id: str = Depends(project_of)
) -> dict[str, Any]:
    """One rule."""
    return (await run_in_threadpool(_monitor(request).get_rule, project_id, name)).to_dict()


@router.put("/rules/{name}", summary="Create or replace an alert rule")
async def put_rule(
    request: Request,
    name: str,
    spec: Annotated[dict[str, Any], Body()],
    project_id: str = Depends(project_of),
) -> dict[str, Any]:
    """Replace a rule (a new version); rules from the alerts file answer 409."""
    if spec.setdefault("name", name) != name:
        raise ConfigError("the body's name differs from the URL's")
    m = _monitor(request)
    await run_in_threadpool(lambda: m.put_rule(project_id, spec, author="api"))
    return (await run_in_threadpool(m.get_rule, project_id, name)).to_dict()


@router.delete("/rules/{name}", summary="Delete an alert rule")
async def delete_rule(
    request: Request, name: str, project_id: str = Depends(project_of)
) -> dict[str, Any]:
    """Delete a rule (recorded as a new, deleted version); its alerts resolve at the next tick."""
    v = await run_in_threadpool(
        lambda: _monitor(request).delete_rule(project_id, name, author="api")
    )
    return {"name": v.name, "version": v.version, "deleted": True}


@router.get("/rules/{name}/versions", summary="Every version of an alert rule")
async def rule_versions(
    request: Request, name: str, project_id: str = Depends(project_of)
) -> dict[str, Any]:
    """The rule's history, oldest first: each change, who made it (api, file, default), when."""
    vs = await run_in_threadpool(_monitor(request).rule_versions, project_id, name)
    return {
        "data": [
            {
                "name": v.name,
                "version": v.version,
                "source": v.source,
                "deleted": v.deleted,
                "author": v.author,
                "created_at": v.created_at.isoformat(),
                "spec": v.spec,
            }
            for v in vs
        ]
    }


# -- SLOs, channels, deliveries, silences ------------------------------------------------------


@router.get("/slos", summary="SLO status: error budget and burn rates")
async def list_slos(request: Request, project_id: str = Depends(project_of)) -> dict[str, Any]:
    """Each SLO rule's bad share, error budget remaining and burn rate per window (last tick)."""
    out = []
    for s in _monitor(request).slos(project_id):
        out.append(
            {
                "name": s.name,
                "sli": s.sli,
                "objective": s.objective,
                "period": s.period,
                "bad_ratio": s.bad_ratio,
                "error_budget_remaining": s.budget_remaining,
                "burn_rates": s.burn_rates,
                "num_events": s.num_events,
            }
        )
    return {"data": out}


@router.get("/channels", summary="Notification channels")
async def list_channels(request: Request, project_id: str = Depends(project_of)) -> dict[str, Any]:
    """Channel names and types from the alerts file (never their URLs or secrets)."""
    d = state_of(request).dispatcher
    channels = d.channels if d is not None else {}
    return {"data": [{"name": n, "type": c.type} for n, c in sorted(channels.items())]}


@router.get("/deliveries", summary="Notification deliveries")
async def list_deliveries(
    request: Request,
    project_id: str = Depends(project_of),
    status: str | None = Query(None, pattern="^(pending|delivered|failed)$"),
    alert_id: str | None = Query(None, max_length=64),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """Deliveries newest first, with attempts and the last error (failures are kept)."""
    ds = await run_in_threadpool(
        lambda: state_of(request).store.list_deliveries(
            project_id, alert_id=alert_id, status=status, limit=limit
        )
    )
    return {"data": [d.to_dict() for d in ds]}


class SilenceIn(BaseModel):
    """A silence: mute matching alerts' notifications until ``ends_at`` (or for ``duration``)."""

    model_config = ConfigDict(extra="forbid")

    matchers: dict[str, str] = Field(
        description="Equalities on rule, severity, a rule label or a group dimension."
    )
    starts_at: ApiTime | None = None
    ends_at: ApiTime | None = None
    duration: str | None = Field(None, description="e.g. 2h; instead of ends_at.")
    created_by: str | None = Field(None, max_length=200)
    comment: str | None = Field(None, max_length=2000)


@router.get("/silences", summary="List silences")
async def list_silences(request: Request, project_id: str = Depends(project_of)) -> dict[str, Any]:
    """Silences, newest first; ``active`` says whether each mutes now."""
    m = _monitor(request)
    now = m.now()
    ss = await run_in_threadpool(m.list_silences, project_id)
    return {"data": [{**s.to_dict(), "active": s.starts_at <= now < s.ends_at} for s in ss]}


@router.post("/silences", status_code=201, summary="Create a silence")
async def create_silence(
    request: Request, body: SilenceIn, project_id: str = Depends(project_of)
) -> dict[str, Any]:
    """Mute notifications of alerts whose labels match, until it expires."""
    m = _monitor(request)
    start = _aware(body.starts_at)
    if body.ends_at is not None and body.duration is not None:
        raise ConfigError("give ends_at or duration, not both")
    end: datetime
    if body.ends_at is not None:
        end = _aware(body.ends_at) or body.ends_at
    elif body.duration is not None:
        end = _after(start or m.now(), body.duration, "duration")
    else:
        raise ConfigError("a silence needs ends_at or duration")
    s = await run_in_threadpool(
        lambda: m.add_silence(
            project_id,
            body.matchers,
            starts_at=start,
            ends_at=end,
            by=body.created_by,
            comment=body.comment,
        )
    )
    return {**s.to_dict(), "active": s.starts_at <= m.now() < s.ends_at}


@router.delete("/silences/{silence_id}", summary="Expire a silence now")
async def expire_silence(
    request: Request, silence_id: str, project_id: str = Depends(project_of)
) -> dict[str, Any]:
    """End a silence now (it stays listed, expired)."""
    s = await run_in_threadpool(_monitor(request).expire_silence, project_id, silence_id)
    return {**s.to_dict(), "active": False}


def _after(start: datetime, duration: str, name: str) -> datetime:
    """``start`` plus a silence's or acknowledgement's ``duration`` (at most MAX_HOLD_S)."""
    try:
        secs = parse_duration(duration)
    except ValueError as e:
        raise ConfigError(f"{name}: {e}") from None
    except OverflowError:  # more digits than a float holds
        secs = MAX_HOLD_S + 1
    if secs > MAX_HOLD_S:
        raise ConfigError(f"{name}: at most {MAX_HOLD_S // 86400}d, got {duration!r}")
    return check_time(start + timedelta(seconds=secs), name)


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# -- alerts ------------------------------------------------------------------------------------


def _decode_cursor(c: str) -> tuple[datetime, str]:
    t, (alert_id,) = decode_cursor(c, 1)
    return t, alert_id


@router.get("", summary="Alert history")
async def list_alerts(
    request: Request,
    project_id: str = Depends(project_of),
    status: str | None = Query(
        None, description="Comma-separated: " + ", ".join(ALERT_STATUSES) + " (default: all)."
    ),
    rule: str | None = Query(None, max_length=100),
    severity: str | None = Query(None, description="P0, P1, P2 or P3."),
    from_: str | None = Query(None, alias="from"),
    to: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = None,
) -> dict[str, Any]:
    """Every alert (firing, pending, resolved, cancelled), newest first; the full history."""
    statuses = tuple(s.strip() for s in status.split(",") if s.strip()) if status else ()
    for s in statuses:
        if s not in ALERT_STATUSES:
            raise ConfigError(f"status: expected {', '.join(ALERT_STATUSES)}, got {s!r}")
    if severity is not None and severity not in SEVERITIES:
        raise ConfigError("severity: expected P0, P1, P2 or P3")
    q = AlertQuery(
        project_id=project_id,
        status=statuses,
        rule=rule,
        severity=severity,
        start=parse_time(from_, "from"),
        end=parse_time(to, "to"),
        limit=limit + 1,
        before=_decode_cursor(cursor) if cursor else None,
    )
    alerts = await run_in_threadpool(state_of(request).store.list_alerts, q)
    more = len(alerts) > limit
    alerts = alerts[:limit]
    nxt = encode_cursor(alerts[-1].pending_since, alerts[-1].alert_id) if more and alerts else None
    return {"data": [a.to_dict() for a in alerts], "next_cursor": nxt}


@router.get("/{alert_id}", summary="One alert with its events and deliveries")
async def get_alert(
    request: Request, alert_id: str, project_id: str = Depends(project_of)
) -> dict[str, Any]:
    """The alert, its history (events) and its notification deliveries."""
    store = state_of(request).store

    def load() -> dict[str, Any]:
        a = store.get_alert(project_id, alert_id)
        if a is None:
            raise NotFound(f"no alert {alert_id!r}")
        events = store.list_alert_events(project_id, alert_id)
        deliveries = store.list_deliveries(project_id, alert_id=alert_id)
        return {
            **a.to_dict(),
            "events": [e.to_dict() for e in events],
            "deliveries": [d.to_dict() for d in deliveries],
        }

    return await run_in_threadpool(load)


class AckIn(BaseModel):
    """An acknowledgement: someone is on it; no repeat notifications while it holds."""

    model_config = ConfigDict(extra="forbid")

    by: str | None = Field(None, max_length=200)
    comment: str | None = Field(None, max_length=2000)
    expires_at: ApiTime | None = None
    expires_in: str | None = Field(None, description="e.g. 1h; instead of expires_at.")


@router.post("/{alert_id}/ack", summary="Acknowledge an alert")
async def acknowledge(
    request: Request,
    alert_id: str,
    body: AckIn | None = None,
    project_id: str = Depends(project_of),
) -> dict[str, Any]:
    """Acknowledge an active alert (409 once resolved); optional expiry."""
    body = body or AckIn.model_validate({})
    m = _monitor(request)
    expires = _aware(body.expires_at)
    if body.expires_in is not None:
        if expires is not None:
            raise ConfigError("give expires_at or expires_in, not both")
        expires = _after(m.now(), body.expires_in, "expires_in")
    a = await run_in_threadpool(
        lambda: m.acknowledge(
            project_id, alert_id, by=body.by, comment=body.comment, expires_at=expires
        )
    )
    return a.to_dict()
