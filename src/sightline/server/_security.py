"""Privacy and access control: per-project redactors, retention, failed-auth limits, audit log.

Also the ASGI middleware that puts security headers on every response and records admin
actions (changes made with an admin key) in the audit log.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import structlog
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sightline._clock import Clock, system_clock
from sightline._daemon import DaemonTask
from sightline.config import Settings
from sightline.errors import ConfigError, Forbidden, SightlineError, TooManyRequests
from sightline.redact import DEFAULT_POLICY, OFF_POLICY, RedactionPolicy, Redactor
from sightline.server._auth import KeyRing
from sightline.store.base import ApiKey, AuditEntry, PrivacySettings, TraceStore

__all__ = [
    "INGEST_ROUTES",
    "SECURITY_HEADERS",
    "AuthLimiter",
    "Privacy",
    "RetentionTask",
    "Security",
    "SecurityMiddleware",
    "build_security",
    "check_role",
    "load_secret",
    "parse_policy_setting",
]

log = structlog.get_logger("sightline.security")

INGEST_ROUTES: set[tuple[str, str]] = {
    ("POST", "/v1/traces"),
    ("POST", "/v1/metrics"),
    ("POST", "/v1/logs"),
    ("POST", "/api/v1/releases"),
    ("POST", "/api/v1/spans"),
    ("POST", "/api/v1/feedback"),
    # the SDK's sightline.get_prompt runs in the application, with the application's key
    ("GET", "/api/v1/prompts/resolve"),
    ("POST", "/api/v1/outcomes"),
    # The SDK and the gateway ask before spending, with the app's (ingest) key.
    ("GET", "/api/v1/budgets/check"),
}
"""(method, path) of the routes that send telemetry: all an ``ingest`` key may call. Routes
of other stages that take telemetry from applications add themselves here."""

_READ_METHODS = frozenset(("GET", "HEAD"))


def check_role(key: ApiKey, method: str, path: str) -> None:
    """Raise Forbidden unless the key's role allows ``method path``."""
    if key.role == "admin":
        return
    if key.role == "read" and method in _READ_METHODS:
        return
    if key.role == "ingest" and (method, path) in INGEST_ROUTES:
        return
    what = "sends telemetry only" if key.role == "ingest" else "reads only"
    raise Forbidden(f"this API key's role is {key.role!r}: it {what}")


# -- failed authentication -------------------------------------------------------------------


class AuthLimiter:
    """Counts failed authentications per client address in a fixed window.

    Past ``limit`` failures the address gets 429 (with Retry-After) on every authenticated
    request until its window ends, valid keys included: otherwise the answer would still tell
    a guessed key from a wrong one. At most ``max_addresses`` are tracked (oldest dropped).
    """

    def __init__(
        self,
        *,
        limit: int,
        window_s: float,
        max_addresses: int = 100_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._max = max_addresses
        self._now = monotonic
        self._fails: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, address: str) -> None:
        """Raise TooManyRequests while ``address`` is over the limit."""
        entry = self._fails.get(address)
        if entry is None or entry[1] < self.limit:
            return
        left = entry[0] + self.window_s - self._now()
        if left > 0:
            raise TooManyRequests(
                "too many failed authentications from this address",
                retry_after_s=max(1, int(left + 0.999)),
            )

    def fail(self, address: str) -> None:
        """Count one failed authentication."""
        now = self._now()
        with self._lock:
            start, n = self._fails.pop(address, (now, 0))
            if now - start >= self.window_s:
                start, n = now, 0
            self._fails[address] = (start, n + 1)
            while len(self._fails) > self._max:
                self._fails.popitem(last=False)


# -- privacy -----------------------------------------------------------------------------------


def parse_policy_setting(value: str) -> RedactionPolicy:
    """The ``redaction`` setting: ``default``, ``off`` or a JSON policy.

    Raises:
        ConfigError: anything else.
    """
    v = value.strip()
    if v == "default":
        return DEFAULT_POLICY
    if v == "off":
        return OFF_POLICY
    try:
        return RedactionPolicy.from_dict(orjson.loads(v))
    except (orjson.JSONDecodeError, ValueError) as e:
        raise ConfigError(
            f"SIGHTLINE_REDACTION: expected default, off or a JSON policy: {e}"
        ) from None


