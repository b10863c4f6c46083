"""What the gateway instances share: rate-limit windows, budget counters, cache, statistics.

In memory for one instance, in Redis for several.

Both backends make each decision atomically: the memory one because it never awaits inside a
decision (one event loop), the Redis one with Lua scripts (Redis runs a script alone).
"""

from __future__ import annotations

import math
import secrets
import time
from collections import OrderedDict, deque
from typing import Any, Literal, Protocol

import structlog

__all__ = ["Backend", "MemoryBackend", "RedisBackend", "Verdict", "check_redis", "open_backend"]

log = structlog.get_logger("sightline.gateway")

Verdict = Literal["ok", "deny", "wait"]
_BUDGET_TTL_S = 40 * 86400  # a budget counter outlives its period (a month at most)
_MAX_SEMANTIC = 500  # entries kept per cache scope (a linear scan of 384-d vectors)
_MAX_EXACT = 20_000  # entries kept in memory
_MAX_PROJECTS = 10_000  # projects whose statistics are kept in memory
_MAX_BUDGETS = 100_000  # budget counters kept in memory before idle ones are dropped
_BUDGET_IDLE_S = 600.0  # a counter unused this long is the server's figure by now
_PRUNE_EVERY_S = 10.0
_REDIS_TIMEOUT_S = 2.0  # a Redis that does not answer this fast is taken as unavailable
_REDIS_RETRY_S = 5.0  # then this instance's memory decides, and Redis is asked again after this


