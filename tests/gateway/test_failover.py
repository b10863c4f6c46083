"""Gateway failover: real gateway processes in front of real fake providers that fail or hang."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from _gw import Gateway
from _helpers import API_KEY, Server
from sightline.gateway import load_routes
from sightline.gateway._failover import parse_routes
from sightline.testing import FakeProvider

BACKUP = "answer from the backup"


def _fake(reply: str, ttft_s: float = 0.0) -> FakeProvider:
    return FakeProvider(reply=reply, ttft_s=ttft_s).start()


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    f = {
        "p5xx": _fake("answer from p5xx"),
        "slow": _fake("answer from slow", ttft_s=3.0),
        "cb": _fake("answer from cb"),
        "budget": _fake("answer from budget"),
        "cut": _fake("one two three four five six"),
        "backup": _fake(BACKUP),
    }
    yield f
    for p in f.values():
        p.stop()


def _routes_file(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def gw(
    fakes: dict[str, FakeProvider], server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    d = tmp_path_factory.mktemp("gwfo")
    u = {k: v.openai_base_url for k, v in fakes.items()}
    routes = _routes_file(
        d / "routes.yaml",
        f"""
retry_budget: {{ratio: 0.5, min_per_window: 100, window_s: 60}}
circuit: {{failures: 2, cooldown_s: 2}}
routes:
  - model: gpt-4o-mini
    upstreams:
      - {{url: "{u["p5xx"]}", timeout_s: 10}}
      - {{url: "{u["backup"]}", model: gpt-4o-backup, timeout_s: 10}}
  - model: "slow-*"
    upstreams:
      - {{url: "{u["slow"]}", timeout_s: 0.5}}
      - {{url: "{u["backup"]}", timeout_s: 10}}
  - model: "cb-*"
    upstreams:
      - {{url: "{u["cb"]}", timeout_s: 10}}
      - {{url: "{u["backup"]}", timeout_s: 10}}
  - model: "cut-*"
    upstreams:
      - {{url: "{u["cut"]}", timeout_s: 10}}
      - {{url: "{u["backup"]}", timeout_s: 10}}
  - model: "solo-*"
    upstreams: ["{u["cb"]}"]
""",
    )
    g = Gateway(u["p5xx"], ["--server", server.url, "--api-key", API_KEY, "--routes", routes])
    g.start(d)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def gw_budget(
    fakes: dict[str, FakeProvider], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    d = tmp_path_factory.mktemp("gwbudget")
    u = {k: v.openai_base_url for k, v in fakes.items()}
    routes = _routes_file(
        d / "routes.yaml",
        f"""
retry_budget: {{ratio: 0.0, min_per_window: 1, window_s: 600}}
routes:
  - model: "*"
    upstreams: ["{u["budget"]}", "{u["backup"]}"]
