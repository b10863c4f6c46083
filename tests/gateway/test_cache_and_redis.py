"""The gateway's exact and semantic cache, and several gateways sharing one real Redis."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from _gw import REDIS_URL, Gateway
from _helpers import API_KEY, Server, free_port
from sightline.pricing import Pricer
from sightline.testing import FakeProvider


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(ttft_s=0.005) as f:
        yield f


def _ask(
    g: Gateway,
    question: str,
    *,
    stream: bool = False,
    key: str = "sk-a",
    sightline_key: str = API_KEY,
) -> httpx.Response:
    body: dict[str, Any] = {"model": "gpt-4o-mini", "temperature": 0,
                            "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": question}]}  # fmt: skip
    if stream:
        body["stream"] = True
    return httpx.post(g.url + "/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {key}",
                               "x-sightline-api-key": sightline_key})  # fmt: skip


def test_exact_cache_answers_repeats_streaming_or_not(
    fake: FakeProvider, server: Server, tmp_path: Path
) -> None:
    g = Gateway(fake.openai_base_url, ["--server", server.url, "--api-key", API_KEY,
                                       "--cache", "exact"]).start(tmp_path)  # fmt: skip
    try:
        n0 = len(fake.requests)
        first = _ask(g, "Where is my order 1234?")
        assert first.headers["x-sightline-cache"] == "miss"
        again = _ask(g, "Where is my order 1234?")
        assert again.headers["x-sightline-cache"] == "hit-exact"
        assert again.json()["choices"][0]["message"] == first.json()["choices"][0]["message"]
        c = openai.OpenAI(base_url=g.url + "/v1", api_key="sk-a", max_retries=0)
        stream = c.chat.completions.create(
            model="gpt-4o-mini", temperature=0, stream=True,
            messages=[{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "Where is my order 1234?"}],
        )  # fmt: skip
        text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
        assert text == first.json()["choices"][0]["message"]["content"]
        other = _ask(g, "Where is my order 9999?")
        assert other.headers["x-sightline-cache"] == "miss"
        assert len(fake.requests) - n0 == 2
        s = g.stats()
        assert (s["cache_lookups"], s["cache_hits"]) == (4, 2)
        assert s["cache_hit_rate"] == 0.5
        usage = first.json()["usage"]
        cost = Pricer().cost_usd(model="gpt-4o-mini", provider="openai",
                                 input_tokens=usage["prompt_tokens"],
                                 output_tokens=usage["completion_tokens"])  # fmt: skip
        assert s["saved_usd"] == pytest.approx(2 * cost)
        assert "sightline_gateway_cache_hit_ratio 0.5" in httpx.get(g.url + "/metrics").text
    finally:
        g.stop()


def test_semantic_cache_hits_a_paraphrase_and_misses_another_question(
    fake: FakeProvider, server: Server, tmp_path: Path
) -> None:
    g = Gateway(fake.openai_base_url, ["--server", server.url, "--api-key", API_KEY,
                                       "--cache", "semantic"]).start(tmp_path)  # fmt: skip
    try:
        a = _ask(g, "How do I reset my password?")
        assert a.headers["x-sightline-cache"] == "miss"
        b = _ask(g, "How can I reset my password?")
        assert b.headers["x-sightline-cache"] == "hit-semantic"
        assert b.json()["choices"][0]["message"]["content"] == (
            "You asked: How do I reset my password?. Here is a deterministic answer."
        )
        for q in ("How do I delete my account?", "What is the refund policy for annual plans?"):
            r = _ask(g, q)
            assert r.headers["x-sightline-cache"] == "miss", q
            assert q in r.json()["choices"][0]["message"]["content"]
        s = g.stats()
        assert s["cache_hits_semantic"] == 1 and s["cache_hits"] == 1
    finally:
        g.stop()


def test_cache_never_crosses_projects(fake: FakeProvider, tmp_path: Path) -> None:
    from sightline.server._auth import create_project_with_key
    from sightline.store import DuckDBStore

    store = DuckDBStore(tmp_path / "data" / "sightline.duckdb")
    store.migrate()
    other_key = create_project_with_key(store, "other")
    store.close()
    srv = Server(data_dir=tmp_path / "data", port=free_port()).start()
    g = Gateway(fake.openai_base_url, ["--server", srv.url, "--api-key", API_KEY,
                                       "--cache", "exact"]).start(tmp_path)  # fmt: skip
    try:
        q = "Is the cache scoped by project?"
        assert _ask(g, q).headers["x-sightline-cache"] == "miss"
        assert _ask(g, q).headers["x-sightline-cache"] == "hit-exact"
        r = _ask(g, q, sightline_key=other_key)
        assert r.status_code == 200 and r.headers["x-sightline-cache"] == "miss"
        assert _ask(g, q, sightline_key=other_key).headers["x-sightline-cache"] == "hit-exact"
    finally:
        g.stop()
        srv.stop()


class TestSharedRedis:
    def test_two_gateways_enforce_one_rate_limit(
        self, fake: FakeProvider, server: Server, tmp_path: Path, prefix: str
    ) -> None:
        args = ["--server", server.url, "--api-key", API_KEY, "--redis", REDIS_URL,
                "--redis-prefix", prefix, "--rate-limit", "5/min"]  # fmt: skip
        g1 = Gateway(fake.openai_base_url, args).start(tmp_path)
        g2 = Gateway(fake.openai_base_url, args).start(tmp_path)
        try:
            key = "sk-" + secrets.token_hex(4)
            codes = [_ask(g, f"q{i}", key=key).status_code for i, g in enumerate([g1, g2] * 4)]
            assert codes.count(200) == 5 and codes.count(429) == 3, codes
            assert g1.stats()["rate_limited"] == 3 == g2.stats()["rate_limited"]
        finally:
            g1.stop()
            g2.stop()

    def test_two_gateways_share_a_hard_budget_and_the_cache(
        self, fake: FakeProvider, server: Server, tmp_path: Path, prefix: str
    ) -> None:
        args = ["--server", server.url, "--api-key", API_KEY, "--redis", REDIS_URL,
                "--redis-prefix", prefix, "--cache", "exact"]  # fmt: skip
        g1 = Gateway(fake.openai_base_url, args).start(tmp_path)
        g2 = Gateway(fake.openai_base_url, args).start(tmp_path)
        try:
            assert _ask(g1, "Shared cache?").headers["x-sightline-cache"] == "miss"
            assert _ask(g2, "Shared cache?").headers["x-sightline-cache"] == "hit-exact"
            user = "u-" + secrets.token_hex(4)
            # distinct questions (a cache hit costs nothing), all of the same length
            reply_tokens = len(f"You asked: {user} 1. Here is a deterministic answer.".split())
            cost = Pricer().cost_usd(model="gpt-4o-mini", provider="openai",
                                     input_tokens=2, output_tokens=reply_tokens)  # fmt: skip
            assert cost
            with server.client() as c:
                r = c.post("/api/v1/budgets", json={"name": "redis-" + user, "scope": "user",
                           "match": user, "limit_usd": 9.5 * cost, "hard": True})  # fmt: skip
                assert r.status_code == 201, r.text
            ok, refused, other = [], [], []
            lock = threading.Lock()

            def worker(g: Gateway, n: int) -> None:
                for i in range(30):
                    r = httpx.post(g.url + "/v1/chat/completions", timeout=30,
                                   headers={"x-sightline-user": user},
                                   json={"model": "gpt-4o-mini",
                                         "messages": [{"role": "user",
                                                       "content": f"{user} {n}-{i}"}]})  # fmt: skip
                    with lock:
                        if r.status_code == 200:
                            ok.append(1)
                        elif r.json()["error"]["code"] == "budget_exceeded":
                            refused.append(1)
                            return
                        else:
                            other.append(r.text)
                            return

            ts = [threading.Thread(target=worker, args=(g, n)) for n, g in enumerate([g1, g2] * 4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            assert other == []
            assert (len(ok), len(refused)) == (10, 8)
        finally:
            g1.stop()
            g2.stop()


def test_semantic_cache_is_shared_through_redis(
    fake: FakeProvider, server: Server, tmp_path: Path, prefix: str
) -> None:
    args = ["--server", server.url, "--api-key", API_KEY, "--redis", REDIS_URL,
            "--redis-prefix", prefix, "--cache", "semantic"]  # fmt: skip
    g1 = Gateway(fake.openai_base_url, args).start(tmp_path)
    g2 = Gateway(fake.openai_base_url, args).start(tmp_path)
    try:
        assert _ask(g1, "How do I reset my password?").headers["x-sightline-cache"] == "miss"
        hit = _ask(g2, "How can I reset my password?", stream=True)
        assert hit.headers["x-sightline-cache"] == "hit-semantic"
        assert "You asked: How do I reset my password?" in hit.text  # streamed from the cache
        assert _ask(g2, "How do I delete my account?").headers["x-sightline-cache"] == "miss"
        s = g1.stats()
        assert (s["cache_hits_semantic"], s["cache_lookups"]) == (1, 3)
    finally:
        g1.stop()
        g2.stop()
