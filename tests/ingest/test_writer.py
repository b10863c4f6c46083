from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from _helpers import GatedStore
from _payload import llm_request
from sightline.errors import Overloaded, StoreError, StoreUnavailable, UnstorableBatch
from sightline.ingest import GroupCommitWriter
from sightline.ingest._service import _prepare
from sightline.store import DuckDBStore


def _batch(n: int) -> pa.Table:
    table, _ = _prepare("otlp_proto", llm_request(n)[0].SerializeToString(), None, "p", 1 << 24)
    assert table is not None
    return table


@pytest.fixture
def store(tmp_path: Path) -> GatedStore:
    s = GatedStore(tmp_path / "db.duckdb")
    s.migrate()
    return s


def test_queue_full_raises_overloaded_then_recovers(store: GatedStore) -> None:
    w = GroupCommitWriter(store, max_queue_spans=100)
    w.start()
    first = w.submit(_batch(60), 60)
    assert store.entered.wait(5)  # the writer holds the first batch in its transaction
    second = w.submit(_batch(40), 40)
    with pytest.raises(Overloaded) as exc:
        w.submit(_batch(10), 10)
    assert exc.value.status == 503 and exc.value.retry_after_s >= 1
    store.gate.set()
    assert first.result(10) == 60 and second.result(10) == 40
    assert w.submit(_batch(10), 10).result(10) == 10
    w.stop()
    assert store.count_spans("p") == 110


def test_waiting_batches_share_one_commit(store: GatedStore) -> None:
    w = GroupCommitWriter(store)
    w.start()
    first = w.submit(_batch(5), 5)
    assert store.entered.wait(5)
    rest = [w.submit(_batch(5), 5) for _ in range(6)]
    store.gate.set()
    assert [f.result(10) for f in [first, *rest]] == [5] * 7
    w.stop()
    assert w.num_commits == 2  # the first alone, the six that waited together


def test_store_failure_fails_the_requests_not_the_writer(store: GatedStore) -> None:
    w = GroupCommitWriter(store)
    w.start()
    store.fail = True
    store.gate.set()
    with pytest.raises(StoreUnavailable, match="retry later") as e:
        w.submit(_batch(3), 3).result(10)
    assert e.value.status == 503 and e.value.retry_after_s >= 1
    assert not w.healthy and "disk full" in (w.last_error or "")  # details stay server-side
    store.fail = False
    assert w.submit(_batch(3), 3).result(10) == 3
    assert w.healthy
    w.stop()
    assert w.queued_spans == 0


def test_ready_waits_until_writes_have_stopped_failing(store: GatedStore) -> None:
    """A nearly full disk takes a small commit between failed ones: /readyz must not flap."""
    w = GroupCommitWriter(store, settle_s=1.0)
    w.start()
    store.gate.set()
    assert w.submit(_batch(3), 3).result(10) == 3
    assert w.healthy and w.ready
    store.fail = True
    with pytest.raises(StoreUnavailable):
        w.submit(_batch(3), 3).result(10)
    store.fail = False
    assert w.submit(_batch(3), 3).result(10) == 3
    assert w.healthy and not w.ready  # the last failure is too recent
    time.sleep(0.6)
    store.fail = True
    before_second = time.monotonic()  # the failure comes after this
    with pytest.raises(StoreUnavailable):
        w.submit(_batch(3), 3).result(10)
    store.fail = False
    assert w.submit(_batch(3), 3).result(10) == 3
    time.sleep(0.5)  # over 1.1 s after the first failure, under 1 s after the second
    assert w.healthy and (not w.ready or time.monotonic() - before_second >= 1.0)
    deadline = time.monotonic() + 5
    while not w.ready and time.monotonic() < deadline:
        time.sleep(0.02)
    assert w.ready and time.monotonic() - before_second >= 1.0
    w.stop()


def test_stop_commits_what_was_queued(store: GatedStore) -> None:
    store.gate.set()
    w = GroupCommitWriter(store)
    w.start()
    futures = [w.submit(_batch(20), 20) for _ in range(5)]
    w.stop()
    assert all(f.done() and f.result() == 20 for f in futures)
    with pytest.raises(Overloaded):
        w.submit(_batch(1), 1)


