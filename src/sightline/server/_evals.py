"""The evaluation runner of a server: built from the settings, exposed to Prometheus."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sightline.config import Settings
from sightline.coordination import Coordinator, new_owner_id
from sightline.errors import ConfigError
from sightline.evals import (
    EvalRunner,
    Evaluator,
    EvalWorker,
    RunnerOptions,
    available_evaluators,
    default_evaluator_names,
    load_evaluators,
)
from sightline.store.base import TraceStore

__all__ = ["build_runner", "build_runners", "load_online_evaluators", "register_eval_metrics"]

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
    names = _online_names(settings)
    evaluators = load_evaluators(names, evaluator_options(settings))
    _check_sample_rates(settings, names, evaluators)
    return evaluators


def _check_sample_rates(
    settings: Settings, names: Sequence[str], evaluators: Sequence[Evaluator]
) -> None:
    """Refuse a sample rate that would apply to nothing (the runner keys rates by score name).

    A typo ("relevence=0.1"), or the registry name of an evaluator that scores under another
    name (``llm_judge`` with ``"name": "judge_tone"``), was ignored: that evaluator then scored
    every span, a paid judge included. The name of a registered evaluator that is not running
    is accepted (the same settings serve with and without it).
    """
    running = {ev.name for ev in evaluators}
    registered = set(available_evaluators())
    for key in settings.eval_sample_rates:
        if key in running:
            continue
        runs_as = sorted({ev.name for n, ev in zip(names, evaluators, strict=True) if n == key})
        if runs_as:
            raise ConfigError(
                f"eval_sample_rates: {key!r} scores as {runs_as[0]!r}: "
                f"key its rate by that name ({runs_as[0]}=...)"
            )
        if key not in registered:
            raise ConfigError(
                f"eval_sample_rates: no evaluator is named {key!r}; running: "
                f"{', '.join(sorted(running)) or 'none'}"
            )


def _online_names(settings: Settings) -> list[str]:
    names = settings.evaluators
    if names is None:
        names = default_evaluator_names(configured=evaluator_options(settings))
    return list(names)


def build_runner(
    settings: Settings,
    store: TraceStore,
    evaluators: Sequence[Evaluator],
    *,
    coordinator: Coordinator | None = None,
    owner: str | None = None,
    saturation: Callable[[], float] | None = None,
) -> EvalRunner | None:
    """The online runner over ``evaluators``, or None when there are none.

    With ``eval_process`` (the default) the evaluators run in a niced child process the runner
    stops when it stops; ``evaluators`` then only give their names and versions. With a
    ``coordinator`` the runner claims ranges of commits, so several share the work. ``saturation``
    says how long this process's ingestion has been saturated (see ``eval_yield_s``).
    """
    if not evaluators:
        return None
    worker = None
    if settings.eval_process:
        worker = EvalWorker(
            _online_names(settings),
            evaluator_options(settings),
            evaluators,
            timeout_s=settings.eval_timeout_s,
        )
        evaluators = worker.evaluators
    return EvalRunner(
        store,
        evaluators,
        on_stop=worker.stop if worker is not None else None,
        coordinator=coordinator,
        owner=owner,
        saturation=saturation,
        options=RunnerOptions(
            interval_s=settings.eval_interval_s,
            grace_s=settings.eval_grace_s,
            batch_size=settings.eval_batch_size,
            kinds=tuple(settings.eval_kinds),
            sample_rate=settings.eval_sample_rate,
            sample_rates=dict(settings.eval_sample_rates),
            lease_s=settings.eval_lease_s,
            max_lag_s=settings.eval_max_lag_s or None,
            yield_s=settings.eval_yield_s,
        ),
    )


def build_runners(
    settings: Settings,
    store: TraceStore,
    evaluators: Sequence[Evaluator],
    coordinator: Coordinator | None,
    *,
    saturation: Callable[[], float] | None = None,
) -> list[EvalRunner]:
    """``settings.eval_workers`` runners (none when evaluation is off).

    One runner without a coordinator moves the store's cursor with its scores (one process,
    the default); with a coordinator every runner claims ranges (docs/scale-out.md).
    """
    if not evaluators:
        return []
    log.info(
        "evaluators_loaded",
        evaluators=[e.name for e in evaluators],
        workers=settings.eval_workers,
        claims=coordinator is not None,
    )
    out = []
    for i in range(settings.eval_workers):
        r = build_runner(
            settings,
            store,
            evaluators,
            coordinator=coordinator,
            owner=new_owner_id(f"evaluator{i}"),
            saturation=saturation,
        )
        if r is not None:
            out.append(r)
    return out


class _EvalCollector(Collector):
    def __init__(self, runners: Sequence[EvalRunner]) -> None:
        self.runners = list(runners)

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        rs = self.runners
        yield GaugeMetricFamily(
            "sightline_eval_lag_seconds",
            "Seconds the oldest committed span not yet evaluated has waited (0 when caught up).",
            value=max(r.lag_s() for r in rs),
        )
        spans = CounterMetricFamily("sightline_eval_spans", "Spans evaluated online.")
        spans.add_metric([], sum(r.num_spans for r in rs))
        yield spans
        shed = CounterMetricFamily(
            "sightline_eval_shed_spans",
            "Spans not evaluated because the evaluation lag was over eval_max_lag_s.",
        )
        shed.add_metric([], sum(r.num_shed for r in rs))
        yield shed
        yielded = CounterMetricFamily(
            "sightline_eval_yield_seconds",
            "Seconds the online evaluation waited for bursts of ingestion to pass (eval_yield_s).",
        )
        yielded.add_metric([], sum(r.yielded_s for r in rs))
        yield yielded
        scores = CounterMetricFamily(
            "sightline_eval_scores", "Scores appended online.", labels=["evaluator"]
        )
        failed = CounterMetricFamily(
            "sightline_eval_failed",
            "Cases whose evaluator raised (stored as failed scores).",
            labels=["evaluator"],
        )
        for ev in rs[0].evaluators:
            scores.add_metric([ev.name], sum(r.num_scores.get(ev.name, 0) for r in rs))
            failed.add_metric([ev.name], sum(r.num_failed.get(ev.name, 0) for r in rs))
        yield scores
        yield failed


def register_eval_metrics(
    registry: CollectorRegistry, runner: EvalRunner | Sequence[EvalRunner]
) -> None:
    """Expose the runners' lag (the largest) and counts (summed) on /metrics."""
    runners = [runner] if isinstance(runner, EvalRunner) else list(runner)
    if runners:
        registry.register(_EvalCollector(runners))
