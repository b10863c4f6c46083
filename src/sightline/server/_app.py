"""The ASGI app: OTLP, REST API and /metrics on one port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import structlog
from fastapi import FastAPI

from sightline import __version__
from sightline._clock import Clock, system_clock
from sightline.config import Settings
from sightline.coordination import Coordinator, RedisCoordinator, StoreCoordinator, new_owner_id
from sightline.errors import ConfigError
from sightline.ingest import GroupCommitWriter, IngestService, Limits
from sightline.ingest._scrape import Scraper, parse_scrape_targets
from sightline.pricing import load_overrides
from sightline.server._accounts import Accounts
from sightline.server._apidocs import install_api_docs
from sightline.server._auth import KeyRing, ensure_project_with_key
from sightline.server._body import BodyGuard
from sightline.server._errors import install_error_handlers
from sightline.server._evals import build_runners, load_online_evaluators, register_eval_metrics
from sightline.server._monitoring import Monitoring
from sightline.server._prom import Metrics
from sightline.server._roles import RoleMiddleware, check_role_store
from sightline.server._security import Security, SecurityMiddleware, build_security
from sightline.server._state import AppState
from sightline.server._web import install_web
from sightline.server.routes import (
    alerts,
    budgets,
    compare,
    costs,
    datasets,
    digest,
    drift,
    evaluators,
    feedback,
    guardrails,
    health,
    login,
    logs,
    metrics,
    otlp,
    outcomes,
    pages,
    pages_monitor,
    pages_prompts,
    privacy,
    prompts,
    releases,
    scores,
    spans,
    traces,
)
from sightline.server.routes import keys as keys_routes
from sightline.store._open import check_store_url, open_store, store_coordinates, store_is_shared
from sightline.store.base import TraceStore

if TYPE_CHECKING:
    from sightline.budgets import BudgetService
    from sightline.releases import ReleaseDetector

__all__ = ["create_app"]

log = structlog.get_logger("sightline.server")


def create_app(
    settings: Settings, *, store: TraceStore | None = None, clock: Clock | None = None
) -> FastAPI:
    """Build the app. The store is opened from ``settings.data_dir`` unless one is given.

    ``clock`` (default: the system clock) is the time the monitor and drift loops see; tests
    pass a :class:`sightline._clock.FakeClock` and drive ticks themselves.

    Everything that runs (writer thread, decode workers, gRPC receiver) starts in the app's
    lifespan and stops with it, committing what was acknowledged... which is everything queued:
    a request is only acknowledged after its commit.
    """
    overrides = load_overrides(settings.prices_file) if settings.prices_file else []
    from sightline.alerts import load_alerts_file
    from sightline.server._monitoring import build_monitoring

    alerts_file = load_alerts_file(settings.alerts_file) if settings.alerts_file else None
    from sightline.budgets import BudgetService, load_budgets_file

    file_budgets = load_budgets_file(settings.budgets_file) if settings.budgets_file else []
    channels = set(alerts_file.channels) if alerts_file is not None else set()
    for b in file_budgets:  # fail at startup: the alerts of such a budget would go nowhere
        unknown = [c for c in b.notify if c not in channels]
        if unknown:
            raise ConfigError(
                f"budgets file {settings.budgets_file}: budget {b.name}: unknown channel(s)"
                f" {', '.join(unknown)} (channels come from the alerts file)"
            )
    if alerts_file is not None:  # fail at startup, not in the lifespan, on a bad digest
        from sightline.alerts._digest import parse_digest

        parse_digest(alerts_file.digest, list(alerts_file.channels))
    scrape_targets = parse_scrape_targets(
        alerts_file.scrape if alerts_file else None, default_project=settings.init_project
    )
    online_evaluators = load_online_evaluators(settings)
    if store is not None:
        shared = bool(getattr(store, "shared", False))
    else:
        check_store_url(settings.store_url)
        shared = store_is_shared(settings.store_url)
    check_role_store(settings.role, shared=shared)
    if (
        store is None
        and not store_coordinates(settings.store_url)
        and not settings.redis_url
        and (settings.role in ("worker", "monitor") or settings.eval_workers > 1)
    ):
        raise ConfigError(
            f"--role {settings.role} with --eval-workers {settings.eval_workers} over ClickHouse"
            " coordinates through Redis: set --redis-url (ClickHouse has no compare-and-set for"
            " evaluation claims and leader leases)"
        )
    coordinator = _redis_coordinator(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        st = (
            store
            if store is not None
            else open_store(
                settings.store_url,
                duckdb_memory_limit=settings.duckdb_memory_limit,
                duckdb_threads=settings.duckdb_threads,
            )
        )
        version = st.migrate()
        if settings.init_project:
            ensure_project_with_key(st, settings.init_project, settings.init_api_key)
        accounts = Accounts(st, settings)
        accounts.bootstrap(settings)
        app.state.sightline_accounts = accounts
        if accounts.setup_token is not None:
            base = settings.public_url or f"http://{settings.host}:{settings.port}"
            log.warning(
                "no_dashboard_user",
                message="open this one-time link to create the first admin",
                setup_url=f"{base.rstrip('/')}/setup/{accounts.setup_token}",
            )
        prom = Metrics()
        writer = GroupCommitWriter(
            st,
            max_queue_spans=settings.max_queue_spans,
            max_batch_spans=settings.max_batch_spans,
            on_commit=prom.observe_commit,
            fault_file=settings.test_store_fault_file,
            linger_s=settings.commit_linger_ms / 1000,
        )
        keys = KeyRing(st, ttl_s=settings.key_cache_ttl_s)
        security = build_security(settings, st, keys, clock or system_clock)
        ingest = IngestService(
            writer,
            limits=Limits(
                max_text_bytes=settings.max_text_bytes,
                max_attributes=settings.max_attributes,
                max_events=settings.max_events,
                max_spans=settings.max_spans_per_request,
            ),
            price_overrides=overrides,
            workers=settings.ingest_workers,
            max_body_bytes=settings.max_body_bytes,
            redaction=security.privacy.redactor_for,
            scores=st.append_scores_once,
        )
        role = settings.role
        if role in ("all", "ingest"):
            writer.start()
            ingest.start()
        scraper = Scraper(scrape_targets, writer) if scrape_targets else None
        if scraper is not None and role in ("all", "ingest"):
            scraper.start()
            log.info("scraping", targets=[t.job for t in scrape_targets])
        else:
            scraper = None
        grpc_server = None
        if settings.otlp_grpc_port and role in ("all", "ingest"):
            from sightline.server._grpc import start_grpc_server

            grpc_server, grpc_port = start_grpc_server(
                settings.host,
                settings.otlp_grpc_port,
                ingest,
                keys,
                prom,
                max_message_bytes=settings.max_body_bytes,
                limiter=security.limiter,
            )
            log.info("otlp_grpc_listening", host=settings.host, port=grpc_port)
        coord = coordinator if coordinator is not None else _store_coordinator(settings, st)
        runners = (
            build_runners(
                settings,
                st,
                online_evaluators,
                coord,
                saturation=ingest.saturated_for if role == "all" else None,
            )
            if role in ("all", "worker")
            else []
        )
        if runners:
            register_eval_metrics(prom.global_registry, runners)
        monitoring = build_monitoring(settings, st, clock or system_clock, alerts_file)
        budget_service = BudgetService(
            st,
            clock=clock or system_clock,
            interval_s=settings.budget_interval_s,
            file_budgets=file_budgets,
            dispatcher=monitoring.dispatcher,
            public_url=settings.public_url or f"http://{settings.host}:{settings.port}",
        )
        app.state.sightline = AppState(
            settings,
            st,
            writer,
            ingest,
            keys,
            prom,
            monitor=monitoring.monitor,
            dispatcher=monitoring.dispatcher,
            drift=monitoring.drift,
            digest=monitoring.digest,
            evals=runners[0] if runners else None,
            eval_runners=runners,
            security=security,
            budgets=budget_service,
        )
        detector = None
        if settings.monitor_interval_s > 0:
            from sightline.releases import ReleaseDetector

            detector = ReleaseDetector(
                st, clock=clock or system_clock, interval_s=settings.monitor_interval_s
            )
        group = _MonitorGroup(monitoring, budget_service, detector, security, settings)
        leadership = None
        if role == "monitor" or (role == "all" and coordinator is not None):
            from sightline.coordination import Leadership

            # one active monitor among the processes sharing the coordinator
            leadership = Leadership(
                coord or StoreCoordinator(st),
                "monitor",
                owner=new_owner_id("monitor"),
                lease_s=settings.leader_lease_s,
                on_elected=group.start,
                on_deposed=group.stop,
            )
            group.set_gate(lambda: leadership is not None and leadership.is_leader)
            app.state.sightline.leadership = leadership
            leadership.start()
        elif role == "all":
            group.start()
        if role in ("all", "ingest", "api"):
            security.key_touch.start()
        for r in runners:
            r.start()
        if gateway is not None:
            gateway.start()
        log.info(
            "server_started",
            version=__version__,
            schema_version=version,
            data_dir=str(settings.data_dir),
            role=role,
            ingest_workers=settings.ingest_workers if role in ("all", "ingest") else 0,
            eval_workers=len(runners),
        )
        try:
            yield
        finally:
            if gateway is not None:
                await gateway.close()  # its last spans go in before ingest stops
            for r in runners:
                r.stop()
            security.key_touch.stop()
            if leadership is not None:
                leadership.stop()
            else:
                group.stop()
            if grpc_server is not None:
                grpc_server.stop(grace=5).wait()
            if scraper is not None:
                scraper.stop()
            if role in ("all", "ingest"):
                ingest.stop()
                writer.stop()
            if coordinator is not None:
                coordinator.close()
            st.close()
            log.info("server_stopped")

    app = FastAPI(
        title="Sightline",
        version=__version__,
        summary="Observability and evaluation for LLM systems.",
        description="OTLP trace ingest, span search, traces and metrics. Every route except "
        "/healthz and /readyz needs a project API key: `Authorization: Bearer <key>` or "
        "`x-api-key: <key>`.",
        lifespan=lifespan,
        docs_url=None,  # served from local files by install_api_docs, not a CDN
        redoc_url=None,
    )
    install_error_handlers(app)
    install_web(app)
    install_api_docs(app)
    app.add_middleware(
        BodyGuard,
        idle_timeout_s=settings.body_idle_timeout_s,
        total_timeout_s=settings.body_timeout_s,
        max_held_bytes=settings.max_buffered_body_bytes,
    )
    app.add_middleware(SecurityMiddleware)
    if settings.role != "all":
        app.add_middleware(RoleMiddleware, role=settings.role)
    for r in (
        health.router,
        otlp.router,
        spans.router,
        traces.router,
        metrics.router,
        logs.router,
        feedback.router,
        alerts.router,
        compare.router,
        costs.router,
        budgets.router,
        drift.router,
        digest.router,
        scores.router,
        evaluators.router,
        datasets.router,
        privacy.router,
        prompts.router,
        releases.router,
        keys_routes.router,
        outcomes.router,
        guardrails.router,
        login.router,
        pages.router,
        pages_monitor.router,
        pages_prompts.router,
    ):
        app.include_router(r)
    gateway = None
    if settings.gateway_upstream:
        from sightline.server._gateway import mount_gateway

        gateway = mount_gateway(app, settings)
    return app


def _redis_coordinator(settings: Settings) -> Coordinator | None:
    """The Redis coordinator of ``--redis-url`` (checked reachable now), or None."""
    if not settings.redis_url:
        return None
    c = RedisCoordinator(settings.redis_url, prefix=settings.redis_prefix)
    c.ping()
    return c


def _store_coordinator(settings: Settings, store: TraceStore) -> Coordinator | None:
    """Claims in the store for several workers (or a split role); None: the single cursor."""
    if settings.eval_workers > 1 or settings.role != "all":
        return StoreCoordinator(store)
    return None


class _MonitorGroup:
    """What one active monitor runs: alert, drift and budget loops, notifiers, retention."""

    def __init__(
        self,
        monitoring: Monitoring,
        budgets: BudgetService,
        detector: ReleaseDetector | None,
        security: Security,
        settings: Settings,
    ) -> None:
        self.monitoring = monitoring
        self.budgets = budgets
        self.detector = detector
        self.security = security
        self.settings = settings

    def set_gate(self, gate: Callable[[], bool]) -> None:
        """Every loop skips its runs while ``gate()`` is False (see Monitoring.set_gate)."""
        self.monitoring.set_gate(gate)
        self.budgets.gate = gate
        self.security.retention.gate = gate
        if self.detector is not None:
            self.detector.gate = gate

    def start(self) -> None:
        self.monitoring.start()
        if self.settings.budget_interval_s > 0:
            self.budgets.start()
        if self.detector is not None:
            self.detector.start()
        if self.security.retention.interval_s > 0:
            self.security.retention.start()

    def stop(self) -> None:
        self.security.retention.stop()
        self.budgets.stop()
        if self.detector is not None:
            self.detector.stop()
        self.monitoring.stop()
