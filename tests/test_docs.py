"""Docs name every setting and every metric; a new one without docs fails here."""

from __future__ import annotations

from pathlib import Path

from sightline.config import Settings
from sightline.store.base import METRICS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"`SIGHTLINE_{name.upper()}`" in text, name


def test_every_metric_is_documented() -> None:
    text = (DOCS / "api.md").read_text()
    for name in METRICS:
        assert f"`{name}`" in text, name


def test_readme_starts_with_the_two_commands() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    assert readme.index("make demo") < readme.index("make test") < 1500
