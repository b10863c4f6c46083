from __future__ import annotations

from pathlib import Path

from _payload import llm_request
from sightline.ingest._service import _prepare
from sightline.store import DuckDBStore


def _batch(n: int):  # type: ignore[no-untyped-def]
    table, _ = _prepare("otlp_proto", llm_request(n)[0].SerializeToString(), None, "p", 1 << 24)
    assert table is not None
    return table


class TestIngestSeq:
    def test_each_commit_gets_the_next_sequence_number_across_restarts(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "db.duckdb"
        store = DuckDBStore(path)
        store.migrate()
        store.insert_batches([_batch(3)])
        store.insert_batches([_batch(2), _batch(1)])
        store.close()
        store = DuckDBStore(path)
        store.migrate()
        store.insert_batches([_batch(4)])
        with store._cursor() as cur:
            rows = cur.execute(
                "SELECT ingest_seq, count(*) FROM spans GROUP BY 1 ORDER BY 1"
            ).fetchall()
        store.close()
        assert rows == [(1, 3), (2, 3), (3, 4)]

    def test_a_retried_batch_keeps_its_first_sequence_number(self, tmp_path: Path) -> None:
        store = DuckDBStore(tmp_path / "db.duckdb")
        store.migrate()
        b = _batch(5)
        store.insert_batches([b])
        store.insert_batches([b])
        with store._cursor() as cur:
            rows = cur.execute("SELECT ingest_seq, count(*) FROM spans GROUP BY 1").fetchall()
        store.close()
        assert rows == [(1, 5)]
