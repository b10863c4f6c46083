"""Tool calls, tool results and images in a chat's messages reach the API and the trace page.

The message text alone lost them: an Anthropic turn of tool results was an empty message.
"""

from __future__ import annotations

import html
import json
import secrets
import time
from pathlib import Path

import httpx

from _dashboard import ADMIN_EMAIL, ADMIN_PASSWORD, login
from _helpers import Server, free_port


def _kv(k: str, v: str) -> dict[str, object]:
    return {"key": k, "value": {"stringValue": v}}


def test_tool_blocks_are_kept_and_shown(tmp_path: Path) -> None:
    msgs = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "tu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "tu_1", "content": "18 degrees, cloudy"}]},
    ]  # fmt: skip
    tid, sid, ns = secrets.token_hex(16), secrets.token_hex(8), time.time_ns()
    span = {"traceId": tid, "spanId": sid, "name": "chat claude", "kind": 3,
            "startTimeUnixNano": str(ns - 10**9), "endTimeUnixNano": str(ns),
            "attributes": [_kv("gen_ai.operation.name", "chat"),
                           _kv("gen_ai.request.model", "claude-sonnet-4"),
                           _kv("gen_ai.input.messages", json.dumps(msgs))]}  # fmt: skip
    srv = Server(data_dir=tmp_path, port=free_port(),
                 env={"SIGHTLINE_INIT_ADMIN_EMAIL": ADMIN_EMAIL,
                      "SIGHTLINE_INIT_ADMIN_PASSWORD": ADMIN_PASSWORD}).start()  # fmt: skip
    try:
        with srv.client() as c:
            r = c.post("/v1/traces", json={"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
            assert r.status_code == 200, r.text
            got = c.get(f"/api/v1/traces/{tid}").json()["spans"][0]["input_messages"]
        assert got[1]["parts"] == msgs[1]["content"]
        assert got[2]["parts"] == msgs[2]["content"] and got[2]["content"] == ""
        with httpx.Client(base_url=srv.url, timeout=30) as web:
            login(web)
            page = html.unescape(web.get(f"/traces/{tid}").text)
        assert "get_weather" in page and "18 degrees, cloudy" in page
    finally:
        srv.stop()