def test_a_span_arrow_cannot_hold_is_rejected_alone() -> None:
    """Whatever slips past validation, one bad value never costs the whole batch."""
    from sightline.ingest._decode import Limits, decode_otlp_proto
    from sightline.ingest._service import _to_table

    res = decode_otlp_proto(llm_request(3)[0].SerializeToString(), "p", limits=Limits())
    res.records[1]["seed"] = 2**80  # past int64
    table = _to_table(res)
    assert table is not None and table.num_rows == 2
    assert res.rejected == {"unstorable_span": 1}


def test_writer_probes_and_recovers_with_no_traffic(store: GatedStore) -> None:
    w = GroupCommitWriter(store, probe_interval_s=0.1)
    w.start()
    store.fail = True
    store.gate.set()
    with pytest.raises(StoreUnavailable):
        w.submit(_batch(3), 3).result(10)
    time.sleep(0.3)
    assert not w.healthy  # the probe fails while the store does
    store.fail = False
    deadline = time.monotonic() + 5
    while not w.healthy and time.monotonic() < deadline:
        time.sleep(0.05)
    assert w.healthy  # no request was needed
    w.stop()


def test_duckdb_invalidated_by_a_full_disk_is_reopened_and_keeps_commits(
    tmpfs: Callable[[str], Path],
) -> None:
    """A checkpoint on a full disk invalidates DuckDB's database; the writer reopens it."""
    mnt = tmpfs("8m")
    store = DuckDBStore(mnt / "db.duckdb")
    store.migrate()
    # Checkpoint early: the checkpoint, not the log, is what meets the full disk.
    store._write.execute("SET checkpoint_threshold = '256KB'")
    w = GroupCommitWriter(store, probe_interval_s=0.1)
    w.start()
    committed = 0
    error = None
    for _ in range(500):
        try:
            committed += w.submit(_batch(200), 200).result(30)
        except StoreUnavailable:
            error = w.last_error
            break
    assert error is not None and "No space left on device" in error
    assert "checkpoint" in error.lower()  # the fatal kind, that invalidates the database
    assert committed > 0
    subprocess.run(["mount", "-o", "remount,size=256m", str(mnt)], check=True)  # noqa: S603, S607
    deadline = time.monotonic() + 10
    while not w.healthy and time.monotonic() < deadline:
        time.sleep(0.05)
    assert w.healthy, w.last_error
    committed += w.submit(_batch(200), 200).result(30)
    w.stop()
    with store._cursor() as cur:
        assert cur.execute("SELECT count(*) FROM spans").fetchall()[0][0] == committed
    store.close()


def test_linger_takes_an_announced_batch_into_the_same_commit(store: GatedStore) -> None:
    store.gate.set()
    w = GroupCommitWriter(store, linger_s=5.0)
    w.start()
    w.expect()  # a second request is still being decoded
    first = w.submit(_batch(5), 5)
    time.sleep(0.2)
    assert not first.done()  # not acknowledged before its commit, which waits for the other
    second = w.submit(_batch(7), 7, expected=True)
    assert first.result(10) == 5 and second.result(10) == 7
    w.stop()
    assert w.num_commits == 1 and w.num_lingers == 1
    assert store.count_spans("p") == 12


def test_linger_ends_when_the_announced_batch_will_not_come(store: GatedStore) -> None:
    store.gate.set()
    w = GroupCommitWriter(store, linger_s=30.0)
    w.start()
    w.expect()
    first = w.submit(_batch(5), 5)
    t0 = time.monotonic()
    w.unexpect()  # its decode failed or it held no spans
    assert first.result(10) == 5
    assert time.monotonic() - t0 < 10
    w.stop()


def test_the_store_checkpoints_in_a_pause_not_in_a_burst(tmp_path: Path) -> None:
    """DuckDB's log is folded into the file once commits pause, so the next burst's commits
    do not wait for a checkpoint (the store's own threshold is only reached without pauses)."""
    store = DuckDBStore(tmp_path / "db.duckdb")
    store.migrate()
    store.idle_checkpoint_bytes = 1  # any log at all
    wal = tmp_path / "db.duckdb.wal"
    w = GroupCommitWriter(store, idle_s=1.0)
    w.start()
    try:
        # Back to back, as a burst: no pause of idle_s between the commits.
        for _ in range(3):
            assert w.submit(_batch(50), 50).result(10) == 50
        assert w.num_commits == 3 and w.num_upkeeps == 0
        assert wal.stat().st_size > 0
        deadline = time.monotonic() + 10
        while w.num_upkeeps == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert w.num_upkeeps == 1 and store.num_idle_checkpoints == 1
        assert not wal.exists() or wal.stat().st_size == 0
        time.sleep(1.5)
        assert w.num_upkeeps == 1  # nothing committed since: no second checkpoint
        assert w.submit(_batch(5), 5).result(10) == 5
    finally:
        w.stop()
    assert store.count_spans("p") == 155


