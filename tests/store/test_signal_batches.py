"""OTLP metrics and logs batches in the DuckDB store: keyed batches are written once."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ingest import logs_request, metrics_request
from sightline.ingest._service import _prepare_signal
from sightline.ingest._signals import MetricRows
from sightline.store import DuckDBStore
from sightline.store.base import BATCH_KEY


def _table(signal: str, body: bytes, project: str = "p") -> pa.Table:
    table, _ = _prepare_signal(signal, "otlp_proto", body, None, project, 1 << 26)
    assert table is not None
    return table


def _count(store: DuckDBStore, table: str) -> int:
    with store._cursor() as cur:
        return int(cur.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])  # noqa: S608


class TestSignalBatches:
    def test_a_batch_is_keyed_by_its_request(self) -> None:
        a, b = metrics_request(1), metrics_request(2)
        key = _table("metrics", a).schema.metadata[BATCH_KEY]
        assert _table("metrics", a).schema.metadata[BATCH_KEY] == key
        assert _table("metrics", b).schema.metadata[BATCH_KEY] != key
        assert _table("metrics", a, project="q").schema.metadata[BATCH_KEY] != key

    def test_a_resent_batch_is_written_once_in_one_group_or_across_groups(
        self, tmp_path: Path
    ) -> None:
        store = DuckDBStore(tmp_path / "db.duckdb")
        store.migrate()
        m1, m2 = _table("metrics", metrics_request(1)), _table("metrics", metrics_request(2))
        assert store.insert_signal_batches("metrics", [m1, m1]) == 2000
        assert store.insert_signal_batches("metrics", [m1]) == 0
        assert store.insert_signal_batches("metrics", [m2, m1]) == 2000
        assert _count(store, "otel_metric_points") == 4000
        logs = _table("logs", logs_request(1))
        assert store.insert_signal_batches("logs", [logs]) == 1000
        assert store.insert_signal_batches("logs", [logs]) == 0
        assert _count(store, "otel_logs") == 1000
        with store._cursor() as cur:
            rows = cur.execute(
                "SELECT 'metrics', count(DISTINCT batch_key), count(batch_key)"
                " FROM otel_metric_points UNION ALL"
                " SELECT 'logs', count(DISTINCT batch_key), count(batch_key) FROM otel_logs"
                " ORDER BY 1"
            ).fetchall()
        assert rows == [("logs", 1, 1000), ("metrics", 2, 4000)]
        store.close()

    def test_unkeyed_batches_are_always_written(self, tmp_path: Path) -> None:
        """Scraped samples carry no key: each scrape is a new reading."""
        store = DuckDBStore(tmp_path / "db.duckdb")
        store.migrate()
        rows = MetricRows("p")
        rows.add(
            name="up",
            type_="gauge",
            attributes="{}",
            resource_attributes="{}",
            service_name=None,
            time_ns=1_700_000_000 * 10**9,
            value=1.0,
            source="scrape",
        )
        table = rows.table()
        assert table is not None
        keyed = _table("metrics", metrics_request(3))
        assert store.insert_signal_batches("metrics", [table, keyed, table]) == 2002
        assert store.insert_signal_batches("metrics", [table]) == 1
        assert _count(store, "otel_metric_points") == 2003
        store.close()

    def test_a_batch_resent_after_a_restart_is_written_once(self, tmp_path: Path) -> None:
        path = tmp_path / "db.duckdb"
        store = DuckDBStore(path)
        store.migrate()
        logs = _table("logs", logs_request(7))
        assert store.insert_signal_batches("logs", [logs]) == 1000
        store.close()
        store = DuckDBStore(path)
        store.migrate()
        assert store.insert_signal_batches("logs", [logs]) == 0
        assert _count(store, "otel_logs") == 1000
        store.close()