""",
    )
    g = Gateway(u["budget"], ["--server", "", "--api-key", API_KEY, "--routes", routes])
    g.start(d)
    yield g
    g.stop()


def _client(gw: Gateway, user: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-caller", max_retries=0,
                         default_headers={"x-sightline-user": user})  # fmt: skip


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


def _ask(gw: Gateway, model: str, **kw: Any) -> tuple[str, str]:
    """(user id, answer) of one chat call through the gateway."""
    user = "u-" + secrets.token_hex(4)
    with _client(gw, user) as client:
        chat = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], **kw
        )
        if kw.get("stream"):
            text = "".join(c.choices[0].delta.content or "" for c in chat if c.choices)
        else:
            text = chat.choices[0].message.content
    return user, str(text)


def _circuits(gw: Gateway) -> dict[str, str]:
    out: dict[str, str] = httpx.get(gw.url + "/gateway/stats").json()["circuits"]
    return out


def _chats(f: FakeProvider) -> list[Any]:
    return [r for r in f.requests if r.path == "/v1/chat/completions"]


class TestFailover:
    def test_5xx_fails_over_to_the_next_upstream_and_the_span_records_it(
        self, gw: Gateway, fakes: dict[str, FakeProvider], server: Server
    ) -> None:
        backup_before = len(_chats(fakes["backup"]))
        fakes["p5xx"].fail_next(503)
        user, text = _ask(gw, "gpt-4o-mini")
        assert text == BACKUP
        sent = _chats(fakes["backup"])[backup_before:]
        assert len(sent) == 1 and sent[0].body["model"] == "gpt-4o-backup"
        s = _span(server, user)
        a = s["attributes"]
        assert s["status"] == "ok" and s["request_model"] == "gpt-4o-mini"
        assert a["sightline.gateway.upstream"] == fakes["backup"].openai_base_url
        assert a["sightline.gateway.upstream_model"] == "gpt-4o-backup"
        assert a["sightline.gateway.attempts"] == 2 and a["sightline.gateway.fallback"] is True
        assert "upstream 503" in a["sightline.gateway.fallback_reason"]
        # the next call is served by the primary again
        user2, text2 = _ask(gw, "gpt-4o-mini")
        assert text2 == "answer from p5xx"
        a2 = _span(server, user2)["attributes"]
        assert a2["sightline.gateway.fallback"] is False and a2["sightline.gateway.attempts"] == 1
        assert "sightline.gateway.fallback_reason" not in a2
        assert gw.stats()["fallbacks"] == 1
        # the fallback is a metric that alert rules can use
        with server.client() as c:
            r = c.get("/api/v1/metrics", params={"name": "fallback_rate", "user_id": user})
            assert r.status_code == 200, r.text
            assert r.json()["series"][0]["points"][0]["value"] == 1.0
            r = c.get("/api/v1/metrics", params={"name": "fallback_rate", "user_id": user2})
            assert r.json()["series"][0]["points"][0]["value"] == 0.0
        assert "sightline_gateway_fallbacks_total" in httpx.get(gw.url + "/metrics").text

    def test_a_hanging_upstream_times_out_and_fails_over(
        self, gw: Gateway, fakes: dict[str, FakeProvider], server: Server
    ) -> None:
        t0 = time.monotonic()
        user, text = _ask(gw, "slow-model")
        assert text == BACKUP and time.monotonic() - t0 < 2.5  # the slow one takes 3 s
        a = _span(server, user)["attributes"]
        assert a["sightline.gateway.fallback"] is True
        assert "timeout after 0.5s" in a["sightline.gateway.fallback_reason"]

    def test_a_stream_fails_over_before_its_first_chunk(
        self, gw: Gateway, fakes: dict[str, FakeProvider], server: Server
    ) -> None:
        user, text = _ask(gw, "slow-model", stream=True)
        assert text == BACKUP
        a = _span(server, user)["attributes"]
        assert a["sightline.gateway.fallback"] is True
        assert "timeout" in a["sightline.gateway.fallback_reason"]
        fakes["p5xx"].fail_next(500)
        user, text = _ask(gw, "gpt-4o-mini", stream=True)
        assert text == BACKUP
        s = _span(server, user)
        assert "upstream 500" in s["attributes"]["sightline.gateway.fallback_reason"]
        assert s["output_tokens"] == len(BACKUP.split())

    def test_a_stream_cut_after_its_first_chunk_does_not_fail_over(
        self, gw: Gateway, fakes: dict[str, FakeProvider], server: Server
    ) -> None:
        fakes["cut"].abort_after = 2
        backup_before = len(_chats(fakes["backup"]))
        user = "u-" + secrets.token_hex(4)
        got = []
        # the gateway ends the relayed stream where the upstream cut it, with an error event
        with _client(gw, user) as client, pytest.raises(openai.APIError, match="stream failed"):
            for c in client.chat.completions.create(
                model="cut-1", messages=[{"role": "user", "content": "hi"}], stream=True
            ):
                got.append(c.choices[0].delta.content or "" if c.choices else "")
        assert "".join(got).split() == ["one", "two"]  # what was sent stays the only answer
        assert len(_chats(fakes["backup"])) == backup_before
        s = _span(server, user)
        assert s["status"] == "error" and s["attributes"]["sightline.gateway.fallback"] is False

    def test_the_circuit_opens_half_opens_and_closes(
        self, gw: Gateway, fakes: dict[str, FakeProvider], server: Server
    ) -> None:
        cb = fakes["cb"]
        url = cb.openai_base_url
        cb.fail_next(500, 2)
        for _ in range(2):  # two failures in a row open it (circuit.failures: 2)
            assert _ask(gw, "cb-model")[1] == BACKUP
        assert _circuits(gw)[url] == "open"
        before = len(_chats(cb))
        user, text = _ask(gw, "cb-model")
        assert text == BACKUP and len(_chats(cb)) == before  # not even tried
        a = _span(server, user)["attributes"]
        assert a["sightline.gateway.attempts"] == 1 and a["sightline.gateway.fallback"] is True
        assert "circuit open" in a["sightline.gateway.fallback_reason"]
        # a route with no other upstream answers at once
        r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "solo-1", "messages": []},
                       headers={"authorization": "Bearer sk"})  # fmt: skip
        assert r.status_code == 503 and r.json()["error"]["code"] == "circuit_open"
        assert len(_chats(cb)) == before
        time.sleep(2.2)  # the cooldown
        assert _circuits(gw)[url] == "half_open"
        # a failing probe opens it again
        cb.fail_next(503)
        assert _ask(gw, "cb-model")[1] == BACKUP
        assert len(_chats(cb)) == before + 1
        assert _circuits(gw)[url] == "open"
        time.sleep(2.2)
        user, text = _ask(gw, "cb-model")  # the probe succeeds: closed
        assert text == "answer from cb" and len(_chats(cb)) == before + 2
        assert _circuits(gw)[url] == "closed"
        assert _span(server, user)["attributes"]["sightline.gateway.fallback"] is False
        assert (
            'sightline_gateway_circuit_open{upstream="' + url + '"} 0'
            in httpx.get(gw.url + "/metrics").text
        )


class TestRetryBudget:
    def test_the_budget_stops_extra_attempts(
        self, gw_budget: Gateway, fakes: dict[str, FakeProvider]
    ) -> None:
        backup_before = len(_chats(fakes["backup"]))
        fakes["budget"].fail_next(503, 2)
        assert _ask(gw_budget, "m")[1] == BACKUP  # min_per_window: 1 extra attempt allowed
        with pytest.raises(openai.InternalServerError) as e:  # no room: the 503 comes back
            _ask(gw_budget, "m")
        assert e.value.status_code == 503
        assert len(_chats(fakes["backup"])) == backup_before + 1
        s = gw_budget.stats()
        assert s["retries_denied"] == 1 and s["fallbacks"] == 1 and s["extra_attempts"] == 1


class TestBadRoutes:
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("routes: []", "routes: expected a non-empty list"),
            ("routes: [{model: x, upstreams: [ftp://a]}]", "url: expected an http(s) URL"),
            ("routes: [{model: x, upstreams: [{url: 'http://a', timeout_s: -1}]}]", "timeout_s"),
            ("routes: [{model: x, upstreams: [http://a]}]\ncircuit: {failures: 0}", "failures"),
            ("rutes: []", "unknown keys: rutes"),
            ("[1, 2", "expected"),
        ],
    )
    def test_bad_files_are_refused_with_a_message(
        self, tmp_path: Path, text: str, message: str
    ) -> None:
        p = tmp_path / "routes.yaml"
        p.write_text(text)
        with pytest.raises(ValueError) as e:
            load_routes(p)
        assert message in str(e.value)

    def test_the_cli_exits_with_a_message(self, tmp_path: Path) -> None:
        p = tmp_path / "routes.yaml"
        p.write_text("routes: [{model: x}]")
        out = subprocess.run(
            [sys.executable, "-m", "sightline", "gateway", "--upstream", "http://127.0.0.1:1/v1",
             "--routes", str(p)], capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 2 and "upstreams: expected a non-empty list" in out.stderr
        assert "Traceback" not in out.stderr
        missing = subprocess.run(
            [sys.executable, "-m", "sightline", "gateway", "--upstream", "http://127.0.0.1:1/v1",
             "--routes", str(tmp_path / "nope.yaml")], capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert missing.returncode == 2 and "Traceback" not in missing.stderr

    def test_routes_match_globs_in_order(self) -> None:
        cfg = parse_routes({"routes": [
            {"model": "gpt-4o", "upstreams": ["http://a/v1"]},
            {"model": "gpt-4o*",
             "upstreams": [{"url": "http://b/v1/", "model": "m", "timeout_s": 2}]},
        ]})  # fmt: skip
        first, second = cfg.route_for("gpt-4o"), cfg.route_for("gpt-4o-mini")
        assert first is not None and first.upstreams[0].url == "http://a/v1"
        assert second is not None
        up = second.upstreams[0]
        assert (up.url, up.model, up.timeout_s) == ("http://b/v1", "m", 2.0)
        assert cfg.route_for("claude") is None


def test_retry_budget_allows_min_plus_ratio_of_calls_over_the_window() -> None:
    from sightline.gateway._failover import RetryBudget

    b = RetryBudget(ratio=0.5, min_per_window=1, window_s=0.5)
    for _ in range(10):
        b.call()
    assert [b.try_retry() for _ in range(8)] == [True] * 6 + [False] * 2  # 1 + 0.5 × 10
    time.sleep(0.6)  # the window slid past them
    b.call()
    assert [b.try_retry() for _ in range(3)] == [True, True, False]  # 1 + 0.5 × 1
