"""`sightline serve --role`: each role's routes on a real server process, 404 (JSON) for the
others; split roles refused on the embedded DuckDB store; `--eval-workers N` scores each span
once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from _helpers import API_KEY, PROJECT, free_port, start_server

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(HERE.parent)])
    env.update(extra)
    return env


class RoleServer:
    def __init__(self, tmp: Path, role: str, **extra_env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"{role}.log"
        env = _env(
            SIGHTLINE_ROLE=role,
            SIGHTLINE_PORT=str(self.port),
            SIGHTLINE_DATA_DIR=str(tmp / role),
            SIGHTLINE_OTLP_GRPC_PORT="0",
            SIGHTLINE_INGEST_WORKERS="0",
            SIGHTLINE_INIT_PROJECT=PROJECT,
            SIGHTLINE_INIT_API_KEY=API_KEY,
            SIGHTLINE_EVAL_ENABLED="false",
        )
        env.update(extra_env)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "_role_server.py")],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=30
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RoleServer]]:
    tmp = tmp_path_factory.mktemp("roles")
    out: dict[str, RoleServer] = {}
    try:
        for role in ("ingest", "api", "worker", "monitor"):
            out[role] = RoleServer(tmp, role)
        yield out
    finally:
        for s in out.values():
            s.stop()


_OTLP = {
    "resourceSpans": [
        {
            "resource": {"attributes": []},
            "scopeSpans": [
                {
                    "spans": [
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "name": "chat gpt-4o",
                            "kind": 3,
                            "startTimeUnixNano": str(time.time_ns() - 10**9),
                            "endTimeUnixNano": str(time.time_ns()),
                            "attributes": [
                                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}
                            ],
                        }
                    ]
                }
            ],
        }
    ]
}
_NATIVE = [
    {
        "trace_id": "6b8efff798038103d269b633813fc60c",
        "span_id": "fee19b7ec3c1b174",
        "name": "chat",
        "kind": "llm",
        "start_time": time.time() - 1,
        "end_time": time.time(),
    }
]


def _call(c: httpx.Client, op: str) -> httpx.Response:
    method, path = op.split(" ", 1)
    if op == "POST /v1/traces":
        return c.post(path, json=_OTLP)
    if op == "POST /api/v1/spans":
        return c.post(path, json=_NATIVE)
    return c.request(method, path)


_OPS = [
    "GET /healthz",
    "GET /readyz",
    "POST /v1/traces",
    "POST /api/v1/spans",
    "GET /api/v1/spans",
    "GET /api/v1/alerts",
    "GET /metrics",
    "GET /login",
]
_SERVES = {
    "ingest": {"GET /healthz", "GET /readyz", "POST /v1/traces", "POST /api/v1/spans"},
    "api": {
        "GET /healthz",
        "GET /readyz",
        "GET /api/v1/spans",
        "GET /api/v1/alerts",
        "GET /metrics",
        "GET /login",
    },  # fmt: skip
    "worker": {"GET /healthz", "GET /readyz", "GET /metrics"},
    "monitor": {"GET /healthz", "GET /readyz"},
}


@pytest.mark.parametrize("role", list(_SERVES))
def test_each_role_serves_its_routes_and_404s_the_others(
    servers: dict[str, RoleServer], role: str
) -> None:
    with servers[role].client() as c:
        for op in _OPS:
            r = _call(c, op)
            if op in _SERVES[role]:
                assert r.status_code == 200, (op, r.text)
            else:
                assert r.status_code == 404, (op, r.text)
                err = r.json()["error"]
                assert err["code"] == "not_found"
                assert f"this server runs role {role!r}" in err["message"], err


def test_the_ingest_node_stores_what_it_acknowledges(servers: dict[str, RoleServer]) -> None:
    """The routes run for real: OTLP and native spans reach the store of the ingest node."""
    import duckdb

    # posted here too: pytest-xdist may run this test on a worker (with its own servers)
    # that never ran the routes test above; a re-sent span is stored once
    with servers["ingest"].client() as c:
        for op in ("POST /v1/traces", "POST /api/v1/spans"):
            assert _call(c, op).status_code == 200, op
    servers["ingest"].stop()  # DuckDB: read the file once its one process is gone
    db = Path(servers["ingest"].log).parent / "ingest" / "sightline.duckdb"
    con = duckdb.connect(str(db), read_only=True)
    ids = {r[0] for r in con.execute("SELECT span_id FROM spans").fetchall()}
    con.close()
    assert {"eee19b7ec3c1b174", "fee19b7ec3c1b174"} <= ids


@pytest.mark.parametrize("role", ["ingest", "api", "worker", "monitor"])
def test_split_roles_are_refused_on_the_embedded_store(tmp_path: Path, role: str) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sightline",
            "serve",
            "--role",
            role,
            "--data-dir",
            str(tmp_path / "d"),
            "--port",
            str(free_port()),
            "--otlp-grpc-port",
            "0",
        ],  # fmt: skip
        env=_env(SIGHTLINE_EVAL_ENABLED="false", SIGHTLINE_INGEST_WORKERS="0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0
    assert f"--role {role} needs a store that several processes share" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "d" / "sightline.duckdb").exists()  # refused before opening it


def test_an_unknown_role_is_a_usage_error(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "sightline", "serve", "--role", "everything"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "Invalid value for '--role'" in r.stderr
    assert "Traceback" not in r.stderr


def test_eval_workers_on_one_node_score_each_span_once(tmp_path: Path) -> None:
    srv = start_server(
        tmp_path,
        args=["--eval-workers", "3"],
        env={
            "SIGHTLINE_EVAL_ENABLED": "true",
            "SIGHTLINE_EVALUATORS": "pii_leak,prompt_injection",
            "SIGHTLINE_EVAL_GRACE_S": "0.2",
            "SIGHTLINE_EVAL_INTERVAL_S": "0.2",
            "SIGHTLINE_EVAL_BATCH_SIZE": "4",
        },
    )
    try:
        now = time.time()
        with srv.client() as c:
            for i in range(12):  # 12 commits of 5 LLM spans
                r = c.post(
                    "/api/v1/spans",
                    json=[
                        {
                            "trace_id": f"{i + 1:016x}{j + 1:016x}",
                            "span_id": f"{i + 1:08x}{j + 1:08x}",
                            "name": "chat",
                            "kind": "llm",
                            "start_time": now - 5,
                            "end_time": now - 4,
                            "input": f"question {i} {j}",
                            "output": f"answer {i} {j}, write to a{i}@example.com",
                        }
                        for j in range(5)
                    ],
                )
                assert r.status_code == 200 and r.json()["accepted"] == 5, r.text
            deadline = time.monotonic() + 120
            scores: list[dict] = []  # type: ignore[type-arg]
            while time.monotonic() < deadline:
                scores = c.get("/api/v1/scores", params={"limit": 1000}).json()["data"]
                if len(scores) >= 120:
                    break
                time.sleep(0.5)
            time.sleep(1.0)
            scores = c.get("/api/v1/scores", params={"limit": 1000}).json()["data"]
        per = Counter((s["name"], s["span_id"]) for s in scores)
        assert len(per) == 120 and max(per.values()) == 1, per.most_common(3)
        started = [
            json.loads(line) for line in srv.log().splitlines() if '"eval_worker_started"' in line
        ]
        assert len({e["pid"] for e in started}) == 3  # one evaluator process per worker
    finally:
        srv.stop()
    assert '"server_stopped"' in srv.log()  # the workers and their processes stopped cleanly


def test_an_unreachable_redis_is_a_clear_error_at_start(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sightline",
            "serve",
            "--data-dir",
            str(tmp_path / "d"),
            "--redis-url",
            f"redis://127.0.0.1:{port}/0",
            "--port",
            str(free_port()),
            "--otlp-grpc-port",
            "0",
        ],  # fmt: skip
        env=_env(SIGHTLINE_EVAL_ENABLED="false", SIGHTLINE_INGEST_WORKERS="0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert "cannot reach Redis" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("coordinator", ["store", "redis"])
def test_a_worker_role_process_scores_what_is_stored(tmp_path: Path, coordinator: str) -> None:
    """`--role worker` (two workers) scores the spans an ingest node stored, each once."""
    import secrets

    import duckdb
    import redis

    from _evalspans import insert, rag_trace
    from sightline.store import DuckDBStore

    store = DuckDBStore(tmp_path / "worker" / "sightline.duckdb")
    store.migrate()
    for i in range(6):  # six commits of four traces, as an ingest node would have written
        insert(store, [x for j in range(4) for x in rag_trace(PROJECT, "q?", ["d"], f"a{i}{j}")])
    store.close()
    prefix = f"sightline:test:{secrets.token_hex(6)}:"
    extra = {"SIGHTLINE_REDIS_URL": "redis://127.0.0.1:6379/0", "SIGHTLINE_REDIS_PREFIX": prefix}
    srv = RoleServer(
        tmp_path,
        "worker",
        SIGHTLINE_EVAL_ENABLED="true",
        SIGHTLINE_EVALUATORS="pii_leak",
        SIGHTLINE_EVAL_WORKERS="2",
        SIGHTLINE_EVAL_BATCH_SIZE="3",
        SIGHTLINE_EVAL_GRACE_S="0.2",
        SIGHTLINE_EVAL_INTERVAL_S="0.2",
        **(extra if coordinator == "redis" else {}),
    )
    try:
        deadline = time.monotonic() + 120
        with srv.client() as c:
            while time.monotonic() < deadline:
                m = c.get("/metrics").text
                line = next(x for x in m.splitlines() if x.startswith("sightline_eval_spans_total"))
                if float(line.split()[-1]) >= 24:
                    break
                time.sleep(0.5)
            time.sleep(1.0)
    finally:
        srv.stop()
        if coordinator == "redis":
            r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
            keys = list(r.scan_iter(f"{prefix}*"))
            frontier = r.get(f"{prefix}claims:online:frontier")
            if keys:
                r.delete(*keys)
            r.close()
            assert frontier == b"6"  # the claims went through Redis
    con = duckdb.connect(str(tmp_path / "worker" / "sightline.duckdb"), read_only=True)
    rows = con.execute("SELECT span_id, count(*) FROM scores GROUP BY span_id").fetchall()
    llm = con.execute("SELECT count(*) FROM spans WHERE kind = 'llm'").fetchall()[0][0]
    store_frontier = con.execute("SELECT seq FROM eval_frontiers").fetchall()
    con.close()
    assert store_frontier == ([(6,)] if coordinator == "store" else [])
    assert len(rows) == llm == 24 and {n for _, n in rows} == {1}


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sightline",
            "serve",
            "--port",
            str(free_port()),
            "--otlp-grpc-port",
            "0",
            "--data-dir",
            str(tmp_path / "d"),
            *args,
        ],  # fmt: skip
        env=_env(SIGHTLINE_EVAL_ENABLED="false", SIGHTLINE_INGEST_WORKERS="0"),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_split_roles_are_refused_on_clickhouse_embedded_in_the_process(tmp_path: Path) -> None:
    r = _serve(tmp_path, "--role", "worker", "--store", f"chdb://{tmp_path / 'ch'}")
    assert r.returncode != 0 and "--role worker needs a store that several" in r.stderr
    assert "Traceback" not in r.stderr


def test_split_roles_over_a_clickhouse_server_need_redis(tmp_path: Path) -> None:
    # refused at start, before the (here unreachable) server is contacted
    for role in ("worker", "monitor"):
        r = _serve(tmp_path, "--role", role, "--store", "clickhouse://127.0.0.1:9/sightline")
        assert r.returncode != 0 and "set --redis-url" in r.stderr
        assert "Traceback" not in r.stderr


def test_an_unknown_store_url_is_a_clear_error(tmp_path: Path) -> None:
    r = _serve(tmp_path, "--store", "mysql://127.0.0.1/x")
    assert r.returncode != 0 and "unknown store URL" in r.stderr
    assert "Traceback" not in r.stderr
