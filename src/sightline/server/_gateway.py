"""The gateway mounted under ``/gateway`` of the server (``--gateway-upstream``).

The same app as ``sightline gateway``, but its budget checks and spans go straight to this
server's budget service and ingest path (no HTTP hop to itself), and every route but
``/gateway/healthz`` needs a Sightline key in ``x-sightline-api-key``: ``Authorization`` is the
caller's provider key, forwarded upstream as by the standalone gateway. The key is checked like
any API key of the server (401 unknown or revoked, the failed-authentication limit per address,
429); the calls (spans, budget checks) need an ``ingest`` or ``admin`` key (403 for ``read``),
reading ``/gateway/stats`` and ``/gateway/metrics`` any key, which sees its own project's
figures only (and the upstreams' circuits, which every project shares).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import structlog
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sightline.errors import AuthError, ConfigError, SightlineError, TooManyRequests
from sightline.store.base import ApiKey

if TYPE_CHECKING:
    from fastapi import FastAPI

    from sightline.config import Settings
    from sightline.server._state import AppState

__all__ = ["KEY_HEADER", "gateway_options", "mount_gateway"]

log = structlog.get_logger("sightline.server")

KEY_HEADER = "x-sightline-api-key"
_CALLS = frozenset(("/v1/chat/completions", "/v1/embeddings", "/v1/models"))
_OPEN = frozenset(("/healthz",))


def _error(status: int, message: str, kind: str, code: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}},
        status_code=status,
        headers=headers or None,
    )


async def _resolve(st: AppState, key: str) -> ApiKey:
    found = st.keys.cached(key)
    if found is None:
        found = await run_in_threadpool(st.keys.resolve, key)
    return found


class _Link:
    """The server in this process, as the gateway sees it (``sightline.gateway.ServerLink``)."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def _state(self) -> AppState:
        st: AppState = self._app.state.sightline
        return st

    async def budget_check(self, sl_key: str, params: dict[str, str]) -> dict[str, Any] | int:
        from sightline.server.routes.budgets import check_answer

        st = self._state()
        try:
            found = await _resolve(st, sl_key)
        except AuthError:
            return 401
        if found.role not in ("ingest", "admin"):
            return 403
        if st.budgets is None:
            return {"project": found.project_id, "allowed": True, "blocked_by": None,
                    "budgets": []}  # fmt: skip
        values: dict[str, str | None] = {k: params.get(k) for k in ("user", "tenant", "feature",
                                                                     "model")}  # fmt: skip
        return await check_answer(st.budgets, found.project_id, values)

    async def send_spans(self, sl_key: str, spans: list[dict[str, Any]]) -> bool:
        st = self._state()
        try:
            found = await _resolve(st, sl_key)
        except AuthError:
            log.warning("gateway_spans_refused", reason="key revoked")
            return False
        try:
            res = await st.ingest.ingest(
                "native", orjson.dumps(spans), encoding=None, project_id=found.project_id
            )
        except SightlineError as e:
            st.metrics.observe_request(found.project_id, "native", e.status)
            log.warning("gateway_spans_refused", error=str(e))
            return False
        st.metrics.observe_request(
            found.project_id, "native", 200, res.accepted, res.rejected, res.repaired
        )
        return True


