"""Prometheus exposition: ingest counters and per-model LLM series, one registry per project."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pyarrow as pa
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

__all__ = ["Metrics"]

# The *_created series double the exposition for a timestamp nobody graphs.
disable_created_metrics()

_LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
_TTFT_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8)


class _ProjectMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.spans = Counter("sightline_ingest_spans", "Spans accepted.", ["format"], registry=r)
        self.rejected = Counter("sightline_ingest_spans_rejected",
                                "Spans rejected while decoding, by reason.", ["reason"],
                                registry=r)
        self.repaired = Counter("sightline_ingest_spans_repaired",
                                "Span fields repaired or noted while decoding, by reason.",
                                ["reason"], registry=r)
        self.requests = Counter("sightline_ingest_requests", "Ingest requests by outcome.",
                                ["format", "code"], registry=r)
        self.llm_requests = Counter("sightline_llm_requests", "LLM calls.", ["model", "status"],
                                    registry=r)
        self.llm_latency = Histogram("sightline_llm_request_duration_seconds",
                                     "LLM call latency.", ["model"],
                                     buckets=_LATENCY_BUCKETS_S, registry=r)
        self.llm_ttft = Histogram("sightline_llm_time_to_first_token_seconds",
                                  "LLM time to first token.", ["model"],
                                  buckets=_TTFT_BUCKETS_S, registry=r)
        self.llm_tokens = Counter("sightline_llm_tokens", "LLM tokens.", ["model", "direction"],
                                  registry=r)
        self.llm_cost = Counter("sightline_llm_cost_usd", "LLM cost in USD.", ["model"],
                                registry=r)


class Metrics:
    """Holds every project's registry, plus process-wide gauges shown to every project."""

    def __init__(self) -> None:
        self._projects: dict[str, _ProjectMetrics] = {}
        self._lock = threading.Lock()
        self.global_registry = CollectorRegistry(auto_describe=True)
        self.queue_spans = Gauge("sightline_ingest_queue_spans",
                                 "Spans accepted and waiting for commit.",
                                 registry=self.global_registry)
        self.commits = Counter("sightline_store_commits", "Store transactions committed.",
                               registry=self.global_registry)

    def project(self, project_id: str) -> _ProjectMetrics:
        """The metrics of one project (created on first use)."""
        pm = self._projects.get(project_id)
        if pm is None:
            with self._lock:
                pm = self._projects.setdefault(project_id, _ProjectMetrics())
        return pm

    def observe_request(self, project_id: str, fmt: str, code: int, accepted: int = 0,
                        rejected: dict[str, int] | None = None,
                        repaired: dict[str, int] | None = None) -> None:
        """Count one ingest request and its decode outcome."""
        pm = self.project(project_id)
        pm.requests.labels(fmt, str(code)).inc()
        if accepted:
            pm.spans.labels(fmt).inc(accepted)
        for reason, n in (rejected or {}).items():
            pm.rejected.labels(reason).inc(n)
        for reason, n in (repaired or {}).items():
            pm.repaired.labels(reason).inc(n)

    def observe_commit(self, tables: Sequence[pa.Table]) -> None:
        """Per-model LLM series from committed batches (so they count durable spans only)."""
        self.commits.inc()
        for t in tables:
            cols = t.select(["project_id", "kind", "model", "status", "duration_ms",
                             "input_tokens", "output_tokens", "cost_usd", "ttft_ms"]).to_pydict()
            for i, kind in enumerate(cols["kind"]):
                if kind != "llm":
                    continue
                pm = self.project(cols["project_id"][i])
                model = cols["model"][i] or "unknown"
                pm.llm_requests.labels(model, cols["status"][i]).inc()
                pm.llm_latency.labels(model).observe(cols["duration_ms"][i] / 1000)
                ttft = cols["ttft_ms"][i]
                if ttft is not None:
                    pm.llm_ttft.labels(model).observe(ttft / 1000)
                if cols["input_tokens"][i]:
                    pm.llm_tokens.labels(model, "input").inc(cols["input_tokens"][i])
                if cols["output_tokens"][i]:
                    pm.llm_tokens.labels(model, "output").inc(cols["output_tokens"][i])
                if cols["cost_usd"][i]:
                    pm.llm_cost.labels(model).inc(cols["cost_usd"][i])

    def render(self, project_id: str, queued_spans: int) -> bytes:
        """Exposition text for one project."""
        self.queue_spans.set(queued_spans)
        return generate_latest(self.global_registry) + generate_latest(
            self.project(project_id).registry)
