"""The gateway mounted under /gateway of a real server (`sightline serve --gateway-upstream`)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from _helpers import API_KEY, Server, free_port
from sightline.pricing import Pricer
from sightline.testing import FakeProvider

REPLY = "one two three four five"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(reply=REPLY, ttft_s=0.02, token_interval_s=0.002) as f:
        yield f


@pytest.fixture(scope="module")
def srv(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(data_dir=tmp_path_factory.mktemp("mounted") / "data", port=free_port(),
               args=["--gateway-upstream", fake.openai_base_url]).start()  # fmt: skip
    yield s
    s.stop()


def _client(srv: Server, user: str, key: str = API_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/gateway/v1", api_key="sk-caller-key",
                         max_retries=0, default_headers={"x-sightline-api-key": key,
                                                         "x-sightline-user": user})  # fmt: skip


def _spans(srv: Server, n: int, **params: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    with srv.client() as c:
        while True:
            data: list[dict[str, Any]] = c.get("/api/v1/spans", params=params).json()["data"]
            if len(data) >= n or time.monotonic() > deadline:
                return data
            time.sleep(0.1)


def test_chat_streaming_and_not_recorded_in_the_server(srv: Server, fake: FakeProvider) -> None:
    user = "u-" + secrets.token_hex(4)
    c = _client(srv, user)
    chat = c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}]
    )
    assert chat.choices[0].message.content == REPLY
    last = [r for r in fake.requests if r.path == "/v1/chat/completions"][-1]
    assert last.headers["authorization"] == "Bearer sk-caller-key"  # the provider key, as is
    assert not any(h.startswith("x-sightline") for h in last.headers)
    stream = c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    assert text == REPLY
    spans = _spans(srv, 2, user_id=user)
    assert len(spans) == 2
    assert sorted(s["is_streaming"] for s in spans) == [False, True]
    for s in spans:
        assert s["kind"] == "llm" and s["model"] == "gpt-4o-mini" and s["output"] == REPLY
        assert s["service_name"] == "sightline-gateway"
        assert s["cost_usd"] == pytest.approx(
            Pricer().cost_usd(model="gpt-4o-mini", provider="openai",
                              input_tokens=s["input_tokens"], output_tokens=5))  # fmt: skip


def test_embeddings_models_and_stats(srv: Server) -> None:
    user = "u-" + secrets.token_hex(4)
    c = _client(srv, user)
    e = c.embeddings.create(model="text-embedding-3-small", input="refunds")
    assert len(e.data[0].embedding) > 0
    assert [m.id for m in c.models.list()]
    (s,) = _spans(srv, 1, user_id=user)
    assert s["kind"] == "embedding"
    r = httpx.get(srv.url + "/gateway/stats", headers={"x-sightline-api-key": API_KEY})
    assert r.status_code == 200 and r.json()["requests"] >= 1
    assert httpx.get(srv.url + "/gateway/healthz").json() == {"status": "ok"}


def test_the_sightline_key_is_checked_like_the_servers(srv: Server) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    url = srv.url + "/gateway/v1/chat/completions"
    provider = {"authorization": "Bearer sk-caller-key"}
    r = httpx.post(url, json=body, headers=provider)
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_sightline_key"
    # the server's key in Authorization is the provider's key here: not a Sightline key
    r = httpx.post(url, json=body, headers={"authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 401
    bad = "sl_nope_" + "x" * 20
    r = httpx.post(url, json=body, headers={**provider, "x-sightline-api-key": bad})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_sightline_key"
    assert httpx.get(srv.url + "/gateway/stats").status_code == 401
    with srv.client() as c:
        read_key = c.post("/api/v1/keys", json={"role": "read"}).json()["key"]
        ingest_key = c.post("/api/v1/keys", json={"role": "ingest"}).json()["key"]
    r = httpx.post(url, json=body, headers={**provider, "x-sightline-api-key": read_key})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    hdr = {"x-sightline-api-key": read_key}
    assert httpx.get(srv.url + "/gateway/stats", headers=hdr).status_code == 200
    r = httpx.post(url, json=body, headers={**provider, "x-sightline-api-key": ingest_key})
    assert r.status_code == 200, r.text


def test_hard_budget_and_bad_input(srv: Server, fake: FakeProvider) -> None:
    cost = Pricer().cost_usd(model="gpt-4o-mini", provider="openai", input_tokens=1,
                             output_tokens=5)  # fmt: skip
    assert cost
    user = "u-" + secrets.token_hex(4)
    with srv.client() as c:
        r = c.post("/api/v1/budgets", json={"name": "gw-" + user, "scope": "user", "match": user,
                                            "limit_usd": 1.5 * cost, "hard": True})  # fmt: skip
        assert r.status_code == 201, r.text
    url = srv.url + "/gateway/v1/chat/completions"
    headers = {"x-sightline-api-key": API_KEY, "x-sightline-user": user}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    before = len(fake.requests)
    got = [httpx.post(url, json=body, headers=headers) for _ in range(3)]
    assert [r.status_code for r in got] == [200, 200, 429]
    assert got[2].json()["error"]["code"] == "budget_exceeded"
    assert len(fake.requests) - before == 2
    r = httpx.post(url, content=b"{not json", headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_serve_refuses_a_bad_upstream(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sightline.cli import main

    r = CliRunner().invoke(main, ["serve", "--data-dir", str(tmp_path),
                                  "--gateway-upstream", "ftp://x"])  # fmt: skip
    assert r.exit_code != 0 and "http(s) URL" in r.output and "Traceback" not in r.output
