"""Where spans live: the TraceStore protocol and its backends."""

from sightline.store._duckdb import DuckDBStore
from sightline.store._eval_records import (
    AgreementPair,
    Dataset,
    EvalCursor,
    ScorePage,
    ScoreQuery,
    SeqSpan,
)
from sightline.store.base import (
    AGGS,
    DIMENSIONS,
    METRICS,
    SCORE_METRICS,
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
    "SCORE_METRICS",
    "AgreementPair",
    "ApiKey",
    "Dataset",
    "DuckDBStore",
    "EvalCursor",
    "MetricDef",
    "MetricQuery",
    "MetricSeries",
    "Project",
    "ScorePage",
    "ScoreQuery",
    "SeqSpan",
    "SpanPage",
    "SpanQuery",
    "TraceStore",
]
