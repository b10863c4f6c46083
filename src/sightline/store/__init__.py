"""Where spans live: the TraceStore protocol and its backends."""

from sightline.store._duckdb import DuckDBStore
from sightline.store.base import (
    AGGS,
    DIMENSIONS,
    METRICS,
    ApiKey,
    MetricDef,
    MetricQuery,
    MetricSeries,
    Project,
    SpanPage,
    SpanQuery,
    TraceStore,
)

__all__ = [
    "AGGS",
    "DIMENSIONS",
    "METRICS",
    "ApiKey",
    "DuckDBStore",
    "MetricDef",
    "MetricQuery",
    "MetricSeries",
    "Project",
    "SpanPage",
    "SpanQuery",
    "TraceStore",
]
