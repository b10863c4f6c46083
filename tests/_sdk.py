"""Provider clients for the SDK tests, pointed at a FakeProvider and closed after each test."""

from __future__ import annotations

from typing import Any, TypeVar

import anthropic
import openai

from sightline.testing import FakeProvider

T = TypeVar("T")

_OPEN: list[Any] = []


def track(client: T) -> T:
    """Close ``client`` when the test ends (``tests/sdk/conftest.py``)."""
    _OPEN.append(client)
    return client


def close_tracked() -> None:
    while _OPEN:
        _OPEN.pop().close()


def openai_client(fake: FakeProvider, **kw: Any) -> openai.OpenAI:
    return track(openai.OpenAI(base_url=fake.openai_base_url, api_key="test", **kw))


def anthropic_client(fake: FakeProvider, **kw: Any) -> anthropic.Anthropic:
    return track(anthropic.Anthropic(base_url=fake.base_url, api_key="test", **kw))
