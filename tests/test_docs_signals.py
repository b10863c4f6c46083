"""docs/signals.md: its YAML parses as an alerts file and its Python blocks run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _helpers import API_KEY, Server
from sightline.alerts import parse_alerts_file
from sightline.drift import parse_drift_jobs

DOC = Path(__file__).resolve().parent.parent / "docs" / "signals.md"
TEXT = DOC.read_text()
YAML = re.findall(r"```yaml\n(.*?)```", TEXT, re.S)
PYTHON = re.findall(r"```python\n(.*?)```", TEXT, re.S)


@pytest.mark.parametrize("block", YAML)
def test_yaml_example_parses(block: str) -> None:
    parsed = parse_alerts_file(block)
    assert parsed.rules or parsed.drift
    parse_drift_jobs(parsed.drift)


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs(index: int, server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    env.update({"SIGHTLINE_ENDPOINT": server.url, "SIGHTLINE_API_KEY": API_KEY,
                "HF_HUB_OFFLINE": "1"})  # fmt: skip
    code = "import sightline\nsightline.init()\n" + PYTHON[index] + "\nsightline.shutdown()\n"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "not delivered" not in proc.stderr


def test_doc_examples_exist() -> None:
    assert len(YAML) >= 3 and len(PYTHON) >= 3
