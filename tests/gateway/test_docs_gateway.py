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


def test_mounted_gateway_runnable_example(tmp_path: Path) -> None:
    code = _blocks("gateway.md", "python")[2]
    assert "--gateway-upstream" in code
    code = code.replace("7600", str(free_port())).replace("/tmp/sl-gw-docs", str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=180)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == [
        "Refunds take 30 days.",
        "Refunds take 30 days.",
        "2 sightline-gateway",
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


def test_failover_routes_example_is_valid() -> None:
    import yaml

    from sightline.gateway._failover import parse_routes

    (block,) = [b for b in _blocks("gateway.md", "yaml") if b.startswith("# routes.yaml")]
    cfg = parse_routes(yaml.safe_load(block))
    route = cfg.route_for("gpt-4o-mini")
    assert route is not None and len(route.upstreams) == 3
    assert route.upstreams[2].model == "llama-3.1-70b" and route.upstreams[0].timeout_s == 20
    assert (cfg.retry_ratio, cfg.retry_min, cfg.circuit_failures) == (0.2, 3, 5)
    emb = cfg.route_for("text-embedding-3-small")
    assert emb is not None and emb.upstreams[1].url == "http://tei.internal:8080/v1"
