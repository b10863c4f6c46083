"""Calls the gateway refuses before forwarding are recorded: an error span, no spend.

A real `sightline gateway` process with a rate limit, in front of the fake provider, recording
into a real server; the callers are `openai` clients. Each test has a Sightline key of its own
(the rate-limit window is per key).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from _gw import Gateway
from _helpers import API_KEY, Server
from sightline.pricing import Pricer
from sightline.testing import FakeProvider

MSGS = [{"role": "user", "content": "hello there"}]
REPLY = "one two three four five"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(reply=REPLY) as f:
        yield f


@pytest.fixture(scope="module")
def gw(
    fake: FakeProvider, server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    g = Gateway(fake.openai_base_url, ["--server", server.url, "--api-key", API_KEY,
                                       "--rate-limit", "3/min"])  # fmt: skip
    g.start(tmp_path_factory.mktemp("gw"))
    yield g
    g.stop()


def _key(server: Server) -> str:
    with server.client() as c:
        key: str = c.post("/api/v1/keys", json={"role": "ingest"}).json()["key"]
    return key


def _client(gw: Gateway, key: str, user: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-caller", max_retries=0,
                         default_headers={"x-sightline-api-key": key, "x-sightline-user": user,
                                          "x-sightline-session": "s-" + user,
                                          "x-sightline-tenant": "acme"})  # fmt: skip


def _spans(server: Server, user: str, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    with server.client() as c:
        while True:
            data: list[dict[str, Any]] = c.get("/api/v1/spans", params={"user_id": user}).json()[
                "data"
            ]
            if len(data) >= n or time.monotonic() > deadline:
                assert len(data) == n, data
                return sorted(data, key=lambda s: s["start_time"])
            time.sleep(0.1)


def _assert_refused(s: dict[str, Any], user: str, reason: str, code: str, status: int) -> None:
    assert s["status"] == "error" and s["status_message"]
    assert s["attributes"]["sightline.gateway.refused"] == reason
    assert s["attributes"]["sightline.gateway.refused_code"] == code
    assert s["attributes"]["sightline.gateway.refused_status"] == status
    assert (s["user_id"], s["session_id"], s["tenant_id"]) == (user, "s-" + user, "acme")
    # nothing was forwarded: no cost, tokens, TTFT or upstream
    for k in ("cost_usd", "input_tokens", "output_tokens", "ttft_ms"):
        assert s.get(k) is None, k
    assert "sightline.gateway.upstream" not in s["attributes"]
    assert "sightline.cache" not in s["attributes"]


def test_a_call_refused_by_a_hard_budget_is_recorded_and_is_no_spend(
    gw: Gateway, fake: FakeProvider, server: Server
) -> None:
    cost = Pricer().cost_usd(model="gpt-4o-mini", provider="openai", input_tokens=2,
                             output_tokens=5)  # fmt: skip
    assert cost
    user = "u-" + secrets.token_hex(4)
    name = "refusals-" + user
    with server.client() as c:
        r = c.post("/api/v1/budgets", json={"name": name, "scope": "user", "match": user,
                                            "limit_usd": 0.5 * cost, "hard": True})  # fmt: skip
        assert r.status_code == 201, r.text
    client = _client(gw, _key(server), user)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    before = len(fake.requests)
    for _ in range(2):
        time.sleep(2.2)  # the gateway's budget check is cached 2 s
        with pytest.raises(openai.RateLimitError) as ei:
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        body: Any = ei.value.body
        assert body["code"] == "budget_exceeded"
    assert len(fake.requests) == before
    ok, *refused = _spans(server, user, 3)
    assert ok["status"] == "ok" and ok["cost_usd"] == pytest.approx(cost)
    for s in refused:
        _assert_refused(s, user, "budget", "budget_exceeded", 429)
        assert s["attributes"]["sightline.gateway.refused_budget"] == name
        assert s["request_model"] == "gpt-4o-mini" and s["kind"] == "llm"
        assert "is spent" in s["status_message"]
        assert s["input_messages"][0]["content"] == "hello there"
    # the refusals are no spend, nor requests, of the budget
    with server.client() as c:
        (b,) = [b for b in c.get("/api/v1/budgets").json()["data"] if b["name"] == name]
        (st,) = b["status"]
        assert st["spent_usd"] == pytest.approx(cost) and st["num_requests"] == 1
        (chk,) = c.get("/api/v1/budgets/check", params={"user": user}).json()["budgets"]
        assert chk["spent_usd"] == pytest.approx(cost) and chk["num_requests"] == 1


def test_a_call_over_the_rate_limit_is_recorded(gw: Gateway, server: Server) -> None:
    user = "u-" + secrets.token_hex(4)
    client = _client(gw, _key(server), user)
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="text-embedding-3-small", input="hello")
    *ok, refused = _spans(server, user, 4)
    assert [s["status"] for s in ok] == ["ok"] * 3
    _assert_refused(refused, user, "rate_limit", "rate_limit_exceeded", 429)
    assert refused["kind"] == "embedding"
    assert refused["request_model"] == "text-embedding-3-small"
    assert "rate limit of 3 requests per 60s" in refused["status_message"]


def test_invalid_requests_are_recorded_unless_no_request_can_be_read(
    gw: Gateway, server: Server
) -> None:
    user = "u-" + secrets.token_hex(4)
    key = _key(server)
    client = _client(gw, key, user)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS,
                                       extra_body={"stream_options": "yes"})  # fmt: skip
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True,
                                       extra_headers={"x-sightline-samples": "2"})  # fmt: skip
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS,
                                       extra_headers={"x-sightline-samples": "99"})  # fmt: skip
    # no request in the body: answered, not recorded
    headers = {"x-sightline-api-key": key, "x-sightline-user": user}
    r = httpx.post(gw.url + "/v1/chat/completions", content=b"{nope", headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    spans = _spans(server, user, 3)
    codes = sorted(s["attributes"]["sightline.gateway.refused_code"] for s in spans)
    assert codes == ["invalid_samples", "invalid_samples", "stream_options"]
    for s in spans:
        code = s["attributes"]["sightline.gateway.refused_code"]
        _assert_refused(s, user, "invalid_request", code, 400)
    # the invalid requests took no place in the key's rate-limit window
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
