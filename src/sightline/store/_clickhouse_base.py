"""The ClickHouse connection every part of the ClickHouse store shares.

One ``clickhouse-connect`` client serves both deployments: a ClickHouse server
(``clickhouse://user:password@host:8123/database``, ``clickhouses://`` for TLS) and the same
engine embedded in-process by chdb (``chdb:///path/to/dir``), which is what the tests and a
single machine without a server use. Queries bind parameters server-side with ClickHouse's
``{name:Type}`` placeholders; a literal ``%`` in SQL that also has parameters must be written
``%%`` (clickhouse-connect formats such queries with Python's ``%`` operator).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar
from urllib.parse import unquote, urlsplit

import orjson
import pyarrow as pa

from sightline.errors import ConfigError, Conflict, StoreError

__all__ = [
    "CH_DT",
    "CH_NDT",
    "CH_NF",
    "CH_NSTR",
    "CHBase",
    "KeyTaken",
    "ch_aware",
    "ch_json",
    "ch_newest_score",
    "ch_ts",
    "ch_us",
    "parse_clickhouse_url",
]

_DEFAULT_DB = "sightline"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# column types the store's parts share
CH_DT = "DateTime64(6, 'UTC')"
CH_NDT = "Nullable(DateTime64(6, 'UTC'))"
CH_NSTR = "Nullable(String)"
CH_NF = "Nullable(Float64)"


def ch_us(dt: datetime) -> int:
    """Microseconds since the epoch (exact, no float rounding); naive means UTC."""
    aware = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(microseconds=1)


def ch_aware(dt: datetime | None) -> datetime | None:
    """A naive-UTC datetime read back from ClickHouse, made aware."""
    return dt.replace(tzinfo=UTC) if dt is not None else None


def ch_json(v: Any) -> str:
    return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()


def ch_newest_score(*cols: str, q: str = "") -> str:
    """The newest score row's ``cols`` (a tuple) of a group of scores by ``SCORE_KEY``.

    ClickHouse's counterpart of ``store.base.newest_score``: a hash aggregation, not a sort.
    A tuple is never NULL, so its NULL members come from the newest row (``argMax`` of a bare
    Nullable column would skip NULLs and mix rows). ``q`` qualifies the columns (``"sc."``).
    """
    return f"argMax(tuple({', '.join(q + c for c in cols)}), tuple({q}created_at, {q}score_id))"


def ch_ts(dt: datetime | None) -> datetime | None:
    """Naive UTC, as the ``DateTime64(6, 'UTC')`` columns take and give back."""
    if dt is None:
        return None
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def parse_clickhouse_url(url: str) -> dict[str, Any]:
    """``clickhouse_connect.get_client`` arguments for a store URL; ConfigError if malformed."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "chdb":
        path = unquote(parts.path) if not parts.netloc else f"/{parts.netloc}{parts.path}"
        if not path or path == "/":
            raise ConfigError(f"chdb store URL needs a directory: chdb:///path/to/dir, got {url!r}")
        return {"dsn": f"chdb://{path}", "database": _DEFAULT_DB, "embedded": True}
    if scheme not in ("clickhouse", "clickhouses"):
        raise ConfigError(f"not a ClickHouse store URL: {url!r}")
    if not parts.hostname:
        raise ConfigError(f"ClickHouse store URL needs a host: {url!r}")
    secure = scheme == "clickhouses"
    database = parts.path.strip("/") or _DEFAULT_DB
    if not database.replace("_", "").isalnum():
        raise ConfigError(f"invalid ClickHouse database name {database!r}")
    try:
        port = parts.port or (8443 if secure else 8123)
    except ValueError:
        raise ConfigError(f"invalid port in ClickHouse store URL {url!r}") from None
    return {
        "host": parts.hostname,
        "port": port,
        "username": unquote(parts.username) if parts.username else "default",
        "password": unquote(parts.password) if parts.password else "",
        "secure": secure,
        "database": database,
        "embedded": False,
    }


_T = TypeVar("_T")

CLAIM_TTL_S = 30.0
"""A uniqueness claim older than this is ignored (its writer crashed before withdrawing it)."""
_CLAIM_ATTEMPTS = 8


class KeyTaken(Exception):  # noqa: N818 - a signal between the store's parts, not an error
    """:meth:`CHBase._create_unique` found the key already created."""


