"""Self-consistency sampling through the gateway: ``x-sightline-samples: N``."""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from _gw import Gateway
from _helpers import API_KEY, Server
from sightline.evals.evaluators import self_consistency
from sightline.testing import FakeProvider

ANSWERS = {
    "steady": ["Refunds take 30 days.", "You get your refund within 30 days.",
               "A refund takes 30 days to arrive.", "Refunds arrive within 30 days."],
    "guessing": ["Refunds take 30 days.", "Refunds take 90 days.", "Refunds take 7 days.",
                 "Refunds are not possible."],
}  # fmt: skip


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    turns = {k: itertools.cycle(v) for k, v in ANSWERS.items()}

    def reply(body: dict[str, Any]) -> str:
        return next(turns[str(body["model"])]) if body["model"] in turns else "ok"

    with FakeProvider(reply=reply) as f:
        yield f


@pytest.fixture(scope="module")
def gw(fake: FakeProvider, server: Server, tmp_path_factory: pytest.TempPathFactory
       ) -> Iterator[Gateway]:  # fmt: skip
    g = Gateway(fake.openai_base_url, ["--server", server.url, "--api-key", API_KEY])
    g.start(tmp_path_factory.mktemp("gwsamples"))
    yield g
    g.stop()


def _span(server: Server, user: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    with server.client() as c:
        while True:
            data = c.get("/api/v1/spans", params={"user_id": user}).json()["data"]
            if data or time.monotonic() > deadline:
                (s,) = data
                out: dict[str, Any] = s
                return out
            time.sleep(0.1)


def _sampled(gw: Gateway, server: Server, model: str) -> tuple[str, list[str], dict[str, Any]]:
    user = "u-" + secrets.token_hex(4)
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-caller", max_retries=0,
                           default_headers={"x-sightline-user": user,
                                            "x-sightline-samples": "3"})  # fmt: skip
    with client:
        chat = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "How long do refunds take?"}]
        )
    s = _span(server, user)
    return str(chat.choices[0].message.content), json.loads(s["attributes"]["sightline.samples"]), s


def test_samples_are_recorded_and_separate_steady_from_guessing(
    gw: Gateway, fake: FakeProvider, server: Server
) -> None:
    before = len(fake.requests)
    answer, samples, span = _sampled(gw, server, "steady")
    assert len(fake.requests) == before + 4  # the call and 3 samples
    assert span["output"] == answer and answer == ANSWERS["steady"][0]
    assert sorted(samples) == sorted(ANSWERS["steady"][1:])
    assert span["attributes"]["sightline.samples.cost_usd"] == 0.0  # an unpriced model name
    steady = self_consistency([answer, *samples])
    answer, samples, _ = _sampled(gw, server, "guessing")
    assert sorted(samples) == sorted(ANSWERS["guessing"][1:])
    guessing = self_consistency([answer, *samples])
    assert steady is not None and guessing is not None
    assert steady.score > 0.45 > guessing.score
    assert gw.stats()["samples"] == 6


def test_bad_sample_requests_are_refused(gw: Gateway, fake: FakeProvider) -> None:
    before = len(fake.requests)
    body = {"model": "steady", "messages": [{"role": "user", "content": "hi"}]}
    for value, extra in (("abc", {}), ("11", {}), ("-1", {}), ("2", {"stream": True}),
                         ("2", {"n": 2})):  # fmt: skip
        r = httpx.post(gw.url + "/v1/chat/completions", json={**body, **extra},
                       headers={"x-sightline-samples": value})  # fmt: skip
        assert r.status_code == 400, (value, extra)
        assert r.json()["error"]["code"] == "invalid_samples"
    assert len(fake.requests) == before


def test_the_server_scores_self_consistency_of_a_sampled_gateway_call(
    fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """End to end: gateway samples → span attribute → the server's self_consistency evaluator."""
    from _helpers import free_port, start_server

    tmp = tmp_path_factory.mktemp("gwsamples-eval")
    env = {"SIGHTLINE_EVAL_ENABLED": "true", "SIGHTLINE_EVALUATORS": "self_consistency",
           "SIGHTLINE_EVAL_GRACE_S": "0", "SIGHTLINE_EVAL_INTERVAL_S": "0.2",
           "HF_HUB_OFFLINE": "1"}  # fmt: skip
    srv = start_server(tmp, grpc_port=free_port(), env=env)
    g = Gateway(fake.openai_base_url, ["--server", srv.url, "--api-key", API_KEY]).start(tmp)
    try:
        scores = {}
        for model in ("steady", "guessing"):
            _, _, span = _sampled(g, srv, model)
            deadline = time.monotonic() + 120
            with srv.client() as c:
                while time.monotonic() < deadline:
                    params = {"span_id": span["span_id"], "name": "self_consistency"}
                    data = c.get("/api/v1/scores", params=params).json()["data"]
                    if data:
                        break
                    time.sleep(0.3)
            assert data, srv.log()[-2000:]
            scores[model] = data[0]
        assert scores["steady"]["value"] > 0.45 > scores["guessing"]["value"]
        assert scores["guessing"]["passed"] is False and scores["steady"]["passed"] is True
    finally:
        g.stop()
        srv.stop()