class Backend(Protocol):
    """Shared state of the gateway instances."""

    async def rate_hit(self, key: str, limit: int, window_s: int) -> int:
        """Count a request in the key's window: 0 if allowed, else seconds until it resets."""
        ...

    async def budget_reserve(
        self, bid: str, server_spent: float, server_max: float, limit: float
    ) -> Verdict:
        """Admit one call against a hard budget (see gateway/_app.py for the rule)."""
        ...

    async def budget_commit(self, bid: str, cost_usd: float) -> None:
        """An admitted call is over and cost ``cost_usd``."""
        ...

    async def incr(self, values: dict[str, float], project: str | None = None) -> None:
        """Add to the shared statistics (and to ``project``'s, when given)."""
        ...

    async def stats(self, project: str | None = None) -> dict[str, float]:
        """The shared statistics: of every call, or of ``project``'s calls."""
        ...

    async def cache_get(self, key: str) -> bytes | None:
        """A cached response, or None (absent or expired)."""
        ...

    async def cache_put(self, key: str, value: bytes, ttl_s: int) -> None:
        """Cache a response for ``ttl_s`` seconds."""
        ...

    async def semantic_entries(self, scope: str) -> list[tuple[bytes, str]]:
        """(embedding, exact cache key) of a scope's cached questions, newest first."""
        ...

    async def semantic_add(self, scope: str, vector: bytes, key: str, ttl_s: int) -> None:
        """Remember a question's embedding and where its answer is cached."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MemoryBackend:
    """One instance's state, in this process."""

    def __init__(self) -> None:
        self._windows: dict[str, deque[float]] = {}
        # bid -> [spent, max, inflight, last used]: one per budget, scope value (each user of
        # a per-user budget) and period, so idle ones are dropped past _MAX_BUDGETS
        self._budgets: dict[str, list[float]] = {}
        self._budgets_pruned_at = 0.0
        self._stats: dict[str, float] = {}
        self._project_stats: dict[str, dict[str, float]] = {}
        self._cache: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._semantic: dict[str, list[tuple[float, bytes, str]]] = {}

    async def rate_hit(self, key: str, limit: int, window_s: int) -> int:
        # A sliding log, not fixed windows: a fixed window lets 2 × limit through around its
        # boundary (the last second of one window and the first of the next).
        now = time.monotonic()
        log = self._windows.get(key)
        if log is None:
            log = self._windows[key] = deque()
        while log and log[0] <= now - window_s:
            log.popleft()
        if len(log) >= limit:
            return max(1, math.ceil(log[0] + window_s - now))
        log.append(now)
        if len(self._windows) > 100_000:
            self._windows = {k: v for k, v in self._windows.items() if v and v[-1] > now - window_s}
        return 0

    async def budget_reserve(
        self, bid: str, server_spent: float, server_max: float, limit: float
    ) -> Verdict:
        now = time.monotonic()
        b = self._budgets.get(bid)
        if b is None:
            if len(self._budgets) >= _MAX_BUDGETS:
                self._prune_budgets(now)
            b = self._budgets[bid] = [0.0, 0.0, 0.0, now]
        b[3] = now
        b[0] = max(b[0], server_spent)
        b[1] = max(b[1], server_max)
        spent, mx, inflight, _ = b
        if spent >= limit:
            return "deny"
        if (mx <= 0 and inflight > 0) or spent + inflight * mx >= limit:
            return "wait"
        b[2] += 1
        return "ok"

    async def budget_commit(self, bid: str, cost_usd: float) -> None:
        b = self._budgets.setdefault(bid, [0.0, 0.0, 1.0, 0.0])
        b[3] = time.monotonic()
        b[0] += cost_usd
        b[1] = max(b[1], cost_usd)
        b[2] = max(0.0, b[2] - 1)

    def _prune_budgets(self, now: float) -> None:
        """Drop the counters without a call in flight and unused ``_BUDGET_IDLE_S``."""
        if now - self._budgets_pruned_at < _PRUNE_EVERY_S:
            return
        self._budgets_pruned_at = now
        self._budgets = {
            k: b for k, b in self._budgets.items() if b[2] > 0 or now - b[3] < _BUDGET_IDLE_S
        }

    async def incr(self, values: dict[str, float], project: str | None = None) -> None:
        for k, v in values.items():
            self._stats[k] = self._stats.get(k, 0.0) + v
        if project is not None:
            if project not in self._project_stats and len(self._project_stats) >= _MAX_PROJECTS:
                self._project_stats.pop(next(iter(self._project_stats)))
            mine = self._project_stats.setdefault(project, {})
            for k, v in values.items():
                mine[k] = mine.get(k, 0.0) + v

    async def stats(self, project: str | None = None) -> dict[str, float]:
        if project is not None:
            return dict(self._project_stats.get(project, {}))
        return dict(self._stats)

    async def cache_get(self, key: str) -> bytes | None:
        hit = self._cache.get(key)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            del self._cache[key]
            return None
        return hit[1]

    async def cache_put(self, key: str, value: bytes, ttl_s: int) -> None:
        self._cache[key] = (time.monotonic() + ttl_s, value)
        self._cache.move_to_end(key)
        while len(self._cache) > _MAX_EXACT:
            self._cache.popitem(last=False)

    async def semantic_entries(self, scope: str) -> list[tuple[bytes, str]]:
        now = time.monotonic()
        entries = [e for e in self._semantic.get(scope, []) if e[0] >= now]
        self._semantic[scope] = entries
        return [(v, k) for _, v, k in entries]

    async def semantic_add(self, scope: str, vector: bytes, key: str, ttl_s: int) -> None:
        entries = self._semantic.setdefault(scope, [])
        entries.insert(0, (time.monotonic() + ttl_s, vector, key))
        del entries[_MAX_SEMANTIC:]

    async def close(self) -> None:
        return None