def load_secret(settings: Settings) -> bytes:
    """The HMAC key of the ``hash`` action: the setting, else ``DATA_DIR/redaction.key``.

    The file is made on first start (mode 0600) and kept apart from the database, so a copy of
    the database alone cannot be used to test guesses against the hashed values.
    """
    if settings.redaction_secret:
        return settings.redaction_secret.encode()
    path = Path(settings.data_dir) / "redaction.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    except ValueError:
        raise ConfigError(f"{path} does not hold a hex key") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(key.hex())
    tmp.replace(path)
    return key


class Privacy:
    """Per-project redaction policies and retention, with the server's defaults."""

    def __init__(self, store: TraceStore, settings: Settings, secret: bytes) -> None:
        self._store = store
        self._default = parse_policy_setting(settings.redaction)
        self._default_retention = settings.retention_days
        self._secret = secret
        self._max_depth = settings.max_value_depth
        self._cache: dict[str, tuple[Redactor, int]] = {}
        self._lock = threading.Lock()

    def tag(self, type_: str, value: str) -> str:
        """The keyed hash tag of a value (as the ``hash`` action writes it)."""
        return Redactor(OFF_POLICY, secret=self._secret).tag(type_, value)

    def _load(self, project_id: str) -> tuple[Redactor, int]:
        got = self._cache.get(project_id)
        if got is not None:
            return got
        own = self._store.get_privacy(project_id)
        policy = self._default
        if own is not None and own.policy is not None:
            try:
                policy = RedactionPolicy.from_dict(own.policy)
            except ValueError as e:
                # A stored policy this version cannot read: redact with the defaults rather
                # than refuse the project's telemetry or store it unredacted.
                log.error("privacy_policy_unreadable", project=project_id, error=str(e))
                policy = DEFAULT_POLICY if not self._default.enabled else self._default
        days = own.retention_days if own is not None and own.retention_days is not None else None
        got = (
            Redactor(policy, secret=self._secret, max_depth=self._max_depth),
            self._default_retention if days is None else days,
        )
        with self._lock:
            self._cache[project_id] = got
        return got

    def redactor_for(self, project_id: str) -> Redactor:
        """The redactor ingest applies to the project's spans."""
        return self._load(project_id)[0]

    def retention_days(self, project_id: str) -> int:
        """Days the project's spans are kept (0: forever)."""
        return self._load(project_id)[1]

    def describe(self, project_id: str) -> dict[str, Any]:
        """The project's settings as the privacy API shows them."""
        from sightline.pii import person_names_available

        own = self._store.get_privacy(project_id)
        redactor, days = self._load(project_id)
        return {
            "project_id": project_id,
            "policy": redactor.policy.to_dict(),
            "policy_source": "project"
            if own is not None and own.policy is not None
            else "server_default",
            "retention_days": days,
            "retention_source": "project"
            if own is not None and own.retention_days is not None
            else "server_default",
            "person_names_available": person_names_available()
            if redactor.policy.types.get("person", "off") != "off"
            else None,
        }

    def update(
        self,
        project_id: str,
        *,
        policy: dict[str, Any] | None,
        retention_days: int | None,
        keep: frozenset[str] = frozenset(),
    ) -> None:
        """Replace the project's own settings; ``keep`` names the ones left as they are."""
        own = self._store.get_privacy(project_id)
        if "policy" in keep:
            policy = own.policy if own is not None else None
        elif policy is not None:
            policy = RedactionPolicy.from_dict(policy).to_dict()
        if "retention_days" in keep:
            retention_days = own.retention_days if own is not None else None
        self._store.set_privacy(
            PrivacySettings(project_id, policy, retention_days, datetime.now(UTC))
        )
        with self._lock:
            self._cache.pop(project_id, None)


# -- audit ---------------------------------------------------------------------------------------


