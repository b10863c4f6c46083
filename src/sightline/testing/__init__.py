"""Test helpers for Sightline and for applications that use it.

- :class:`FakeProvider`: a local HTTP server speaking the OpenAI and Anthropic APIs (streaming
  included), with controllable latency, errors and deterministic replies. Standard library only.
- :class:`ClickHouseHTTP`: a ClickHouse HTTP endpoint in its own process, every query run by the
  real ClickHouse engine (chdb) behind a small HTTP front of ours; needs sightline[clickhouse].
- :func:`capture_spans`: spans kept in memory; also a pytest fixture of the same name, registered
  through the ``pytest11`` entry point.
"""

from sightline.testing._capture import CapturedSpans, capture_spans
from sightline.testing._clickhouse_http import ClickHouseHTTP
from sightline.testing._fake_provider import FakeProvider, RecordedRequest

__all__ = ["CapturedSpans", "ClickHouseHTTP", "FakeProvider", "RecordedRequest", "capture_spans"]