_RESERVE = """
local k = KEYS[1]
local spent = tonumber(redis.call('HGET', k, 'spent') or '0')
local sspent = tonumber(ARGV[1])
if sspent > spent then spent = sspent; redis.call('HSET', k, 'spent', ARGV[1]) end
local mx = tonumber(redis.call('HGET', k, 'max') or '0')
local smax = tonumber(ARGV[2])
if smax > mx then mx = smax; redis.call('HSET', k, 'max', ARGV[2]) end
local inflight = tonumber(redis.call('HGET', k, 'inflight') or '0')
redis.call('EXPIRE', k, ARGV[4])
if spent >= tonumber(ARGV[3]) then return 'deny' end
if (mx <= 0 and inflight > 0) or (spent + inflight * mx >= tonumber(ARGV[3])) then
  return 'wait'
end
redis.call('HINCRBY', k, 'inflight', 1)
return 'ok'
"""
_COMMIT = """
local k = KEYS[1]
redis.call('HINCRBYFLOAT', k, 'spent', ARGV[1])
local mx = tonumber(redis.call('HGET', k, 'max') or '0')
if tonumber(ARGV[1]) > mx then redis.call('HSET', k, 'max', ARGV[1]) end
if redis.call('HINCRBY', k, 'inflight', -1) < 0 then redis.call('HSET', k, 'inflight', 0) end
redis.call('EXPIRE', k, ARGV[2])
return 1
"""
# A sliding log in a sorted set (scores: Redis's own clock, the same for every instance).
_RATE = """
local k = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', k, '-inf', now - window)
if redis.call('ZCARD', k) >= limit then
  local oldest = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  local wait = math.ceil(tonumber(oldest[2]) + window - now)
  if wait < 1 then wait = 1 end
  return wait
end
redis.call('ZADD', k, now, t[1] .. '.' .. t[2] .. ':' .. ARGV[3])
redis.call('EXPIRE', k, math.ceil(window) + 1)
return 0
"""


