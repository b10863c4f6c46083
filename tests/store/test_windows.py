"""query_windows (the monitor's batched passes) answers what query_metric answers, one by one."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta

import pytest

from query import END, fill
from sightline.errors import ConfigError
from sightline.store import APPROX_SAMPLE, METRICS, DuckDBStore, MetricQuery, WindowAgg


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    d = tmp_path_factory.mktemp("windows")
    fill(d, 20_000)
    s = DuckDBStore(d / "sightline.duckdb")
    s.migrate()
    yield s
    s.close()


CASES = [
    ("latency_ms", "p95", 3600, (), {}),
    ("latency_ms", "p95", 3600, ("model",), {}),
    ("latency_ms", "p50", 3600, ("tenant_id",), {"model": "gpt-4o"}),
    ("error_rate", "rate", 7200, ("model",), {}),
    ("cost_per_request", "avg", 7200, ("provider", "model"), {}),
    ("ttft_ms", "p99", 86400, (), {"tenant_id": "tenant-3"}),
    ("total_tokens", "avg", 86400, ("model",), {}),
    ("requests", "count", 600, (), {}),
    ("tokens_per_s", "rate", 3600, ("model",), {}),
]


def test_every_case_matches_query_metric(store: DuckDBStore) -> None:
    aggs = [
        WindowAgg(metric=METRICS[m], agg=a, window_s=w, group_by=g, filters=f)
        for m, a, w, g, f in CASES
    ]
    got = store.query_windows("bench", END, aggs)  # one call: several passes, grouping sets
    for (m, a, w, g, f), values in zip(CASES, got, strict=True):
        want = store.query_metric(
            MetricQuery(
                project_id="bench",
                metric=METRICS[m],
                agg=a,  # type: ignore[arg-type]
                start=END - timedelta(seconds=w),
                end=END,
                group_by=g,
                filters=f,
            )
        )
        want_by = {tuple(sorted(s.group.items())): s.points[0][1] for s in want}
        got_by = {tuple(sorted(v.group.items())): v.value for v in values}
        assert got_by.keys() == want_by.keys(), (m, g)
        for k, v in want_by.items():
            assert got_by[k] == pytest.approx(v), (m, a, g, k)
        counts = store.query_metric(
            MetricQuery(
                project_id="bench",
                metric=METRICS["requests"],
                agg="count",
                start=END - timedelta(seconds=w),
                end=END,
                group_by=g,
                filters=f,
            )
        )
        want_n = {tuple(sorted(s.group.items())): s.points[0][1] for s in counts}
        assert {tuple(sorted(v.group.items())): v.num_spans for v in values} == want_n


def test_share_above_and_the_fallback_for_other_metrics(store: DuckDBStore) -> None:
    lat = METRICS["latency_ms"]
    # a metric the batched passes do not know goes through query_metric, with its span counts
    other = dataclasses.replace(lat, name="latency_copy")
    [share], [p95], [copy] = store.query_windows(
        "bench",
        END,
        [
            WindowAgg(metric=lat, agg="share_above", above=2000.0, window_s=86400),
            WindowAgg(metric=lat, agg="p95", window_s=86400),
            WindowAgg(metric=other, agg="p95", window_s=86400),
        ],
    )
    with store._cursor() as cur:
        [(expect, n)] = cur.execute(
            "SELECT avg(CASE WHEN duration_ms > 2000 THEN 1.0 ELSE 0.0 END), count(*) FROM spans"
            " WHERE start_time >= ? AND start_time < ?",
            [END.replace(tzinfo=None) - timedelta(days=1), END.replace(tzinfo=None)],
        ).fetchall()
    assert share.value == pytest.approx(expect) and share.num_spans == n
    assert copy.value == pytest.approx(p95.value) and copy.num_spans == p95.num_spans == n


def test_an_empty_window_has_no_groups_and_bad_dimensions_are_refused(
    store: DuckDBStore,
) -> None:
    lat = METRICS["latency_ms"]
    [empty] = store.query_windows(
        "bench", END + timedelta(days=30), [WindowAgg(metric=lat, agg="p95", window_s=60)]
    )
    assert empty == []
    with pytest.raises(ConfigError):
        store.query_windows(
            "bench", END, [WindowAgg(metric=lat, agg="p95", window_s=60, group_by=("colour",))]
        )
    with pytest.raises(ConfigError):
        store.query_windows(
            "bench", END, [WindowAgg(metric=lat, agg="p95", window_s=60, filters={"x": "1"})]
        )


@pytest.fixture(scope="module")
def trending(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    """120,000 calls over 7 days whose latency grows with time, and a model of 300 calls.

    Groups of ~24,000 calls are sampled by ``approx``; a sample that favoured the first
    spans written (as DuckDB's reservoir_quantile does) would miss the late, slow ones.
    """
    d = tmp_path_factory.mktemp("trending")
    fill(d, 120_000)
    s = DuckDBStore(d / "sightline.duckdb")
    s.migrate()
    with s._cursor() as cur:
        cur.execute(
            "UPDATE spans SET duration_ms = 100 + 5000 * (epoch(start_time) - epoch(TIMESTAMP"
            " '2026-01-01')) / (7 * 86400) + (CAST(_key_span AS DOUBLE) % 997),"
            " ttft_ms = 10 + (CAST(_key_span AS DOUBLE) % 991) * epoch(start_time) / 1e9"
        )
        cur.execute("UPDATE spans SET model = 'tiny' WHERE CAST(_key_span AS UBIGINT) % 400 = 7")
    yield s
    s.close()


_APPROX = [
    ("latency_ms", "p50", ()),
    ("latency_ms", "p95", ()),
    ("latency_ms", "p99", ("model",)),
    ("latency_ms", "p50", ("model",)),
    ("ttft_ms", "p95", ("model",)),
    ("ttft_ms", "p90", ()),
    ("latency_ms", "p95", ("prompt_name",)),  # one group, whose value is NULL
]


def _rank(store: DuckDBStore, column: str, group: dict[str, str], value: float) -> float:
    """Share of the window's LLM calls of ``group`` whose ``column`` is at most ``value``."""
    where = "".join(f' AND "{k}" IS NOT DISTINCT FROM ?' for k in group)
    with store._cursor() as cur:
        row = cur.execute(
            f'SELECT avg(CASE WHEN "{column}" <= ? THEN 1.0 ELSE 0.0 END) FROM spans'  # noqa: S608
            f" WHERE project_id = 'bench' AND kind = 'llm'{where}",
            [value, *group.values()],
        ).fetchone()
    assert row is not None
    return float(row[0])


class TestApproxQuantiles:
    """``approx`` quantiles read a hashed uniform sample of each large group."""

    WINDOW_S = 8 * 86400

    def asks(self, *, approx: bool) -> list[WindowAgg]:
        return [
            WindowAgg(metric=METRICS[m], agg=a, window_s=self.WINDOW_S, group_by=g, approx=approx)
            for m, a, g in _APPROX
        ] + [
            # the rest of the pass is exact either way
            WindowAgg(metric=METRICS["requests"], agg="count", window_s=self.WINDOW_S,
                      group_by=("model",), approx=approx),
            WindowAgg(metric=METRICS["cost_usd"], agg="sum", window_s=self.WINDOW_S,
                      approx=approx),
        ]  # fmt: skip

    def test_within_two_percent_in_rank_and_exact_for_small_groups(
        self, trending: DuckDBStore
    ) -> None:
        exact = trending.query_windows("bench", END, self.asks(approx=False))
        approx = trending.query_windows("bench", END, self.asks(approx=True))
        checked_sampled = 0
        for (m, a, _), want, got in zip(_APPROX, exact, approx, strict=False):
            want_by = {tuple(sorted(v.group.items())): v for v in want}
            got_by = {tuple(sorted(v.group.items())): v for v in got}
            assert got_by.keys() == want_by.keys()
            for k, w in want_by.items():
                v = got_by[k]
                assert v.num_spans == w.num_spans and v.value is not None and w.value is not None
                if w.num_spans <= APPROX_SAMPLE:  # every span read: the exact value
                    assert v.value == pytest.approx(w.value), (m, a, k)
                    continue
                checked_sampled += 1
                q = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}[a]
                col = METRICS[m].column
                assert col is not None
                rank = _rank(trending, col, dict(k), v.value)
                assert abs(rank - q) <= 0.02, (m, a, k, rank, v.value, w.value)
        assert checked_sampled >= 11  # the totals, the five large models, the NULL prompt
        for want, got in zip(exact[len(_APPROX) :], approx[len(_APPROX) :], strict=True):
            assert sorted((str(v.group), v.value, v.num_spans) for v in got) == sorted(
                (str(v.group), pytest.approx(v.value), v.num_spans) for v in want
            )

    def test_the_same_sample_every_time(self, trending: DuckDBStore) -> None:
        first = trending.query_windows("bench", END, self.asks(approx=True))
        again = trending.query_windows("bench", END, self.asks(approx=True))
        # the quantiles, exactly (a float sum may differ in its last bit with the thread order)
        for a, b in zip(first[: len(_APPROX)], again[: len(_APPROX)], strict=True):
            assert sorted((str(v.group), v.value) for v in a) == sorted(
                (str(v.group), v.value) for v in b
            )