class CHBase:
    """Connection, schema collection and the small query helpers the store's parts use.

    Each part of the store (spans, evaluation, monitoring...) is a mixin with its tables in
    ``DDL``; ``migrate`` creates the tables of every class in the MRO.
    """

    DDL: ClassVar[list[str]] = [
        # Uniqueness claims (_create_unique): one row per attempt, withdrawn by a tombstone.
        f"""CREATE TABLE IF NOT EXISTS unique_claims (
            scope LowCardinality(String), `key` String, token String,
            claimed_at {CH_DT} DEFAULT now64(6, 'UTC'), _version UInt64, _deleted UInt8
        ) ENGINE = ReplacingMergeTree(_version, _deleted) ORDER BY (scope, `key`, token)
        TTL toDateTime(claimed_at) + INTERVAL 1 DAY""",
    ]
    shared: bool = False
    """True for a ClickHouse server (several Sightline processes may use it), False for chdb."""

    def __init__(self, url: str) -> None:
        import clickhouse_connect  # an optional dependency: sightline[clickhouse]

        args = parse_clickhouse_url(url)
        self.url = url
        self.database: str = args.pop("database")
        embedded: bool = args.pop("embedded")
        self.shared = not embedded
        try:
            if embedded:
                boot = clickhouse_connect.get_client(**args)
                boot.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
                boot.close()
            else:
                boot = clickhouse_connect.get_client(**args, database="default")
                boot.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
                boot.close()
            # one session would serialise a server's concurrent queries ("session is locked")
            extra: dict[str, Any] = {} if embedded else {"autogenerate_session_id": False}
            self._client = clickhouse_connect.get_client(**args, database=self.database, **extra)
        except Exception as e:  # clickhouse-connect and chdb raise their own error types
            raise StoreError(f"cannot open ClickHouse store at {url}: {e}") from None
        # chdb runs one query at a time per process; the HTTP client is thread-safe without it
        self._lock: threading.Lock | None = threading.Lock() if embedded else None
        self._closed = False

    # -- helpers for the parts -----------------------------------------------------------------

    def _q(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a query (tuples)."""
        return list(self._run("query", sql, params).result_rows)

    def _q_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        return self._run("query_arrow", sql, params)

    def _cmd(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run("command", sql, params)

    def _insert_arrow(self, table: str, data: pa.Table) -> None:
        if data.num_rows:
            self._run("insert_arrow", table, data)

    def _insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        if rows:
            self._run("insert", table, [list(r) for r in rows], column_names=list(columns))

    def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise StoreError("store is closed")
        fn = getattr(self._client, method)
        if method in ("query", "query_arrow", "command") and args[1] is None:
            args = args[:1]
        elif method in ("query", "query_arrow", "command"):
            args, kwargs = args[:1], {**kwargs, "parameters": dict(args[1])}
        try:
            if self._lock is None:
                return fn(*args, **kwargs)
            with self._lock:
                return fn(*args, **kwargs)
        except StoreError:
            raise
        except Exception as e:  # the driver's errors become the store's one error type
            raise StoreError(f"ClickHouse {method} failed: {e}") from e

    @staticmethod
    def _version() -> int:
        """A ReplacingMergeTree version: later writes of the same key win."""
        return time.time_ns()

    def _create_unique(
        self,
        scope: str,
        key: str,
        *,
        exists: Callable[[], bool],
        create: Callable[[], _T],
        what: str = "",
    ) -> _T:
        """``create()`` unless the key exists, safe against other processes doing the same.

        ClickHouse has no unique keys and no compare-and-set, so each attempt inserts a claim
        row for ``(scope, key)``, then reads the claims: it goes on only if no other live claim
        is there, checks ``exists()`` again, creates and withdraws its claim (a tombstone) after
        the created row is written. Of two writers racing, at least one sees the other's claim
        (each reads after its own insert), so at most one creates; if both see each other, both
        withdraw and try again after a random pause. Raises :class:`KeyTaken` if ``exists()``,
        :class:`~sightline.errors.Conflict` if other writers kept the key busy through every
        attempt. A claim older than ``CLAIM_TTL_S`` is ignored (its writer died), and an attempt
        that took half that long before creating gives up rather than create late.

        The guarantee holds where a read sees every insert acknowledged before it: one server,
        or replicas read with ``select_sequential_consistency`` after quorum inserts.
        """
        for attempt in range(_CLAIM_ATTEMPTS):
            if exists():
                raise KeyTaken(key)
            token = uuid.uuid4().hex
            version = self._version()
            started = time.monotonic()
            self._insert_rows(
                "unique_claims",
                ["scope", "key", "token", "_version", "_deleted"],
                [[scope, key, token, version, 0]],
            )
            try:
                others = self._q(
                    "SELECT count() FROM unique_claims FINAL WHERE scope = {s:String}"
                    " AND `key` = {k:String} AND token != {t:String} AND _deleted = 0"
                    " AND claimed_at > now64(6, 'UTC') - toIntervalMillisecond({ttl:UInt32})",
                    {"s": scope, "k": key, "t": token, "ttl": int(CLAIM_TTL_S * 1000)},
                )[0][0]
                if not others and time.monotonic() - started < CLAIM_TTL_S / 2:
                    if exists():
                        raise KeyTaken(key)
                    return create()
            finally:
                # withdrawn only now: the created row is visible before the claim goes
                self._insert_rows(
                    "unique_claims",
                    ["scope", "key", "token", "_version", "_deleted"],
                    [[scope, key, token, version + 1, 1]],
                )
            time.sleep(random.uniform(0.01, 0.04) * (attempt + 1))  # noqa: S311 - jitter
        if exists():
            raise KeyTaken(key)
        raise Conflict(
            f"{what or repr(key)} is being created by another request at the same time; try again"
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def _create_schema(self) -> None:
        seen: set[str] = set()
        for cls in reversed(type(self).__mro__):
            for stmt in cls.__dict__.get("DDL", []):
                if stmt not in seen:
                    seen.add(stmt)
                    self._cmd(stmt)

    def ping(self) -> None:
        try:
            self._q("SELECT 1")
        except StoreError as e:
            raise StoreError(f"store unreachable: {e}") from None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._client.close()
        except Exception:  # noqa: S110 - closing a broken connection is not an error
            pass
