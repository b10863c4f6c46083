"""Server roles: which routes and background work a ``sightline serve --role`` process runs.

``all`` (the default) is one process doing everything. The others split it over processes that
scale separately and share a store (docs/scale-out.md):

======== ============================================================== ====================
role     routes                                                         runs
======== ============================================================== ====================
ingest   OTLP/HTTP, native ingest, feedback/outcomes/releases, the SDK's group-commit writer,
         reads (prompt resolve, budget check); gRPC                     decoders, scraper
api      REST API, dashboard, /metrics (not the telemetry receivers)    -
worker   /metrics                                                       evaluation workers
monitor  -                                                              monitor, drift,
                                                                        budgets, retention
======== ============================================================== ====================

Every role answers /healthz and /readyz; any other route answers 404 with a JSON error that
names the role serving it.
"""

from __future__ import annotations

from typing import Literal, get_args

from starlette.types import ASGIApp, Receive, Scope, Send

from sightline.errors import ConfigError
from sightline.server._errors import error_response
from sightline.server._security import INGEST_ROUTES

__all__ = ["ROLES", "Role", "RoleMiddleware", "check_role_store", "role_serves"]

Role = Literal["all", "ingest", "api", "worker", "monitor"]
ROLES: tuple[str, ...] = get_args(Role)

_HEALTH = frozenset(("/healthz", "/readyz"))
_RECEIVERS: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/v1/traces"),
        ("POST", "/v1/metrics"),
        ("POST", "/v1/logs"),
        ("POST", "/api/v1/spans"),
    }
)
"""Telemetry receivers that go through the group-commit writer: ingest nodes only."""


def role_serves(role: str, method: str, path: str) -> bool:
    """True if a ``role`` process answers ``method path``."""
    if role == "all" or path in _HEALTH:
        return True
    method = "GET" if method == "HEAD" else method
    if role == "ingest":
        return (method, path) in INGEST_ROUTES
    if role == "api":
        return (method, path) not in _RECEIVERS
    if role == "worker":
        return path == "/metrics"
    return False


def _role_of(method: str, path: str) -> str:
    if (method, path) in _RECEIVERS:
        return "ingest"
    if (method, path) in INGEST_ROUTES:
        return "ingest or api"
    return "api"


class RoleMiddleware:
    """404 (JSON) for the routes this process's role does not serve."""

    def __init__(self, app: ASGIApp, *, role: str) -> None:
        self.app = app
        self.role = role

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.role == "all":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        if role_serves(self.role, method, path):
            await self.app(scope, receive, send)
            return
        resp = error_response(
            404,
            "not_found",
            f"this server runs role {self.role!r}: {method} {path} is served by role "
            f"{_role_of(method, path)}",
        )
        await resp(scope, receive, send)


def check_role_store(role: str, *, shared: bool) -> None:
    """Refuse a split role over a store only one process may open (embedded DuckDB).

    Raises:
        ConfigError: ``role`` is not ``all`` and the store is not shared.
    """
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if role != "all" and not shared:
        raise ConfigError(
            f"--role {role} needs a store that several processes share (ClickHouse): the "
            "embedded DuckDB store allows one process, so run --role all (the default) on it. "
            "See docs/scale-out.md."
        )
