"""Prometheus exposition: ingest counters and per-model LLM series, one registry per project."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

__all__ = ["Metrics"]

# The *_created series double the exposition for a timestamp nobody graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]

_LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
_TTFT_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
MAX_MODELS = 1000
"""Models with their own series per project; spans of further models count under
:data:`OTHER_MODEL` (the model name comes from clients: memory and scrapes stay bounded)."""
OTHER_MODEL = "_other"
MAX_MODEL_LABEL = 256
"""Longest model name with its own series; a longer one counts under :data:`OTHER_MODEL`
(a stored model name may be up to ``max_text_bytes`` long, and each series repeats its label:
four 1 MB names made a 112 MB scrape)."""


@dataclass
class _Hist:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, v)] += 1
        self.total += v

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        acc = 0
        for b, c in zip((*self.bounds, float("inf")), self.counts, strict=True):
            acc += c
            out.append(("+Inf" if b == float("inf") else repr(b), acc))
        return out


@dataclass
class _ModelSeries:
    requests: dict[str, int] = field(default_factory=dict)
    latency: _Hist = field(default_factory=lambda: _Hist(_LATENCY_BUCKETS_S))
    ttft: _Hist = field(default_factory=lambda: _Hist(_TTFT_BUCKETS_S))
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class _LlmCollector(Collector):
    """Per-model LLM series, updated once per commit.

    prometheus-client's labelled metrics cost ~15 µs per span for six updates; this keeps plain
    counters updated in one pass over each committed batch and renders them on scrape.
    """

    def __init__(self) -> None:
        self.models: dict[str, _ModelSeries] = {}
        self.lock = threading.Lock()

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        with self.lock:
            req = CounterMetricFamily(
                "sightline_llm_requests", "LLM calls.", labels=["model", "status"]
            )
            lat = HistogramMetricFamily(
                "sightline_llm_request_duration_seconds", "LLM call latency.", labels=["model"]
            )
            ttft = HistogramMetricFamily(
                "sightline_llm_time_to_first_token_seconds",
                "LLM time to first token.",
                labels=["model"],
            )
            tok = CounterMetricFamily(
                "sightline_llm_tokens", "LLM tokens.", labels=["model", "direction"]
            )
            cost = CounterMetricFamily(
                "sightline_llm_cost_usd", "LLM cost in USD.", labels=["model"]
            )
            for model, s in sorted(self.models.items()):
                for status, n in sorted(s.requests.items()):
                    req.add_metric([model, status], n)
                lat.add_metric([model], s.latency.buckets(), s.latency.total)
                if sum(s.ttft.counts):
                    ttft.add_metric([model], s.ttft.buckets(), s.ttft.total)
                tok.add_metric([model, "input"], s.input_tokens)
                tok.add_metric([model, "output"], s.output_tokens)
                cost.add_metric([model], s.cost_usd)
        yield from (req, lat, ttft, tok, cost)


class _ProjectMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.spans = Counter("sightline_ingest_spans", "Spans accepted.", ["format"], registry=r)
        self.rejected = Counter(
            "sightline_ingest_spans_rejected",
            "Spans rejected while decoding, by reason.",
            ["reason"],
            registry=r,
        )
        self.repaired = Counter(
            "sightline_ingest_spans_repaired",
            "Span fields repaired or noted while decoding, by reason.",
            ["reason"],
            registry=r,
        )
        self.requests = Counter(
            "sightline_ingest_requests",
            "Ingest requests by outcome.",
            ["format", "code"],
            registry=r,
        )
        self.llm = _LlmCollector()
        r.register(self.llm)


class Metrics:
    """Holds every project's registry, plus process-wide gauges shown to every project."""

    def __init__(self) -> None:
        self._projects: dict[str, _ProjectMetrics] = {}
        self._lock = threading.Lock()
        self.global_registry = CollectorRegistry(auto_describe=True)
        self.queue_spans = Gauge(
            "sightline_ingest_queue_spans",
            "Spans accepted and waiting for commit.",
            registry=self.global_registry,
        )
        self.commits = Counter(
            "sightline_store_commits",
            "Store transactions committed.",
            registry=self.global_registry,
        )

    def project(self, project_id: str) -> _ProjectMetrics:
        """The metrics of one project (created on first use)."""
        pm = self._projects.get(project_id)
        if pm is None:
            with self._lock:
                pm = self._projects.setdefault(project_id, _ProjectMetrics())
        return pm

    def observe_request(
        self,
        project_id: str,
        fmt: str,
        code: int,
        accepted: int = 0,
        rejected: dict[str, int] | None = None,
        repaired: dict[str, int] | None = None,
    ) -> None:
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
            c = t.select(
                [
                    "project_id",
                    "kind",
                    "model",
                    "status",
                    "duration_ms",
                    "input_tokens",
                    "output_tokens",
                    "cost_usd",
                    "ttft_ms",
                ]
            ).to_pydict()
            current: tuple[str, _LlmCollector] | None = None
            for i, kind in enumerate(c["kind"]):
                if kind != "llm":
                    continue
                pid = c["project_id"][i]
                if current is None or current[0] != pid:
                    current = (pid, self.project(pid).llm)
                coll = current[1]
                model = c["model"][i] or "unknown"
                if len(model) > MAX_MODEL_LABEL:
                    model = OTHER_MODEL
                with coll.lock:
                    s = coll.models.get(model)
                    if s is None:
                        if len(coll.models) >= MAX_MODELS:
                            model = OTHER_MODEL
                            s = coll.models.get(model)
                        if s is None:
                            s = coll.models[model] = _ModelSeries()
                    status = c["status"][i]
                    s.requests[status] = s.requests.get(status, 0) + 1
                    s.latency.observe(c["duration_ms"][i] / 1000)
                    if c["ttft_ms"][i] is not None:
                        s.ttft.observe(c["ttft_ms"][i] / 1000)
                    s.input_tokens += c["input_tokens"][i] or 0
                    s.output_tokens += c["output_tokens"][i] or 0
                    s.cost_usd += c["cost_usd"][i] or 0.0

    def render(self, project_id: str, queued_spans: int) -> bytes:
        """Exposition text for one project."""
        self.queue_spans.set(queued_spans)
        return generate_latest(self.global_registry) + generate_latest(
            self.project(project_id).registry
        )