def test_a_small_log_waits_for_more_before_a_checkpoint(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "db.duckdb")
    store.migrate()
    w = GroupCommitWriter(store, idle_s=0.05)
    w.start()
    try:
        assert w.submit(_batch(20), 20).result(10) == 20
        time.sleep(0.5)
    finally:
        w.stop()
    assert 0 < (tmp_path / "db.duckdb.wal").stat().st_size < store.idle_checkpoint_bytes
    assert w.num_upkeeps == 0 and store.num_idle_checkpoints == 0


def test_a_failed_checkpoint_fails_no_request_and_shows_until_a_write_succeeds(
    tmp_path: Path,
) -> None:
    class Failing(DuckDBStore):
        calls = 0

        def checkpoint_when_idle(self) -> bool:
            self.calls += 1
            raise StoreError("checkpoint failed: No space left on device")

    store = Failing(tmp_path / "db.duckdb")
    store.migrate()
    w = GroupCommitWriter(store, idle_s=0.05)
    w.start()
    try:
        assert w.submit(_batch(5), 5).result(10) == 5
        deadline = time.monotonic() + 10
        while store.calls == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.calls == 1
        assert not w.healthy and "upkeep failed" in (w.last_error or "")  # /readyz says so
        assert "No space left" in (w.last_error or "")
        assert w.submit(_batch(5), 5).result(10) == 5  # the next commit as usual
        assert w.healthy
    finally:
        w.stop()
    assert store.count_spans("p") == 10


def test_a_checkpoint_in_a_pause_on_a_full_disk_is_reopened_without_a_request(
    tmpfs: Callable[[str], Path],
) -> None:
    """The pauses' checkpoints meet the full disk; the store comes back with no request."""
    mnt = tmpfs("8m")
    store = DuckDBStore(mnt / "db.duckdb")
    store.migrate()
    store.idle_checkpoint_bytes = 1  # a checkpoint in every pause
    w = GroupCommitWriter(store, probe_interval_s=0.1, idle_s=0.02)
    w.start()
    committed = 0
    try:
        for _ in range(500):
            try:
                committed += w.submit(_batch(200), 200).result(30)
            except StoreUnavailable:
                pass
            time.sleep(0.1)  # a pause: the writer checkpoints
            if not w.healthy:
                break
        assert not w.healthy and "No space left on device" in (w.last_error or "")
        assert committed > 0 and store.num_idle_checkpoints > 0
        subprocess.run(["mount", "-o", "remount,size=256m", str(mnt)], check=True)  # noqa: S603, S607
        deadline = time.monotonic() + 10
        while not w.healthy and time.monotonic() < deadline:
            time.sleep(0.05)
        assert w.healthy, w.last_error  # the probe, not a request, brought it back
        assert store.count_spans("p") == committed  # readers work again
    finally:
        w.stop()
    store.close()


def test_rows_the_store_refuses_fail_their_request_alone(store: GatedStore) -> None:
    w = GroupCommitWriter(store)
    w.start()
    first = w.submit(_batch(5), 5)
    assert store.entered.wait(5)  # the next three wait, then share one commit
    good = [w.submit(_batch(4), 4) for _ in range(2)]
    bad_table = _batch(3)
    i = bad_table.schema.get_field_index("name")
    bad_table = bad_table.set_column(i, "name", pa.array([None] * 3, pa.string()))  # NOT NULL
    bad = w.submit(bad_table, 3)
    later = w.submit(_batch(2), 2)
    store.gate.set()
    assert first.result(10) == 5
    with pytest.raises(UnstorableBatch) as e:
        bad.result(10)
    assert e.value.status == 400
    assert [f.result(10) for f in good] == [4, 4] and later.result(10) == 2
    assert w.healthy and w.ready and w.last_error is None  # the store is fine: /readyz 200
    assert w.num_unstorable == 1 and w.num_failed_commits == 0
    w.stop()
    assert store.count_spans("p") == 5 + 8 + 2


