"""Open a store from its URL (``--store``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from sightline.errors import ConfigError
from sightline.store.base import TraceStore

__all__ = ["open_store"]


def open_store(url: str) -> TraceStore:
    """The store a URL names.

    ``duckdb:///abs/path.duckdb`` (or a plain file path) is the embedded DuckDB store;
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
        return DuckDBStore(Path(path))
    if scheme in ("clickhouse", "clickhouses", "chdb"):
        try:
            from sightline.store._clickhouse import ClickHouseStore
        except ImportError as e:  # pragma: no cover - depends on the installed extras
            raise ConfigError(
                f"the ClickHouse store needs sightline[clickhouse] installed ({e})"
            ) from None
        return ClickHouseStore(url)  # type: ignore[return-value]
    raise ConfigError(
        f"unknown store URL {url!r}: use duckdb:///file, clickhouse://host:8123/db or chdb:///dir"
    )
