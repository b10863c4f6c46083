"""The YAML examples of docs/alerting.md and docs/drift.md are valid files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sightline.alerts import parse_alerts_file
from sightline.alerts._digest import parse_digest
from sightline.drift import parse_drift_jobs

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _yaml_blocks(name: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", (DOCS / name).read_text(), re.S)


@pytest.mark.parametrize("block", _yaml_blocks("alerting.md") + _yaml_blocks("drift.md"))
def test_yaml_example_parses(block: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ONCALL_TOKEN", "SLACK_WEBHOOK_URL", "SMTP_PASSWORD"):
        monkeypatch.setenv(var, "https://hooks.example.com/x")
    parsed = parse_alerts_file(block)
    assert parsed.rules or parsed.channels or parsed.drift
    parse_drift_jobs(parsed.drift)
    parse_digest(parsed.digest, list(parsed.channels))


def test_default_pack_table_matches_the_shipped_pack() -> None:
    from sightline.alerts import default_rules

    text = (DOCS / "alerting.md").read_text()
    for r in default_rules():
        assert f"| `{r.name}` |" in text, r.name
