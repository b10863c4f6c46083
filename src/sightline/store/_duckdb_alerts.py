"""Alert rules (versioned), alerts, their events, silences, deliveries and drift results."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb
import orjson

from sightline.errors import StoreError
from sightline.model import Alert, AlertEvent, Delivery, DriftResult, RuleVersion, Silence
from sightline.store.base import AlertQuery, DriftQuery, SampleQuery, SpanSample

if TYPE_CHECKING:
    from sightline.store._duckdb import DuckDBStore

__all__ = [
    "SAVE_DELIVERY",
    "add_drift_results",
    "add_rule_version",
    "delivery_row",
    "get_alert",
    "list_active_alerts",
    "list_alert_events",
    "list_alerts",
    "list_deliveries",
    "list_drift_results",
    "list_rule_versions",
    "list_rules",
    "list_silences",
    "sample_spans",
    "save_alerts",
    "save_delivery",
    "save_silence",
]


def _ts(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def _aware(dt: datetime | None) -> datetime | None:
    return dt.replace(tzinfo=UTC) if dt is not None else None


def _json(v: Any) -> str:
    return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()


# -- rules -------------------------------------------------------------------------------------

_RULE_COLS = "project_id, name, version, spec, source, deleted, author, created_at"


def _rule(r: tuple[Any, ...]) -> RuleVersion:
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


def add_rule_version(store: DuckDBStore, rule: RuleVersion) -> RuleVersion:
    with store._admin_lock, store._cursor() as cur:
        row = cur.execute(
            "SELECT coalesce(max(version), 0) FROM alert_rules WHERE project_id = ? AND name = ?",
            [rule.project_id, rule.name],
        ).fetchall()
        version = int(row[0][0]) + 1
        cur.execute(
            f"INSERT INTO alert_rules ({_RULE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            [
                rule.project_id,
                rule.name,
                version,
                _json(rule.spec),
                rule.source,
                rule.deleted,
                rule.author,
                _ts(rule.created_at),
            ],
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


def list_rules(
    store: DuckDBStore, project_id: str, *, include_deleted: bool = False
) -> list[RuleVersion]:
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {_RULE_COLS} FROM alert_rules WHERE project_id = ?"  # noqa: S608
            " QUALIFY row_number() OVER (PARTITION BY name ORDER BY version DESC) = 1"
            " ORDER BY name",
            [project_id],
        ).fetchall()
    return [r for r in map(_rule, rows) if include_deleted or not r.deleted]


def list_rule_versions(store: DuckDBStore, project_id: str, name: str) -> list[RuleVersion]:
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {_RULE_COLS} FROM alert_rules WHERE project_id = ? AND name = ?"  # noqa: S608
            " ORDER BY version",
            [project_id, name],
        ).fetchall()
    return [_rule(r) for r in rows]


# -- alerts ------------------------------------------------------------------------------------

_ALERT_FIELDS = (
    "project_id",
    "alert_id",
    "rule",
    "rule_version",
    "rule_type",
    "severity",
    "group",
    "group_key",
    "status",
    "value",
    "threshold",
    "window",
    "pending_since",
    "started_at",
    "ended_at",
    "last_evaluated_at",
    "last_notified_at",
    "acknowledged_at",
    "acknowledged_by",
    "ack_expires_at",
    "summary",
    "details",
)
_ALERT_COLS = ", ".join(f'"{c}"' for c in _ALERT_FIELDS)
_ALERT_TIMES = frozenset(
    {
        "pending_since",
        "started_at",
        "ended_at",
        "last_evaluated_at",
        "last_notified_at",
        "acknowledged_at",
        "ack_expires_at",
    }
)


def _alert_row(a: Alert) -> list[Any]:
    out: list[Any] = []
    for f in _ALERT_FIELDS:
        v = getattr(a, f)
        if f in ("group", "details"):
            v = _json(v)
        elif f in _ALERT_TIMES:
            v = _ts(v)
        out.append(v)
    return out


def _alert(r: tuple[Any, ...]) -> Alert:
    d = dict(zip(_ALERT_FIELDS, r, strict=True))
    for f in _ALERT_TIMES:
        d[f] = _aware(d[f])
    d["group"] = orjson.loads(d["group"])
    d["details"] = orjson.loads(d["details"])
    return Alert(**d)


_EVENT_FIELDS = ("project_id", "event_id", "alert_id", "rule", "kind", "at", "value", "message")
_EVENT_COLS = ", ".join(f'"{c}"' for c in _EVENT_FIELDS)


def _event_row(e: AlertEvent) -> list[Any]:
    return [e.project_id, e.event_id, e.alert_id, e.rule, e.kind, _ts(e.at), e.value, e.message]


def save_alerts(
    store: DuckDBStore,
    alerts: Sequence[Alert],
    events: Sequence[AlertEvent],
    deliveries: Sequence[Delivery] = (),
) -> None:
    if not alerts and not events and not deliveries:
        return
    # One INSERT ... SELECT from Arrow per table: executemany runs one statement per row
    # (~20 ms each here), and a tick may update every active alert.
    with store._admin_lock, store._cursor() as cur:
        cur.execute("BEGIN")
        try:
            if alerts:
                rows = [_alert_row(a) for a in alerts]
                cur.register("_alerts_in", _arrow(_ALERT_FIELDS, rows))
                cur.execute(
                    f"INSERT OR REPLACE INTO alerts ({_ALERT_COLS})"  # noqa: S608
                    f" SELECT {_ALERT_COLS} FROM _alerts_in"
                )
                cur.unregister("_alerts_in")
            if events:
                cur.register("_events_in", _arrow(_EVENT_FIELDS, [_event_row(e) for e in events]))
                cur.execute(
                    f"INSERT INTO alert_events ({_EVENT_COLS})"  # noqa: S608
                    f" SELECT {_EVENT_COLS} FROM _events_in"
                )
                cur.unregister("_events_in")
            if deliveries:
                rows = [delivery_row(d) for d in deliveries]
                cur.register("_deliveries_in", _arrow(_DELIVERY_FIELDS, rows))
                cur.execute(
                    f"INSERT OR REPLACE INTO alert_deliveries ({_DELIVERY_COLS})"  # noqa: S608
                    f" SELECT {_DELIVERY_COLS} FROM _deliveries_in"
                )
                cur.unregister("_deliveries_in")
            cur.execute("COMMIT")
        except duckdb.Error as e:
            cur.execute("ROLLBACK")
            raise StoreError(f"saving alerts failed: {e}") from e


_ARROW_TYPES = {
    "rule_version": "int32",
    "attempts": "int32",
    "value": "float64",
    "threshold": "float64",
}


def _arrow(fields: Sequence[str], rows: list[list[Any]]) -> Any:
    import pyarrow as pa

    cols = {}
    for i, f in enumerate(fields):
        values = [r[i] for r in rows]
        if f in _ARROW_TYPES:
            cols[f] = pa.array(values, type=_ARROW_TYPES[f])
        elif f in _ALERT_TIMES or f in ("at", "created_at", "updated_at"):
            cols[f] = pa.array(values, type=pa.timestamp("us"))
        else:
            cols[f] = pa.array(values, type=pa.string())
    return pa.table(cols)


def list_alerts(store: DuckDBStore, q: AlertQuery) -> list[Alert]:
    where = ["project_id = ?"]
    params: list[Any] = [q.project_id]
    if q.status:
        where.append(f"status IN ({', '.join('?' * len(q.status))})")
        params += list(q.status)
    if q.rule is not None:
        where.append("rule = ?")
        params.append(q.rule)
    if q.severity is not None:
        where.append("severity = ?")
        params.append(q.severity)
    if q.start is not None:
        where.append("pending_since >= ?")
        params.append(_ts(q.start))
    if q.end is not None:
        where.append("pending_since < ?")
        params.append(_ts(q.end))
    if q.before is not None:
        where.append("(pending_since, alert_id) < (?, ?)")
        params += [_ts(q.before[0]), q.before[1]]
    params.append(q.limit)
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {_ALERT_COLS} FROM alerts WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY pending_since DESC, alert_id DESC LIMIT ?",
            params,
        ).fetchall()
    return [_alert(r) for r in rows]


def get_alert(store: DuckDBStore, project_id: str, alert_id: str) -> Alert | None:
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {_ALERT_COLS} FROM alerts WHERE project_id = ? AND alert_id = ?",  # noqa: S608
            [project_id, alert_id],
        ).fetchall()
    return _alert(rows[0]) if rows else None


def list_active_alerts(store: DuckDBStore) -> list[Alert]:
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {_ALERT_COLS} FROM alerts"  # noqa: S608
            " WHERE status IN ('pending', 'firing') ORDER BY pending_since"
        ).fetchall()
    return [_alert(r) for r in rows]


def list_alert_events(store: DuckDBStore, project_id: str, alert_id: str) -> list[AlertEvent]:
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {_EVENT_COLS} FROM alert_events"  # noqa: S608
            ' WHERE project_id = ? AND alert_id = ? ORDER BY "at", rowid',
            [project_id, alert_id],
        ).fetchall()
    out = []
    for r in rows:
        d = dict(zip(_EVENT_FIELDS, r, strict=True))
        d["at"] = d["at"].replace(tzinfo=UTC)
        out.append(AlertEvent(**d))
    return out


# -- silences ----------------------------------------------------------------------------------

_SILENCE_FIELDS = (
    "project_id",
    "silence_id",
    "matchers",
    "starts_at",
    "ends_at",
    "created_by",
    "comment",
    "created_at",
)


def save_silence(store: DuckDBStore, s: Silence) -> None:
    with store._admin_lock, store._cursor() as cur:
        cur.execute(
            f"INSERT OR REPLACE INTO alert_silences ({', '.join(_SILENCE_FIELDS)})"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                s.project_id,
                s.silence_id,
                _json(s.matchers),
                _ts(s.starts_at),
                _ts(s.ends_at),
                s.created_by,
                s.comment,
                _ts(s.created_at),
            ],
        )


def list_silences(store: DuckDBStore, project_id: str) -> list[Silence]:
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {', '.join(_SILENCE_FIELDS)} FROM alert_silences"  # noqa: S608
            " WHERE project_id = ? ORDER BY created_at DESC, silence_id",
            [project_id],
        ).fetchall()
    out = []
    for r in rows:
        d = dict(zip(_SILENCE_FIELDS, r, strict=True))
        d["matchers"] = orjson.loads(d["matchers"])
        for f in ("starts_at", "ends_at", "created_at"):
            d[f] = d[f].replace(tzinfo=UTC)
        out.append(Silence(**d))
    return out


# -- deliveries --------------------------------------------------------------------------------

_DELIVERY_FIELDS = (
    "project_id",
    "delivery_id",
    "alert_id",
    "channel",
    "event",
    "status",
    "attempts",
    "last_error",
    "payload",
    "created_at",
    "updated_at",
)


_DELIVERY_COLS = ", ".join(_DELIVERY_FIELDS)
SAVE_DELIVERY = (
    f"INSERT OR REPLACE INTO alert_deliveries ({_DELIVERY_COLS})"  # noqa: S608
    f" VALUES ({', '.join('?' * len(_DELIVERY_FIELDS))})"
)


def delivery_row(d: Delivery) -> list[Any]:
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
        _ts(d.created_at),
        _ts(d.updated_at),
    ]


def save_delivery(store: DuckDBStore, d: Delivery) -> None:
    with store._admin_lock, store._cursor() as cur:
        cur.execute(SAVE_DELIVERY, delivery_row(d))


def list_deliveries(
    store: DuckDBStore,
    project_id: str | None,
    *,
    alert_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[Delivery]:
    where = ["true"]
    params: list[Any] = []
    for col, v in (("project_id", project_id), ("alert_id", alert_id), ("status", status)):
        if v is not None:
            where.append(f"{col} = ?")
            params.append(v)
    params.append(limit)
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {', '.join(_DELIVERY_FIELDS)} FROM alert_deliveries"  # noqa: S608
            f" WHERE {' AND '.join(where)} ORDER BY created_at DESC, delivery_id LIMIT ?",
            params,
        ).fetchall()
    out = []
    for r in rows:
        d = dict(zip(_DELIVERY_FIELDS, r, strict=True))
        d["payload"] = orjson.loads(d["payload"])
        d["created_at"] = d["created_at"].replace(tzinfo=UTC)
        d["updated_at"] = d["updated_at"].replace(tzinfo=UTC)
        out.append(Delivery(**d))
    return out


# -- drift -------------------------------------------------------------------------------------

_DRIFT_FIELDS = (
    "project_id",
    "result_id",
    "job",
    "detector",
    "feature",
    "created_at",
    "baseline_start",
    "baseline_end",
    "current_start",
    "current_end",
    "num_baseline",
    "num_current",
    "score",
    "threshold",
    "p_value",
    "fired",
    "status",
    "details",
)
_DRIFT_TIMES = ("created_at", "baseline_start", "baseline_end", "current_start", "current_end")


def add_drift_results(store: DuckDBStore, results: Sequence[DriftResult]) -> None:
    if not results:
        return
    rows = []
    for res in results:
        row: list[Any] = []
        for f in _DRIFT_FIELDS:
            v = getattr(res, f)
            if f in _DRIFT_TIMES:
                v = _ts(v)
            elif f == "details":
                v = _json(v)
            row.append(v)
        rows.append(row)
    with store._admin_lock, store._cursor() as cur:
        cur.executemany(
            f"INSERT INTO drift_results ({', '.join(_DRIFT_FIELDS)})"  # noqa: S608
            f" VALUES ({', '.join('?' * len(_DRIFT_FIELDS))})",
            rows,
        )


def list_drift_results(store: DuckDBStore, q: DriftQuery) -> list[DriftResult]:
    where = ["project_id = ?"]
    params: list[Any] = [q.project_id]
    for col, v in (("job", q.job), ("detector", q.detector), ("fired", q.fired)):
        if v is not None:
            where.append(f"{col} = ?")
            params.append(v)
    if q.start is not None:
        where.append("created_at >= ?")
        params.append(_ts(q.start))
    if q.end is not None:
        where.append("created_at < ?")
        params.append(_ts(q.end))
    params.append(q.limit)
    newest = (
        " QUALIFY row_number() OVER (PARTITION BY job, detector, feature"
        " ORDER BY created_at DESC, result_id) = 1"
        if q.latest
        else ""
    )
    with store._cursor() as cur:
        rows = cur.execute(
            f"SELECT {', '.join(_DRIFT_FIELDS)} FROM drift_results"  # noqa: S608
            f" WHERE {' AND '.join(where)}{newest} ORDER BY created_at DESC, result_id LIMIT ?",
            params,
        ).fetchall()
    out = []
    for r in rows:
        d = dict(zip(_DRIFT_FIELDS, r, strict=True))
        for f in _DRIFT_TIMES:
            d[f] = _aware(d[f])
        d["details"] = orjson.loads(d["details"])
        out.append(DriftResult(**d))
    return out


def sample_spans(store: DuckDBStore, q: SampleQuery) -> list[SpanSample]:
    where = ["project_id = ?", "start_time >= ?", "start_time < ?"]
    params: list[Any] = [q.project_id, _ts(q.start), _ts(q.end)]
    if q.kind is not None:
        where.append("kind = ?")
        params.append(q.kind)
    from sightline.store.base import DIMENSIONS

    for d, v in q.filters.items():
        if d not in DIMENSIONS:
            from sightline.errors import ConfigError

            raise ConfigError(f"cannot filter by {d!r}")
        where.append(f'"{d}" = ?')
        params.append(v)
    params += [q.seed, q.limit]
    # Ordering by a seeded hash of the row is a uniform sample without replacement that is
    # the same for the same seed (repeatable results), and DuckDB's top-N reads the text
    # columns only for the rows it keeps.
    # The sampled spans' stored descriptors (docs/signals.md), the latest of each, joined
    # after sampling so only the kept rows are looked up.
    sql = f"""
        WITH s AS (
            SELECT project_id, trace_id, span_id, start_time, model, input, output,
                input_tokens, output_tokens, duration_ms
            FROM spans WHERE {" AND ".join(where)}
            ORDER BY hash(span_id, trace_id, ?) LIMIT ?
        )
        SELECT s.start_time, s.model, s.input, s.output, s.input_tokens, s.output_tokens,
            s.duration_ms, d.details
        FROM s LEFT JOIN (
            SELECT sc.trace_id, sc.span_id, arg_max(sc.details, sc.created_at) AS details
            FROM scores sc JOIN s ON sc.project_id = s.project_id
                AND sc.trace_id = s.trace_id AND sc.span_id = s.span_id
            WHERE sc.name = 'descriptors' AND sc.source = 'evaluator' AND sc.details IS NOT NULL
            GROUP BY sc.trace_id, sc.span_id
        ) d ON d.trace_id = s.trace_id AND d.span_id = s.span_id
        ORDER BY hash(s.span_id, s.trace_id, ?)
    """  # noqa: S608
    with store._cursor() as cur:
        rows = cur.execute(sql, [*params, q.seed]).fetchall()
    return [
        SpanSample(
            r[0].replace(tzinfo=UTC),
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            float(r[6]),
            orjson.loads(r[7]) if r[7] else None,
        )
        for r in rows
    ]
