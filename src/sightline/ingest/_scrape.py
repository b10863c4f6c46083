"""Prometheus scraping: serving engines' ``/metrics`` (vLLM, TGI, DCGM exporter) into data points.

Targets come from the ``scrape:`` section of the config file. Each is fetched every
``interval``; the exposition text is parsed with ``prometheus_client``'s parser and every
sample becomes a row of ``otel_metric_points`` (source ``scrape``), committed through the same
group-commit writer as OTLP metrics. Engine metric names keep their documented names and get
their shared alias (:mod:`sightline.serving`).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import structlog
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sightline._daemon import DaemonTask
from sightline.errors import ConfigError, SightlineError
from sightline.ingest._signals import MetricRows, dumps_attrs
from sightline.ingest._writer import GroupCommitWriter
from sightline.serving import alias_of

__all__ = ["ScrapeTarget", "Scraper", "parse_exposition", "parse_scrape_targets"]

log = structlog.get_logger("sightline.scrape")

_GENERATION_COUNTERS = ("vllm:generation_tokens_total", "tgi_request_generated_tokens_sum")
"""Samples whose increase is generated tokens: the numerator of ``serving_capacity_ratio``."""
_MAX_BODY = 8 << 20
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class ScrapeTarget(BaseModel):
    """One endpoint to scrape (an entry of ``scrape:``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="http(s) URL of a Prometheus exposition endpoint.")
    name: str | None = Field(None, max_length=200, description="Job name; default: the URL.")
    interval: float = Field(15.0, ge=0.2, le=86400, description="Seconds between scrapes.")
    timeout: float = Field(10.0, gt=0, le=300, description="Seconds one scrape may take.")
    labels: dict[str, str] = Field(default_factory=dict, description="Added to every sample.")
    project: str | None = Field(
        None, description="Project the samples belong to; default: the server's init project."
    )
    service: str | None = Field(None, max_length=200, description="service_name of the samples.")
    capacity_tokens_per_s: float | None = Field(
        None,
        gt=0,
        description="Generation tokens/s the deployment can serve: enables the computed "
        "serving_capacity_ratio gauge (and the default throughput rule).",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        u = httpx.URL(v)
        if u.scheme not in ("http", "https") or not u.host:
            raise ValueError("url must be an http(s) URL")
        return v

    @field_validator("interval", "timeout", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        if isinstance(v, str):
            m = _DURATION.match(v)
            if not m:
                raise ValueError(f"expected seconds or a duration such as 15s or 1m, got {v!r}")
            return float(m.group(1)) * _UNITS[m.group(2) or "s"]
        return v

    @property
    def job(self) -> str:
        """The target's name, or its URL."""
        return self.name or self.url


def parse_scrape_targets(raw: Any, *, default_project: str | None) -> list[ScrapeTarget]:
    """Validate the ``scrape:`` section (a list of targets)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError("scrape must be a list of targets")
    out = []
    for i, item in enumerate(raw):
        try:
            t = ScrapeTarget.model_validate(item)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise ConfigError(f"scrape[{i}]: {where}: {first['msg']}") from None
        if t.project is None:
            if default_project is None:
                raise ConfigError(f"scrape[{i}]: project is required (no init project is set)")
            t = t.model_copy(update={"project": default_project})
        out.append(t)
    return out


def parse_exposition(
    text: str,
    *,
    project_id: str,
    target: ScrapeTarget,
    time_ns: int,
    rows: MetricRows | None = None,
) -> MetricRows:
    """Samples of a Prometheus text exposition as metric point rows.

    Counters become monotonic cumulative sums named by their ``_total`` sample, histograms
    explicit-bucket histograms (cumulative ``le`` counts turned into per-bucket counts),
    gauges and untyped samples gauges; summaries keep their count and sum.
    """
    rows = rows if rows is not None else MetricRows(project_id)
    base = {
        "job": target.job,
        "instance": str(httpx.URL(target.url).netloc.decode()),
        **target.labels,
    }
    resource = dumps_attrs({"service.name": target.service or target.job, **target.labels})
    service = target.service or target.job
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, TypeError, IndexError) as e:
        raise ConfigError(f"invalid exposition text: {e}") from None
    for fam in families:
        if fam.type == "histogram":
            _histograms(fam, rows, base, resource, service, time_ns)
            continue
        if fam.type == "summary":
            _summaries(fam, rows, base, resource, service, time_ns)
            continue
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            counter = fam.type == "counter"
            ts = int(float(s.timestamp) * 1e9) if s.timestamp else time_ns
            rows.add(
                name=s.name,
                alias=alias_of(s.name),
                type_="sum" if counter else "gauge",
                temporality="cumulative" if counter else None,
                monotonic=True if counter else None,
                attributes=dumps_attrs({**base, **s.labels}),
                resource_attributes=resource,
                service_name=service,
                time_ns=ts,
                source="scrape",
                value=float(s.value),
            )
    return rows


def _series_key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k not in ("le", "quantile")))


def _histograms(
    fam: Any,
    rows: MetricRows,
    base: dict[str, str],
    resource: str,
    service: str,
    time_ns: int,
) -> None:
    series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for s in fam.samples:
        d = series.setdefault(_series_key(s.labels), {"buckets": []})
        if s.name.endswith("_bucket"):
            le = s.labels.get("le", "+Inf")
            d["buckets"].append((math.inf if le in ("+Inf", "Inf") else float(le), s.value))
        elif s.name.endswith("_count"):
            d["count"] = s.value
        elif s.name.endswith("_sum"):
            d["sum"] = s.value
    for key, d in series.items():
        buckets = sorted(d["buckets"])
        bounds = [b for b, _ in buckets if math.isfinite(b)]
        cumulative = [c for _, c in buckets]
        total = d.get("count", cumulative[-1] if cumulative else 0.0)
        if not buckets or math.isfinite(buckets[-1][0]):
            cumulative.append(total)
        counts = [max(0.0, c - p) for c, p in zip(cumulative, [0.0, *cumulative[:-1]], strict=True)]
        rows.add(
            name=fam.name,
            alias=alias_of(fam.name),
            type_="histogram",
            temporality="cumulative",
            attributes=dumps_attrs({**base, **dict(key)}),
            resource_attributes=resource,
            service_name=service,
            time_ns=time_ns,
            source="scrape",
            count=float(total),
            sum_=d.get("sum"),
            bounds=bounds,
            bucket_counts=counts,
        )


def _summaries(
    fam: Any,
    rows: MetricRows,
    base: dict[str, str],
    resource: str,
    service: str,
    time_ns: int,
) -> None:
    series: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}
    for s in fam.samples:
        d = series.setdefault(_series_key(s.labels), {})
        if s.name.endswith("_count"):
            d["count"] = s.value
        elif s.name.endswith("_sum"):
            d["sum"] = s.value
    for key, d in series.items():
        rows.add(
            name=fam.name,
            alias=alias_of(fam.name),
            type_="summary",
            temporality="cumulative",
            attributes=dumps_attrs({**base, **dict(key)}),
            resource_attributes=resource,
            service_name=service,
            time_ns=time_ns,
            source="scrape",
            count=d.get("count"),
            sum_=d.get("sum"),
        )


class Scraper(DaemonTask):
    """Scrapes every target on its own interval; one thread, a tick every ``tick_s``."""

    name = "scraper"

    def __init__(
        self,
        targets: Sequence[ScrapeTarget],
        writer: GroupCommitWriter,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        tick_s: float = 0.2,
    ) -> None:
        super().__init__(interval_s=tick_s)
        self._targets = list(targets)
        self._writer = writer
        self._clock_ns = clock_ns
        self._next = [0.0] * len(self._targets)
        self._tokens: dict[int, tuple[float, float]] = {}
        """Per target: (time s, generation tokens) of the previous scrape."""
        self._client = httpx.Client(follow_redirects=False, trust_env=False)
        self._lock = threading.Lock()
        self.num_scrapes = 0
        self.last_error: dict[str, str] = {}

    def run_once(self) -> None:
        now = time.monotonic()
        for i, t in enumerate(self._targets):
            if now >= self._next[i]:
                self._next[i] = now + t.interval
                self.scrape(i)

    def scrape(self, i: int) -> int:
        """Scrape target ``i`` once; return the number of points committed."""
        t = self._targets[i]
        try:
            r = self._client.get(t.url, timeout=t.timeout, headers={"accept": "text/plain"})
            r.raise_for_status()
            if len(r.content) > _MAX_BODY:
                raise ConfigError(f"exposition larger than {_MAX_BODY} bytes")
            now_ns = self._clock_ns()
            assert t.project is not None  # noqa: S101 - parse_scrape_targets fills it
            rows = parse_exposition(r.text, project_id=t.project, target=t, time_ns=now_ns)
            self._capacity(i, t, rows, now_ns)
            table = rows.table()
            if table is None:
                return 0
            self._writer.submit(table, table.num_rows, signal="metrics").result()
        except (httpx.HTTPError, SightlineError) as e:
            self.last_error[t.job] = str(e)
            log.warning("scrape_failed", target=t.job, error=str(e))
            return 0
        self.last_error.pop(t.job, None)
        self.num_scrapes += 1
        log.debug("scraped", target=t.job, num_points=table.num_rows)
        return int(table.num_rows)

    def _capacity(self, i: int, t: ScrapeTarget, rows: MetricRows, now_ns: int) -> None:
        """Add ``serving_capacity_ratio``: generation tokens/s since the last scrape ÷ capacity."""
        if t.capacity_tokens_per_s is None:
            return
        c = rows.cols
        tokens = sum(
            (v if n in _GENERATION_COUNTERS else 0.0) or 0.0
            for n, v in zip(c["name"], c["value"], strict=True)
        )
        tokens += sum(
            (s if n == "tgi_request_generated_tokens" else 0.0) or 0.0
            for n, s in zip(c["name"], c["sum"], strict=True)
        )
        now_s = now_ns / 1e9
        prev = self._tokens.get(i)
        self._tokens[i] = (now_s, tokens)
        if prev is None or now_s <= prev[0] or tokens < prev[1]:
            return  # first scrape, or the engine restarted (its counters reset)
        rate = (tokens - prev[1]) / (now_s - prev[0])
        rows.add(
            name="serving_capacity_ratio",
            alias="serving_capacity_ratio",
            type_="gauge",
            attributes=dumps_attrs({"job": t.job, **t.labels}),
            resource_attributes=dumps_attrs({"service.name": t.service or t.job}),
            service_name=t.service or t.job,
            time_ns=now_ns,
            source="scrape",
            value=rate / t.capacity_tokens_per_s,
        )

    def on_stop(self) -> None:
        self._client.close()
