"""docs/sdk.md: every Python block not marked {test="skip"} runs, against a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _helpers import API_KEY, Server

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"
BLOCK = re.compile(r"```python( \{[^}]*\})?\n(.*?)```", re.S)


def _blocks() -> list[str]:
    return [code for info, code in BLOCK.findall(DOC.read_text()) if 'test="skip"' not in info]


def test_doc_has_runnable_blocks() -> None:
    assert len(_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_block_runs(index: int, server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    env.update({"SIGHTLINE_ENDPOINT": server.url, "SIGHTLINE_API_KEY": API_KEY})
    proc = subprocess.run(
        [sys.executable, "-c", _blocks()[index]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
