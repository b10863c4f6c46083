"""Query latency on a large store: p95 latency by model by hour over 7 days, and a span page.

    python bench/query.py            # 1,000,000 spans (make bench)
    python bench/query.py --quick    # 50,000 spans (make test)

The spans are generated inside DuckDB (SQL over range()), then a real server answers the
queries over HTTP; each query runs 5 times and the median is reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import _server  # noqa: E402
from sightline.store import DuckDBStore  # noqa: E402

END = datetime(2026, 1, 8, tzinfo=UTC)
START = END - timedelta(days=7)

_FILL = """
INSERT INTO spans
SELECT
    'bench', lpad(to_hex(i), 32, '0'), lpad(to_hex(i), 16, '0'), NULL,
    'chat ' || m, 'llm', t, t + to_microseconds(CAST(d * 1000 AS BIGINT)), d,
    CASE WHEN random() < 0.02 THEN 'error' ELSE 'ok' END, NULL,
    'support-bot', '1.0', 'prod', 'chat', 'openai', m, m, m,
    inp, out, inp + out, inp // 4, NULL, NULL, ttft, (d - ttft) / greatest(out - 1, 1), 'stop',
    0.2, NULL, 1024, NULL, false,
    'user-' || (i % 2000), 'sess-' || (i % 20000), 'tenant-' || (i % 50), 'answer', NULL, NULL,
    NULL, 'How do I reset my password? ' || i, 'Open the sign-in page. ' || i, NULL, NULL, NULL,
    (inp * 2.5 + out * 10) / 1e6, '{{}}', '{{}}', [],
    hash('bench', lpad(to_hex(i), 32, '0')), CAST(i AS UBIGINT), 1
FROM (
    SELECT i,
        ['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4-5', 'claude-3-5-haiku', 'gemini-2.5-pro'][
            1 + (i % 5)] AS m,
        TIMESTAMP '{start}' + to_microseconds(CAST(i * {step_us} AS BIGINT)) AS t,
        200 + random() * 3000 AS d,
        CAST(200 + random() * 2000 AS BIGINT) AS inp,
        CAST(20 + random() * 500 AS BIGINT) AS out,
        50 + random() * 500 AS ttft
    FROM range({n}) r(i)
)
"""


def fill(data_dir: Path, n: int) -> None:
    store = DuckDBStore(data_dir / "sightline.duckdb")
    store.migrate()
    step_us = 7 * 86400 * 1e6 / n
    store._write.execute(
        _FILL.format(n=n, step_us=step_us, start=START.replace(tzinfo=None).isoformat(sep=" "))
    )
    store._write.execute("CHECKPOINT")
    store.close()


def timed(client: httpx.Client, path: str, params: dict[str, object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = client.get(path, params=params)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, r.text
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="50,000 spans instead of 1,000,000")
    ap.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE for the server (repeatable)"
    )
    args = ap.parse_args()
    n = 50_000 if args.quick else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        t0 = time.perf_counter()
        fill(data, n)
        print(f"generated {n:,} spans in {time.perf_counter() - t0:.1f}s")
        env = dict(e.split("=", 1) for e in args.env)
        proc, url = _server.start(data, workers=0, env=env)
        try:
            with httpx.Client(base_url=url, headers={"x-api-key": _server.KEY}, timeout=60) as c:
                metric = {
                    "name": "latency_ms",
                    "agg": "p95",
                    "group_by": "model",
                    "step": "1h",
                    "from": START.isoformat(),
                    "to": END.isoformat(),
                }
                r = c.get("/api/v1/metrics", params=metric).json()
                assert len(r["series"]) == 5 and len(r["series"][0]["points"]) == 168
                count = c.get(
                    "/api/v1/metrics",
                    params={"name": "requests", "from": START.isoformat(), "to": END.isoformat()},
                ).json()
                assert count["series"][0]["points"][0]["value"] == n
                m_ms = timed(c, "/api/v1/metrics", metric)
                s_ms = timed(c, "/api/v1/spans", {"model": "gpt-4o", "limit": 100})
        finally:
            _server.stop(proc)
    print(f"spans={n} metrics_p95_by_model_by_hour_7d_median_ms={m_ms:.1f} (target < 150)")
    print(f"spans={n} spans_first_page_model_filter_median_ms={s_ms:.1f} (target < 100)")


if __name__ == "__main__":
    main()
