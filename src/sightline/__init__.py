"""Sightline: observability and evaluation for LLM systems.

``import sightline`` is what applications do, so it stays light: it loads OpenTelemetry at
most, never the server's dependencies (FastAPI, DuckDB, NumPy); a test guards this.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sightline")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
