from __future__ import annotations

from collections.abc import Iterator

import pytest

import sightline
from _sdk import close_tracked
from sightline.testing import FakeProvider


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(reply="Annual plans are refundable within thirty days.") as f:
        yield f


@pytest.fixture
def instrumented() -> Iterator[None]:
    sightline.instrument_openai()
    sightline.instrument_anthropic()
    yield
    sightline.uninstrument_openai()
    sightline.uninstrument_anthropic()


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    close_tracked()
