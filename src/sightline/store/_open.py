"""Open a store from its URL (``--store``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from sightline.errors import ConfigError
from sightline.store.base import TraceStore

__all__ = ["check_store_url", "open_store", "store_coordinates", "store_is_shared"]


def open_store(
    url: str, *, duckdb_memory_limit: str | None = None, duckdb_threads: int | None = None
) -> TraceStore:
    """The store a URL names.

    ``duckdb:///abs/path.duckdb`` (or a plain file path) is the embedded DuckDB store, opened
    with ``duckdb_memory_limit`` and ``duckdb_threads`` when given (DuckDB's defaults else);
    ``clickhouse://user:password@host:8123/database`` (``clickhouses://`` over TLS) a
    ClickHouse server; ``chdb:///abs/dir`` the ClickHouse engine embedded in this process.
    """
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in ("", "duckdb"):
        from sightline.store._duckdb import DuckDBStore

        path = url
        if scheme:
            parts = urlsplit(url)
            path = unquote(parts.netloc + parts.path) if parts.netloc else unquote(parts.path)
        if not path:
            raise ConfigError(f"duckdb store URL needs a file: {url!r}")
        return DuckDBStore(Path(path), memory_limit=duckdb_memory_limit, threads=duckdb_threads)
    if scheme in ("clickhouse", "clickhouses", "chdb"):
        try:
            from sightline.store._clickhouse import ClickHouseStore
        except ImportError as e:  # pragma: no cover - depends on the installed extras
            raise ConfigError(
                f"the ClickHouse store needs sightline[clickhouse] installed ({e})"
            ) from None
        return ClickHouseStore(url)
    raise ConfigError(
        f"unknown store URL {url!r}: use duckdb:///file, clickhouse://host:8123/db or chdb:///dir"
    )


def store_is_shared(url: str) -> bool:
    """Whether several Sightline processes may use the store of ``url`` (a ClickHouse server)."""
    return (
        url.split("://", 1)[0].lower() in ("clickhouse", "clickhouses") if "://" in url else False
    )


def store_coordinates(url: str) -> bool:
    """Whether the store of ``url`` can hold evaluation claims and leader leases.

    They need compare-and-set, which DuckDB's transactions give and ClickHouse has not: over
    ClickHouse, several workers or split roles coordinate through Redis (``--redis-url``).
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    return scheme in ("", "duckdb")


def check_store_url(url: str) -> None:
    """Raise ConfigError if ``url`` names no store this build can open (nothing is opened)."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in ("", "duckdb"):
        parts = urlsplit(url)
        if scheme and not (parts.netloc + parts.path):
            raise ConfigError(f"duckdb store URL needs a file: {url!r}")
        return
    if scheme in ("clickhouse", "clickhouses", "chdb"):
        from sightline.store._clickhouse_base import parse_clickhouse_url

        parse_clickhouse_url(url)
        return
    raise ConfigError(
        f"unknown store URL {url!r}: use duckdb:///file, clickhouse://host:8123/db or chdb:///dir"
    )
