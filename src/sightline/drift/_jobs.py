"""Drift jobs: which windows to compare with which detectors, and the loop that runs them.

A job samples spans of its current window (the last ``current``) and of its baseline (a past
window, an absolute pinned window, or a pinned JSONL dataset), runs its detectors and stores
one :class:`DriftResult` per (detector, feature). Jobs come from the ``drift`` section of the
alerts file; without one, a default job compares the last hour with the 7 days before it.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import structlog
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sightline._clock import Clock, system_clock
from sightline._daemon import DaemonTask
from sightline.errors import ConfigError
from sightline.model import DriftResult
from sightline.store.base import SampleQuery, SpanSample, TraceStore

__all__ = ["DETECTORS", "Baseline", "DriftJob", "DriftMonitor", "parse_drift_jobs", "run_job"]

log = structlog.get_logger("sightline.drift")

DetectorName = Literal[
    "semantic_same_input",
    "embedding_mmd",
    "token_distribution",
    "psi",
    "emerging_topics",
    "descriptors",
]
DETECTORS: tuple[DetectorName, ...] = (
    "semantic_same_input",
    "embedding_mmd",
    "token_distribution",
    "psi",
    "emerging_topics",
)
"""The default detectors, in the order docs/drift.md numbers them (1)–(5). ``descriptors``
(docs/signals.md) runs where a job names it."""

Embed = Callable[[Sequence[str]], Any]


def _duration(v: Any) -> int:
    from sightline.alerts._rules import parse_duration

    return parse_duration(v)


MAX_DURATION_S = 366 * 86400
"""The longest window or offset, as for alert rules: a longer one overflowed the date
arithmetic of every run (a 500 from POST /drift/run, an error at each tick)."""

Duration = Annotated[int, BeforeValidator(_duration), Field(ge=0, le=MAX_DURATION_S)]
Window = Annotated[int, BeforeValidator(_duration), Field(gt=0, le=MAX_DURATION_S)]


class Baseline(BaseModel):
    """Where a job's reference sample comes from.

    One of ``window`` (+ ``offset``: the gap before the current window), ``start`` and ``end``
    (a pinned window), or ``dataset`` (a pinned JSONL file).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: Window | None = None
    offset: Duration | None = Field(None, description="Gap before the current window; default 0.")
    start: datetime | None = None
    end: datetime | None = None
    dataset: Path | None = None

    @model_validator(mode="after")
    def _one(self) -> Baseline:
        kinds = [
            self.window is not None,
            self.start is not None or self.end is not None,
            self.dataset is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError("a baseline is one of: window (+ offset), start and end, or dataset")
        if (self.start is None) != (self.end is None):
            raise ValueError("a pinned window needs both start and end")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class DriftJob(BaseModel):
    """One drift comparison, run every ``drift_interval_s``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
    filter: dict[str, str] = Field(default_factory=dict)
    current: Window = 3600
    baseline: Baseline = Baseline.model_validate({"window": 7 * 86400})
    detectors: list[DetectorName] = Field(default_factory=lambda: list(DETECTORS))
    sample: int = Field(300, ge=10, le=2000, description="Spans sampled per window.")
    alpha: float = Field(0.01, gt=0, lt=0.5)
    min_samples: int = Field(30, ge=5)
    permutations: int = Field(200, ge=50, le=2000)

    @field_validator("filter")
    @classmethod
    def _filter_keys(cls, v: dict[str, str]) -> dict[str, str]:
        # checked here, at load, rather than by the store at every run
        from sightline.store.base import DIMENSIONS

        for k in v:
            if k == "kind":
                raise ValueError("drift compares LLM calls: kind cannot be filtered")
            if k not in DIMENSIONS:
                allowed = ", ".join(d for d in DIMENSIONS if d != "kind")
                raise ValueError(f"cannot filter by {k!r}; expected one of {allowed}")
        return v


DEFAULT_JOB = DriftJob.model_validate({"name": "default"})


def parse_drift_jobs(raw: Any) -> list[DriftJob]:
    """Jobs from the alerts file's ``drift`` list (the default job when there is none)."""
    if not raw:
        return [DEFAULT_JOB]
    jobs = []
    for spec in raw:
        try:
            jobs.append(DriftJob.model_validate(spec))
        except ValidationError as e:
            msg = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
            raise ConfigError(f"drift job {spec.get('name', '?')}: {msg}") from None
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ConfigError("drift: duplicate job names")
    return jobs


def _dataset_field(r: dict[str, Any], where: str, name: str, kind: type | tuple[type, ...]) -> Any:
    v = r.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, kind):
        raise ConfigError(f"{where}: {name}: expected {_KIND_NAMES[kind]}, got {v!r:.80}")
    if isinstance(v, float) and not math.isfinite(v):
        raise ConfigError(f"{where}: {name}: expected a finite number, got {v!r}")
    return v


_KIND_NAMES: dict[Any, str] = {str: "a string", int: "an integer", (int, float): "a number"}


def _load_dataset(path: Path) -> list[SpanSample]:
    """A pinned baseline's JSON lines; a field a line lacks is unknown, not zero."""
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read drift baseline dataset {path}: {e}") from None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        where = f"{path}:{i + 1}"
        try:
            r = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise ConfigError(f"{where}: not JSON") from None
        if not isinstance(r, dict):
            raise ConfigError(f"{where}: expected a JSON object, got {type(r).__name__}")
        latency = _dataset_field(r, where, "latency_ms", (int, float))
        if latency is None:
            latency = _dataset_field(r, where, "duration_ms", (int, float))
        out.append(
            SpanSample(
                start_time=datetime.min,
                model=_dataset_field(r, where, "model", str),
                input=_dataset_field(r, where, "input", str),
                output=_dataset_field(r, where, "output", str),
                input_tokens=_dataset_field(r, where, "input_tokens", int),
                output_tokens=_dataset_field(r, where, "output_tokens", int),
                # a golden set without latencies has none to compare: not 0 ms each
                duration_ms=None if latency is None else float(latency),
            )
        )
    return out


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=4).digest(), "big")


