"""The SDK's budget guard against a real server: hard limits stop the next call, concurrent
threads never overspend by more than one request, and an unreachable server fails open."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from _helpers import API_KEY, Server
from sightline.errors import BudgetExceeded
from sightline.pricing import Pricer
from sightline.testing import FakeProvider

REPLY = "one two three four five"
QUESTION = "hello there"

APP = textwrap.dedent("""
    import json, sys, threading
    import anthropic, openai
    import sightline

    endpoint, key, base_url, user, threads = sys.argv[1:6]
    provider = sys.argv[6] if len(sys.argv) > 6 else "openai"
    sightline.init(endpoint=endpoint, api_key=key, service_name="budget-app",
                   check_budgets=True, budget_cache_s=5)
    if provider == "openai":
        client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        call = lambda: client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}])
    else:
        client = anthropic.Anthropic(base_url=base_url, api_key="sk-test", max_retries=0)
        call = lambda: client.messages.create(
            model="claude-haiku-4-5", max_tokens=64,
            messages=[{"role": "user", "content": "hello there"}])
    ok, refused, errors = [], [], []

    def worker():
        with sightline.trace("req", user_id=user):
            for _ in range(40):
                try:
                    call()
                    ok.append(1)
                except sightline.BudgetExceeded as e:
                    refused.append(e.budget)
                    return
                except Exception as e:
                    errors.append(repr(e))
                    return

    ts = [threading.Thread(target=worker) for _ in range(int(threads))]
    for t in ts: t.start()
    for t in ts: t.join()
    sightline.shutdown()
    print(json.dumps({"ok": len(ok), "refused": refused, "errors": errors}))
