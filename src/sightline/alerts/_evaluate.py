"""Pure rule evaluation: the window aggregates a rule needs, and what they mean for it.

``aggs_for`` says which windowed aggregates a rule needs; the monitor asks the store for all
rules' aggregates at once; ``observe`` turns a rule's values into one :class:`Observation` per
group. No IO here: the same inputs give the same observations (tests feed them by hand).
"""

from __future__ import annotations

import dataclasses
import math
import operator
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sightline.alerts._lifecycle import Observation
from sightline.alerts._rules import (
    AnomalyRule,
    CompositeRule,
    DriftRule,
    NoTrafficRule,
    Rule,
    SloRule,
    ThresholdRule,
    format_duration,
)
from sightline.model import DriftResult
from sightline.store.base import METRICS, MetricDef, WindowAgg, WindowValue

__all__ = [
    "SloStatus",
    "aggs_for",
    "budget_remaining",
    "burn_rate",
    "compare",
    "ewma_z",
    "group_key",
    "missing_metrics",
    "observe",
    "robust_z",
]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


def compare(value: float, op: str, threshold: float) -> bool:
    """``value op threshold``."""
    return _OPS[op](value, threshold)


def group_key(group: Mapping[str, Any]) -> str:
    """A stable string for a group (the dedup key of alerts with the rule name)."""
    return "|".join(f"{k}={'' if v is None else v}" for k, v in sorted(group.items()))


def _fmt(v: float | None) -> str:
    if v is None:
        return "none"
    return f"{v:.4g}"


def _where(group: Mapping[str, Any]) -> str:
    return f" ({', '.join(f'{k}={v}' for k, v in group.items())})" if group else ""


# -- which metrics a rule reads ----------------------------------------------------------------


def metrics_of(rule: Rule) -> list[str]:
    """The named metrics ``rule`` reads."""
    if isinstance(rule, ThresholdRule | AnomalyRule):
        return [rule.metric]
    if isinstance(rule, CompositeRule):
        return [c.metric for c in rule.conditions]
    if isinstance(rule, SloRule):
        if rule.sli == "availability":
            return ["error_rate"]
        return [rule.metric or "latency_ms"]
    if isinstance(rule, NoTrafficRule):
        return ["requests"]
    return []


def missing_metrics(rule: Rule, metrics: Mapping[str, MetricDef] = METRICS) -> list[str]:
    """Metrics the rule reads that the store does not know (yet)."""
    return [m for m in metrics_of(rule) if m not in metrics]


def _agg(metric: MetricDef, agg: str | None) -> str:
    return agg or metric.default_agg


# -- the aggregates a rule needs ---------------------------------------------------------------


def aggs_for(rule: Rule, metrics: Mapping[str, MetricDef] = METRICS) -> list[WindowAgg]:
    """The windowed aggregates ``rule`` needs this tick (drift rules need none)."""
    if isinstance(rule, ThresholdRule | AnomalyRule):
        m = metrics[rule.metric]
        return [
            WindowAgg(
                metric=m,
                agg=_agg(m, rule.agg),
                window_s=rule.window,
                filters=rule.filter,
                group_by=tuple(rule.group_by),
            )
        ]
    if isinstance(rule, CompositeRule):
        out = []
        for c in rule.conditions:
            m = metrics[c.metric]
            out.append(
                WindowAgg(
                    metric=m,
                    agg=_agg(m, c.agg),
                    window_s=rule.window,
                    filters=rule.filter,
                    group_by=tuple(rule.group_by),
                )
            )
        return out
    if isinstance(rule, SloRule):
        return [_slo_agg(rule, w, metrics) for w in _slo_windows(rule)]
    if isinstance(rule, NoTrafficRule):
        req = metrics["requests"]
        gb = tuple(rule.group_by)
        return [
            WindowAgg(
                metric=req, agg="count", window_s=rule.lookback, filters=rule.filter, group_by=gb
            ),
            WindowAgg(
                metric=req, agg="count", window_s=rule.window, filters=rule.filter, group_by=gb
            ),
        ]
    return []


def _slo_windows(rule: SloRule) -> list[int]:
    ws = [rule.period]
    for b in rule.burn_alerts:
        for w in (b.long, b.short):
            if w not in ws:
                ws.append(w)
    return ws


