"""The OpenAI-compatible gateway: spans, budgets, rate limits and a cache in front of a provider."""

from sightline.gateway._app import GatewayOptions, create_gateway_app
from sightline.gateway._backend import MemoryBackend, RedisBackend, open_backend
from sightline.gateway._replay import ReplayResult, Run, format_side_by_side, replay_span

__all__ = [
    "GatewayOptions",
    "MemoryBackend",
    "RedisBackend",
    "ReplayResult",
    "Run",
    "create_gateway_app",
    "format_side_by_side",
    "open_backend",
    "replay_span",
]
