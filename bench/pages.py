"""Dashboard page latency on a large store: each page's HTML, logged in, over HTTP.

    python bench/pages.py            # 1,000,000 spans (make bench)
    python bench/pages.py --quick    # 50,000 spans (make test)

The spans are generated inside DuckDB as bench/query.py does (7 days of LLM calls), then a
real server renders every page over two ranges: the last 24 hours of the data and all 7 days.
Each page is fetched 5 times; the median wall time of the request is reported (it includes
the loopback round trip, so it bounds the server-side time from above), and the server's own
time and CPU from its Server-Timing header (CPU of the whole server process, DuckDB's threads
included: on a busy shared machine it moves far less than the wall time). Target: < 300 ms.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import _server  # noqa: E402
import query  # noqa: E402
from query import END, START  # noqa: E402
from sightline.store import DuckDBStore  # noqa: E402
from sightline.store._duckdb_evals import mark_superseded  # noqa: E402

EMAIL = "bench@example.com"
PASSWORD = "bench password 123"  # noqa: S105 - a throwaway server's login
PAGES = ("/", "/traces", "/traces?q=password+12345", "/traces?model=gpt-4o", "/quality",
         "/alerts", "/drift", "/cost", "/prompts", "/settings",
         "/prompts/bench-prompt", "/prompts/bench-prompt?a=1&b=30",
         "/prompts/bench-prompt/edit")  # fmt: skip
PROMPT_VERSIONS = 30
"""Versions of the registry prompt the Prompts pages show (each a ~3 KB template)."""


def fill_lower(data_dir: Path, n: int) -> None:
    """bench/query.py's spans, with lower-case hex ids as ingest stores them."""
    store = DuckDBStore(data_dir / "sightline.duckdb")
    store.migrate()
    sql = query._FILL.replace("to_hex(i)", "lower(to_hex(i))")
    start = START.replace(tzinfo=None).isoformat(sep=" ")
    store._write.execute(sql.format(n=n, step_us=7 * 86400 * 1e6 / n, start=start))
    store._write.execute("CHECKPOINT")
    store.close()


SCORED = ("relevance", "faithfulness")


def fill_scores(data_dir: Path, runs: int) -> int:
    """Each span scored by the ``SCORED`` evaluators ``runs`` times (a re-run adds rows), as
    the evaluation runner stores them (with their span's start time)."""
    store = DuckDBStore(data_dir / "sightline.duckdb")
    for r in range(runs):
        for name in SCORED:
            store._write.execute(
                "INSERT INTO scores (project_id, score_id, trace_id, span_id, name, value, passed,"
                " source, evaluator, evaluator_version, created_at, span_start_time)"
                " SELECT project_id, md5(span_id || ?), trace_id, span_id, ?,"
                " random(), random() > 0.3, 'evaluator', ?, '1',"
                " start_time + INTERVAL 5 SECOND + to_hours(CAST(? AS BIGINT)), start_time"
                " FROM spans",  # the span's start time kept on its score, as the runner's
                [f"{name}{r}", name, name, r],
            )
    # a re-run's older scores are superseded, as the store marks them when it writes
    for (project,) in store._write.execute("SELECT DISTINCT project_id FROM scores").fetchall():
        mark_superseded(store._write, project)
    store._write.execute("CHECKPOINT")
    (count,) = store._write.execute("SELECT count(*) FROM scores").fetchone() or (0,)
    store.close()
    return int(count)


def login(c: httpx.Client) -> None:
    form = c.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf
    r = c.post("/login", data={"email": EMAIL, "password": PASSWORD, "csrf": csrf.group(1)})
    assert r.status_code == 303, r.text


