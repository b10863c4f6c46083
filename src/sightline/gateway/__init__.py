"""The OpenAI-compatible gateway: spans, budgets, rate limits and a cache in front of a provider."""

from sightline.gateway._app import GatewayOptions, create_gateway_app
from sightline.gateway._backend import MemoryBackend, RedisBackend, open_backend

__all__ = ["GatewayOptions", "MemoryBackend", "RedisBackend", "create_gateway_app", "open_backend"]
