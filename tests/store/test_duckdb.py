from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from _evalspans import insert, span
from _payload import llm_request
from sightline.ingest._service import _prepare
from sightline.store import DuckDBStore, SpanQuery


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


class TestTextSearch:
    """list_spans(text=...): a case-insensitive substring of the input or the output."""

    TEXTS = (
        ("Reset my PASSWORD please", "ok"),
        ("école du soir", "Straße"),
        ("50% off", "a_b"),
        ("5000 off", "axb"),
        ("back\\slash", ""),
    )

    def search(self, store: DuckDBStore, text: str) -> list[str]:
        now = datetime.now(UTC)
        page = store.list_spans(
            SpanQuery(project_id="p", start=now - timedelta(days=1),
                      end=now + timedelta(days=1), text=text, limit=10)
        )  # fmt: skip
        return sorted(s.input or "" for s in page.spans)

    def test_case_unicode_and_like_wildcards_taken_literally(self, tmp_path: Path) -> None:
        store = DuckDBStore(tmp_path / "db.duckdb")
        store.migrate()
        insert(store, [span("p", f"{i + 1:032x}", kind="llm", name="chat", input=i_, output=o)
                       for i, (i_, o) in enumerate(self.TEXTS)])  # fmt: skip
        assert self.search(store, "password") == ["Reset my PASSWORD please"]
        assert self.search(store, "ÉCOLE") == ["école du soir"]
        assert self.search(store, "STRASSE") == []  # folding is per character, not ß -> ss
        assert self.search(store, "straße") == ["école du soir"]
        assert self.search(store, "0% off") == ["50% off"]  # % is a character, not a wildcard
        assert self.search(store, "a_b") == ["50% off"]  # _ too
        assert self.search(store, "k\\s") == ["back\\slash"]
        assert self.search(store, "nothing like it") == []
        store.close()