def test_a_request_that_gave_up_does_not_stop_the_writer(store: GatedStore) -> None:
    w = GroupCommitWriter(store)
    w.start()
    first = w.submit(_batch(2), 2)
    assert store.entered.wait(5)
    gone = w.submit(_batch(3), 3)
    stays = w.submit(_batch(4), 4)
    assert gone.cancel()  # what asyncio.wrap_future does when the request's task is cancelled
    store.gate.set()
    assert first.result(10) == 2 and stays.result(10) == 4
    assert w.submit(_batch(1), 1).result(10) == 1  # the thread lives on
    w.stop()
    assert store.count_spans("p") == 2 + 3 + 4 + 1  # committed: the client may retry, dedupe


def test_a_refused_batch_among_many_costs_a_few_commits_not_one_each(store: GatedStore) -> None:
    w = GroupCommitWriter(store)
    w.start()
    first = w.submit(_batch(1), 1)
    assert store.entered.wait(5)
    futures = [w.submit(_batch(2), 2) for _ in range(15)]
    bad_table = _batch(2)
    i = bad_table.schema.get_field_index("name")
    futures.insert(
        7, w.submit(bad_table.set_column(i, "name", pa.array([None] * 2, pa.string())), 2)
    )
    store.gate.set()
    first.result(10)
    commits = w.num_commits
    for j, f in enumerate(futures):
        if j == 7:
            with pytest.raises(UnstorableBatch):
                f.result(10)
        else:
            assert f.result(10) == 2
    w.stop()
    assert w.num_commits - commits <= 2 * 4  # halving 16 requests: ~log2(16) commits a level
    assert store.count_spans("p") == 1 + 15 * 2


def test_a_pause_links_the_scores_stored_before_their_span(tmp_path: Path) -> None:
    """A score written before its span (an OTLP evaluation event sent first) has no span start
    time, so every metric of its name joins the spans again; the writer's upkeep, once the span
    is committed, gives it one (the earliest start of the span, as an insert does)."""
    from sightline.model import Score
    from sightline.store._duckdb_evals import _has_orphans
    from store._spans import T0, batch, span_record

    store = DuckDBStore(tmp_path / "db.duckdb")
    store.migrate()
    store.link_scores_interval_s = 0.0
    rec = span_record()
    now = datetime.now(UTC)
    store.add_scores(
        [
            Score(project_id="p", score_id=f"s{i}", trace_id=rec["trace_id"], span_id=sid,
                  name="faithfulness", value=0.5, source="evaluator", created_at=at)
            for i, (sid, at) in enumerate([(rec["span_id"], now), ("ab" * 8, now),
                                           (rec["span_id"], now - timedelta(days=2))])
        ]
    )  # fmt: skip
    assert _has_orphans(store, ["p", "faithfulness", "evaluator"])
    w = GroupCommitWriter(store, idle_s=0.05)
    w.start()
    try:
        assert w.submit(batch(rec), 1).result(10) == 1
        deadline = time.monotonic() + 10
        while store.num_linked_scores == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        w.stop()
    with store._cursor() as cur:
        rows = cur.execute("SELECT score_id, span_start_time FROM scores ORDER BY 1").fetchall()
    # s1's span never came; s2, two days old, is no longer looked for (it stays joined)
    assert rows == [("s0", T0.replace(tzinfo=None)), ("s1", None), ("s2", None)]
    assert store.num_linked_scores == 1
    # the span that never came keeps its score joined; a store whose scores all have a start
    # skips the join
    assert _has_orphans(store, ["p", "faithfulness", "evaluator"])
    with store._cursor() as cur:
        cur.execute("DELETE FROM scores WHERE score_id IN ('s1', 's2')")
    assert not _has_orphans(store, ["p", "faithfulness", "evaluator"])
    store.close()


def test_the_link_of_orphan_scores_waits_its_interval(tmp_path: Path) -> None:
    from sightline.model import Score
    from store._spans import batch, span_record

    store = DuckDBStore(tmp_path / "db.duckdb")
    store.migrate()
    store.link_scores_interval_s = 3600.0
    first, second = span_record(), span_record()
    scores = [
        Score(project_id="p", score_id=r["span_id"], trace_id=r["trace_id"], span_id=r["span_id"],
              name="relevance", value=1.0, source="evaluator", created_at=datetime.now(UTC))
        for r in (first, second)
    ]  # fmt: skip
    store.add_scores(scores[:1])
    store.insert_batches([batch(first)])
    assert store.checkpoint_when_idle() and store.num_linked_scores == 1
    store.add_scores(scores[1:])
    store.insert_batches([batch(second)])
    store.checkpoint_when_idle()
    assert store.num_linked_scores == 1  # within the hour: not again
    store.close()
