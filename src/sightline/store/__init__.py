"""Where spans live: the TraceStore protocol and its backends."""

from sightline.store._duckdb import DuckDBStore
from sightline.store.base import (
    AGGS,
    DIMENSIONS,
    METRICS,
    AlertQuery,
    ApiKey,
    DriftQuery,
    MetricDef,
    MetricQuery,
    MetricSeries,
    Project,
    SampleQuery,
    SpanPage,
    SpanQuery,
    SpanSample,
    TraceStore,
    WindowAgg,
    WindowValue,
)

__all__ = [
    "AGGS",
    "DIMENSIONS",
    "METRICS",
    "AlertQuery",
    "ApiKey",
    "DriftQuery",
    "DuckDBStore",
    "MetricDef",
    "MetricQuery",
    "MetricSeries",
    "Project",
    "SampleQuery",
    "SpanPage",
    "SpanQuery",
    "SpanSample",
    "TraceStore",
    "WindowAgg",
    "WindowValue",
]
