"""Scale-out for real: seven `sightline serve --role ...` processes over one ClickHouse HTTP
endpoint and one Redis.

Two ingest nodes, two workers, two monitors and one api node share the store that
``sightline.testing.ClickHouseHTTP`` serves (the real ClickHouse engine, chdb, behind a
ClickHouse HTTP front), the way a deployment shares a ClickHouse server. OTLP/protobuf batches
go to both ingest nodes in turn. Then:

- every span is readable once through the api node;
- every LLM span gets its evaluation score exactly once across the two workers, counted in the
  raw ``scores`` table with its merges stopped (a ReplacingMergeTree merge would hide a
  duplicate), although one worker is SIGKILLed mid-run and its range taken over;
- an alert rule notifies the webhook once although two monitors run; the leader is SIGKILLed,
  the standby takes over, does not notify the firing alert again, and notifies a new one once.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from _alerting import HttpReceiver
from _helpers import Server, free_port

pytest.importorskip("chdb")
pytest.importorskip("clickhouse_connect")

from sightline.testing import ClickHouseHTTP  # noqa: E402

REDIS_DB = 13  # a database of its own on the shared Redis; keys under a per-run prefix too
EVAL_LEASE_S = 3.0
LEADER_LEASE_S = 2.0
PROTO = {"content-type": "application/x-protobuf"}


def _kv(k: str, v: str | int) -> KeyValue:
    return KeyValue(
        key=k, value=AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=v)
    )


def _batch(n: int, *, model: str, error: bool = False) -> tuple[bytes, list[str]]:
    """An OTLP/protobuf body of ``n`` LLM spans that ended just now, and their span ids."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(_kv("service.name", "scale-test"))
    ss = rs.scope_spans.add()
    now = time.time_ns()
    ids = []
    for i in range(n):
        s = ss.spans.add()
        s.trace_id = os.urandom(16)
        s.span_id = os.urandom(8)
        ids.append(s.span_id.hex())
        s.name = f"chat {model}"
        s.kind = 3
        s.start_time_unix_nano = now - 900_000_000 - i * 1000
        s.end_time_unix_nano = now - 100_000_000
        if error:
            s.status.code = Status.STATUS_CODE_ERROR
        s.attributes.extend(
            [
                _kv("gen_ai.operation.name", "chat"),
                _kv("gen_ai.request.model", model),
                _kv("gen_ai.usage.input_tokens", 100),
                _kv("gen_ai.usage.output_tokens", 20),
                _kv("gen_ai.prompt", f"question {i}"),
                _kv("gen_ai.completion", f"answer {i}, mail me at u{i}@example.com"),
            ]
        )
    return req.SerializeToString(), ids


