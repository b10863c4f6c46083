"""sightline.get_prompt against a real `sightline serve`: labels, cache, fallbacks, spans."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import sightline
from _helpers import API_KEY, Server, free_port, start_server
from sightline.prompts import MissingVariables
from sightline.sdk import _prompts


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    sightline.clear_prompt_cache()
    yield
    sightline.clear_prompt_cache()


def _point_at(monkeypatch: pytest.MonkeyPatch, url: str, key: str = API_KEY) -> None:
    monkeypatch.setenv("SIGHTLINE_ENDPOINT", url)
    monkeypatch.setenv("SIGHTLINE_API_KEY", key)


def _create(server: Server, **body: object) -> dict[str, object]:
    with server.client() as c:
        r = c.post("/api/v1/prompts", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_get_prompt_by_label_renders_text_and_messages(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create(
        server,
        name="support-answer",
        template="Answer {{question}} for {{plan}}.",
        model="gpt-4o-mini",
        parameters={"temperature": 0.1},
        labels=["production"],
    )
    _create(server, name="support-answer", template="v2 {{question}}", labels=["staging"])
    _point_at(monkeypatch, server.url)
    p = sightline.get_prompt("support-answer", label="production")
    assert (p.version, p.model, p.parameters, p.is_fallback) == (
        1,
        "gpt-4o-mini",
        {"temperature": 0.1},
        False,
    )
    assert p.render(question="Refunds?", plan="annual") == "Answer Refunds? for annual."
    assert p.messages(question="Q", plan="P") == [{"role": "user", "content": "Answer Q for P."}]
    assert p.ref == ("support-answer", 1)
    assert sightline.get_prompt("support-answer").version == 2  # latest
    assert sightline.get_prompt("support-answer", version=1).labels == ("production",)
    with pytest.raises(MissingVariables, match="plan"):
        p.render(question="only one")


def test_any_variable_name_the_registry_accepts_can_be_rendered(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create(server, name="self-named", template=[{"role": "user", "content": "{{self}} and {{x}}"}])
    _point_at(monkeypatch, server.url)
    p = sightline.get_prompt("self-named")
    # ``self`` is a valid {{variable}}: rendering it must not collide with the method's self
    assert p.render(self="me", x="you") == [{"role": "user", "content": "me and you"}]
    assert p.messages(self="me", x="you") == [{"role": "user", "content": "me and you"}]


def test_cached_within_ttl_then_refreshed(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    _create(server, name="cached", template="one", labels=["production"])
    _create(server, name="cached", template="two")
    _point_at(monkeypatch, server.url)
    assert sightline.get_prompt("cached", label="production").template == "one"
    with server.client() as c:
        assert c.put("/api/v1/prompts/cached/labels/production", json={"version": 2}).is_success
    # within the TTL the cached answer is served without asking the server
    assert sightline.get_prompt("cached", label="production").version == 1
    clock = [1e9]
    monkeypatch.setattr(_prompts, "_now", lambda: clock[0])
    sightline.clear_prompt_cache()
    assert sightline.get_prompt("cached", label="production", cache_ttl_s=60).version == 2
    with server.client() as c:
        assert c.put("/api/v1/prompts/cached/labels/production", json={"version": 1}).is_success
    clock[0] += 30
    assert sightline.get_prompt("cached", label="production", cache_ttl_s=60).version == 2
    clock[0] += 31
    assert sightline.get_prompt("cached", label="production", cache_ttl_s=60).version == 1


def test_server_down_serves_the_last_cached_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = start_server(tmp_path)
    try:
        _create(
            srv,
            name="resilient",
            template=[{"role": "system", "content": "Be {{tone}}"}],
            labels=["production"],
        )
        _point_at(monkeypatch, srv.url)
        first = sightline.get_prompt("resilient", label="production", cache_ttl_s=0)
        assert first.version == 1 and not first.is_fallback
    finally:
        srv.stop()
    stale = sightline.get_prompt("resilient", label="production", cache_ttl_s=0, timeout_s=0.5)
    assert stale.version == 1 and stale.is_fallback
    assert stale.render(tone="kind") == [{"role": "system", "content": "Be kind"}]


def test_unreachable_without_cache_uses_the_fallback_or_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _point_at(monkeypatch, f"http://127.0.0.1:{free_port()}")
    p = sightline.get_prompt("nowhere", label="production", fallback="Hi {{name}}", timeout_s=0.5)
    assert (p.version, p.is_fallback, p.type) == (None, True, "text")
    assert p.render(name="Bo") == "Hi Bo"
    assert p.ref == ("nowhere", "fallback")
    sightline.clear_prompt_cache()
    with pytest.raises(sightline.PromptUnavailable, match="unreachable"):
        sightline.get_prompt("nowhere", label="production", timeout_s=0.5)


def test_a_down_server_is_asked_once_per_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    _point_at(monkeypatch, f"http://127.0.0.1:{free_port()}")
    calls = []
    real_fetch = _prompts._fetch

    def counting_fetch(url: str, api_key: str | None, timeout_s: float) -> dict[str, object]:
        calls.append(url)
        return real_fetch(url, api_key, timeout_s)

    monkeypatch.setattr(_prompts, "_fetch", counting_fetch)
    clock = [1e9]
    monkeypatch.setattr(_prompts, "_now", lambda: clock[0])
    for _ in range(5):
        p = sightline.get_prompt("down", fallback="fb {{x}}", cache_ttl_s=30, timeout_s=0.5)
        assert p.is_fallback and p.template == "fb {{x}}"
    assert len(calls) == 1  # the failure is remembered for the TTL, not retried per call
    clock[0] += 31
    sightline.get_prompt("down", fallback="fb {{x}}", cache_ttl_s=30, timeout_s=0.5)
    assert len(calls) == 2


def test_unknown_prompt_or_bad_key_fall_back_with_the_servers_reason(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _point_at(monkeypatch, server.url)
    with pytest.raises(sightline.PromptUnavailable, match="404.*no-such-prompt"):
        sightline.get_prompt("no-such-prompt", label="production")
    assert sightline.get_prompt("no-such-prompt", fallback="fb").template == "fb"
    _point_at(monkeypatch, server.url, key="sl_wrong_key_0000000000000")
    with pytest.raises(sightline.PromptUnavailable, match="401"):
        sightline.get_prompt("support-answer")


def test_bad_arguments_raise_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="label or version"):
        sightline.get_prompt("x", label="production", version=2)
    with pytest.raises(ValueError, match="role"):
        sightline.get_prompt("x", fallback=[{"role": "wizard", "content": "x"}])


APP = textwrap.dedent("""
    import sys
    import sightline

    sightline.init(endpoint=sys.argv[1], api_key=sys.argv[2], service_name="prompt-app")
    prompt = sightline.get_prompt("span-prompt", label="production")
    with sightline.trace("answer", feature="support", prompt=prompt.ref, variant="B") as root:
        with sightline.span("chat", kind="llm") as s:
            s.set_llm(model="gpt-4o-mini", output="ok",
                      input_messages=prompt.messages(q="refunds?"),
                      usage={"input_tokens": 10, "output_tokens": 2})
        print(format(root.otel.get_span_context().trace_id, "032x"))
    sightline.shutdown()
