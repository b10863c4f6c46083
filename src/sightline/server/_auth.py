"""Projects and API keys: keys are random, shown once, stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from datetime import UTC, datetime

from sightline.errors import AuthError, ConfigError, Conflict, StoreError
from sightline.store.base import ApiKey, AuditEntry, TraceStore

__all__ = [
    "DEFAULT_KEY_CACHE_TTL_S",
    "ROLES",
    "KeyRing",
    "create_project_with_key",
    "hash_key",
    "new_key",
    "validate_project_id",
]

ROLES = ("ingest", "read", "admin")
"""API key roles: ``ingest`` may only send telemetry (OTLP, spans, feedback), ``read`` may only
read (GET), ``admin`` may do everything, key and privacy management included."""

_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Unknown keys are remembered briefly so a flood of bad keys does not become a flood of queries.
_NEGATIVE_TTL_S = 10.0
_MAX_NEGATIVE = 10_000
DEFAULT_KEY_CACHE_TTL_S = 10.0
"""How long a process trusts a key it has looked up before asking the store again."""


def hash_key(key: str) -> str:
    """SHA-256 of a key. Keys are 256 random bits, so a fast hash is enough (no dictionary)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A new API key."""
    return "sl_" + secrets.token_urlsafe(32)


def validate_project_id(name: str) -> str:
    """Return ``name`` if it is a valid project id, else raise ConfigError."""
    if not _PROJECT_RE.match(name):
        raise ConfigError(
            f"invalid project name {name!r}: use 1-63 lowercase letters, digits, '-' or '_'"
        )
    return name


def _audit(store: TraceStore, project_id: str, actor: str, action: str, target: str) -> None:
    store.add_audit(
        AuditEntry(project_id, secrets.token_hex(8), datetime.now(UTC), actor, action, target, {})
    )


def create_project_with_key(
    store: TraceStore, name: str, *, key: str | None = None, actor: str = "cli"
) -> str:
    """Create a project and an admin key for it; return the key (shown once)."""
    create_project(store, name, actor=actor)
    key = key or new_key()
    rec = ApiKey(hash_key(key), key[:10], name, "admin", datetime.now(UTC))
    store.add_api_key(rec)
    _audit(store, name, actor, "key.create", rec.key_id)
    return key


def create_project(store: TraceStore, name: str, *, actor: str) -> None:
    """Create a project without any key (its members make the keys they need)."""
    validate_project_id(name)
    store.create_project(name)
    _audit(store, name, actor, "project.create", name)


def ensure_project_with_key(store: TraceStore, name: str, key: str | None) -> None:
    """Headless bootstrap: create the project and register the key, if missing."""
    validate_project_id(name)
    if store.get_project(name) is None:
        try:
            store.create_project(name)
        except (ConfigError, Conflict):
            # another process booting with the same settings created it at the same moment
            if store.get_project(name) is None:
                raise
        else:
            _audit(store, name, "config", "project.create", name)
    if key:
        if len(key) < 16:
            raise ConfigError("SIGHTLINE_INIT_API_KEY must be at least 16 characters")
        found = store.find_api_key(hash_key(key))
        if found is None:
            rec = ApiKey(hash_key(key), key[:10], name, "admin", datetime.now(UTC))
            store.add_api_key(rec)
            _audit(store, name, "config", "key.create", rec.key_id)
        elif found.project_id != name:
            raise ConfigError("SIGHTLINE_INIT_API_KEY already belongs to another project")


class KeyRing:
    """Resolves API keys to their project and role, caching hits for ``ttl_s`` seconds.

    Revocation goes through :meth:`forget`, so a key revoked through this process stops
    working at once. A key revoked through another process sharing the store (another node,
    a split role) stops working here when its cached record is older than ``ttl_s``: the next
    use then asks the store again (while the store cannot answer, a key known before stays
    good). Last-used times are kept in memory and written for all keys
    at once by :meth:`flush_last_used` (every ``key_touch_interval_s``), never one write per
    request.
    """

    def __init__(self, store: TraceStore, *, ttl_s: float = DEFAULT_KEY_CACHE_TTL_S) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._known: dict[str, tuple[ApiKey, float]] = {}
        self._unknown: dict[str, float] = {}
        self._used: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def resolve(self, key: str | None) -> ApiKey:
        """The live key record of ``key``; AuthError when missing, unknown or revoked."""
        if not key:
            raise AuthError("missing API key: send 'Authorization: Bearer <key>' or 'x-api-key'")
        h = hash_key(key)
        now = time.monotonic()
        hit = self._known.get(h)
        if hit is not None and now - hit[1] < self._ttl_s:
            found = hit[0]
        else:
            seen = self._unknown.get(h)
            if hit is None and seen is not None and now - seen < _NEGATIVE_TTL_S:
                raise AuthError("unknown API key")
            try:
                found_now = self._store.find_api_key(h)
            except StoreError:
                if hit is None:
                    raise
                # the store cannot answer now (an outage): a key known a moment ago stays
                # good until it can; the next request asks again
                found_now = hit[0]
                self._used[h] = datetime.now(UTC)
                return found_now
            with self._lock:
                if found_now is None:
                    # unknown, or revoked since it was cached (by another process)
                    self._known.pop(h, None)
                    self._used.pop(h, None)
                    if len(self._unknown) >= _MAX_NEGATIVE:
                        self._unknown.clear()
                    self._unknown[h] = now
                    raise AuthError("unknown API key")
                self._known[h] = (found_now, now)
            found = found_now
        # A dict store is atomic under the GIL; the flush swaps the dict under the lock.
        self._used[h] = datetime.now(UTC)
        return found

    def cached(self, key: str) -> ApiKey | None:
        """The key's record if freshly cached (no store query), else None: then :meth:`resolve`."""
        h = hash_key(key)
        hit = self._known.get(h)
        if hit is None or time.monotonic() - hit[1] >= self._ttl_s:
            return None
        self._used[h] = datetime.now(UTC)
        return hit[0]

    def project_for(self, key: str | None) -> str:
        """The project of ``key``; AuthError when missing or unknown."""
        return self.resolve(key).project_id

    def forget(self, key_hash: str) -> None:
        """Drop a key from the cache (after revoking it): its next use asks the store."""
        with self._lock:
            self._known.pop(key_hash, None)
            self._used.pop(key_hash, None)

    def forget_new_keys(self) -> None:
        """Forget the unknown-key cache, so a key created just now works at once."""
        with self._lock:
            self._unknown.clear()

    def flush_last_used(self) -> int:
        """Write the last-used times gathered since the last flush; return how many keys."""
        with self._lock:
            used, self._used = self._used, {}
        if used:
            self._store.touch_api_keys(used)
        return len(used)


def key_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from ``Authorization: Bearer`` or ``x-api-key``."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return x_api_key.strip() if x_api_key else None