class RedisBackend:
    """State shared by every gateway instance pointed at the same Redis database.

    When Redis cannot be answered (down, restarting, a network that hangs: a call gives up after
    ``_REDIS_TIMEOUT_S``), each decision falls back to this instance's memory, so the gateway's
    callers keep being served and limited (per instance meanwhile), and Redis is tried again
    ``_REDIS_RETRY_S`` later. Each fall-back period is logged once (``gateway_redis_unavailable``).
    """

    def __init__(self, url: str, *, prefix: str = "sightline:gw:") -> None:
        import redis.asyncio as aioredis

        self._r: Any = aioredis.Redis.from_url(
            url, socket_timeout=_REDIS_TIMEOUT_S, socket_connect_timeout=_REDIS_TIMEOUT_S
        )
        self._p = prefix
        self._reserve = self._r.register_script(_RESERVE)
        self._commit = self._r.register_script(_COMMIT)
        self._rate = self._r.register_script(_RATE)
        self._fallback = MemoryBackend()
        self._down_until = 0.0
        self._down = False

    async def ping(self) -> None:
        """Raise when Redis cannot be reached."""
        await self._r.ping()

    async def _shared(self, op: str, redis_call: Any, *args: Any) -> Any:
        """``redis_call(*args)``, or the memory backend's ``op`` while Redis is unavailable."""
        from redis.exceptions import RedisError

        if time.monotonic() >= self._down_until:
            try:
                out = await redis_call(*args)
            except (RedisError, OSError) as e:
                self._down_until = time.monotonic() + _REDIS_RETRY_S
                if not self._down:
                    self._down = True
                    log.warning("gateway_redis_unavailable", op=op, error=str(e)[:300])
            else:
                if self._down:
                    self._down = False
                    log.info("gateway_redis_available")
                return out
        return await getattr(self._fallback, op)(*args)

    async def rate_hit(self, key: str, limit: int, window_s: int) -> int:
        return int(await self._shared("rate_hit", self._rate_hit, key, limit, window_s))

    async def _rate_hit(self, key: str, limit: int, window_s: int) -> int:
        member = secrets.token_hex(8)  # two instances may add in the same microsecond
        return int(await self._rate(keys=[f"{self._p}rate:{key}"], args=[limit, window_s, member]))

    async def budget_reserve(
        self, bid: str, server_spent: float, server_max: float, limit: float
    ) -> Verdict:
        v: Verdict = await self._shared(
            "budget_reserve", self._budget_reserve, bid, server_spent, server_max, limit
        )
        return v

    async def _budget_reserve(
        self, bid: str, server_spent: float, server_max: float, limit: float
    ) -> Verdict:
        v = await self._reserve(
            keys=[f"{self._p}budget:{bid}"],
            args=[repr(server_spent), repr(server_max), repr(limit), _BUDGET_TTL_S],
        )
        s = v.decode() if isinstance(v, bytes) else str(v)
        return "ok" if s == "ok" else "deny" if s == "deny" else "wait"

    async def budget_commit(self, bid: str, cost_usd: float) -> None:
        await self._shared("budget_commit", self._budget_commit, bid, cost_usd)

    async def _budget_commit(self, bid: str, cost_usd: float) -> None:
        await self._commit(keys=[f"{self._p}budget:{bid}"], args=[repr(cost_usd), _BUDGET_TTL_S])

    async def incr(self, values: dict[str, float], project: str | None = None) -> None:
        await self._shared("incr", self._incr, values, project)

    async def _incr(self, values: dict[str, float], project: str | None = None) -> None:
        pipe = self._r.pipeline(transaction=False)
        for k, v in values.items():
            pipe.hincrbyfloat(f"{self._p}stats", k, v)
            if project is not None:
                pipe.hincrbyfloat(f"{self._p}stats:project:{project}", k, v)
        await pipe.execute()

    async def stats(self, project: str | None = None) -> dict[str, float]:
        out: dict[str, float] = await self._shared("stats", self._stats, project)
        return out

    async def _stats(self, project: str | None = None) -> dict[str, float]:
        key = f"{self._p}stats" if project is None else f"{self._p}stats:project:{project}"
        raw = await self._r.hgetall(key)
        return {k.decode(): float(v) for k, v in raw.items()}

    async def cache_get(self, key: str) -> bytes | None:
        out: bytes | None = await self._shared("cache_get", self._cache_get, key)
        return out

    async def _cache_get(self, key: str) -> bytes | None:
        v = await self._r.get(f"{self._p}cache:{key}")
        return bytes(v) if v is not None else None

    async def cache_put(self, key: str, value: bytes, ttl_s: int) -> None:
        await self._shared("cache_put", self._cache_put, key, value, ttl_s)

    async def _cache_put(self, key: str, value: bytes, ttl_s: int) -> None:
        await self._r.set(f"{self._p}cache:{key}", value, ex=ttl_s)

    async def semantic_entries(self, scope: str) -> list[tuple[bytes, str]]:
        out: list[tuple[bytes, str]] = await self._shared(
            "semantic_entries", self._semantic_entries, scope
        )
        return out

    async def _semantic_entries(self, scope: str) -> list[tuple[bytes, str]]:
        raw = await self._r.lrange(f"{self._p}sem:{scope}", 0, _MAX_SEMANTIC - 1)
        return [(bytes(e[64:]), e[:64].decode()) for e in raw]

    async def semantic_add(self, scope: str, vector: bytes, key: str, ttl_s: int) -> None:
        await self._shared("semantic_add", self._semantic_add, scope, vector, key, ttl_s)

    async def _semantic_add(self, scope: str, vector: bytes, key: str, ttl_s: int) -> None:
        k = f"{self._p}sem:{scope}"
        pipe = self._r.pipeline(transaction=True)
        pipe.lpush(k, key.encode() + vector)  # keys are 64 hex digits
        pipe.ltrim(k, 0, _MAX_SEMANTIC - 1)
        pipe.expire(k, ttl_s)
        await pipe.execute()

    async def close(self) -> None:
        await self._r.aclose()


def open_backend(
    redis_url: str | None, *, prefix: str = "sightline:gw:"
) -> MemoryBackend | RedisBackend:
    """Redis when a URL is given, else this process's memory."""
    return RedisBackend(redis_url, prefix=prefix) if redis_url else MemoryBackend()


def check_redis(redis_url: str) -> None:
    """Raise ValueError (with the URL and the cause) when Redis cannot be reached now.

    Asked once at start, by ``sightline gateway --redis`` and by the gateway mounted in the
    server, so that a wrong URL stops the process instead of failing every call.
    """
    import redis
    from redis.exceptions import RedisError

    try:
        r = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
        try:
            r.ping()
        finally:
            r.close()
    except (RedisError, OSError, ValueError) as e:
        raise ValueError(f"cannot reach Redis at {redis_url}: {e}") from None