def _slo_agg(rule: SloRule, window_s: int, metrics: Mapping[str, MetricDef]) -> WindowAgg:
    if rule.sli == "availability":
        return WindowAgg(
            metric=metrics["error_rate"], agg="rate", window_s=window_s, filters=rule.filter
        )
    if rule.sli == "latency":
        return WindowAgg(
            metric=metrics[rule.metric or "latency_ms"],
            agg="share_above",
            above=rule.threshold_ms,
            window_s=window_s,
            filters=rule.filter,
        )
    m = metrics[rule.metric or ""]
    return WindowAgg(metric=m, agg=m.default_agg, window_s=window_s, filters=rule.filter)


# -- SLO math ----------------------------------------------------------------------------------


def burn_rate(bad_ratio: float | None, objective: float) -> float | None:
    """How fast the error budget burns: the bad share over the share the objective allows.

    1.0 spends exactly the budget over the SLO period; 14.4 spends 2% of a 30-day budget in
    one hour (the SRE workbook's fast-burn page).
    """
    if bad_ratio is None:
        return None
    return bad_ratio / (1.0 - objective)


def budget_remaining(bad_ratio: float | None, objective: float) -> float | None:
    """Share of the period's error budget left: 1 - bad share / allowed share (< 0: overspent)."""
    if bad_ratio is None:
        return None
    return 1.0 - bad_ratio / (1.0 - objective)


@dataclasses.dataclass(frozen=True, slots=True)
class SloStatus:
    """An SLO's state at one tick."""

    name: str
    sli: str
    objective: float
    period: str
    bad_ratio: float | None
    """Bad share over the whole period."""
    budget_remaining: float | None
    burn_rates: dict[str, float | None]
    """Burn rate per window (``1h``, ``5m``...)."""
    num_events: int


# -- anomaly math ------------------------------------------------------------------------------


def robust_z(history: Sequence[float], value: float) -> tuple[float, float, float]:
    """(z, center, scale): distance of ``value`` from the median in MADs scaled to σ.

    The scale is 1.4826·MAD (σ for normal data), falling back to the mean absolute deviation
    (·1.2533) when more than half the history is one value, and to 1e-9 when all of it is.
    """
    center = statistics.median(history)
    dev = [abs(x - center) for x in history]
    scale = 1.4826 * statistics.median(dev)
    if scale == 0:
        scale = 1.2533 * statistics.fmean(dev)
    if scale == 0:
        scale = 1e-9
    return (value - center) / scale, center, scale


def ewma_z(history: Sequence[float], value: float, alpha: float) -> tuple[float, float, float]:
    """(z, center, scale) against an exponentially weighted mean and standard deviation."""
    mean = history[0]
    var = 0.0
    for x in history[1:]:
        d = x - mean
        incr = alpha * d
        mean += incr
        var = (1 - alpha) * (var + d * incr)
    scale = math.sqrt(var) if var > 0 else 1e-9
    return (value - mean) / scale, mean, scale


# -- observations ------------------------------------------------------------------------------


def observe(
    rule: Rule,
    values: Sequence[Sequence[WindowValue]],
    *,
    baselines: Mapping[str, Sequence[float]] | None = None,
    drift: Sequence[DriftResult] = (),
    slo_out: list[SloStatus] | None = None,
) -> list[Observation]:
    """One observation per group the rule saw. ``values`` follow ``aggs_for(rule)``.

    ``baselines`` (anomaly rules): the baseline window values per group key. ``drift`` (drift
    rules): recent drift results. An SLO appends its :class:`SloStatus` to ``slo_out``.
    """
    if isinstance(rule, ThresholdRule):
        return _threshold(rule, values[0])
    if isinstance(rule, CompositeRule):
        return _composite(rule, values)
    if isinstance(rule, SloRule):
        obs, status = _slo(rule, values)
        if slo_out is not None:
            slo_out.append(status)
        return obs
    if isinstance(rule, AnomalyRule):
        return _anomaly(rule, values[0], baselines or {})
    if isinstance(rule, NoTrafficRule):
        return _no_traffic(rule, values[0], values[1])
    return _drift(rule, drift)


def _label(metric: str, agg: str | None) -> str:
    m = METRICS.get(metric)
    a = agg or (m.default_agg if m else None)
    return f"{metric} {a}" if a and m is not None and m.formula is None else metric


