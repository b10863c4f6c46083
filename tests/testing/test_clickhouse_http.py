"""sightline.testing.ClickHouseHTTP: clickhouse-connect talks to it as to a server, and the store
works on a server that does not run in UTC (found with it: time ranges were read in the
server's time zone)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

pytest.importorskip("chdb")
clickhouse_connect = pytest.importorskip("clickhouse_connect")

from sightline.model import Release, Score  # noqa: E402
from sightline.store import open_store  # noqa: E402
from sightline.store.base import SpanQuery  # noqa: E402
from sightline.testing import ClickHouseHTTP  # noqa: E402
from store._spans import T0, batch, span_record  # noqa: E402


@pytest.fixture(scope="module")
def west(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseHTTP]:
    """A server in New York time, as servers configured in local time are."""
    tmp = tmp_path_factory.mktemp("ch-west")
    with ClickHouseHTTP(tmp / "data", timezone="America/New_York") as ch:
        yield ch


def test_clickhouse_connect_uses_it_as_a_server(west: ClickHouseHTTP) -> None:
    c = clickhouse_connect.get_client(host=west.host, port=west.port, username="default")
    assert c.server_version and c.server_tz.key == "America/New_York"  # type: ignore[attr-defined]
    db = f"h_{os.urandom(4).hex()}"
    c.command(f"CREATE DATABASE {db}")
    c.close()
    c = clickhouse_connect.get_client(host=west.host, port=west.port, database=db)
    c.command(
        "CREATE TABLE t (a Int64, b LowCardinality(String), n Nullable(String))"
        " ENGINE = MergeTree ORDER BY a"
    )
    c.insert("t", [[1, "x", None], [2, "y", "z"]], column_names=["a", "b", "n"])  # Native
    c.insert_arrow("t", pa.table({"a": [3], "b": ["q"], "n": ["w"]}))  # Arrow
    many = [f"{i:032x}" for i in range(3000)]  # too long for the URL: sent as a form
    rows = c.query(
        "SELECT a, b, n FROM t WHERE a IN {ids:Array(Int64)} OR b IN {s:Array(String)} ORDER BY a",
        parameters={"ids": [1, 2, 3], "s": many},
    ).result_rows
    assert rows == [(1, "x", None), (2, "y", "z"), (3, "q", "w")]
    assert c.query_arrow("SELECT count() AS n FROM t").column("n").to_pylist() == [3]
    # a request's settings are that request's only
    assert (
        c.query("SELECT getSetting('max_threads')", settings={"max_threads": 3}).result_rows[0][0]
        == 3
    )
    assert c.query("SELECT getSetting('max_threads')").result_rows[0][0] != 3
    # errors arrive as ClickHouse errors, with their codes
    with pytest.raises(clickhouse_connect.driver.exceptions.DatabaseError) as e:
        c.query("SELECT * FROM nope")
    assert e.value.code == 60 and "UNKNOWN_TABLE" in str(e.value)  # type: ignore[attr-defined]
    with pytest.raises(clickhouse_connect.driver.exceptions.DatabaseError) as e:
        c.command("SELEC 1")
    assert e.value.code == 62  # type: ignore[attr-defined]
    assert c.ping()
    c.close()


def test_a_wrong_password_is_refused(tmp_path: Path) -> None:
    with ClickHouseHTTP(tmp_path / "data", password="s3cret") as ch:
        ok = clickhouse_connect.get_client(host=ch.host, port=ch.port, password="s3cret")
        assert ok.command("SELECT 1") == 1
        ok.close()
        with pytest.raises(clickhouse_connect.driver.exceptions.DatabaseError) as e:
            clickhouse_connect.get_client(host=ch.host, port=ch.port, password="nope")
        assert e.value.code == 516  # type: ignore[attr-defined]


def _score(i: int, at: datetime) -> Score:
    return Score(
        project_id="p",
        score_id=f"s{i}",
        trace_id="a" * 32,
        span_id=None,
        name="pii_leak",
        value=1.0,
        source="online",
        created_at=at,
    )


def test_the_store_on_a_server_west_of_utc(west: ClickHouseHTTP) -> None:
    """Time parameters are UTC whatever the server's zone (they were read as New York time:
    ranges missed by five hours and a worker's re-scored range was stored twice)."""
    st = open_store(west.store_url(f"s_{os.urandom(4).hex()}"))
    st.migrate()
    try:
        now = datetime.now(UTC)
        assert st.append_scores_once([_score(1, now)], since=now - timedelta(minutes=1)) == 1
        # the same score again, as a worker that took over the range sends it: skipped
        assert st.append_scores_once([_score(1, now)], since=now - timedelta(minutes=1)) == 0

        for i in range(3):
            st.add_release(
                Release(
                    project_id="p",
                    release_id=f"r{i}",
                    kind="manual",
                    service="bot",
                    version=f"1.{i}",
                    at=T0 + timedelta(hours=i),
                    created_at=T0 + timedelta(hours=i, minutes=1),
                )
            )
        got = st.list_releases("p", start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=2))
        assert [r.release_id for r in got] == ["r1"]

        st.insert_batches([batch(*(span_record(start=T0 + timedelta(hours=h)) for h in range(4)))])
        page = st.list_spans(
            SpanQuery(project_id="p", start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=3))
        )
        assert sorted(s.start_time for s in page.spans) == [
            T0 + timedelta(hours=1),
            T0 + timedelta(hours=2),
        ]
    finally:
        st.close()
