"""The gateway in front of the fake provider, recording into a real server."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from _gw import Gateway
from _helpers import API_KEY, Server
from sightline.pricing import Pricer
from sightline.testing import FakeProvider

REPLY = "one two three four five"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(reply=REPLY, ttft_s=0.02, token_interval_s=0.002) as f:
        yield f


@pytest.fixture(scope="module")
def gw(fake: FakeProvider, server: Server, tmp_path_factory: pytest.TempPathFactory
       ) -> Iterator[Gateway]:  # fmt: skip
    g = Gateway(fake.openai_base_url, ["--server", server.url, "--api-key", API_KEY])
    g.start(tmp_path_factory.mktemp("gw"))
    yield g
    g.stop()


def _spans(server: Server, n: int, **params: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    with server.client() as c:
        while True:
            data: list[dict[str, Any]] = c.get("/api/v1/spans", params=params).json()["data"]
            if len(data) >= n or time.monotonic() > deadline:
                return data
            time.sleep(0.1)


def _client(gw: Gateway, user: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-caller-key", max_retries=0,
                         default_headers={"x-sightline-user": user, **headers})  # fmt: skip


class TestPassthrough:
    def test_chat_is_forwarded_and_recorded_with_tags(
        self, gw: Gateway, fake: FakeProvider, server: Server
    ) -> None:
        user = "u-" + secrets.token_hex(4)
        c = _client(gw, user, **{"x-sightline-session": "s-1", "x-sightline-tenant": "acme",
                                 "x-sightline-feature": "support", "x-sightline-prompt":
                                 "support-answer:3", "x-sightline-variant": "b"})  # fmt: skip
        chat = c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}]
        )
        assert chat.choices[0].message.content == REPLY
        last = [r for r in fake.requests if r.path == "/v1/chat/completions"][-1]
        assert last.headers["authorization"] == "Bearer sk-caller-key"
        assert not any(h.startswith("x-sightline") for h in last.headers)
        (s,) = _spans(server, 1, user_id=user)
        assert s["kind"] == "llm" and s["model"] == "gpt-4o-mini"
        assert (s["input_tokens"], s["output_tokens"]) == (2, 5)
        assert s["cost_usd"] == pytest.approx(
            Pricer().cost_usd(model="gpt-4o-mini", provider="openai", input_tokens=2,
                              output_tokens=5))  # fmt: skip
        assert s["session_id"] == "s-1" and s["tenant_id"] == "acme"
        assert s["feature"] == "support" and s["prompt_name"] == "support-answer"
        # the whole answer came at once: no time to first token (it was the whole latency) nor
        # per output token (a meaningless 0.01 ms), as the SDK records such a call
        assert s["is_streaming"] is not True
        assert s["ttft_ms"] is None and s["tpot_ms"] is None

    def test_streaming_is_relayed_chunk_by_chunk_and_recorded(
        self, gw: Gateway, server: Server
    ) -> None:
        user = "u-" + secrets.token_hex(4)
        stream = _client(gw, user).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}],
            stream=True,
        )  # fmt: skip
        parts = [ch.choices[0].delta.content or "" for ch in stream if ch.choices]
        assert "".join(parts) == REPLY
        assert len([p for p in parts if p]) == 5  # one chunk per token, not one blob
        (s,) = _spans(server, 1, user_id=user)
        assert s["is_streaming"] is True
        assert (s["input_tokens"], s["output_tokens"]) == (2, 5)
        # the fake answers its first token after 20 ms, then one every 2 ms
        assert 20 <= s["ttft_ms"] < s["duration_ms"]
        assert 1.0 <= s["tpot_ms"] < s["duration_ms"]
        assert s["cost_usd"] > 0

    def test_embeddings_and_models(self, gw: Gateway, server: Server) -> None:
        user = "u-" + secrets.token_hex(4)
        c = _client(gw, user)
        e = c.embeddings.create(model="text-embedding-3-small", input="hello there")
        assert len(e.data[0].embedding) > 0
        assert "gpt-4o-mini" in [m.id for m in c.models.list()]
        (s,) = _spans(server, 1, user_id=user)
        assert s["kind"] == "embedding" and s["input_tokens"] == 2

    def test_upstream_errors_pass_through(self, gw: Gateway, fake: FakeProvider) -> None:
        c = _client(gw, "u-err")
        fake.fail_next(500, path_prefix="/v1/chat")
        with pytest.raises(openai.InternalServerError):
            c.chat.completions.create(model="gpt-4o-mini",
                                      messages=[{"role": "user", "content": "x"}])  # fmt: skip


class TestBadInput:
    def test_invalid_json_and_missing_model(self, gw: Gateway) -> None:
        r = httpx.post(gw.url + "/v1/chat/completions", content=b"{nope")
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
        r = httpx.post(gw.url + "/v1/chat/completions", json=[1])
        assert r.status_code == 400
        r = httpx.post(gw.url + "/v1/chat/completions", json={"messages": []})
        assert r.status_code == 400 and "model" in r.json()["error"]["message"]
        r = httpx.post(gw.url + "/v1/chat/completions", content=b"x" * (5 << 20))
        assert r.status_code == 413

    def test_wrong_sightline_key_is_401(self, gw: Gateway) -> None:
        r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "gpt-4o-mini"},
                       headers={"x-sightline-api-key": "sl_nope_000000000000000000"})  # fmt: skip
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "authentication_error"

    def test_no_sightline_key_is_401(self, fake: FakeProvider, tmp_path: Path) -> None:
        g = Gateway(fake.openai_base_url, ["--server", ""]).start(tmp_path)
        try:
            r = httpx.post(g.url + "/v1/chat/completions", json={"model": "gpt-4o-mini"})
            assert r.status_code == 401
        finally:
            g.stop()

    def test_unreachable_upstream_is_502(self, tmp_path: Path, server: Server) -> None:
        g = Gateway("http://127.0.0.1:9/v1", ["--server", server.url, "--api-key", API_KEY])
        g.start(tmp_path)
        try:
            r = httpx.post(g.url + "/v1/chat/completions", json={"model": "gpt-4o-mini",
                           "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
            assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_unreachable"
        finally:
            g.stop()

    def test_bad_cli_options_fail_cleanly(self) -> None:
        from click.testing import CliRunner

        from sightline.cli import main

        r = CliRunner().invoke(main, ["gateway", "--upstream", "ftp://x"])
        assert r.exit_code != 0 and "http" in r.output and "Traceback" not in r.output
        r = CliRunner().invoke(main, ["gateway", "--upstream", "http://x/v1", "--rate-limit", "x"])
        assert r.exit_code != 0 and "N/min" in r.output
        r = CliRunner().invoke(main, ["gateway", "--upstream", "http://x/v1",
                                      "--redis", "redis://127.0.0.1:1/0"])  # fmt: skip
        assert r.exit_code != 0 and "cannot reach Redis" in r.output


def _hammer(url: str, user: str, threads: int, per_thread: int = 30) -> dict[str, int]:
    counts = {"ok": 0, "budget": 0, "other": 0}
    lock = threading.Lock()

    def worker() -> None:
        c = openai.OpenAI(base_url=url + "/v1", api_key="sk-x", max_retries=0,
                          default_headers={"x-sightline-user": user})  # fmt: skip
        for _ in range(per_thread):
            try:
                c.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}]
                )
                with lock:
                    counts["ok"] += 1
            except openai.RateLimitError as e:
                body: Any = e.body
                with lock:
                    counts["budget" if body and body.get("code") == "budget_exceeded"
                           else "other"] += 1  # fmt: skip
                return

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return counts


def test_hard_budget_stops_concurrent_callers_within_one_request(
    gw: Gateway, fake: FakeProvider, server: Server
) -> None:
    cost = Pricer().cost_usd(model="gpt-4o-mini", provider="openai", input_tokens=2,
                             output_tokens=5)  # fmt: skip
    assert cost
    user = "u-" + secrets.token_hex(4)
    with server.client() as c:
        r = c.post("/api/v1/budgets", json={"name": "gw-" + user, "scope": "user", "match": user,
                                            "limit_usd": 9.5 * cost, "hard": True})  # fmt: skip
        assert r.status_code == 201, r.text
    before = len(fake.requests)
    counts = _hammer(gw.url, user, threads=8)
    assert counts == {"ok": 10, "budget": 8, "other": 0}
    assert len(fake.requests) - before == 10  # refused calls never reached the provider
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    r = httpx.post(gw.url + "/v1/chat/completions", headers={"x-sightline-user": user}, json=body)
    assert r.status_code == 429
    assert r.json()["error"] == {"message": r.json()["error"]["message"],
                                 "type": "insufficient_quota", "param": None,
                                 "code": "budget_exceeded"}  # fmt: skip


def test_rate_limit_per_key(fake: FakeProvider, server: Server, tmp_path: Path) -> None:
    g = Gateway(fake.openai_base_url, ["--server", server.url, "--api-key", API_KEY,
                                       "--rate-limit", "3/min"]).start(tmp_path)  # fmt: skip
    try:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
        url = g.url + "/v1/chat/completions"
        auth = {"authorization": "Bearer sk-a"}
        a = [httpx.post(url, json=body, headers=auth).status_code for _ in range(4)]
        # the window is the Sightline key's (the one the server checked), not the provider
        # key's: another Authorization is no way around it
        b = httpx.post(g.url + "/v1/chat/completions", json=body,
                       headers={"authorization": "Bearer sk-b"})  # fmt: skip
        with server.client() as c:
            other_key = c.post("/api/v1/keys", json={"role": "ingest"}).json()["key"]
        other = httpx.post(url, json=body, headers={**auth, "x-sightline-api-key": other_key})
        assert a == [200, 200, 200, 429]
        assert b.status_code == 429
        assert other.status_code == 200  # another Sightline key has its own window
        assert g.stats()["rate_limited"] == 2
    finally:
        g.stop()