def _counts(metric: str, agg: str | None) -> bool:
    """Whether ``metric`` under ``agg`` is a count or a sum, which is 0 over no span."""
    m = METRICS.get(metric)
    return m is not None and _agg(m, agg) in ("count", "sum")


def _threshold(rule: ThresholdRule, values: Sequence[WindowValue]) -> list[Observation]:
    out = []
    w = format_duration(rule.window)
    if not values and not rule.group_by and _counts(rule.metric, rule.agg):
        # No span in the window: a count or sum of nothing is 0, not "no data" ("requests
        # count < 5" resolved when traffic stopped altogether, the very case it is for).
        values = [WindowValue({}, 0.0, 0)]
    for v in values:
        enough = v.num_spans >= rule.min_requests
        breach = enough and v.value is not None and compare(v.value, rule.op, rule.threshold)
        summary = (
            f"{_label(rule.metric, rule.agg)} = {_fmt(v.value)} {rule.op} {rule.threshold:g}"
            f" over {w}{_where(v.group)}"
            if breach
            else f"{_label(rule.metric, rule.agg)} = {_fmt(v.value)} over {w}{_where(v.group)}"
        )
        out.append(
            Observation(
                v.group,
                v.value,
                rule.threshold,
                breach,
                v.num_spans,
                summary=summary,
                details={"num_spans": v.num_spans, "min_requests": rule.min_requests},
            )
        )
    return out


def _composite(rule: CompositeRule, values: Sequence[Sequence[WindowValue]]) -> list[Observation]:
    groups: dict[str, dict[str, Any]] = {}
    per: list[dict[str, WindowValue]] = []
    for vs in values:
        d = {}
        for v in vs:
            k = group_key(v.group)
            groups.setdefault(k, v.group)
            d[k] = v
        per.append(d)
    zero = [_counts(c.metric, c.agg) for c in rule.conditions]
    if not groups and not rule.group_by and any(zero):
        groups[group_key({})] = {}  # no span at all: its counts and sums are 0 (as _threshold)
    out = []
    for k, group in groups.items():
        members: list[dict[str, Any]] = []
        n = 0
        for c, d, z in zip(rule.conditions, per, zero, strict=True):
            wv = d.get(k)
            # a group (or, without group_by, the window) with no span for this condition:
            # a count or sum is 0 there, anything else has no value
            value = wv.value if wv is not None else (0.0 if z else None)
            hit = value is not None and compare(value, c.op, c.threshold)
            members.append({"condition": c.label, "value": value, "breached": hit})
            n += hit
        spans = max((d[k].num_spans for d in per if k in d), default=0)
        breach = n >= rule.k and spans >= rule.min_requests
        breached = [str(m["condition"]) for m in members if m["breached"]]
        summary = (
            f"{n} of {len(rule.conditions)} conditions breached (k={rule.k})"
            f"{_where(group)}: {'; '.join(breached) or 'none'}"
        )
        out.append(
            Observation(
                group,
                float(n),
                float(rule.k),
                breach,
                spans,
                summary=summary,
                details={"conditions": members, "num_spans": spans},
            )
        )
    return out


def _slo(
    rule: SloRule, values: Sequence[Sequence[WindowValue]]
) -> tuple[list[Observation], SloStatus]:
    windows = _slo_windows(rule)
    bad: dict[int, float | None] = {}
    counts: dict[int, int] = {}
    for w, vs in zip(windows, values, strict=True):
        v = vs[0] if vs else None
        ratio = v.value if v is not None else None
        if ratio is not None and rule.sli == "quality" and rule.measures == "good":
            ratio = 1.0 - ratio
        bad[w] = ratio
        counts[w] = v.num_spans if v is not None else 0
    burns = {format_duration(w): burn_rate(bad[w], rule.objective) for w in windows}
    status = SloStatus(
        name=rule.name,
        sli=rule.sli,
        objective=rule.objective,
        period=format_duration(rule.period),
        bad_ratio=bad[rule.period],
        budget_remaining=budget_remaining(bad[rule.period], rule.objective),
        burn_rates=burns,
        num_events=counts[rule.period],
    )
    out = []
    for b in rule.burn_alerts:
        long_b = burn_rate(bad[b.long], rule.objective)
        short_b = burn_rate(bad[b.short], rule.objective)
        breach = (
            long_b is not None and short_b is not None and long_b > b.factor and short_b > b.factor
        )
        lw, sw = format_duration(b.long), format_duration(b.short)
        summary = (
            f"SLO {rule.name} ({rule.objective:.4g}) burning {_fmt(long_b)}x over {lw} and"
            f" {_fmt(short_b)}x over {sw} (alert above {b.factor:g}x);"
            f" error budget left {_fmt(status.budget_remaining)}"
        )
        out.append(
            Observation(
                {"burn_window": f"{lw}/{sw}"},
                long_b,
                b.factor,
                breach,
                counts[b.long],
                severity=b.severity,
                summary=summary,
                details={
                    "burn_rate_long": long_b,
                    "burn_rate_short": short_b,
                    "bad_ratio_long": bad[b.long],
                    "bad_ratio_short": bad[b.short],
                    "budget_remaining": status.budget_remaining,
                },
            )
        )
    return out, status


