"""The ClickHouse connection every part of the ClickHouse store shares.

One ``clickhouse-connect`` client serves both deployments: a ClickHouse server
(``clickhouse://user:password@host:8123/database``, ``clickhouses://`` for TLS) and the same
engine embedded in-process by chdb (``chdb:///path/to/dir``), which is what the tests and a
single machine without a server use. Queries bind parameters server-side with ClickHouse's
``{name:Type}`` placeholders; a literal ``%`` in SQL that also has parameters must be written
``%%`` (clickhouse-connect formats such queries with Python's ``%`` operator).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import orjson
import pyarrow as pa

from sightline.errors import ConfigError, StoreError

__all__ = [
    "CH_DT",
    "CH_NDT",
    "CH_NF",
    "CH_NSTR",
    "CHBase",
    "ch_aware",
    "ch_json",
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


class CHBase:
    """Connection, schema collection and the small query helpers the store's parts use.

    Each part of the store (spans, evaluation, monitoring...) is a mixin with its tables in
    ``DDL``; ``migrate`` creates the tables of every class in the MRO.
    """

    DDL: ClassVar[list[str]] = []
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
