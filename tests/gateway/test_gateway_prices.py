"""The gateway prices calls with the price overrides (mounted: the server's; standalone:
--prices-file), and leaves a model it cannot price to the server, which prices it at ingest."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from _gw import Gateway
from _helpers import API_KEY, Server, free_port
from sightline.testing import FakeProvider

PRICES = "models:\n  - match: 'acme-ft-*'\n    input_mtok: 1000\n    output_mtok: 2000\n"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(reply="one two three") as f:
        yield f


@pytest.fixture(scope="module")
def srv(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("gw-prices")
    (d / "prices.yaml").write_text(PRICES)
    s = Server(data_dir=d / "data", port=free_port(),
               args=["--gateway-upstream", fake.openai_base_url,
                     "--prices-file", str(d / "prices.yaml")]).start()  # fmt: skip
    yield s
    s.stop()


def _chat(url: str, user: str, model: str) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi there"}]},
        headers={
            "x-sightline-api-key": API_KEY,
            "x-sightline-user": user,
            "authorization": "Bearer sk-caller",
        },  # fmt: skip
        timeout=30,
    )


def _spans(srv: Server, n: int, user: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    with srv.client() as c:
        while True:
            data: list[dict[str, Any]] = c.get("/api/v1/spans", params={"user_id": user}).json()[
                "data"
            ]
            if len(data) >= n or time.monotonic() > deadline:
                return data
            time.sleep(0.1)


def _price(usage: dict[str, Any]) -> float:
    return (usage["prompt_tokens"] * 1000 + usage["completion_tokens"] * 2000) / 1e6


def test_mounted_gateway_prices_with_the_servers_price_file(srv: Server) -> None:
    user = "u-" + secrets.token_hex(4)
    r = _chat(srv.url + "/gateway", user, "acme-ft-1")
    assert r.status_code == 200, r.text
    cost = _price(r.json()["usage"])
    (s,) = _spans(srv, 1, user)
    assert s["cost_usd"] == pytest.approx(cost)
    # a hard budget of 1.5 calls (the first is spent): the second goes, the third is refused
    with srv.client() as c:
        body = {"name": "b-" + user, "scope": "user", "match": user, "limit_usd": 1.5 * cost,
                "hard": True}  # fmt: skip
        assert c.post("/api/v1/budgets", json=body).status_code == 201
    time.sleep(2.2)  # the gateway reuses a budget check 2 s: the first call's had no budget
    got = [_chat(srv.url + "/gateway", user, "acme-ft-1").status_code for _ in range(2)]
    assert got == [200, 429]


def test_a_model_the_gateway_cannot_price_is_priced_by_the_server(
    srv: Server, fake: FakeProvider, tmp_path: Path
) -> None:
    g = Gateway(fake.openai_base_url, ["--server", srv.url]).start(tmp_path)
    try:
        user = "u-" + secrets.token_hex(4)
        r = _chat(g.url, user, "acme-ft-2")  # the server's price file has it, the gateway not
        assert r.status_code == 200, r.text
        r2 = _chat(g.url, user, "no-such-model-anywhere")
        assert r2.status_code == 200, r2.text
        spans = {s["model"]: s for s in _spans(srv, 2, user)}
        assert spans["acme-ft-2"]["cost_usd"] == pytest.approx(_price(r.json()["usage"]))
        unknown = spans["no-such-model-anywhere"]
        assert unknown["cost_usd"] is None
        assert "unknown_model" in unknown["ingest_notes"]
    finally:
        g.stop()


def test_standalone_gateway_prices_file(fake: FakeProvider, srv: Server, tmp_path: Path) -> None:
    f = tmp_path / "gw-prices.yaml"
    f.write_text("models:\n  - match: 'own-ft'\n    input_mtok: 10\n    output_mtok: 10\n")
    g = Gateway(fake.openai_base_url, ["--server", srv.url, "--prices-file", str(f)])
    g.start(tmp_path)
    try:
        user = "u-" + secrets.token_hex(4)
        r = _chat(g.url, user, "own-ft")
        assert r.status_code == 200, r.text
        u = r.json()["usage"]
        (s,) = _spans(srv, 1, user)
        assert s["cost_usd"] == pytest.approx((u["prompt_tokens"] + u["completion_tokens"]) / 1e5)
    finally:
        g.stop()
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - match: x\n")
    g = Gateway(fake.openai_base_url, ["--server", "", "--prices-file", str(bad)])
    with pytest.raises(RuntimeError, match="input_mtok"):
        g.start(tmp_path)
