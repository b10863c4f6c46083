"""docs/prompts.md and the cost-breakdown section of docs/cost.md run against a real server.

The Python blocks of a page are one walk-through: they run in order, in one process.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _helpers import API_KEY, Server

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```python( \{[^}]*\})?\n(.*?)```", re.S)


def _script(page: str) -> str:
    blocks = [c for info, c in BLOCK.findall((DOCS / page).read_text()) if "skip" not in info]
    assert len(blocks) >= 3, page
    return "\n".join(blocks)


@pytest.mark.parametrize("page", ["prompts.md", "cost.md"])
def test_page_examples_run(page: str, server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    env.update({"SIGHTLINE_ENDPOINT": server.url, "SIGHTLINE_API_KEY": API_KEY})
    spans = [{"trace_id": secrets.token_hex(16), "span_id": secrets.token_hex(8), "kind": "llm",
              "name": "chat", "model": "gpt-4o-mini", "feature": "support", "session_id": "s-1",
              "user_id": "u-1", "input_tokens": 1000 + i, "output_tokens": 50,
              "start_time": time.time() - 3600 * i, "duration_ms": 300}
             for i in range(3)]  # fmt: skip
    with server.client() as c:
        assert c.post("/api/v1/spans", json=spans).status_code == 200
    proc = subprocess.run([sys.executable, "-c", _script(page)], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
