from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from _alerting import Harness, harness


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    """An app on a fake clock, no default rules, ticks driven by the test."""
    yield from harness(tmp_path)
