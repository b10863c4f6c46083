"""The mounted gateway's own settings (`sightline serve --gateway-cache/--gateway-rate-limit/
--gateway-routes`, `SIGHTLINE_GATEWAY_REDIS_URL`): two real server nodes, each mounting the
gateway, share one cache and one rate-limit window through Redis, and fall over to the next
upstream of a route; bad values stop the server at start with a clear message."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from _gw import REDIS_URL
from _helpers import API_KEY, Server, free_port
from sightline.cli import main
from sightline.testing import FakeProvider


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(ttft_s=0.005) as f:
        yield f


@pytest.mark.parametrize("redis_setting", ["SIGHTLINE_GATEWAY_REDIS_URL", "SIGHTLINE_REDIS_URL"])
def test_two_nodes_share_the_gateway_cache_and_rate_limit_and_fall_over(
    tmp_path: Path, fake: FakeProvider, prefix: str, redis_setting: str
) -> None:
    """Through the gateway's own Redis setting, or the Redis the nodes coordinate with."""
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: every attempt fails
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"routes:\n  - model: 'gpt-4o*'\n    upstreams: ['{dead}', '{fake.openai_base_url}']\n"
    )
    args = ["--gateway-upstream", fake.openai_base_url, "--gateway-cache", "exact",
            "--gateway-rate-limit", "4/min", "--gateway-routes", str(routes)]  # fmt: skip
    env = {redis_setting: REDIS_URL, "SIGHTLINE_GATEWAY_REDIS_PREFIX": prefix,
           "SIGHTLINE_REDIS_PREFIX": prefix + "coord:"}  # fmt: skip
    nodes = [
        Server(data_dir=tmp_path / f"n{i}", port=free_port(), args=args, env=dict(env)).start()
        for i in range(2)
    ]
    try:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "refunds?"}]}
        headers = {"x-sightline-api-key": API_KEY, "authorization": "Bearer sk-caller"}

        def ask(node: Server, b: dict[str, object] = body) -> httpx.Response:
            return httpx.post(
                node.url + "/gateway/v1/chat/completions", json=b, headers=headers, timeout=30
            )

        before = len(fake.requests)
        first = ask(nodes[0])
        assert first.status_code == 200, first.text
        assert first.headers["x-sightline-cache"] == "miss"
        again = ask(nodes[1])  # the other node answers from the cache node 0 filled
        assert again.status_code == 200, again.text
        assert again.headers["x-sightline-cache"] == "hit-exact"
        assert again.json()["choices"] == first.json()["choices"]
        assert len(fake.requests) - before == 1  # the provider saw the question once
        # the route fell over from the dead upstream to the fake one
        stats = httpx.get(nodes[0].url + "/gateway/stats", headers=headers).json()
        assert stats["fallbacks"] == 1, stats
        # one window of 4 per caller key across both nodes: two used, two left, then 429
        other = {**body, "messages": [{"role": "user", "content": "shipping?"}]}
        codes = [ask(nodes[i % 2], other).status_code for i in range(3)]
        assert codes == [200, 200, 429], codes
    finally:
        for n in nodes:
            n.stop()
    for n in nodes:
        assert "Traceback" not in n.log(), n.log()[-3000:]


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        (["--gateway-rate-limit", "lots"], {}, "expected N/s, N/min or N/h"),
        (["--gateway-cache", "fuzzy"], {}, "Invalid value for '--gateway-cache'"),
        ([], {"SIGHTLINE_GATEWAY_REDIS_URL": "http://x"}, "expected redis://"),
        ([], {"SIGHTLINE_GATEWAY_REDIS_URL": "redis://127.0.0.1:1/0"}, "cannot reach Redis"),
        ([], {"SIGHTLINE_REDIS_URL": "redis://127.0.0.1:1/0"}, "cannot reach Redis"),
        ([], {"SIGHTLINE_GATEWAY_CACHE_TTL_S": "0"}, "gateway_cache_ttl_s"),
        (["--gateway-routes", "ROUTES"], {}, "gateway_routes"),
    ],
)
def test_bad_gateway_settings_stop_serve_with_a_clear_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes: [{model: 'gpt*'}]\n")  # no upstreams
    extra = [str(routes) if a == "ROUTES" else a for a in extra]
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    upstream = ["--gateway-upstream", "http://127.0.0.1:9/v1"]
    r = CliRunner().invoke(main, ["serve", "--data-dir", str(tmp_path / "d"), "--port",
                                  str(free_port()), "--otlp-grpc-port", "0", *upstream,
                                  *extra])  # fmt: skip
    assert r.exit_code != 0, r.output
    assert message in r.output, r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize(
    "command",
    [
        ["gateway", "--upstream", "http://127.0.0.1:9/v1", "--cache", "semantic"],
        [
            "serve",
            "--otlp-grpc-port",
            "0",
            "--gateway-upstream",
            "http://127.0.0.1:9/v1",
            "--gateway-cache",
            "semantic",
        ],
    ],  # fmt: skip
)
def test_semantic_cache_without_the_ml_extra_stops_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # as if sightline[ml] were not installed: `import onnxruntime` raises ImportError
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    if command[0] == "serve":
        command = [*command, "--data-dir", str(tmp_path / "d"), "--port", str(free_port())]
    else:
        command = [*command, "--port", str(free_port())]
    r = CliRunner().invoke(main, command)
    assert r.exit_code != 0, r.output
    assert "semantic cache needs sightline[ml]" in r.output, r.output
    assert "Traceback" not in r.output


def test_the_upstream_timeout_setting_reaches_the_mounted_gateway(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sightline.config import Settings
    from sightline.server._gateway import gateway_options

    monkeypatch.setenv("SIGHTLINE_GATEWAY_UPSTREAM_TIMEOUT_S", "2.5")
    opts = gateway_options(Settings(), "http://127.0.0.1:9/v1")
    assert opts.timeout_s == 2.5
    monkeypatch.setenv("SIGHTLINE_GATEWAY_UPSTREAM_TIMEOUT_S", "0")
    with pytest.raises(ValueError, match="gateway_upstream_timeout_s"):
        Settings()
