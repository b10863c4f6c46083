"""The mounted gateway keeps projects and callers apart: statistics, cache and rate limit.

A real `sightline serve --gateway-upstream` with two projects (``test`` and ``beta``), the exact
cache and a rate limit, in front of a fake provider that accepts one provider key only:

- ``/gateway/stats`` and ``/gateway/metrics`` count the caller key's project's calls only (a
  read key of another project sees none of them); the upstreams' circuits are server-wide;
- a cached answer goes only to a caller who sends the provider credentials it was paid with:
  a wrong or missing ``Authorization`` misses and gets the provider's 401;
- the rate limit counts the Sightline key: another ``Authorization`` opens no new window.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from _helpers import API_KEY, Server, free_port
from sightline.cli import main
from sightline.testing import FakeProvider

PROVIDER_KEY = "sk-provider-alpha"
RATE = 4


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(reply="PRIVATE answer paid by the test project") as f:
        f.api_keys = frozenset({PROVIDER_KEY})
        yield f


@pytest.fixture(scope="module")
def beta_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    data = tmp_path_factory.mktemp("scoping") / "data"
    r = CliRunner().invoke(main, ["projects", "create", "beta", "--data-dir", str(data)])
    assert r.exit_code == 0, r.output
    return data, r.output.strip()


@pytest.fixture(scope="module")
def srv(fake: FakeProvider, beta_key: tuple[Path, str]) -> Iterator[Server]:
    s = Server(data_dir=beta_key[0], port=free_port(),
               args=["--gateway-upstream", fake.openai_base_url, "--gateway-cache", "exact",
                     "--gateway-rate-limit", f"{RATE}/min"]).start()  # fmt: skip
    yield s
    s.stop()


def _key(srv: Server, role: str, admin_key: str = API_KEY) -> str:
    with srv.client(admin_key) as c:
        r = c.post("/api/v1/keys", json={"role": role})
        assert r.status_code == 201, r.text
        return str(r.json()["key"])


def _ask(srv: Server, sl_key: str, question: str, auth: str | None) -> httpx.Response:
    headers = {"x-sightline-api-key": sl_key}
    if auth is not None:
        headers["authorization"] = auth
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]}
    return httpx.post(srv.url + "/gateway/v1/chat/completions", json=body, headers=headers,
                      timeout=30)  # fmt: skip


def _stats(srv: Server, key: str) -> dict[str, object]:
    r = httpx.get(srv.url + "/gateway/stats", headers={"x-sightline-api-key": key}, timeout=10)
    assert r.status_code == 200, r.text
    data: dict[str, object] = r.json()
    return data


def test_stats_and_metrics_show_the_callers_project_only(
    srv: Server, beta_key: tuple[Path, str]
) -> None:
    beta_admin = beta_key[1]
    beta_read = _key(srv, "read", beta_admin)
    alpha = _key(srv, "ingest")
    before = _stats(srv, beta_read)
    q = "stats " + secrets.token_hex(4)
    assert _ask(srv, alpha, q, f"Bearer {PROVIDER_KEY}").headers["x-sightline-cache"] == "miss"
    assert _ask(srv, alpha, q, f"Bearer {PROVIDER_KEY}").headers["x-sightline-cache"] == "hit-exact"
    mine = _stats(srv, API_KEY)
    assert mine["requests"] >= 2 and mine["cache_hits"] >= 1  # type: ignore[operator]
    assert mine["saved_usd"] > 0  # type: ignore[operator]
    theirs = _stats(srv, beta_read)
    for k in ("requests", "cost_usd", "cache_lookups", "cache_hits", "saved_usd"):
        assert theirs[k] == before[k] == 0, (k, theirs)
    assert set(theirs["circuits"]) == set(mine["circuits"])  # type: ignore[arg-type]
    m = httpx.get(srv.url + "/gateway/metrics", headers={"x-sightline-api-key": beta_read})
    assert m.status_code == 200
    assert "sightline_gateway_requests_total 0\n" in m.text
    assert "sightline_gateway_cache_saved_usd_total 0.0\n" in m.text
    m = httpx.get(srv.url + "/gateway/metrics", headers={"x-sightline-api-key": API_KEY})
    assert "sightline_gateway_requests_total 0\n" not in m.text


def test_a_cache_hit_needs_the_provider_credentials_of_the_paid_call(
    srv: Server, fake: FakeProvider
) -> None:
    key = _key(srv, "ingest")
    q = "cache " + secrets.token_hex(4)
    first = _ask(srv, key, q, f"Bearer {PROVIDER_KEY}")
    assert first.status_code == 200 and first.headers["x-sightline-cache"] == "miss"
    n = len(fake.requests)
    for auth in ("Bearer sk-wrong", None):
        r = _ask(srv, key, q, auth)
        assert r.status_code == 401, r.text  # the provider's answer: no cached answer leaks
        assert r.headers["x-sightline-cache"] == "miss"
        assert "PRIVATE" not in r.text
    assert len(fake.requests) == n + 2  # both went upstream
    again = _ask(srv, key, q, f"Bearer {PROVIDER_KEY}")
    assert again.status_code == 200 and again.headers["x-sightline-cache"] == "hit-exact"
    assert again.json() == first.json()
    assert len(fake.requests) == n + 2


def test_the_rate_limit_counts_the_sightline_key_not_the_authorization_header(
    srv: Server,
) -> None:
    key = _key(srv, "ingest")
    codes = [_ask(srv, key, f"r{i}", f"Bearer {PROVIDER_KEY}").status_code for i in range(RATE)]
    assert codes == [200] * RATE
    for auth in (f"Bearer {PROVIDER_KEY}", "Bearer other", f"bearer {PROVIDER_KEY}", None):
        r = _ask(srv, key, "more " + secrets.token_hex(2), auth)
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded", auth
    # another Sightline key has its own window
    assert _ask(srv, _key(srv, "ingest"), "other", f"Bearer {PROVIDER_KEY}").status_code == 200
