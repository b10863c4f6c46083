"""The ``capture_spans`` pytest fixture, registered through the ``pytest11`` entry point.

Loaded by every pytest run where Sightline is installed, so it imports nothing until a test
asks for the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sightline.testing._capture import CapturedSpans


@pytest.fixture(name="capture_spans")
def capture_spans_fixture() -> Iterator[CapturedSpans]:
    """Spans finished during the test, in memory (see ``sightline.testing.capture_spans``)."""
    from sightline.testing._capture import capture_spans

    with capture_spans() as captured:
        yield captured