def run_job(
    store: TraceStore,
    project_id: str,
    job: DriftJob,
    now: datetime,
    *,
    embed: Embed | None,
) -> list[DriftResult]:
    """Sample both windows, run the job's detectors, return (not store) the results."""
    from sightline.drift import _detectors as det

    cur_start = now - timedelta(seconds=job.current)
    seed = _seed(project_id, job.name, now.isoformat())
    current = store.sample_spans(
        SampleQuery(
            project_id=project_id,
            start=cur_start,
            end=now,
            filters=job.filter,
            limit=job.sample,
            seed=seed,
        )
    )
    bl = job.baseline
    b_start: datetime | None
    b_end: datetime | None
    if bl.dataset is not None:
        baseline = _load_dataset(bl.dataset)[: job.sample]
        b_start = b_end = None
    else:
        if bl.window is not None:
            b_end = cur_start - timedelta(seconds=bl.offset or 0)
            b_start = b_end - timedelta(seconds=bl.window)
        elif bl.start is not None and bl.end is not None:
            b_start, b_end = bl.start, bl.end
        else:  # the model validator allows no other shape
            raise ConfigError(f"drift job {job.name}: invalid baseline")
        baseline = store.sample_spans(
            SampleQuery(
                project_id=project_id,
                start=b_start,
                end=b_end,
                filters=job.filter,
                limit=job.sample,
                seed=seed + 1,
            )
        )
    from sightline.drift._registry import BUILTIN_DETECTORS, Samples, TestSettings

    samples = Samples(baseline, current, embed)
    settings = TestSettings(job.alpha, job.permutations, job.min_samples, seed)
    found: list[det.Detection] = []
    for name in job.detectors:
        d = BUILTIN_DETECTORS[name]
        if d.needs_embeddings and embed is None:
            found.append(
                det.Detection(
                    name,
                    "-",
                    None,
                    None,
                    None,
                    False,
                    len(baseline),
                    len(current),
                    "unavailable",
                    {"reason": "embeddings need the ml extra: pip install 'sightline[ml]'"},
                )
            )
            continue
        found += d.detect(samples, settings)
    return [
        DriftResult(
            project_id=project_id,
            result_id=secrets.token_hex(8),
            job=job.name,
            detector=d.detector,
            feature=d.feature,
            created_at=now,
            baseline_start=b_start,
            baseline_end=b_end,
            current_start=cur_start,
            current_end=now,
            num_baseline=d.num_baseline,
            num_current=d.num_current,
            score=d.score,
            threshold=d.threshold,
            p_value=d.p_value,
            fired=d.fired,
            status=d.status,
            details=d.details,
        )
        for d in found
    ]


def _default_embed() -> Embed | None:
    try:
        from sightline.evals import default_embedder
    except ImportError:
        return None
    try:
        import onnxruntime  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return None

    def embed(texts: Sequence[str]) -> Any:
        return default_embedder().embed(list(texts))

    return embed


class DriftMonitor(DaemonTask):
    """Runs every drift job for every project every ``interval_s`` and stores the results."""

    name = "drift"

    def __init__(
        self,
        store: TraceStore,
        jobs: Sequence[DriftJob],
        *,
        clock: Clock = system_clock,
        interval_s: float = 600.0,
        embed: Embed | None | Literal["default"] = "default",
    ) -> None:
        super().__init__(interval_s=interval_s)
        self.jobs = {j.name: j for j in jobs}
        self._store = store
        self._clock = clock
        self._embed_opt = embed
        self._embed: Embed | None = None
        self._embed_ready = False
        self._waited = False

    def _embedder(self) -> Embed | None:
        if not self._embed_ready:
            opt = self._embed_opt
            self._embed = _default_embed() if opt == "default" or isinstance(opt, str) else opt
            self._embed_ready = True
        return self._embed

    def run_once(self) -> None:
        if not self._waited:
            # The first run waits one interval: at start the server has better things to do
            # than load the embedding model, and the windows are what they were at shutdown.
            self._waited = True
            return
        for p in self._store.list_projects():
            if self.stopping:
                return
            for job in self.jobs.values():
                try:
                    self.run(p.id, job.name)
                except Exception:  # one broken job (an unreadable dataset) stops no other
                    log.exception("drift_job_failed", project=p.id, job=job.name)

    def run(self, project_id: str, job_name: str | None = None) -> list[DriftResult]:
        """Run one job (or every job) for a project now; store and return the results."""
        names = [job_name] if job_name else list(self.jobs)
        out: list[DriftResult] = []
        for n in names:
            job = self.jobs.get(n)
            if job is None:
                raise ConfigError(f"no drift job {n!r}; jobs: {', '.join(self.jobs)}")
            results = run_job(self._store, project_id, job, self._clock(), embed=self._embedder())
            self._store.add_drift_results(results)
            fired = [f"{r.detector}:{r.feature}" for r in results if r.fired]
            log.info("drift_checked", project=project_id, job=n, fired=fired)
            out += results
        return out
