"""A runner process killed between its two ClickHouse writes (scores, then cursor): the next
runner evaluates the batch again and every span still has one score per evaluator."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sightline.evals import EvalRunner, RunnerOptions
from sightline.store import open_store
from sightline.store._clickhouse import SEQ_SETTLE_US
from sightline.store._eval_records import EvalCursor, ScoreQuery
from store._spans import store_url
from store.test_contract_eval_runner import Clock, Length

_CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, sys.argv[2])
    from sightline.evals import EvalRunner, RunnerOptions
    from sightline.store import open_store
    from store._spans import batch, span_record
    from store.test_contract_eval_runner import Clock, Length

    st = open_store(sys.argv[1])
    st.migrate()
    st.insert_batches([batch(*(span_record(output="x" * i) for i in range(6)))])
    write = st._insert_rows

    def die_before_the_cursor(table, columns, rows):
        if table == "eval_cursors":
            os._exit(9)  # killed: the scores are written, the cursor is not
        write(table, columns, rows)

    st._insert_rows = die_before_the_cursor
    r = EvalRunner(st, [Length()], options=RunnerOptions(grace_s=0.0), clock=Clock())
    r.step()
    sys.exit(0)  # not reached
    """
)


def test_a_runner_killed_before_its_cursor_write_scores_each_span_once(tmp_path: Path) -> None:
    if os.environ.get("SIGHTLINE_CLICKHOUSE_URL"):
        url = store_url("clickhouse", tmp_path)
    else:
        url = f"chdb://{tmp_path / 'ch'}"
    tests = str(Path(__file__).resolve().parent.parent)
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, url, tests], capture_output=True, text=True, timeout=300
    )
    assert child.returncode == 9, child.stdout + child.stderr
    st = open_store(url)
    st.migrate()
    try:
        assert st.get_eval_cursor("online") is None  # the cursor never moved
        first = st.query_scores(ScoreQuery(project_id="p", limit=100)).scores
        assert len(first) == 6  # the killed runner's scores are stored
        r = EvalRunner(st, [Length()], options=RunnerOptions(grace_s=0.0), clock=Clock())
        if getattr(st, "shared", False):
            time.sleep(SEQ_SETTLE_US / 1e6 + 0.2)  # a shared store's readers lag the last commit
        r.step()
        got = st.query_scores(ScoreQuery(project_id="p", limit=100)).scores
        assert sorted(s.score_id for s in got) == sorted(s.score_id for s in first)
        assert len({s.span_id for s in got}) == 6
        cursor = st.get_eval_cursor("online")
        assert cursor is not None and cursor != EvalCursor(0)
    finally:
        st.close()
