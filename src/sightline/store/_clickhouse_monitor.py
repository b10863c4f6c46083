"""Monitoring on ClickHouse: metrics, the monitor's windows, alert rules and their state.

The DuckDB store (``_duckdb.py``, ``_duckdb_windows.py``, ``_duckdb_alerts.py``) is the spec.
What differs here, and why:

- Rows that change (alerts, silences, deliveries) are ``ReplacingMergeTree`` rows with a
  ``_version``, read with ``FINAL``: a save appends the new state and the latest one wins. The
  version is the clock, or above the row's stored version when that is larger (a node whose
  clock runs behind still replaces what another node saved).
- ``save_alerts`` writes the deliveries, then the alerts, then their events: ClickHouse has no
  transactions, so a crash between them leaves deliveries of a state change that was not saved
  (the next tick makes it again: a notification may then be sent twice, never lost), or the
  alerts' new state without those events.
- A rule's next version is the highest + 1 under a uniqueness claim on the number
  (``CHBase._create_unique``): of two servers adding a version of the same rule at the same
  moment, one writes N and the other, finding N taken, N + 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson

from sightline.errors import ConfigError, Conflict, StoreError
from sightline.model import Alert, AlertEvent, Delivery, RuleVersion, Silence
from sightline.store._clickhouse_base import CH_DT as _DT
from sightline.store._clickhouse_base import CH_NDT as _NDT
from sightline.store._clickhouse_base import CH_NF as _NF
from sightline.store._clickhouse_base import CH_NSTR as _NSTR
from sightline.store._clickhouse_base import CHBase, KeyTaken, ch_ts
from sightline.store._clickhouse_base import ch_aware as _aware
from sightline.store._clickhouse_base import ch_json as _json
from sightline.store._clickhouse_base import ch_us as _us
from sightline.store._clickhouse_metrics import (
    CH_AGG,
    ch_float,
    ch_formula,
    ch_quantile,
    guardrail_source,
)
from sightline.store._duckdb_windows import SPAN_METRICS
from sightline.store.base import (
    DIMENSIONS,
    METRICS,
    OUTCOME_FORMULA,
    AlertQuery,
    MetricQuery,
    MetricSeries,
    WindowAgg,
    WindowValue,
)

__all__ = ["MonitorMixin"]


def _table(name: str, columns: Sequence[tuple[str, str]], engine: str) -> str:
    cols = ", ".join(f"`{c}` {t}" for c, t in columns)
    return f"CREATE TABLE IF NOT EXISTS {name} ({cols}) ENGINE = {engine}"


_RULE_COLUMNS = [
    ("project_id", "String"),
    ("name", "String"),
    ("version", "Int32"),
    ("spec", "String"),
    ("source", "LowCardinality(String)"),
    ("deleted", "Bool"),
    ("author", _NSTR),
    ("created_at", _DT),
]
_RULE_FIELDS = tuple(c for c, _ in _RULE_COLUMNS)
_RULE_ATTEMPTS = 8
"""Version numbers tried by one add_rule_version while others take them."""

_ALERT_COLUMNS = [
    ("project_id", "String"),
    ("alert_id", "String"),
    ("rule", "String"),
    ("rule_version", "Int32"),
    ("rule_type", "LowCardinality(String)"),
    ("severity", "LowCardinality(String)"),
    ("group", "String"),
    ("group_key", "String"),
    ("status", "LowCardinality(String)"),
    ("value", _NF),
    ("threshold", _NF),
    ("window", _NSTR),
    ("pending_since", _DT),
    ("started_at", _NDT),
    ("ended_at", _NDT),
    ("last_evaluated_at", _DT),
    ("last_notified_at", _NDT),
    ("acknowledged_at", _NDT),
    ("acknowledged_by", _NSTR),
    ("ack_expires_at", _NDT),
    ("summary", "String"),
    ("details", "String"),
]
_ALERT_FIELDS = tuple(c for c, _ in _ALERT_COLUMNS)
_ALERT_TIMES = frozenset(c for c, t in _ALERT_COLUMNS if "DateTime" in t)

_EVENT_COLUMNS = [
    ("project_id", "String"),
    ("event_id", "String"),
    ("alert_id", "String"),
    ("rule", "String"),
    ("kind", "LowCardinality(String)"),
    ("at", _DT),
    ("value", _NF),
    ("message", "String"),
]
_EVENT_FIELDS = tuple(c for c, _ in _EVENT_COLUMNS)

_SILENCE_COLUMNS = [
    ("project_id", "String"),
    ("silence_id", "String"),
    ("matchers", "String"),
    ("starts_at", _DT),
    ("ends_at", _DT),
    ("created_by", _NSTR),
    ("comment", _NSTR),
    ("created_at", _DT),
]
_SILENCE_FIELDS = tuple(c for c, _ in _SILENCE_COLUMNS)

_DELIVERY_COLUMNS = [
    ("project_id", "String"),
    ("delivery_id", "String"),
    ("alert_id", "String"),
    ("channel", "String"),
    ("event", "LowCardinality(String)"),
    ("status", "LowCardinality(String)"),
    ("attempts", "Int32"),
    ("last_error", _NSTR),
    ("payload", "String"),
    ("created_at", _DT),
    ("updated_at", _DT),
]
_DELIVERY_FIELDS = tuple(c for c, _ in _DELIVERY_COLUMNS)

_VERSION_COL = [("_version", "UInt64")]


def _cols(fields: Sequence[str], prefix: str = "") -> str:
    return ", ".join(f"{prefix}`{f}`" for f in fields)


class MonitorMixin(CHBase):
    """query_metric, query_windows, alert rules, alerts, silences and deliveries."""

    DDL: ClassVar[list[str]] = [
        # Rules are versioned and append-only; a rule is the highest version of its name.
        _table("alert_rules", _RULE_COLUMNS, "MergeTree ORDER BY (project_id, name, version)"),
        # One row per (rule, group) episode, replaced as it moves; the latest _version wins.
        _table(
            "alerts",
            _ALERT_COLUMNS + _VERSION_COL,
            "ReplacingMergeTree(_version) ORDER BY (project_id, alert_id)",
        ),
        # Events are few (transitions, not evaluations): monthly partitions, not daily, keep
        # the parts few. _seq keeps the order of events saved together at the same time.
        _table(
            "alert_events",
            [*_EVENT_COLUMNS, ("_seq", "UInt64")],
            "MergeTree PARTITION BY toYYYYMM(`at`) ORDER BY (project_id, alert_id, `at`, _seq)",
        ),
        _table(
            "alert_silences",
            _SILENCE_COLUMNS + _VERSION_COL,
            "ReplacingMergeTree(_version) ORDER BY (project_id, silence_id)",
        ),
        _table(
            "alert_deliveries",
            _DELIVERY_COLUMNS + _VERSION_COL,
            "ReplacingMergeTree(_version) ORDER BY (project_id, delivery_id)",
        ),
    ]

    # -- metrics -------------------------------------------------------------------------------

    def _delegate(self, method: str, what: str, query: MetricQuery) -> list[MetricSeries]:
        fn: Callable[[MetricQuery], list[MetricSeries]] | None = getattr(self, method, None)
        if fn is None:
            raise StoreError(f"this ClickHouse store cannot compute {what} ({method} missing)")
        return fn(query)

    def query_metric(self, query: MetricQuery) -> list[MetricSeries]:
        m = query.metric
        if m.otel_name is not None:
            return self._delegate("_query_otel_metric", "OTLP metrics", query)
        if m.score_name is not None:
            return self._delegate("_query_score_metric", "score metrics", query)
        if m.formula == OUTCOME_FORMULA:
            return self._delegate("_query_outcome_metric", "outcome metrics", query)
        guardrail = False
        if m.formula is not None:
            f = ch_formula(m)
            value, guardrail = f.expr, f.guardrail
        elif m.column is not None:
            if query.agg not in CH_AGG:
                raise ConfigError(f"agg {query.agg!r} does not apply to metric {m.name!r}")
            value = CH_AGG[query.agg].format(f"`{m.column}`")
        else:
            raise ConfigError(f"metric {m.name!r} has neither a column nor a formula")
        params: dict[str, Any] = {
            "project_id": query.project_id,
            "start": ch_ts(query.start),
            "end": ch_ts(query.end),
        }
        where = [
            "project_id = {project_id:String}",
            "start_time >= {start:DateTime64(6, 'UTC')}",
            "start_time < {end:DateTime64(6, 'UTC')}",
        ]
        kind = query.filters.get("kind", m.kind)
        if kind is not None:
            where.append("kind = {kind:String}")
            params["kind"] = kind
        for i, (dim, v) in enumerate(query.filters.items()):
            if dim == "kind":
                continue
            if dim not in DIMENSIONS:
                raise ConfigError(f"cannot filter by {dim!r}")
            where.append(f"`{dim}` = {{f{i}:String}}")
            params[f"f{i}"] = v
        for dim in query.group_by:
            if dim not in DIMENSIONS:
                raise ConfigError(f"cannot group by {dim!r}")
        groups = [f"`{d}`" for d in query.group_by]
        step_us = int(query.step_s) * 1_000_000 if query.step_s else 0
        if step_us:
            # the bucket's index from the query's start (time_bucket with that origin)
            bucket = "intDiv(toUnixTimestamp64Micro(start_time) - {origin:Int64}, {step:Int64})"
            params["origin"] = _us(query.start)
            params["step"] = step_us
        else:
            bucket = "0"
        w = " AND ".join(where)
        source = (
            guardrail_source(w, with_scores=hasattr(self, "add_scores"))
            if guardrail
            else f"spans WHERE {w}"
        )
        select = ", ".join([f"{bucket} AS _t", *groups, f"{value} AS _v"])
        sql = (
            f"SELECT {select} FROM {source}"  # noqa: S608 - names are checked dimensions
            f" GROUP BY {', '.join(['_t', *groups])} ORDER BY {', '.join([*groups, '_t'])}"
        )
        if guardrail:
            sql += " SETTINGS join_use_nulls = 1"
        rows = self._q(sql, params)
        series: dict[tuple[Any, ...], MetricSeries] = {}
        start = query.start if query.start.tzinfo else query.start.replace(tzinfo=UTC)
        start = start.astimezone(UTC)
        for row in rows:
            key = tuple(row[1:-1])
            s = series.get(key)
            if s is None:
                s = series[key] = MetricSeries(dict(zip(query.group_by, key, strict=True)), [])
            t = start + timedelta(microseconds=int(row[0]) * step_us)
            s.points.append((t, ch_float(row[-1])))
        return list(series.values())

    # -- the monitor's windows -------------------------------------------------------------------

    def query_windows(
        self, project_id: str, end: datetime, aggs: Sequence[WindowAgg]
    ) -> list[list[WindowValue]]:
        out: list[list[WindowValue]] = [[] for _ in aggs]
        batched: list[tuple[int, WindowAgg]] = []
        fallback: list[tuple[int, WindowAgg]] = []
        otel: list[tuple[int, WindowAgg]] = []
        for i, a in enumerate(aggs):
            if a.metric.otel_name is not None:
                otel.append((i, a))
                continue
            _check_dims(a)
            if a.window_s <= 0:
                raise ConfigError("window must be positive")
            if a.metric.name in SPAN_METRICS and METRICS.get(a.metric.name) == a.metric:
                batched.append((i, a))
            else:
                fallback.append((i, a))
        # A fallback metric still needs its span count per group (min_requests).
        count_of: dict[int, int] = {}
        requests = METRICS["requests"]
        for i, a in fallback:
            count_of[i] = len(aggs) + len(count_of)
            count_filters = {k: v for k, v in a.filters.items() if k != "kind"}
            if a.metric.kind not in (None, "llm"):
                count_filters["kind"] = a.metric.kind
            batched.append(
                (
                    count_of[i],
                    WindowAgg(
                        metric=requests,
                        agg="count",
                        window_s=a.window_s,
                        filters=count_filters,
                        group_by=a.group_by,
                    ),
                )
            )
        extra: dict[int, list[WindowValue]] = {}
        passes: dict[tuple[Any, ...], list[tuple[int, WindowAgg]]] = {}
        for i, a in batched:
            kind = a.filters.get("kind", a.metric.kind)
            flt = tuple(sorted((k, v) for k, v in a.filters.items() if k != "kind"))
            passes.setdefault((kind, flt, a.window_s), []).append((i, a))
        for (kind, flt, window_s), items in passes.items():
            results = self._window_pass(project_id, end, kind, dict(flt), window_s, items)
            for i, values in results.items():
                if i < len(aggs):
                    out[i] = values
                else:
                    extra[i] = values
        if otel:
            fn: Callable[[str, datetime, WindowAgg], list[WindowValue]] | None = getattr(
                self, "_otel_windows", None
            )
            if fn is None:
                raise StoreError("this ClickHouse store cannot compute OTLP metrics yet")
            for i, a in otel:
                out[i] = fn(project_id, end, a)
        for i, a in fallback:
            counts = {_gkey(v.group): v.num_spans for v in extra.get(count_of[i], [])}
            series = self.query_metric(
                MetricQuery(
                    project_id=project_id,
                    metric=a.metric,
                    agg=a.agg,  # type: ignore[arg-type]
                    start=end - timedelta(seconds=a.window_s),
                    end=end,
                    group_by=a.group_by,
                    filters=dict(a.filters),
                )
            )
            out[i] = [
                WindowValue(
                    s.group, s.points[0][1] if s.points else None, counts.get(_gkey(s.group), 0)
                )
                for s in series
            ]
        return out

    def _window_pass(
        self,
        project_id: str,
        end: datetime,
        kind: str | None,
        filters: dict[str, str],
        window_s: int,
        items: list[tuple[int, WindowAgg]],
    ) -> dict[int, list[WindowValue]]:
        # Quantiles of one column share one sort (quantilesExactInclusive with every q).
        quantiles: dict[str, list[float]] = {}
        for _, a in items:
            q = _quantile_of(a)
            if q is not None and q[1] not in quantiles.setdefault(q[0], []):
                quantiles[q[0]].append(q[1])
        exprs: dict[str, int] = {}
        q_expr = {c: ch_quantile(c, qs) for c, qs in quantiles.items()}
        for e in q_expr.values():
            exprs.setdefault(e, len(exprs))
        for _, a in items:
            if _quantile_of(a) is None:
                exprs.setdefault(_window_expr(a), len(exprs))
        sets: list[tuple[str, ...]] = []
        for _, a in items:
            if a.group_by not in sets:
                sets.append(a.group_by)
        dims: list[str] = []
        for s in sets:
            for d in s:
                if d not in dims:
                    dims.append(d)
        end_ts = ch_ts(end)
        assert end_ts is not None  # noqa: S101 - end is a datetime
        params: dict[str, Any] = {
            "project_id": project_id,
            "start": end_ts - timedelta(seconds=window_s),
            "end": end_ts,
        }
        where = [
            "project_id = {project_id:String}",
            "start_time >= {start:DateTime64(6, 'UTC')}",
            "start_time < {end:DateTime64(6, 'UTC')}",
        ]
        if kind is not None:
            where.append("kind = {kind:String}")
            params["kind"] = kind
        for j, (d, v) in enumerate(filters.items()):
            where.append(f"`{d}` = {{f{j}:String}}")
            params[f"f{j}"] = v
        qdims = [f"`{d}`" for d in dims]
        head = [f"grouping({', '.join(qdims)})" if len(sets) > 1 else "0", *qdims, "count()"]
        select = ", ".join(head + list(exprs))
        sql = f"SELECT {select} FROM spans WHERE {' AND '.join(where)}"  # noqa: S608
        if len(sets) > 1:
            grouping = ", ".join("(" + ", ".join(f"`{d}`" for d in s) + ")" for s in sets)
            sql += f" GROUP BY GROUPING SETS ({grouping})"
        elif dims:
            sql += f" GROUP BY {', '.join(qdims)}"
        rows = self._q(sql, params)
        # grouping(d1..dn) has bit (n-1-j) set when d_j is aggregated away in that row's set
        # (the SQL standard's meaning, ClickHouse's default).
        mask_of = {
            s: sum(1 << (len(dims) - 1 - j) for j, d in enumerate(dims) if d not in s)
            if len(sets) > 1
            else 0
            for s in sets
        }
        by_mask: dict[int, list[tuple[Any, ...]]] = {}
        for r in rows:
            by_mask.setdefault(int(r[0]), []).append(r)
        out: dict[int, list[WindowValue]] = {}
        base = 1 + len(dims)
        for i, a in items:
            q = _quantile_of(a)
            if q is not None:
                col = base + 1 + exprs[q_expr[q[0]]]
                at: int | None = quantiles[q[0]].index(q[1])
            else:
                col, at = base + 1 + exprs[_window_expr(a)], None
            values = []
            for r in by_mask.get(mask_of[a.group_by], []):
                n = int(r[base])
                if n == 0:  # the empty grand total of a window without spans
                    continue
                group = {d: r[1 + dims.index(d)] for d in a.group_by}
                got = r[col] if at is None else (r[col][at] if r[col] is not None else None)
                values.append(WindowValue(group, ch_float(got), n))
            out[i] = values
        return out

    # -- alert rules -----------------------------------------------------------------------------

    def add_rule_version(self, rule: RuleVersion) -> RuleVersion:
        # max + 1 under a uniqueness claim on the number (see the module docstring)
        where = {"p": rule.project_id, "n": rule.name}
        for _ in range(_RULE_ATTEMPTS):
            rows = self._q(
                "SELECT max(version) FROM alert_rules"
                " WHERE project_id = {p:String} AND name = {n:String}",
                where,
            )
            version = int(rows[0][0] or 0) + 1 if rows else 1

            def taken(v: int = version) -> bool:
                got = self._q(
                    "SELECT count() FROM alert_rules WHERE project_id = {p:String}"
                    " AND name = {n:String} AND version = {v:Int64}",
                    {**where, "v": v},
                )
                return bool(got[0][0])

            def create(v: int = version) -> None:
                self._insert_rows(
                    "alert_rules",
                    _RULE_FIELDS,
                    [
                        [
                            rule.project_id,
                            rule.name,
                            v,
                            _json(rule.spec),
                            rule.source,
                            rule.deleted,
                            rule.author,
                            ch_ts(rule.created_at),
                        ]
                    ],
                )

            try:
                self._create_unique(
                    "alert_rule_version",
                    f"{rule.project_id}\x00{rule.name}\x00{version}",
                    exists=taken,
                    create=create,
                    what=f"version {version} of alert rule {rule.name!r}",
                )
                break
            except KeyTaken:
                continue
        else:
            raise Conflict(
                f"alert rule {rule.name!r} is being changed by other requests; try again"
            )
        return RuleVersion(
            project_id=rule.project_id,
            name=rule.name,
            version=version,
            spec=rule.spec,
            source=rule.source,
            deleted=rule.deleted,
            author=rule.author,
            created_at=rule.created_at,
        )

    def list_rules(self, project_id: str, *, include_deleted: bool = False) -> list[RuleVersion]:
        rows = self._q(
            f"SELECT {_cols(_RULE_FIELDS)} FROM alert_rules WHERE project_id = {{p:String}}"  # noqa: S608
            " ORDER BY name, version DESC, created_at DESC LIMIT 1 BY name",
            {"p": project_id},
        )
        return [r for r in map(_rule, rows) if include_deleted or not r.deleted]

    def list_rule_versions(self, project_id: str, name: str) -> list[RuleVersion]:
        rows = self._q(
            f"SELECT {_cols(_RULE_FIELDS)} FROM alert_rules"  # noqa: S608
            " WHERE project_id = {p:String} AND name = {n:String} ORDER BY version, created_at",
            {"p": project_id, "n": name},
        )
        return [_rule(r) for r in rows]

    # -- alerts ----------------------------------------------------------------------------------

    def _version_above(self, table: str, id_col: str, ids: Sequence[str]) -> int:
        """A row version above every stored version of these rows (and the clock).

        A monitor taking over from one whose clock ran ahead must still replace its alerts.
        """
        if not ids:
            return self._version()
        rows = self._q(
            f"SELECT max(_version) FROM {table} WHERE `{id_col}` IN {{ids:Array(String)}}",  # noqa: S608
            {"ids": sorted(set(ids))},
        )
        return max(self._version(), int(rows[0][0] or 0) + 1)

    def save_alerts(
        self,
        alerts: Sequence[Alert],
        events: Sequence[AlertEvent],
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        if not alerts and not events and not deliveries:
            return
        try:
            # deliveries first: a notification sent twice is better than one lost
            if deliveries:
                dv = self._version_above(
                    "alert_deliveries", "delivery_id", [d.delivery_id for d in deliveries]
                )
                self._insert_rows(
                    "alert_deliveries",
                    [*_DELIVERY_FIELDS, "_version"],
                    [[*_delivery_row(d), dv + k] for k, d in enumerate(deliveries)],
                )
            if not alerts and not events:
                return
            v = self._version_above("alerts", "alert_id", [a.alert_id for a in alerts])
            # the alerts' new state first: events of a state that was not saved would lie
            self._insert_rows(
                "alerts",
                [*_ALERT_FIELDS, "_version"],
                [[*_alert_row(a), v + k] for k, a in enumerate(alerts)],
            )
            self._insert_rows(
                "alert_events",
                [*_EVENT_FIELDS, "_seq"],
                [[*_event_row(e), v + k] for k, e in enumerate(events)],
            )
        except StoreError as e:
            raise StoreError(f"saving alerts failed: {e}") from e

    def list_alerts(self, query: AlertQuery) -> list[Alert]:
        q = query
        where = ["project_id = {p:String}"]
        params: dict[str, Any] = {"p": q.project_id, "limit": q.limit}
        if q.status:
            where.append("status IN {status:Array(String)}")
            params["status"] = list(q.status)
        if q.rule is not None:
            where.append("rule = {rule:String}")
            params["rule"] = q.rule
        if q.severity is not None:
            where.append("severity = {severity:String}")
            params["severity"] = q.severity
        if q.start is not None:
            where.append("pending_since >= {start:DateTime64(6, 'UTC')}")
            params["start"] = ch_ts(q.start)
        if q.end is not None:
            where.append("pending_since < {end:DateTime64(6, 'UTC')}")
            params["end"] = ch_ts(q.end)
        if q.before is not None:
            where.append("(pending_since, alert_id) < ({b_t:DateTime64(6, 'UTC')}, {b_id:String})")
            params["b_t"] = ch_ts(q.before[0])
            params["b_id"] = q.before[1]
        rows = self._q(
            f"SELECT {_cols(_ALERT_FIELDS)} FROM alerts FINAL"  # noqa: S608
            f" WHERE {' AND '.join(where)}"
            " ORDER BY pending_since DESC, alert_id DESC LIMIT {limit:UInt32}",
            params,
        )
        return [_alert(r) for r in rows]

    def get_alert(self, project_id: str, alert_id: str) -> Alert | None:
        rows = self._q(
            f"SELECT {_cols(_ALERT_FIELDS)} FROM alerts FINAL"  # noqa: S608
            " WHERE project_id = {p:String} AND alert_id = {a:String}",
            {"p": project_id, "a": alert_id},
        )
        return _alert(rows[0]) if rows else None

    def list_active_alerts(self) -> list[Alert]:
        rows = self._q(
            f"SELECT {_cols(_ALERT_FIELDS)} FROM alerts FINAL"  # noqa: S608
            " WHERE status IN ('pending', 'firing') ORDER BY pending_since, alert_id"
        )
        return [_alert(r) for r in rows]

    def list_alert_events(self, project_id: str, alert_id: str) -> list[AlertEvent]:
        rows = self._q(
            f"SELECT {_cols(_EVENT_FIELDS)} FROM alert_events"  # noqa: S608
            " WHERE project_id = {p:String} AND alert_id = {a:String} ORDER BY `at`, _seq",
            {"p": project_id, "a": alert_id},
        )
        out = []
        for r in rows:
            d = dict(zip(_EVENT_FIELDS, r, strict=True))
            d["at"] = d["at"].replace(tzinfo=UTC)
            out.append(AlertEvent(**d))
        return out

    # -- silences and deliveries -----------------------------------------------------------------

    def save_silence(self, silence: Silence) -> None:
        s = silence
        self._insert_rows(
            "alert_silences",
            [*_SILENCE_FIELDS, "_version"],
            [
                [
                    s.project_id,
                    s.silence_id,
                    _json(s.matchers),
                    ch_ts(s.starts_at),
                    ch_ts(s.ends_at),
                    s.created_by,
                    s.comment,
                    ch_ts(s.created_at),
                    self._version_above("alert_silences", "silence_id", [s.silence_id]),
                ]
            ],
        )

    def list_silences(self, project_id: str) -> list[Silence]:
        rows = self._q(
            f"SELECT {_cols(_SILENCE_FIELDS)} FROM alert_silences FINAL"  # noqa: S608
            " WHERE project_id = {p:String} ORDER BY created_at DESC, silence_id",
            {"p": project_id},
        )
        out = []
        for r in rows:
            d = dict(zip(_SILENCE_FIELDS, r, strict=True))
            d["matchers"] = orjson.loads(d["matchers"])
            for f in ("starts_at", "ends_at", "created_at"):
                d[f] = d[f].replace(tzinfo=UTC)
            out.append(Silence(**d))
        return out

    def save_delivery(self, delivery: Delivery) -> None:
        d = delivery
        self._insert_rows(
            "alert_deliveries",
            [*_DELIVERY_FIELDS, "_version"],
            [
                [
                    *_delivery_row(d),
                    self._version_above("alert_deliveries", "delivery_id", [d.delivery_id]),
                ]
            ],
        )

    def list_deliveries(
        self,
        project_id: str | None,
        *,
        alert_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        where = ["1"]
        params: dict[str, Any] = {"limit": limit}
        for col, v in (("project_id", project_id), ("alert_id", alert_id), ("status", status)):
            if v is not None:
                where.append(f"{col} = {{{col}:String}}")
                params[col] = v
        rows = self._q(
            f"SELECT {_cols(_DELIVERY_FIELDS)} FROM alert_deliveries FINAL"  # noqa: S608
            f" WHERE {' AND '.join(where)}"
            " ORDER BY created_at DESC, delivery_id LIMIT {limit:UInt32}",
            params,
        )
        out = []
        for r in rows:
            d = dict(zip(_DELIVERY_FIELDS, r, strict=True))
            d["payload"] = orjson.loads(d["payload"])
            d["created_at"] = d["created_at"].replace(tzinfo=UTC)
            d["updated_at"] = d["updated_at"].replace(tzinfo=UTC)
            out.append(Delivery(**d))
        return out


# -- helpers -------------------------------------------------------------------------------------


def _rule(r: Sequence[Any]) -> RuleVersion:
    return RuleVersion(
        project_id=r[0],
        name=r[1],
        version=int(r[2]),
        spec=orjson.loads(r[3]),
        source=r[4],
        deleted=bool(r[5]),
        author=r[6],
        created_at=r[7].replace(tzinfo=UTC),
    )


def _alert_row(a: Alert) -> list[Any]:
    out: list[Any] = []
    for f in _ALERT_FIELDS:
        v = getattr(a, f)
        if f in ("group", "details"):
            v = _json(v)
        elif f in _ALERT_TIMES:
            v = ch_ts(v)
        out.append(v)
    return out


def _alert(r: Sequence[Any]) -> Alert:
    d = dict(zip(_ALERT_FIELDS, r, strict=True))
    for f in _ALERT_TIMES:
        d[f] = _aware(d[f])
    d["group"] = orjson.loads(d["group"])
    d["details"] = orjson.loads(d["details"])
    d["rule_version"] = int(d["rule_version"])
    return Alert(**d)


def _event_row(e: AlertEvent) -> list[Any]:
    return [e.project_id, e.event_id, e.alert_id, e.rule, e.kind, ch_ts(e.at), e.value, e.message]


def _delivery_row(d: Delivery) -> list[Any]:
    return [
        d.project_id,
        d.delivery_id,
        d.alert_id,
        d.channel,
        d.event,
        d.status,
        d.attempts,
        d.last_error,
        _json(d.payload),
        ch_ts(d.created_at),
        ch_ts(d.updated_at),
    ]


def _gkey(group: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted(group.items()))


def _check_dims(a: WindowAgg) -> None:
    for d in (*a.filters, *a.group_by):
        if d != "kind" and d not in DIMENSIONS:
            raise ConfigError(f"cannot filter or group by {d!r}")
    if "kind" in a.group_by:
        raise ConfigError("cannot group by kind in a windowed aggregate")


_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def _quantile_of(a: WindowAgg) -> tuple[str, float] | None:
    """(column, q) when ``a`` is a plain quantile of a span column, else None."""
    m = a.metric
    if a.agg in _QUANTILES and m.formula is None and m.column is not None:
        return m.column, _QUANTILES[a.agg]
    return None


def _window_expr(a: WindowAgg) -> str:
    m = a.metric
    if a.agg == "share_above":
        if m.column is None or a.above is None or not math.isfinite(a.above):
            raise ConfigError(f"share_above needs a column metric and a finite bound ({m.name})")
        col = f"`{m.column}`"
        # repr of a finite float is digits, '.', 'e' and a sign: safe to inline.
        return f"avg(multiIf({col} IS NULL, NULL, {col} > {float(a.above)!r}, 1.0, 0.0))"
    if m.formula is not None:
        return ch_formula(m).expr
    if m.column is None:
        raise ConfigError(f"metric {m.name!r} has neither a column nor a formula")
    if a.agg not in CH_AGG:
        raise ConfigError(f"agg {a.agg!r} does not apply to metric {m.name!r}")
    return CH_AGG[a.agg].format(f"`{m.column}`")
