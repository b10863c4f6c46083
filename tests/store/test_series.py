"""query_metrics (a page's charts in one pass) answers what query_metric answers, one by one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from query import END, START, fill
from sightline.errors import ConfigError
from sightline.store import METRICS, DuckDBStore, MetricQuery


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    d = tmp_path_factory.mktemp("series")
    fill(d, 20_000)
    s = DuckDBStore(d / "sightline.duckdb")
    s.migrate()
    yield s
    s.close()


def _q(name: str, agg: str | None = None, **kw: object) -> MetricQuery:
    m = METRICS[name]
    return MetricQuery(
        project_id="bench",
        metric=m,
        agg=agg or m.default_agg,  # type: ignore[arg-type]
        start=kw.pop("start", START),  # type: ignore[arg-type]
        end=kw.pop("end", END),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def test_a_pages_charts_match_one_query_each(store: DuckDBStore) -> None:
    by = ("model",)
    queries = [
        # the overview's charts: one pass
        _q("requests", step_s=3 * 3600, group_by=by),
        _q("errors", step_s=3 * 3600, group_by=by),
        _q("latency_ms", "p95", step_s=3 * 3600, group_by=by),
        _q("latency_ms", "p50", step_s=3 * 3600, group_by=by),
        _q("cost_usd", "sum", step_s=3 * 3600, group_by=by),
        # another group_by, no step, a filter: passes of their own
        _q("error_rate", step_s=3 * 3600),
        _q("ttft_ms", "p99", group_by=("tenant_id",), filters={"model": "gpt-4o"}),
        _q("cost_per_request", group_by=("tenant_id",), filters={"model": "gpt-4o"}),
        _q("requests", start=END - timedelta(hours=2), end=END, step_s=600),
        # score-derived: query_metric's own path
        _q("relevance"),
    ]
    got = store.query_metrics(queries)
    assert len(got) == len(queries)
    for q, series in zip(queries, got, strict=True):
        want = store.query_metric(q)
        assert [s.group for s in series] == [s.group for s in want], q.metric.name
        for s, w in zip(series, want, strict=True):
            assert [t for t, _ in s.points] == [t for t, _ in w.points]
            assert [v for _, v in s.points] == pytest.approx([v for _, v in w.points])
    assert sum(len(s.points) for s in got[0]) > 5 * 50  # buckets of every model


def test_an_empty_range_and_bad_dimensions(store: DuckDBStore) -> None:
    later = END + timedelta(days=30)
    empty = store.query_metrics(
        [
            _q("requests", start=later, end=later + timedelta(days=1), step_s=3600, group_by=(d,))
            for d in ("model", "tenant_id")
        ]  # fmt: skip
    )
    assert empty == [[], []]
    with pytest.raises(ConfigError):
        store.query_metrics([_q("requests", group_by=("colour",)), _q("errors")])
    with pytest.raises(ConfigError):
        store.query_metrics([_q("requests", filters={"x": "1"}), _q("errors")])