def _anomaly(
    rule: AnomalyRule, values: Sequence[WindowValue], baselines: Mapping[str, Sequence[float]]
) -> list[Observation]:
    out = []
    w = format_duration(rule.window)
    for v in values:
        hist = baselines.get(group_key(v.group), ())
        if (
            v.value is None
            or len(hist) < rule.min_baseline_points
            or v.num_spans < rule.min_requests
        ):
            out.append(
                Observation(
                    v.group,
                    v.value,
                    None,
                    False,
                    v.num_spans,
                    summary=f"{_label(rule.metric, rule.agg)} = {_fmt(v.value)} over {w}"
                    f"{_where(v.group)}: {len(hist)} baseline points",
                    details={"baseline_points": len(hist)},
                )
            )
            continue
        if rule.method == "ewma":
            z, center, scale = ewma_z(hist, v.value, rule.alpha)
        else:
            z, center, scale = robust_z(hist, v.value)
        k = rule.threshold
        if rule.direction == "up":
            breach, bound = z > k, center + k * scale
        elif rule.direction == "down":
            breach, bound = z < -k, center - k * scale
        else:
            breach = abs(z) > k
            bound = center + k * scale if z >= 0 else center - k * scale
        out.append(
            Observation(
                v.group,
                v.value,
                bound,
                breach,
                v.num_spans,
                summary=f"{_label(rule.metric, rule.agg)} = {_fmt(v.value)} over {w}"
                f"{_where(v.group)}: {z:+.1f}σ from its {format_duration(rule.baseline)}"
                f" baseline {_fmt(center)} (alert beyond {k:g}σ)",
                details={
                    "z": z,
                    "baseline_center": center,
                    "baseline_scale": scale,
                    "baseline_points": len(hist),
                    "method": rule.method,
                },
            )
        )
    return out


def _no_traffic(
    rule: NoTrafficRule, lookback: Sequence[WindowValue], window: Sequence[WindowValue]
) -> list[Observation]:
    now = {group_key(v.group): v.num_spans for v in window}
    out = []
    w = format_duration(rule.window)
    for v in lookback:
        if v.num_spans < rule.min_requests:
            continue
        n = now.get(group_key(v.group), 0)
        out.append(
            Observation(
                v.group,
                float(n),
                0.0,
                n == 0,
                n,
                summary=f"no spans for {w}{_where(v.group)}"
                f" ({v.num_spans} in the last {format_duration(rule.lookback)})"
                if n == 0
                else f"{n} spans in the last {w}{_where(v.group)}",
                details={"num_spans_lookback": v.num_spans},
            )
        )
    return out


def _drift(rule: DriftRule, results: Sequence[DriftResult]) -> list[Observation]:
    latest: dict[tuple[str, str, str], DriftResult] = {}
    for r in results:  # newest first
        if rule.job is not None and r.job != rule.job:
            continue
        if rule.detector is not None and r.detector != rule.detector:
            continue
        if r.status != "ok":
            continue
        latest.setdefault((r.job, r.detector, r.feature), r)
    out = []
    for (job, det, feat), r in latest.items():
        group = {"job": job, "detector": det, "feature": feat}
        out.append(
            Observation(
                group,
                r.score,
                r.threshold,
                r.fired,
                r.num_current,
                summary=f"drift {det} on {feat} ({job}): score {_fmt(r.score)}"
                f" threshold {_fmt(r.threshold)} p={_fmt(r.p_value)}",
                details={"result_id": r.result_id, "p_value": r.p_value},
            )
        )
    return out
