"""Replay of a recorded LLM span through the gateway with another model."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner

from _gw import Gateway
from _helpers import API_KEY, Server
from sightline.cli import main
from sightline.gateway import format_side_by_side, replay_span
from sightline.testing import FakeProvider


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(reply=lambda body: f"{body['model']} says: refunds take 30 days.") as f:
        yield f


def test_replay_with_another_model_side_by_side(
    fake: FakeProvider, server: Server, tmp_path: Path
) -> None:
    g = Gateway(fake.openai_base_url, ["--server", server.url, "--api-key", API_KEY])
    g.start(tmp_path)
    try:
        user = "u-" + secrets.token_hex(4)
        c = openai.OpenAI(base_url=g.url + "/v1", api_key="sk-x", max_retries=0,
                          default_headers={"x-sightline-user": user,
                                           "x-sightline-feature": "refunds"})  # fmt: skip
        r = c.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "How long do refunds take?"}]
        )
        trace_id = r.headers["x-sightline-trace-id"]
        with server.client() as sc:
            deadline = time.monotonic() + 20
            while sc.get(f"/api/v1/traces/{trace_id}").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            span_id = sc.get("/api/v1/spans", params={"trace_id": trace_id}).json()["data"][0][
                "span_id"
            ]
            label = sc.post("/api/v1/scores", json={"span_id": span_id, "label": "correct"})
            assert label.status_code == 201, label.text
        res = replay_span(server=server.url, api_key=API_KEY, gateway=g.url, trace_id=trace_id,
                          model="gpt-4o", provider_key="sk-x")  # fmt: skip
        assert res.original.model == "gpt-4o-mini"
        assert res.original.output == "gpt-4o-mini says: refunds take 30 days."
        assert res.replay.model == "gpt-4o"
        assert res.replay.output == "gpt-4o says: refunds take 30 days."
        assert res.replay.trace_id != trace_id and res.replay.span_id is not None
        assert res.replay.cost_usd and res.replay.cost_usd > res.original.cost_usd  # type: ignore[operator]
        text = format_side_by_side(res)
        assert "gpt-4o-mini says" in text and "gpt-4o says" in text
        (label_score,) = res.original.scores  # the human label on the recorded span
        assert f"score {label_score['name']}" in text
        # the replayed span is tagged like the original, and points at it
        with server.client() as sc:
            spans = sc.get("/api/v1/spans", params={"user_id": user}).json()["data"]
        assert len(spans) == 2 and {s["feature"] for s in spans} == {"refunds"}
        replayed = next(s for s in spans if s["trace_id"] == res.replay.trace_id)
        assert replayed["attributes"]["sightline.replay_of"] == res.original.span_id
        where = ["--server", server.url, "--gateway", g.url, "--api-key", API_KEY]
        out = CliRunner().invoke(main, ["replay", trace_id, "--model", "gpt-4o", *where])
        assert out.exit_code == 0, out.output
        assert "gpt-4o says" in out.output
        bad = CliRunner().invoke(main, ["replay", "0" * 32, "--server", server.url,
                                        "--gateway", g.url, "--api-key", API_KEY])  # fmt: skip
        assert bad.exit_code != 0 and "not found" in bad.output
    finally:
        g.stop()