""")


def test_spans_of_a_fetched_prompt_carry_its_name_and_version(server: Server) -> None:
    _create(server, name="span-prompt", template="v1 {{q}}")
    _create(server, name="span-prompt", template="v2 {{q}}", labels=["production"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    proc = subprocess.run(
        [sys.executable, "-c", APP, server.url, API_KEY],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    trace_id = proc.stdout.strip()
    with server.client() as c:
        spans = c.get("/api/v1/spans", params={"trace_id": trace_id}).json()["data"]
    llm = next(s for s in spans if s["kind"] == "llm")
    assert (llm["prompt_name"], llm["prompt_version"], llm["variant"]) == ("span-prompt", "2", "B")
    assert llm["input"] == "v2 refunds?"  # the label's version was rendered


@pytest.fixture
def broken_server() -> Iterator[list[bytes]]:
    """A server answering each request with the next of these raw replies, then hanging up."""
    replies: list[bytes] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()

    def run() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(replies.pop(0) if replies else b"")

    threading.Thread(target=run, daemon=True).start()
    replies.append(f"http://127.0.0.1:{sock.getsockname()[1]}".encode())
    yield replies
    sock.close()


def test_a_server_cutting_its_answer_short_gives_the_fallback(
    broken_server: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    _point_at(monkeypatch, broken_server.pop().decode())
    broken_server += [
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"na',
        b"not http at all\r\n\r\n",
    ]
    for _ in range(2):
        p = sightline.get_prompt("cut", fallback="fb {{x}}", timeout_s=2)
        assert p.is_fallback and p.template == "fb {{x}}"
        sightline.clear_prompt_cache()
    with pytest.raises(sightline.PromptUnavailable, match="RemoteDisconnected|IncompleteRead"):
        sightline.get_prompt("cut", timeout_s=2)  # an empty answer: no fallback, the SDK's error
