"""Analysis on ClickHouse: drift results, span samples, releases, costs and guardrails.

The DuckDB store (``_duckdb_alerts.py``, ``_duckdb_otel.py``, ``_duckdb_costs.py``,
``_duckdb_guardrails.py``) is the spec. What differs, and why:

- ``sample_spans`` orders by ``cityHash64`` of the ids and the seed: the same seed gives the same
  sample on the same backend, but not the sample DuckDB's ``hash`` gives.
- ``detect_releases`` reads which versions have a marker, then writes the new ones: two
  monitors running at once could both record a version (one monitor runs, under its lease).
- Queries that read scores (descriptors, A/B score values, task outcomes, guardrail reviews)
  need the evaluation part of the store, which owns the ``scores`` table; a store built without
  it answers as if there were no scores.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson

from sightline.errors import ConfigError
from sightline.model import DriftResult, Release
from sightline.store._analysis_records import (
    COST_DIMENSIONS,
    CostQuery,
    CostRow,
    GroupSample,
    LengthSeries,
    TaskCost,
)
from sightline.store._clickhouse_base import CH_DT as _DT
from sightline.store._clickhouse_base import CH_NDT as _NDT
from sightline.store._clickhouse_base import CH_NF as _NF
from sightline.store._clickhouse_base import CH_NSTR as _NSTR
from sightline.store._clickhouse_base import CHBase, ch_newest_score, ch_ts
from sightline.store._clickhouse_base import ch_aware as _aware
from sightline.store._clickhouse_base import ch_json as _json
from sightline.store._clickhouse_base import ch_us as _us
from sightline.store._clickhouse_metrics import GUARDRAIL_COLUMNS, ch_float, guardrail_source
from sightline.store.base import DIMENSIONS, DriftQuery, GuardrailStats, SampleQuery, SpanSample

__all__ = ["AnalysisMixin"]

_PRICED_KINDS = ("llm", "embedding", "rerank")
"""Span kinds that cost money: the calls a cost breakdown reads."""
_MAX_SAMPLES = 200_000
"""Calls read per side of an A/B comparison (the most recent ones)."""
_TASK_DIMS = ("feature", "model", "user_id", "tenant_id", "prompt_name", "prompt_version",
              "variant", "environment", "service_name")  # fmt: skip


def _table(name: str, columns: Sequence[tuple[str, str]], engine: str) -> str:
    cols = ", ".join(f"`{c}` {t}" for c, t in columns)
    return f"CREATE TABLE IF NOT EXISTS {name} ({cols}) ENGINE = {engine}"


def _cols(fields: Sequence[str]) -> str:
    return ", ".join(f"`{f}`" for f in fields)


_DRIFT_COLUMNS = [
    ("project_id", "String"),
    ("result_id", "String"),
    ("job", "String"),
    ("detector", "LowCardinality(String)"),
    ("feature", "String"),
    ("created_at", _DT),
    ("baseline_start", _NDT),
    ("baseline_end", _NDT),
    ("current_start", _DT),
    ("current_end", _DT),
    ("num_baseline", "Int32"),
    ("num_current", "Int32"),
    ("score", _NF),
    ("threshold", _NF),
    ("p_value", _NF),
    ("fired", "Bool"),
    ("status", "LowCardinality(String)"),
    ("details", "String"),
]
_DRIFT_FIELDS = tuple(c for c, _ in _DRIFT_COLUMNS)
_DRIFT_TIMES = ("created_at", "baseline_start", "baseline_end", "current_start", "current_end")

_RELEASE_COLUMNS = [
    ("project_id", "String"),
    ("release_id", "String"),
    ("kind", "LowCardinality(String)"),
    ("service", _NSTR),
    ("version", "String"),
    ("git_sha", _NSTR),
    ("at", _DT),
    ("notes", _NSTR),
    ("created_at", _DT),
]
_RELEASE_FIELDS = tuple(c for c, _ in _RELEASE_COLUMNS)

# Each kind of automatic marker: (kind, the span column naming what changed, the version column)
_AUTO = (
    ("service_version", "service_name", "service_version"),
    ("model", "provider", "model"),
    ("prompt_version", "prompt_name", "prompt_version"),
)


class AnalysisMixin(CHBase):
    """Drift results, span samples, releases, A/B and cost queries, guardrail effectiveness."""

    DDL: ClassVar[list[str]] = [
        # Drift results are a few per job and tick: monthly partitions keep the parts few.
        _table(
            "drift_results",
            _DRIFT_COLUMNS,
            "MergeTree PARTITION BY toYYYYMM(created_at)"
            " ORDER BY (project_id, created_at, result_id)",
        ),
        _table("releases", _RELEASE_COLUMNS, "MergeTree ORDER BY (project_id, `at`, release_id)"),
    ]

    def _has_scores(self) -> bool:
        """Whether the store has its evaluation part (the ``scores`` table)."""
        return hasattr(self, "add_scores")

    # -- drift -----------------------------------------------------------------------------------

    def add_drift_results(self, results: Sequence[DriftResult]) -> None:
        rows = []
        for res in results:
            row: list[Any] = []
            for f in _DRIFT_FIELDS:
                v = getattr(res, f)
                if f in _DRIFT_TIMES:
                    v = ch_ts(v)
                elif f == "details":
                    v = _json(v)
                row.append(v)
            rows.append(row)
        self._insert_rows("drift_results", _DRIFT_FIELDS, rows)

    def list_drift_results(self, query: DriftQuery) -> list[DriftResult]:
        q = query
        where = ["project_id = {p:String}"]
        params: dict[str, Any] = {"p": q.project_id, "limit": q.limit}
        if q.job is not None:
            where.append("job = {job:String}")
            params["job"] = q.job
        if q.detector is not None:
            where.append("detector = {detector:String}")
            params["detector"] = q.detector
        if q.fired is not None:
            where.append("fired = {fired:Bool}")
            params["fired"] = q.fired
        if q.start is not None:
            where.append("created_at >= {start:DateTime64(6, 'UTC')}")
            params["start"] = ch_ts(q.start)
        if q.end is not None:
            where.append("created_at < {end:DateTime64(6, 'UTC')}")
            params["end"] = ch_ts(q.end)
        rows = self._q(
            f"SELECT {_cols(_DRIFT_FIELDS)} FROM drift_results"  # noqa: S608
            f" WHERE {' AND '.join(where)}"
            " ORDER BY created_at DESC, result_id"
            + (" LIMIT 1 BY job, detector, feature" if q.latest else "")
            + " LIMIT {limit:UInt32}",
            params,
        )
        out = []
        for r in rows:
            d = dict(zip(_DRIFT_FIELDS, r, strict=True))
            for f in _DRIFT_TIMES:
                d[f] = _aware(d[f])
            d["details"] = orjson.loads(d["details"])
            d["fired"] = bool(d["fired"])
            out.append(DriftResult(**d))
        return out

    def sample_spans(self, query: SampleQuery) -> list[SpanSample]:
        q = query
        where = [
            "project_id = {p:String}",
            "start_time >= {start:DateTime64(6, 'UTC')}",
            "start_time < {end:DateTime64(6, 'UTC')}",
        ]
        params: dict[str, Any] = {
            "p": q.project_id,
            "start": ch_ts(q.start),
            "end": ch_ts(q.end),
            "seed": q.seed,
            "limit": q.limit,
        }
        if q.kind is not None:
            where.append("kind = {kind:String}")
            params["kind"] = q.kind
        for j, (d, v) in enumerate(q.filters.items()):
            if d not in DIMENSIONS:
                raise ConfigError(f"cannot filter by {d!r}")
            where.append(f"`{d}` = {{f{j}:String}}")
            params[f"f{j}"] = v
        # A seeded hash of the ids orders a uniform sample without replacement, the same for
        # the same seed; the sampled spans' latest descriptors are joined after sampling.
        sampled = f"""
            SELECT trace_id, span_id, start_time, model, input, output, input_tokens,
                output_tokens, duration_ms, cityHash64(span_id, trace_id, {{seed:Int64}}) AS _h
            FROM spans WHERE {" AND ".join(where)}
            ORDER BY _h LIMIT {{limit:UInt32}}
        """  # noqa: S608 - names are checked dimensions, values are parameters
        if not self._has_scores():
            # a store built without the evaluation part has no scores table (no descriptors)
            rows = self._q(
                f"SELECT start_time, model, input, output, input_tokens,"  # noqa: S608
                f" output_tokens, duration_ms, NULL FROM ({sampled}) ORDER BY _h",
                params,
            )
        else:
            rows = self._q(self._SAMPLE_SQL.format(sampled=sampled), params)
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

    _SAMPLE_SQL = """
        WITH s AS ({sampled})
        SELECT s.start_time, s.model, s.input, s.output, s.input_tokens, s.output_tokens,
            s.duration_ms, d._d
        FROM s LEFT JOIN (
            SELECT trace_id, span_id, argMax(details, created_at) AS _d
            FROM scores FINAL
            WHERE project_id = {{p:String}} AND name = 'descriptors' AND source = 'evaluator'
                AND details IS NOT NULL AND (trace_id, span_id) IN (SELECT trace_id, span_id FROM s)
            GROUP BY trace_id, span_id
        ) d ON d.trace_id = s.trace_id AND d.span_id = s.span_id
        ORDER BY s._h
        SETTINGS join_use_nulls = 1
    """

    # -- releases --------------------------------------------------------------------------------

    def add_release(self, release: Release) -> None:
        self._insert_rows("releases", _RELEASE_FIELDS, [_release_row(release)])

    def list_releases(
        self,
        project_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 200,
    ) -> list[Release]:
        where = ["project_id = {p:String}"]
        params: dict[str, Any] = {"p": project_id, "limit": limit}
        if start is not None:
            where.append("`at` >= {start:DateTime64(6, 'UTC')}")
            params["start"] = ch_ts(start)
        if end is not None:
            where.append("`at` < {end:DateTime64(6, 'UTC')}")
            params["end"] = ch_ts(end)
        rows = self._q(
            f"SELECT {_cols(_RELEASE_FIELDS)} FROM releases WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY `at` DESC, release_id LIMIT {limit:UInt32}",
            params,
        )
        return [_release(r) for r in rows]

    def get_release(self, project_id: str, release_id: str) -> Release | None:
        rows = self._q(
            f"SELECT {_cols(_RELEASE_FIELDS)} FROM releases"  # noqa: S608
            " WHERE project_id = {p:String} AND release_id = {r:String} LIMIT 1",
            {"p": project_id, "r": release_id},
        )
        return _release(rows[0]) if rows else None

    def detect_releases(
        self, project_id: str, now: datetime, *, after_seq: int = 0
    ) -> list[Release]:
        found: list[Release] = []
        for kind, subject, col in _AUTO:
            # transform_null_in: a marker without a subject matches spans without one
            rows = self._q(
                f"SELECT `{subject}`, `{col}`, min(start_time) FROM spans"  # noqa: S608
                " WHERE project_id = {p:String} AND ingest_seq > {after:Int64}"
                f" AND `{col}` IS NOT NULL AND (`{subject}`, `{col}`) NOT IN ("
                "SELECT service, version FROM releases"
                " WHERE project_id = {p:String} AND kind = {kind:String})"
                f" GROUP BY `{subject}`, `{col}` ORDER BY `{subject}`, `{col}`"
                " SETTINGS transform_null_in = 1",
                {"p": project_id, "after": after_seq, "kind": kind},
            )
            for subj, version, first in rows:
                found.append(
                    Release(
                        project_id=project_id,
                        release_id=uuid.uuid4().hex,
                        kind=kind,  # type: ignore[arg-type]
                        service=subj,
                        version=str(version),
                        at=first.replace(tzinfo=UTC),
                        notes="first seen in spans",
                        created_at=now,
                    )
                )
        self._insert_rows("releases", _RELEASE_FIELDS, [_release_row(r) for r in found])
        return found

    def compare_values(
        self, project_id: str, start: datetime, end: datetime, service: str | None
    ) -> dict[str, list[float]]:
        where = [
            "project_id = {p:String}",
            "kind = 'llm'",
            "start_time >= {start:DateTime64(6, 'UTC')}",
            "start_time < {end:DateTime64(6, 'UTC')}",
        ]
        params: dict[str, Any] = {"p": project_id, "start": ch_ts(start), "end": ch_ts(end)}
        if service is not None:
            where.append("service_name = {service:String}")
            params["service"] = service
        w = " AND ".join(where)
        rows = self._q(
            "SELECT duration_ms, cost_usd, if(status = 'error', 1.0, 0.0)"  # noqa: S608
            f" FROM spans WHERE {w} LIMIT 200000",
            params,
        )
        out: dict[str, list[float]] = {
            "latency_ms": [float(r[0]) for r in rows if r[0] is not None],
            "cost_usd": [float(r[1]) for r in rows if r[1] is not None],
            "error": [float(r[2]) for r in rows],
        }
        if self._has_scores():
            # the newest of each span, score name and source (SCORE_KEY), as on DuckDB
            scores = self._q(
                "SELECT if(source = 'human', concat('human.', `name`), `name`), _r.1"  # noqa: S608
                f" FROM (SELECT `name`, source, {ch_newest_score('`value`')} AS _r"
                " FROM scores FINAL WHERE project_id = {p:String}"
                " AND value IS NOT NULL AND source IN ('evaluator', 'human')"
                " AND (trace_id, span_id) IN"
                f" (SELECT trace_id, span_id FROM spans WHERE {w})"
                " GROUP BY trace_id, span_id, `name`, source) LIMIT 200000",
                params,
            )
            for name, value in scores:
                out.setdefault(f"score:{name}", []).append(float(value))
        return out

    # -- A/B samples and costs -------------------------------------------------------------------

    def compare_sample(self, query: CostQuery, dimension: str, value: str) -> GroupSample:
        if dimension not in DIMENSIONS:
            raise ConfigError(f"cannot compare by {dimension!r}")
        where, params = _cost_where(query, ("llm",))
        where += f" AND `{dimension}` = {{value:String}}"
        params["value"] = value
        sel = (
            "SELECT trace_id, span_id, duration_ms, cost_usd, output_tokens, status"  # noqa: S608
            f" FROM spans WHERE {where} ORDER BY start_time DESC LIMIT {_MAX_SAMPLES}"
        )
        out = GroupSample()
        rows = self._q(sel, params)
        out.num_spans = len(rows)
        out.num_errors = sum(1 for r in rows if r[5] == "error")
        out.num_traces = len({r[0] for r in rows})
        out.latency_ms = [float(r[2]) for r in rows]
        out.cost_usd = [float(r[3]) for r in rows if r[3] is not None]
        out.output_tokens = [float(r[4]) for r in rows if r[4] is not None]
        if not self._has_scores():
            return out
        # each span counts once per score, with its newest verdict (SCORE_KEY), as on DuckDB
        scores = self._q(
            "SELECT if(source = 'human', concat('human.', `name`), `name`), _r.1, _r.2 FROM ("  # noqa: S608
            f" SELECT `name`, source, {ch_newest_score('`value`', 'passed')} AS _r,"
            " max(created_at) AS _c"
            " FROM scores FINAL WHERE project_id = {project_id:String}"
            " AND source IN ('evaluator', 'human') AND coalesce(label, '') <> 'failed'"
            f" AND (trace_id, span_id) IN (SELECT trace_id, span_id FROM ({sel}))"
            " GROUP BY trace_id, span_id, `name`, source) ORDER BY `name`, _c",
            params,
        )
        for name, v, passed in scores:
            if v is not None:
                out.scores.setdefault(name, []).append(float(v))
            if passed is not None:
                out.passed.setdefault(name, []).append(bool(passed))
        fb = self._q(
            f"SELECT _r.1 FROM (SELECT {ch_newest_score('`value`')} AS _r"  # noqa: S608
            " FROM scores FINAL WHERE project_id = {project_id:String}"
            " AND source = 'user' AND name = 'feedback' AND value IS NOT NULL"
            f" AND trace_id IN (SELECT trace_id FROM ({sel})) GROUP BY trace_id, span_id)",
            params,
        )
        out.feedback = [float(r[0]) for r in fb]
        return out

    def cost_breakdown(
        self, query: CostQuery, by: str, *, limit: int
    ) -> tuple[list[CostRow], dict[str, Any]]:
        col = COST_DIMENSIONS.get(by)
        if col is None:
            raise ConfigError(f"by: expected one of {', '.join(COST_DIMENSIONS)}")
        where, params = _cost_where(query, _PRICED_KINDS)
        grouped = (
            f"SELECT `{col}` AS k, coalesce(sum(cost_usd), 0) AS c, count() AS n,"  # noqa: S608
            " coalesce(sum(input_tokens), 0) AS i, coalesce(sum(output_tokens), 0) AS o,"
            " countIf(cost_usd IS NULL) AS u, min(start_time) AS f, max(start_time) AS l"
            f" FROM spans WHERE {where} GROUP BY k"
        )
        rows = self._q(
            f"{grouped} ORDER BY c DESC, n DESC, k ASC NULLS LAST LIMIT {{limit:UInt32}}",
            {**params, "limit": limit},
        )
        stats = self._q(
            f"WITH g AS ({grouped})"  # noqa: S608
            " SELECT countIf(k IS NOT NULL), coalesce(sumIf(c, k IS NOT NULL), 0),"
            " avgIf(c, k IS NOT NULL),"
            " quantileExactInclusiveIf(0.5)(c, k IS NOT NULL),"
            " quantileExactInclusiveIf(0.95)(c, k IS NOT NULL),"
            " maxIfOrNull(c, k IS NOT NULL),"
            " coalesce(sumIf(c, k IS NULL), 0), coalesce(sumIf(n, k IS NULL), 0),"
            " coalesce(sum(n), 0) FROM g",
            params,
        )[0]
        data = [
            CostRow(
                None if r[0] is None else str(r[0]),
                float(r[1]),
                int(r[2]),
                int(r[3]),
                int(r[4]),
                int(r[5]),
                r[6].replace(tzinfo=UTC),
                r[7].replace(tzinfo=UTC),
            )
            for r in rows
        ]
        summary = {
            "groups": int(stats[0]),
            "cost_usd": float(stats[1]),
            "mean_cost_usd": ch_float(stats[2]),
            "median_cost_usd": ch_float(stats[3]),
            "p95_cost_usd": ch_float(stats[4]),
            "max_cost_usd": ch_float(stats[5]),
            "unattributed_cost_usd": float(stats[6]),
            "unattributed_calls": int(stats[7]),
            "calls": int(stats[8]),
        }
        return data, summary

    def task_costs(self, query: CostQuery, group_by: tuple[str, ...]) -> list[TaskCost]:
        for g in group_by:
            if g not in _TASK_DIMS:
                raise ConfigError(
                    f"group_by: cannot group tasks by {g!r}; use {', '.join(_TASK_DIMS)}"
                )
        where, params = _cost_where(query, _PRICED_KINDS)
        # A task is a trace; its group is the first value its calls carry. The aliases are
        # not the columns' names: ClickHouse would read an aggregate alias in WHERE.
        dims = "".join(
            f", argMinIf(`{g}`, start_time, `{g}` IS NOT NULL) AS _g{j}"
            for j, g in enumerate(group_by)
        )
        cols = "".join(f", _g{j}" for j in range(len(group_by)))
        if self._has_scores():
            judged = """
                LEFT JOIN (
                    SELECT trace_id, argMax(value, created_at) AS v FROM scores FINAL
                    WHERE project_id = {project_id:String} AND source = 'user'
                        AND name = 'feedback' AND value IS NOT NULL
                        AND trace_id IN (SELECT trace_id FROM t)
                    GROUP BY trace_id
                ) fb ON fb.trace_id = t.trace_id
                LEFT JOIN (
                    SELECT trace_id, min(_r.1) AS ok FROM (
                        SELECT trace_id, NEWEST AS _r FROM scores FINAL
                        WHERE project_id = {project_id:String}
                            AND source IN ('evaluator', 'human')
                            AND passed IS NOT NULL AND coalesce(label, '') <> 'failed'
                            AND trace_id IN (SELECT trace_id FROM t)
                        GROUP BY trace_id, span_id, `name`, source
                    ) GROUP BY trace_id
                ) ev ON ev.trace_id = t.trace_id
            """.replace("NEWEST", ch_newest_score("passed"))
            outcome = (
                "multiIf(fb.v > 0, 'success', fb.v < 0, 'failed', ev.ok, 'success',"
                " NOT ev.ok, 'failed', 'unjudged')"
            )
        else:
            judged, outcome = "", "'unjudged'"
        sql = f"""
            WITH t AS (
                SELECT trace_id, coalesce(sum(cost_usd), 0) AS cost{dims}
                FROM spans WHERE {where} GROUP BY trace_id
            ),
            o AS (SELECT t.*, {outcome} AS outcome FROM t {judged})
            SELECT count(), countIf(outcome = 'success'), countIf(outcome = 'failed'),
                countIf(outcome = 'unjudged'), coalesce(sum(cost), 0) AS _cost,
                coalesce(sumIf(cost, outcome = 'success'), 0){cols}
            FROM o {"GROUP BY " + cols.lstrip(", ") if group_by else ""}
            ORDER BY _cost DESC
            SETTINGS join_use_nulls = 1
        """  # noqa: S608 - names are checked dimensions, values are parameters
        rows = self._q(sql, params)
        return [
            TaskCost(
                dict(zip(group_by, r[6:], strict=True)),
                int(r[0]),
                int(r[1]),
                int(r[2]),
                int(r[3]),
                float(r[4]),
                float(r[5]),
            )
            for r in rows
            if r[0]
        ]

    def prompt_length(self, query: CostQuery, step_s: int) -> list[LengthSeries]:
        where, params = _cost_where(query, ("llm",))
        step_us = int(step_s) * 1_000_000
        sql = (
            "SELECT intDiv(toUnixTimestamp64Micro(start_time) - {origin:Int64}, {step:Int64})"  # noqa: S608
            " AS _t, feature, count(), avg(input_tokens), avg(lengthUTF8(input))"
            f" FROM spans WHERE {where} GROUP BY _t, feature ORDER BY feature NULLS LAST, _t"
        )
        rows = self._q(sql, {**params, "origin": _us(query.start), "step": step_us})
        start = query.start if query.start.tzinfo else query.start.replace(tzinfo=UTC)
        start = start.astimezone(UTC)
        out: dict[str | None, LengthSeries] = {}
        for t, feature, n, tokens, chars in rows:
            s = out.setdefault(feature, LengthSeries(feature, []))
            at = start + timedelta(microseconds=int(t) * step_us)
            s.points.append((at, int(n), ch_float(tokens), ch_float(chars)))
        return list(out.values())

    # -- guardrails ------------------------------------------------------------------------------

    def guardrail_stats(
        self, project_id: str, start: datetime, end: datetime
    ) -> list[GuardrailStats]:
        where = (
            "project_id = {project_id:String} AND kind = 'guardrail'"
            " AND start_time >= {start:DateTime64(6, 'UTC')}"
            " AND start_time < {end:DateTime64(6, 'UTC')}"
        )
        g = GUARDRAIL_COLUMNS
        sql = f"""
            SELECT name, _version, count(), countIf(_blocked),
                quantileExactInclusive(0.5)(duration_ms), quantileExactInclusive(0.95)(duration_ms),
                countIf(_blocked AND _human IS NOT NULL),
                countIf(_blocked AND _human IN ('legitimate', 'correct')),
                countIf({g["bypass_in"]}), countIf({g["bypass_out"]})
            FROM {guardrail_source(where, with_scores=self._has_scores())}
            GROUP BY name, _version ORDER BY name, _version NULLS FIRST
            SETTINGS join_use_nulls = 1
        """  # noqa: S608 - fixed fragments, values are parameters
        rows = self._q(sql, {"project_id": project_id, "start": ch_ts(start), "end": ch_ts(end)})
        return [
            GuardrailStats(
                name=r[0],
                version=r[1],
                num_checks=int(r[2]),
                num_blocked=int(r[3]),
                latency_ms_p50=ch_float(r[4]),
                latency_ms_p95=ch_float(r[5]),
                num_reviewed_blocked=int(r[6]),
                num_false_positives=int(r[7]),
                num_bypass_inputs=int(r[8]),
                num_bypass_outputs=int(r[9]),
            )
            for r in rows
        ]


def _cost_where(q: CostQuery, kinds: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    where = [
        "project_id = {project_id:String}",
        "start_time >= {start:DateTime64(6, 'UTC')}",
        "start_time < {end:DateTime64(6, 'UTC')}",
    ]
    params: dict[str, Any] = {
        "project_id": q.project_id,
        "start": ch_ts(q.start),
        "end": ch_ts(q.end),
    }
    kind = q.filters.get("kind")
    if kind is not None:
        where.append("kind = {kind:String}")
        params["kind"] = kind
    else:
        where.append("kind IN {kinds:Array(String)}")
        params["kinds"] = list(kinds)
    for j, (dim, v) in enumerate(q.filters.items()):
        if dim == "kind":
            continue
        if dim not in DIMENSIONS:
            raise ConfigError(f"cannot filter by {dim!r}")
        where.append(f"`{dim}` = {{f{j}:String}}")
        params[f"f{j}"] = v
    return " AND ".join(where), params


def _release_row(r: Release) -> list[Any]:
    return [
        r.project_id,
        r.release_id,
        r.kind,
        r.service,
        r.version,
        r.git_sha,
        ch_ts(r.at),
        r.notes,
        ch_ts(r.created_at),
    ]


def _release(r: Sequence[Any]) -> Release:
    return Release(
        project_id=r[0],
        release_id=r[1],
        kind=r[2],
        service=r[3],
        version=r[4],
        git_sha=r[5],
        at=r[6].replace(tzinfo=UTC),
        notes=r[7],
        created_at=r[8].replace(tzinfo=UTC),
    )