def _wait(pred: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"not in {timeout_s} s: {what}")


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _sigkill(srv: Server) -> None:
    """The node dies: the process and its evaluator children, nothing released."""
    assert srv.proc is not None
    kids = _children(srv.proc.pid)
    srv.kill()
    for k in kids:
        try:
            os.kill(k, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _events(srv: Server, event: str) -> list[dict[str, object]]:
    out = []
    for line in srv.log().splitlines():
        if f'"{event}"' in line:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[ClickHouseHTTP]:
    # a server in local time (west of UTC), as many are: time parameters must still be UTC
    with ClickHouseHTTP(
        tmp_path / "ch", log_path=tmp_path / "ch.log", timezone="America/New_York"
    ) as ch:
        yield ch


@pytest.mark.timeout(900)  # ~1.5 CPU-minutes: seven servers start; minutes on a busy machine
def test_seven_role_processes_over_one_clickhouse_and_redis(
    tmp_path: Path, harness: ClickHouseHTTP
) -> None:
    import clickhouse_connect
    import redis

    db = f"scale_{secrets.token_hex(4)}"
    store = harness.store_url(db)
    prefix = f"sightline:test:{secrets.token_hex(6)}:"
    redis_url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    receiver = HttpReceiver().start()
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(
        f"""
channels:
  hook: {{type: webhook, url: "{receiver.url}/hook", backoff_s: 0.05}}
rules:
  - name: errors
    metric: error_rate
    op: ">"
    threshold: 0.5
    window: 1m
    min_requests: 5
    severity: P1
    group_by: [model]
    notify: [hook]
"""
    )
    common = {
        "SIGHTLINE_REDIS_PREFIX": prefix,
        "SIGHTLINE_EVAL_ENABLED": "true",
        "SIGHTLINE_EVALUATORS": "pii_leak",
        "SIGHTLINE_EVAL_BATCH_SIZE": "4",
        "SIGHTLINE_EVAL_GRACE_S": "0.2",
        "SIGHTLINE_EVAL_INTERVAL_S": "0.2",
        "SIGHTLINE_EVAL_LEASE_S": str(EVAL_LEASE_S),
        "SIGHTLINE_LEADER_LEASE_S": str(LEADER_LEASE_S),
        "SIGHTLINE_MONITOR_INTERVAL_S": "0.3",
        "SIGHTLINE_DRIFT_INTERVAL_S": "0",
        "SIGHTLINE_DEFAULT_ALERT_RULES": "false",
        "SIGHTLINE_NOTIFY_ALLOW_PRIVATE": "true",
    }

    def node(role: str, i: int) -> Server:
        args = ["--role", role, "--store", store, "--redis-url", redis_url]
        if role == "monitor":
            args += ["--alerts", str(alerts)]
        return Server(
            data_dir=tmp_path / f"{role}{i}",
            port=free_port(),
            env=dict(common),
            args=args,
            ready_timeout_s=240,  # six processes importing at once on a small, busy machine
        )

    # The api node first (it creates the schema, the project and its key), then the others at
    # once, as an orchestrator would.
    api = node("api", 0).start()
    ingest = [node("ingest", i) for i in range(2)]
    workers = [node("worker", i) for i in range(2)]
    monitors = [node("monitor", i) for i in range(2)]
    nodes = [api, *ingest, *workers, *monitors]
    ch = clickhouse_connect.get_client(
        host=harness.host, port=harness.port, database=db, autogenerate_session_id=False
    )
    try:
        # a duplicate score must stay visible: no background merge may collapse it
        ch.command("SYSTEM STOP MERGES scores")
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(Server.start, [*ingest, *workers, *monitors]))

        # -- ingest: batches alternately to both ingest nodes --------------------------------
        sent: list[str] = []

        def send(batches: int, per: int, model: str, error: bool = False) -> None:
            for b in range(batches):
                body, ids = _batch(per, model=model, error=error)
                with ingest[b % 2].client() as c:
                    r = c.post("/v1/traces", content=body, headers=PROTO)
                assert r.status_code == 200, r.text
                sent.extend(ids)

        send(10, 4, "gpt-4o")
        # -- one worker dies mid-run ---------------------------------------------------------
        evaluated = [0.0, 0.0]

        def metric(w: Server) -> float:
            with w.client() as c:
                m = c.get("/metrics").text
            return sum(
                float(x.split()[-1])
                for x in m.splitlines()
                if x.startswith("sightline_eval_spans_total")
            )

        def some_scored() -> bool:
            evaluated[:] = [metric(w) for w in workers]
            return all(v > 0 for v in evaluated) or sum(evaluated) >= 8

        _wait(some_scored, 45, "both workers (or one of them) scored a first range")
        victim = workers[0] if evaluated[0] > 0 else workers[1]
        survivor = workers[1] if victim is workers[0] else workers[0]
        send(10, 4, "gpt-4o")  # more work after the kill, some of it claimed by the victim
        _sigkill(victim)

        # -- the alert: two monitors, one notification ----------------------------------------
        # the api node has no alerts file: listing the rules there wrote a deletion of the
        # monitors' file rule (its view of the file is empty), and the alert never fired
        with api.client() as c:
            listed = c.get("/api/v1/alerts/rules").json()["data"]
        assert [r["name"] for r in listed] == ["errors"], listed
        send(2, 5, "m1", error=True)
        _wait(lambda: len(receiver.bodies("/hook")) >= 1, 30, "the m1 alert was notified")
        time.sleep(LEADER_LEASE_S * 1.5)  # several ticks of the leader; the standby is idle
        assert [b["group"]["model"] for b in receiver.bodies("/hook")] == ["m1"]
        leaders = [m for m in monitors if _events(m, "leader_elected")]
        assert len(leaders) == 1, [m.log()[-2000:] for m in monitors]
        [leader] = leaders
        [standby] = [m for m in monitors if m is not leader]
        _sigkill(leader)
        killed = time.monotonic()
        send(2, 5, "m2", error=True)
        _wait(lambda: bool(_events(standby, "leader_elected")), 30, "the standby took over")
        assert time.monotonic() - killed >= LEADER_LEASE_S * 0.5  # it waited for the lease
        _wait(lambda: len(receiver.bodies("/hook")) >= 2, 30, "the m2 alert was notified")
        time.sleep(LEADER_LEASE_S)  # the new leader ticks on: m1 is still firing, not re-sent
        hooks = sorted((b["status"], b["group"]["model"]) for b in receiver.bodies("/hook"))
        assert hooks == [("firing", "m1"), ("firing", "m2")], receiver.bodies("/hook")

        # -- every span readable once through the api node ------------------------------------
        def listed() -> list[str]:
            with api.client() as c:
                r = c.get("/api/v1/spans", params={"limit": 1000})
            assert r.status_code == 200, r.text
            return [s["span_id"] for s in r.json()["data"]]

        _wait(lambda: len(set(listed())) >= len(sent), 30, "every span listed by the api node")
        got = listed()
        assert sorted(got) == sorted(sent)  # each once, none missing, none extra

        # -- every span scored exactly once, after the takeover -------------------------------
        def raw_scores() -> Counter[str]:
            rows = ch.query(
                "SELECT span_id, count() FROM scores WHERE name = 'pii_leak' GROUP BY span_id"
            ).result_rows
            return Counter({str(r[0]): int(r[1]) for r in rows})

        _wait(lambda: set(raw_scores()) >= set(sent), 60, "every span scored after the takeover")
        time.sleep(1.0)  # a late duplicate would land now
        per_span = raw_scores()
        assert set(per_span) == set(sent)
        assert max(per_span.values()) == 1, per_span.most_common(3)
        assert metric(survivor) > 0
        with api.client() as c:
            scores = c.get("/api/v1/scores", params={"limit": 1000, "name": "pii_leak"}).json()
        assert sorted(s["span_id"] for s in scores["data"]) == sorted(sent)
        r = redis.Redis.from_url(redis_url)
        assert r.exists(f"{prefix}claims:online:frontier")  # the claims went through Redis
        r.close()
    finally:
        with ThreadPoolExecutor(7) as pool:
            list(pool.map(lambda s: s.stop(), nodes))
        receiver.stop()
        ch.close()
        r = redis.Redis.from_url(redis_url)
        keys = list(r.scan_iter(f"{prefix}*"))
        if keys:
            r.delete(*keys)
        r.close()
    for s in nodes:
        assert "Traceback" not in s.log(), s.log()[-3000:]