""")


def _run(*args: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    out = subprocess.run(
        [sys.executable, "-c", APP, *args], capture_output=True, text=True, env=env, timeout=180
    )
    assert out.returncode == 0, out.stderr
    data: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def test_hard_limit_stops_concurrent_threads_within_one_request(server: Server) -> None:
    cost = Pricer().cost_usd(
        model="gpt-4o-mini", provider="openai", input_tokens=2, output_tokens=5
    )
    assert cost
    limit = 9.5 * cost  # the 10th call crosses it; an 11th would overspend by more than one
    with server.client() as c:
        r = c.post(
            "/api/v1/budgets",
            json={
                "name": "sdk-user",
                "scope": "user",
                "match": "u-sdk",
                "limit_usd": limit,
                "hard": True,
            },
        )
        assert r.status_code == 201, r.text
    with FakeProvider(reply=REPLY, ttft_s=0.01) as fake:
        got = _run(server.url, API_KEY, fake.openai_base_url, "u-sdk", "8")
        assert got["errors"] == []
        assert got["ok"] == 10, got
        assert got["refused"] == ["sdk-user"] * 8
        n_upstream = len([r for r in fake.requests if r.path == "/v1/chat/completions"])
        assert n_upstream == 10
        with server.client() as c:
            check = c.get("/api/v1/budgets/check", params={"user": "u-sdk"}).json()
        spent = check["budgets"][0]["spent_usd"]
        assert limit <= spent <= limit + cost
        assert check["allowed"] is False
        # a new process is stopped before its first call
        again = _run(server.url, API_KEY, fake.openai_base_url, "u-sdk", "1")
        assert again["ok"] == 0 and again["refused"] == ["sdk-user"]
        assert len([r for r in fake.requests if r.path == "/v1/chat/completions"]) == 10
        # another user is not limited by u-sdk's budget
        other = _run(server.url, API_KEY, fake.openai_base_url, "u-other", "1")
        assert other["ok"] == 40


def test_unreachable_server_fails_open() -> None:
    with FakeProvider(reply=REPLY) as fake:
        t0 = time.monotonic()
        got = _run("http://127.0.0.1:9", API_KEY, fake.openai_base_url, "u", "2")
        assert got == {"ok": 80, "refused": [], "errors": []}
        assert time.monotonic() - t0 < 60


def test_anthropic_client_is_stopped_too(server: Server) -> None:
    cost = Pricer().cost_usd(
        model="claude-haiku-4-5", provider="anthropic", input_tokens=2, output_tokens=5
    )
    assert cost
    with server.client() as c:
        r = c.post("/api/v1/budgets", json={"name": "claude-model", "scope": "model",
                                            "match": "claude-haiku-4-5",
                                            "limit_usd": 3.5 * cost, "hard": True})  # fmt: skip
        assert r.status_code == 201, r.text
    with FakeProvider(reply=REPLY) as fake:
        got = _run(server.url, API_KEY, fake.base_url, "u-claude", "4", "anthropic")
        assert got["errors"] == []
        assert got["ok"] == 4, got
        assert got["refused"] == ["claude-model"] * 4
        assert len([r for r in fake.requests if r.path == "/v1/messages"]) == 4


def test_a_forked_child_does_not_inherit_the_parents_held_locks_or_calls() -> None:
    # a fork while another thread of the parent holds the guard's locks (a budget check in
    # progress): in the child those locks had no owner left and a call waited for ever
    child = textwrap.dedent("""
        import os, sys, threading, time
        from sightline.sdk import _budget

        g = _budget.BudgetGuard("http://127.0.0.1:9", None, timeout_s=0.2)
        _budget.set_guard(g)
        g._ledgers["b"] = _budget._Ledger("b", 1.0, in_flight=3)
        held = threading.Event()

        def hold() -> None:
            with g._refresh_lock, g._cond:
                held.set()
                time.sleep(5)

        threading.Thread(target=hold, daemon=True).start()
        held.wait()
        pid = os.fork()
        if pid == 0:
            t0 = time.monotonic()
            ticket = _budget.admit("gpt-4o-mini")  # unreachable server: goes ahead
            ok = ticket == () and g._ledgers["b"].in_flight == 0 and time.monotonic() - t0 < 3
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    proc = subprocess.run([sys.executable, "-c", child], timeout=30, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()


def test_the_guard_forgets_idle_users(server: Server, monkeypatch: Any) -> None:
    # one answer and one ledger per user (and per day): a long-running app with many users
    # kept them all
    from sightline.sdk import _budget
    from sightline.sdk._tracing import _TRACE_ATTRS

    monkeypatch.setattr(_budget, "_MAX_SCOPES", 20, raising=False)
    monkeypatch.setattr(_budget, "_IDLE_S", 0.0, raising=False)
    with server.client() as c:
        r = c.post("/api/v1/budgets", json={"name": "idle-users", "scope": "user",
                                            "limit_usd": 0.5, "hard": True})  # fmt: skip
        assert r.status_code == 201, r.text
        now = time.time()
        spent = {"trace_id": os.urandom(16).hex(), "span_id": os.urandom(8).hex(),
                 "kind": "llm", "name": "chat", "start_time": now - 5, "duration_ms": 5,
                 "model": "gpt-4o-mini", "user_id": "idle-spent", "cost_usd": 1.0}  # fmt: skip
        assert c.post("/api/v1/spans", json=[spent]).status_code == 200
    g = _budget.BudgetGuard(server.url, API_KEY, cache_s=0.001)
    for i in range(100):
        token = _TRACE_ATTRS.set({"sightline.user_id": f"idle-{i}"})
        try:
            g.release(g.admit("gpt-4o-mini"))
        finally:
            _TRACE_ATTRS.reset(token)
        time.sleep(0.002)
    assert len(g._snapshots) <= 21 and len(g._ledgers) <= 21
    token = _TRACE_ATTRS.set({"sightline.user_id": "idle-spent"})
    try:
        with pytest.raises(BudgetExceeded):
            g.admit("gpt-4o-mini")
    finally:
        _TRACE_ATTRS.reset(token)


def test_a_failed_check_pauses_the_checks_of_every_scope_then_asks_again(
    monkeypatch: Any,
) -> None:
    from sightline.sdk import _budget
    from sightline.sdk._tracing import _TRACE_ATTRS

    monkeypatch.setattr(_budget, "_BACKOFF_S", 0.5)
    g = _budget.BudgetGuard("http://127.0.0.1:9", None, timeout_s=0.5)  # nothing listens

    def admit_as(user: str) -> _budget.Ticket:
        token = _TRACE_ATTRS.set({"sightline.user_id": user})
        try:
            return g.admit("gpt-4o-mini")
        finally:
            _TRACE_ATTRS.reset(token)

    assert admit_as("a") == () and g.num_checks == 1
    # other users, within the pause: not asked, they go ahead
    assert [admit_as(f"u{i}") for i in range(5)] == [()] * 5
    assert g.num_checks == 1
    time.sleep(0.6)
    assert admit_as("b") == () and g.num_checks == 2  # one probe after the pause
    assert admit_as("c") == () and g.num_checks == 2