def new_audit(
    project_id: str | None,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """An audit entry stamped now."""
    return AuditEntry(
        project_id, secrets.token_hex(8), datetime.now(UTC), actor, action, target, details or {}
    )


def actor_of(key: ApiKey | None) -> str:
    """How the audit log names who acted."""
    return f"key:{key.key_id}" if key is not None else "anonymous"


# -- background work ---------------------------------------------------------------------------


class RetentionTask(DaemonTask):
    """Deletes spans (and their scores) older than each project's retention."""

    name = "retention"

    def __init__(
        self,
        store: TraceStore,
        privacy: Privacy,
        *,
        interval_s: float,
        clock: Clock = system_clock,
    ) -> None:
        super().__init__(interval_s=interval_s)
        self._store = store
        self._privacy = privacy
        self._clock = clock

    def run_once(self) -> None:
        """Purge every project once; a project whose purge fails does not hold up the others."""
        now = self._clock()
        for p in self._store.list_projects():
            try:
                self._purge(p.id, now)
            except SightlineError as e:
                # the next run tries again; the projects after this one are purged meanwhile
                log.error("retention_failed", project=p.id, error=str(e))

    def _purge(self, project_id: str, now: datetime) -> None:
        days = self._privacy.retention_days(project_id)
        if days <= 0:
            return
        cutoff = now - timedelta(days=days)
        deleted = self._store.purge_before(project_id, cutoff)
        if not (deleted.spans or deleted.scores):
            return
        log.info("retention_purged", project=project_id, spans=deleted.spans,
                 scores=deleted.scores)  # fmt: skip
        self._store.add_audit(
            new_audit(
                project_id,
                "system",
                "retention.purge",
                None,
                {"before": cutoff.isoformat(), "spans": deleted.spans,
                 "scores": deleted.scores, "retention_days": days},
            )
        )  # fmt: skip


class KeyTouchTask(DaemonTask):
    """Writes the API keys' last-used times every ``interval_s`` (and once more at stop)."""

    name = "key-touch"

    def __init__(self, keys: KeyRing, *, interval_s: float) -> None:
        super().__init__(interval_s=interval_s)
        self._keys = keys

    def run_once(self) -> None:
        """Flush the last-used times."""
        self._keys.flush_last_used()

    def on_stop(self) -> None:
        """Flush what the last interval gathered."""
        self._keys.flush_last_used()


@dataclass
class Security:
    """The server's security parts, on AppState."""

    limiter: AuthLimiter
    privacy: Privacy
    retention: RetentionTask
    key_touch: KeyTouchTask

    def start(self) -> None:
        """Start the background tasks."""
        if self.retention.interval_s > 0:
            self.retention.start()
        self.key_touch.start()

    def stop(self) -> None:
        """Stop them."""
        self.retention.stop()
        self.key_touch.stop()


def build_security(settings: Settings, store: TraceStore, keys: KeyRing, clock: Clock) -> Security:
    """The security parts of a server (not started)."""
    privacy = Privacy(store, settings, load_secret(settings))
    return Security(
        AuthLimiter(limit=settings.auth_fail_limit, window_s=settings.auth_fail_window_s),
        privacy,
        RetentionTask(store, privacy, interval_s=settings.retention_interval_s, clock=clock),
        KeyTouchTask(keys, interval_s=settings.key_touch_interval_s),
    )


# -- middleware ----------------------------------------------------------------------------------

_API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# /docs and /redoc (sightline.server._apidocs) load Swagger UI / ReDoc from this server and
# start them with an inline script; ReDoc runs a worker from a blob.
_DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src blob:; frame-ancestors 'none'; base-uri 'none'"
)
_DOCS_PAGES = frozenset(("/docs", "/docs/oauth2-redirect", "/redoc"))
_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
SECURITY_HEADERS: dict[str, str] = {
    **{k.decode(): v.decode() for k, v in _HEADERS},
    "content-security-policy": _API_CSP,
}
"""The headers every response carries (for answers sent outside the middleware)."""
_MUTATING = frozenset(("POST", "PUT", "PATCH", "DELETE"))


class SecurityMiddleware:
    """Security headers on every response; admin changes recorded in the audit log.

    A header a route already set (a page's own Content-Security-Policy) is kept. A change is a
    POST/PUT/PATCH/DELETE that succeeded with a key, outside the telemetry routes; routes that
    write a richer audit entry themselves set ``request.state.audited``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        csp = (_DOCS_CSP if path in _DOCS_PAGES else _API_CSP).encode()
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for k, v in _HEADERS:
                    if k not in present:
                        headers.append((k, v))
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", csp))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
        method: str = scope["method"]
        key = state.get("sightline_key")
        if (
            method in _MUTATING
            and status < 400
            and isinstance(key, ApiKey)
            and not state.get("audited")
            and (method, path) not in INGEST_ROUTES
        ):
            route = scope.get("route")
            template = getattr(route, "path", path)
            entry = new_audit(
                key.project_id,
                actor_of(key),
                f"{method} {template}",
                path,
                {"status": status, "path_params": scope.get("path_params") or {}},
            )
            app_state = getattr(scope["app"].state, "sightline", None)
            if app_state is not None:
                try:
                    await run_in_threadpool(app_state.store.add_audit, entry)
                except SightlineError as e:  # the change is done: log a lost row, don't fail it
                    log.error("audit_write_failed", action=entry.action, error=str(e))
