"""The OpenAI-compatible gateway: spans, budgets, rate limits and a cache in front of a provider."""

from sightline.gateway._app import (
    GatewayOptions,
    ServerLink,
    check_cache,
    create_gateway_app,
    parse_rate,
)
from sightline.gateway._backend import MemoryBackend, RedisBackend, check_redis, open_backend
from sightline.gateway._failover import FailoverConfig, Route, Upstream, load_routes
from sightline.gateway._replay import ReplayResult, Run, format_side_by_side, replay_span

__all__ = [
    "FailoverConfig",
    "GatewayOptions",
    "MemoryBackend",
    "RedisBackend",
    "ReplayResult",
    "Route",
    "Run",
    "ServerLink",
    "check_cache",
    "check_redis",
    "Upstream",
    "create_gateway_app",
    "format_side_by_side",
    "load_routes",
    "open_backend",
    "parse_rate",
    "replay_span",
]
