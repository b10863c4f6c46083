"""query_windows (the monitor's batched passes) answers what query_metric answers, one by one."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta

import pytest

from query import END, fill
from sightline.errors import ConfigError
from sightline.store import METRICS, DuckDBStore, MetricQuery, WindowAgg


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