def register_prompt(c: httpx.Client) -> None:
    """A prompt of PROMPT_VERSIONS versions, written through the dashboard's form."""
    page = c.get("/prompts/_new")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text[-2000:]
    for v in range(1, PROMPT_VERSIONS + 1):
        rule = "Rule {i}: answer about {{{{product}}}} in at most {n} words."
        lines = [rule.format(i=i, n=v + i) for i in range(60)]
        r = c.post("/prompts/_new", data={
            "csrf": csrf.group(1), "name": "bench-prompt", "template": "\n".join(lines),
            "model": "gpt-4o-mini", "parameters": f'{{"temperature": {v / 100}}}',
            "labels": "production" if v == PROMPT_VERSIONS else "", "message": f"version {v}",
        })  # fmt: skip
        assert r.status_code == 303, r.text[-2000:]


def timed(
    c: httpx.Client, path: str, params: dict[str, str], runs: int = 5
) -> tuple[float, float, float]:
    """Median wall time of the request, and the server's own time and CPU (Server-Timing)."""
    times, server, cpu = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = c.get(path, params=params)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        timing = r.headers.get("server-timing", "")
        m = re.search(r"page;dur=([\d.]+)", timing)
        assert m, r.headers
        server.append(float(m.group(1)))
        m = re.search(r"cpu;dur=([\d.]+)", timing)
        cpu.append(float(m.group(1)) if m else float("nan"))
    return statistics.median(times), statistics.median(server), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="50,000 spans instead of 1,000,000")
    ap.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE for the server (repeatable)"
    )
    ap.add_argument(
        "--score-runs", type=int, default=1,
        help=f"times each span is scored by {', '.join(SCORED)} (0: no scores; 2: a re-run)",
    )  # fmt: skip
    args = ap.parse_args()
    n = 50_000 if args.quick else 1_000_000
    ranges = {
        "24h": {"from": str(int(END.timestamp()) - 86400), "to": str(int(END.timestamp()))},
        "7d": {"from": str(int(START.timestamp())), "to": str(int(END.timestamp()))},
    }
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        t0 = time.perf_counter()
        fill_lower(data, n)
        scores = fill_scores(data, args.score_runs)
        print(f"generated {n:,} spans and {scores:,} scores in {time.perf_counter() - t0:.1f}s")
        env = {"SIGHTLINE_INIT_ADMIN_EMAIL": EMAIL, "SIGHTLINE_INIT_ADMIN_PASSWORD": PASSWORD,
               "SIGHTLINE_MONITOR_INTERVAL_S": "0", "SIGHTLINE_DRIFT_INTERVAL_S": "0",
               "SIGHTLINE_EVAL_ENABLED": "false"}  # fmt: skip
        env.update(e.split("=", 1) for e in args.env)
        proc, url = _server.start(data, workers=0, env=env)
        results: list[tuple[str, str, float, float, float]] = []
        try:
            with httpx.Client(base_url=url, timeout=120, follow_redirects=False) as c:
                login(c)
                register_prompt(c)
                first = c.get("/traces", params=ranges["24h"])
                tid = re.search(r'href="/traces/([0-9a-f]{32})', first.text)
                assert tid, first.text[-3000:]
                assert first.text.count('class="trace-link"') == 50  # paginated: one page
                assert "older" in first.text
                for rname, params in ranges.items():
                    for page in (*PAGES, f"/traces/{tid.group(1)}"):
                        path, _, q = page.partition("?")
                        extra = dict(p.split("=", 1) for p in q.split("&")) if q else {}
                        extra = {k: v.replace("+", " ") for k, v in extra.items()}
                        ms, server_ms, cpu_ms = timed(c, path, {**params, **extra})
                        label = page if not page.startswith("/traces/") else "/traces/{id}"
                        results.append((rname, label, ms, server_ms, cpu_ms))
        finally:
            _server.stop(proc)
    worst = max(server_ms for *_, server_ms, _ in results)
    for rname, label, ms, server_ms, cpu_ms in results:
        print(f"spans={n} range={rname} page={label} median_ms={ms:.1f}"
              f" server_median_ms={server_ms:.1f} server_cpu_median_ms={cpu_ms:.1f}")  # fmt: skip
    print(f"spans={n} pages_worst_server_median_ms={worst:.1f} (target < 300)")
    print(f"spans={n} pages_worst_server_cpu_median_ms={max(r[-1] for r in results):.1f}")


if __name__ == "__main__":
    main()
