"""The evaluation runner of a server: built from the settings, exposed to Prometheus."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sightline.config import Settings
from sightline.evals import (
    EvalRunner,
    Evaluator,
    EvalWorker,
    RunnerOptions,
    default_evaluator_names,
    load_evaluators,
)
from sightline.store.base import TraceStore

__all__ = ["build_runner", "load_online_evaluators", "register_eval_metrics"]

log = structlog.get_logger("sightline.server")


def evaluator_options(settings: Settings) -> dict[str, dict[str, Any]]:
    """Options per evaluator, with the judge's API key from its own secret setting."""
    opts = {k: dict(v) for k, v in settings.eval_options.items()}
    if settings.eval_judge_api_key is not None:
        judge = opts.setdefault("llm_judge", {})
        judge.setdefault("api_key", settings.eval_judge_api_key.get_secret_value())
    return opts


def load_online_evaluators(settings: Settings) -> list[Evaluator]:
    """The evaluators the settings ask for (none when evaluation is off).

    Raises:
        ConfigError: an unknown evaluator name or options an evaluator rejects (the server
            refuses to start rather than silently not evaluating).
    """
    if not settings.eval_enabled:
        return []
    return load_evaluators(_online_names(settings), evaluator_options(settings))


def _online_names(settings: Settings) -> list[str]:
    names = settings.evaluators
    if names is None:
        names = default_evaluator_names(configured=evaluator_options(settings))
    return list(names)


def build_runner(
    settings: Settings, store: TraceStore, evaluators: Sequence[Evaluator]
) -> EvalRunner | None:
    """The online runner over ``evaluators``, or None when there are none.

    With ``eval_process`` (the default) the evaluators run in a niced child process the runner
    stops when it stops; ``evaluators`` then only give their names and versions.
    """
    if not evaluators:
        return None
    log.info("evaluators_loaded", evaluators=[e.name for e in evaluators])
    worker = None
    if settings.eval_process:
        worker = EvalWorker(_online_names(settings), evaluator_options(settings), evaluators)
        evaluators = worker.evaluators
    return EvalRunner(
        store,
        evaluators,
        on_stop=worker.stop if worker is not None else None,
        options=RunnerOptions(
            interval_s=settings.eval_interval_s,
            grace_s=settings.eval_grace_s,
            batch_size=settings.eval_batch_size,
            kinds=tuple(settings.eval_kinds),
            sample_rate=settings.eval_sample_rate,
            sample_rates=dict(settings.eval_sample_rates),
        ),
    )


class _EvalCollector(Collector):
    def __init__(self, runner: EvalRunner) -> None:
        self.runner = runner

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        r = self.runner
        yield GaugeMetricFamily(
            "sightline_eval_lag_seconds",
            "Seconds the oldest committed span not yet evaluated has waited (0 when caught up).",
            value=r.lag_s(),
        )
        spans = CounterMetricFamily("sightline_eval_spans", "Spans evaluated online.")
        spans.add_metric([], r.num_spans)
        yield spans
        scores = CounterMetricFamily(
            "sightline_eval_scores", "Scores appended online.", labels=["evaluator"]
        )
        failed = CounterMetricFamily(
            "sightline_eval_failed",
            "Cases whose evaluator raised (stored as failed scores).",
            labels=["evaluator"],
        )
        for ev in r.evaluators:
            scores.add_metric([ev.name], r.num_scores.get(ev.name, 0))
            failed.add_metric([ev.name], r.num_failed.get(ev.name, 0))
        yield scores
        yield failed


def register_eval_metrics(registry: CollectorRegistry, runner: EvalRunner) -> None:
    """Expose the runner's lag and counts on /metrics."""
    registry.register(_EvalCollector(runner))
