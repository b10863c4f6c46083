"""ClickHouse score reads see each score key once, before any merge (docs/clickhouse.md).

``scores`` is a ReplacingMergeTree: a score re-sent (or written again with a changed label)
stays two rows until a background merge. Merges are stopped here so that the copies are
really there when the reads run, and each test checks that they are.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sightline.model import Score
from sightline.store import open_store
from sightline.store._eval_records import ScoreQuery
from sightline.store.base import SCORE_METRICS, MetricQuery
from store._spans import T0, batch, span_record, store_url


@pytest.fixture
def ch(tmp_path: Path) -> Iterator[Any]:
    st: Any = open_store(store_url("clickhouse", tmp_path))
    st.migrate()
    st._cmd("SYSTEM STOP MERGES scores")
    try:
        yield st
    finally:
        st.close()


def _score(**over: Any) -> Score:
    d: dict[str, Any] = {
        "project_id": "p",
        "score_id": os.urandom(8).hex(),
        "trace_id": "t1",
        "span_id": "s1",
        "name": "faithfulness",
        "value": 1.0,
        "source": "evaluator",
        "evaluator": "faithfulness",
        "created_at": T0 + timedelta(minutes=1),
    }
    d.update(over)
    return Score(**d)


def _rows(st: Any) -> int:
    return int(st._q("SELECT count() FROM scores")[0][0])


def test_a_score_sent_twice_is_read_once_by_every_read(ch: Any) -> None:
    a, b = span_record(start=T0), span_record(start=T0 + timedelta(minutes=2))
    ch.insert_batches([batch(a, b)])
    twice = _score(trace_id=a["trace_id"], span_id=a["span_id"], value=1.0)
    once = _score(trace_id=b["trace_id"], span_id=b["span_id"], value=0.0)
    ch.add_scores([twice, once])
    ch.add_scores([twice])  # re-sent: a second row with the same key
    assert _rows(ch) == 3  # the copy is stored (no merge ran)

    assert ch.list_scores("p", a["trace_id"]) == [twice]
    both = ch.list_trace_scores("p", [a["trace_id"], b["trace_id"]])
    assert sorted(both, key=lambda s: s.score_id) == sorted([twice, once], key=lambda s: s.score_id)
    page = ch.query_scores(ScoreQuery(project_id="p", limit=10))
    assert sorted(s.score_id for s in page.scores) == sorted([twice.score_id, once.score_id])
    after = ch.list_scores_created_after(T0, source="evaluator", name="faithfulness", limit=10)
    assert sorted(s.score_id for s in after) == sorted([twice.score_id, once.score_id])
    m = SCORE_METRICS["faithfulness"]
    series = ch.query_metric(
        MetricQuery(
            project_id="p", metric=m, agg=m.default_agg, start=T0, end=T0 + timedelta(hours=1)
        )
    )
    assert [v for _, v in series[0].points] == [0.5]  # (1 + 0) / 2, not (1 + 1 + 0) / 3
    assert _rows(ch) == 3


def test_a_score_written_again_reads_as_its_last_version(ch: Any) -> None:
    first = _score(label="hallucination", value=0.0)
    ch.add_scores([first])
    relabelled = dataclasses.replace(first, label="faithful", value=1.0)
    ch.add_scores([relabelled])
    assert _rows(ch) == 2

    assert ch.list_scores("p", "t1") == [relabelled]
    assert ch.query_scores(ScoreQuery(project_id="p", label="hallucination")).scores == []
    assert ch.query_scores(ScoreQuery(project_id="p", label="faithful")).scores == [relabelled]
