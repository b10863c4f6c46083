"""The examples of docs/gateway.md and the budgets part of docs/cost.md work."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from _helpers import free_port
from sightline.budgets import load_budgets_file

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _blocks(page: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", (DOCS / page).read_text(), re.S)


def test_gateway_runnable_example(tmp_path: Path) -> None:
    code = _blocks("gateway.md", "python")[1].replace("7601", str(free_port()))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == [
        "miss Refunds take 30 days.",
        "hit-exact Refunds take 30 days.",
        "0.5",
    ]


def test_cost_budgets_yaml_example_is_valid(tmp_path: Path) -> None:
    (yaml,) = [b for b in _blocks("cost.md", "yaml") if b.startswith("budgets:")]
    f = tmp_path / "budgets.yaml"
    f.write_text(yaml)
    got = load_budgets_file(f)
    assert [(b.name, b.scope, b.hard) for b in got] == [
        ("org-monthly", "project", False),
        ("per-user-daily", "user", True),
        ("search-feature", "feature", True),
    ]