class _Guard:
    """The server's key check in front of the mounted gateway."""

    def __init__(self, app: ASGIApp, server: FastAPI) -> None:
        from sightline.gateway._app import PROJECT_SCOPE  # the gateway loads when mounted only

        self.app = app
        self.server = server
        self.project_scope = PROJECT_SCOPE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"][len(scope.get("root_path", "")) :]
        if path not in _OPEN:
            found = await self._check(scope, path)
            if isinstance(found, JSONResponse):
                await found(scope, receive, send)
                return
            # /gateway/stats and /gateway/metrics count this project's calls only
            scope = {**scope, self.project_scope: found.project_id}
        await self.app(scope, receive, send)

    async def _check(self, scope: Scope, path: str) -> JSONResponse | ApiKey:
        st: AppState = self.server.state.sightline
        key = None
        for k, v in scope["headers"]:
            if k == KEY_HEADER.encode():
                key = v.decode("latin-1").strip()
                break
        if not key:
            return _error(401, f"no Sightline API key: send it in {KEY_HEADER} (Authorization "
                          "carries the provider's key)", "authentication_error",
                          "missing_sightline_key")  # fmt: skip
        client = scope.get("client")
        addr = client[0] if client else "-"
        sec = st.security
        try:
            if sec is not None:
                sec.limiter.check(addr)
            try:
                found = await _resolve(st, key)
            except AuthError:
                if sec is not None:
                    sec.limiter.fail(addr)
                raise
        except TooManyRequests as e:
            return _error(429, str(e), "rate_limit_exceeded", "too_many_failed_authentications",
                          **{"retry-after": str(e.retry_after_s)})  # fmt: skip
        except AuthError as e:
            return _error(401, f"the Sightline API key was refused: {e}",
                          "authentication_error", "invalid_sightline_key")  # fmt: skip
        if path in _CALLS and found.role not in ("ingest", "admin"):
            return _error(403, f"this API key's role is {found.role!r}: the gateway records "
                          "spans, which needs an ingest or admin key", "permission_error",
                          "forbidden")  # fmt: skip
        return found


def gateway_options(settings: Settings, upstream: str) -> Any:
    """The mounted gateway's ``GatewayOptions`` from the server's ``gateway_*`` settings.

    Raises:
        ConfigError: a routes file that cannot be read, a Redis that cannot be reached, or
            the semantic cache without sightline[ml]: the server refuses to start rather than
            serve without them.
    """
    from sightline.gateway import GatewayOptions, check_cache, check_redis, load_routes, parse_rate
    from sightline.pricing import load_overrides

    try:
        check_cache(settings.gateway_cache)
    except ValueError as e:
        raise ConfigError(f"gateway_cache {settings.gateway_cache}: {e}") from None
    failover = None
    if settings.gateway_routes is not None:
        try:
            failover = load_routes(settings.gateway_routes)
        except ValueError as e:
            raise ConfigError(f"gateway_routes {settings.gateway_routes}: {e}") from None
    # Nodes that coordinate through Redis share the gateway's state there too: a rate limit
    # per node would let N nodes grant N times the limit.
    redis_url = settings.gateway_redis_url or settings.redis_url
    if redis_url:
        try:
            check_redis(redis_url)
        except ValueError as e:
            which = "gateway_redis_url" if settings.gateway_redis_url else "redis_url"
            raise ConfigError(f"{which}: {e}") from None
    count, window = parse_rate(settings.gateway_rate_limit)
    return GatewayOptions(
        upstream=upstream,
        server=None,
        api_key=None,
        redis_url=redis_url,
        redis_prefix=settings.gateway_redis_prefix,
        cache=settings.gateway_cache,
        cache_ttl_s=settings.gateway_cache_ttl_s,
        semantic_threshold=settings.gateway_semantic_threshold,
        rate_limit=count,
        rate_window_s=window,
        failover=failover,
        timeout_s=settings.gateway_upstream_timeout_s,
        max_response_bytes=settings.gateway_max_response_bytes,
        prices=tuple(load_overrides(settings.prices_file)) if settings.prices_file else (),
    )


def mount_gateway(app: FastAPI, settings: Settings) -> Any:
    """Mount the gateway at ``/gateway`` of ``app``; its ``Gateway`` (to start and close)."""
    from starlette.routing import Mount

    from sightline.gateway import create_gateway_app

    upstream = settings.gateway_upstream
    if not upstream:
        raise ValueError("no gateway upstream")
    gw_app = create_gateway_app(gateway_options(settings, upstream), link=_Link(app))
    # first, so no route of the server (the dashboard's pages) shadows it
    app.router.routes.insert(0, Mount("/gateway", app=_Guard(gw_app, app)))
    return gw_app.state.gateway
