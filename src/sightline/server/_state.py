"""What routes need, gathered once per app."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from sightline.config import Settings
from sightline.errors import AuthError, Forbidden
from sightline.evals import EvalRunner
from sightline.ingest import GroupCommitWriter, IngestService
from sightline.server._auth import KeyRing, key_from_headers
from sightline.server._prom import Metrics
from sightline.store.base import ApiKey, TraceStore

if TYPE_CHECKING:
    from sightline.alerts import Dispatcher, Monitor
    from sightline.alerts._digest import DigestTask
    from sightline.budgets import BudgetService
    from sightline.coordination import Leadership
    from sightline.drift import DriftMonitor
    from sightline.server._security import Security

__all__ = ["AdminKey", "AppState", "admin_key_of", "key_of", "project_of", "state_of"]


@dataclass
class AppState:
    """The server's live parts."""

    settings: Settings
    store: TraceStore
    writer: GroupCommitWriter
    ingest: IngestService
    keys: KeyRing
    metrics: Metrics
    evals: EvalRunner | None = None
    """The (first) online evaluation runner (None when evaluation is off or not this role's)."""
    eval_runners: list[EvalRunner] = dataclasses.field(default_factory=list)
    """Every evaluation worker of this process (``eval_workers``)."""
    leadership: Leadership | None = None
    """The monitor's leader lease, when monitors are elected (role monitor, or Redis)."""
    monitor: Monitor | None = None
    dispatcher: Dispatcher | None = None
    drift: DriftMonitor | None = None
    digest: DigestTask | None = None
    security: Security | None = None
    budgets: BudgetService | None = None


def state_of(request: Request) -> AppState:
    """The AppState of the app serving ``request``."""
    st: AppState = request.app.state.sightline
    return st


def _authenticate(request: Request) -> ApiKey:
    """The request's live key (401), within the failed-auth limit of its address (429)."""
    st = state_of(request)
    key = key_from_headers(request.headers.get("authorization"), request.headers.get("x-api-key"))
    sec = st.security
    addr = request.client.host if request.client else "-"
    if sec is not None:
        sec.limiter.check(addr)
    try:
        found = st.keys.resolve(key)
    except AuthError:
        if sec is not None and key:
            sec.limiter.fail(addr)
        raise
    request.state.sightline_key = found
    return found


def key_of(request: Request) -> ApiKey:
    """FastAPI dependency: the request's key, allowed by its role for this method and path."""
    from sightline.server._security import check_role

    found = _authenticate(request)
    check_role(found, request.method, request.url.path)
    return found


def project_of(request: Request) -> str:
    """FastAPI dependency: the project of the request's API key (401 otherwise).

    The key's role must allow the request (403): ``ingest`` keys only send telemetry,
    ``read`` keys only GET.
    """
    return key_of(request).project_id


def admin_key_of(request: Request) -> ApiKey:
    """FastAPI dependency: the request's key, which must have the ``admin`` role (403)."""
    found = _authenticate(request)
    if found.role != "admin":
        raise Forbidden(f"this API key's role is {found.role!r}: this needs an admin key")
    return found


AdminKey = Annotated[ApiKey, Depends(admin_key_of)]
"""A route parameter: the request's admin key (401 without a key, 403 for another role)."""
