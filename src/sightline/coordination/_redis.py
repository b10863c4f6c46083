"""The Coordinator backed by Redis: what a cluster uses (ClickHouse has no compare-and-set).

Keys, under ``prefix`` (default ``sightline:coord:``):

- ``claims:{name}:frontier``: the last commit handed out for evaluator set ``name``;
- ``claims:{name}:open``: a hash ``lo -> "hi|owner|token|expires_ms|attempts|claimed_ms"``;
- ``leader:{name}``: the leader's id, set with ``SET NX PX`` and renewed by a compare-and-renew
  script, so it vanishes by itself when its holder stops renewing.

Every compare-and-set is a Lua script (atomic in Redis), and lease times are Redis's own
clock (``TIME``), so the workers' clocks need not agree.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sightline.coordination._base import Claim, ClaimsState
from sightline.errors import ConfigError

__all__ = ["RedisCoordinator"]

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_PARSE = """
local function parse(v)
  local hi, owner, token, exp, att, at = string.match(
    v, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  return hi, owner, token, tonumber(exp), tonumber(att), at
end
"""

# KEYS: frontier, open. ARGV: lo, hi, owner, token, lease_ms, start_seq
_CLAIM = (
    _NOW
    + """
local f = redis.call('GET', KEYS[1])
if not f then f = ARGV[6] end
if f ~= ARGV[1] then return false end
redis.call('SET', KEYS[1], ARGV[2])
local exp = now + tonumber(ARGV[5])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '|' .. ARGV[3] .. '|' .. ARGV[4] .. '|'
  .. string.format('%d', exp) .. '|1|' .. string.format('%d', now))
return {string.format('%d', exp), string.format('%d', now)}
"""
)

# KEYS: open. ARGV: owner, token, lease_ms
_TAKE_OVER = (
    _NOW
    + _PARSE
    + """
local all = redis.call('HGETALL', KEYS[1])
local best = nil
local best_lo = nil
for i = 1, #all, 2 do
  local hi, owner, token, exp, att, at = parse(all[i + 1])
  local lo = tonumber(all[i])
  if exp <= now and (best_lo == nil or lo < best_lo) then
    best_lo = lo
    best = {all[i], hi, att, at}
  end
end
if best == nil then return false end
local exp = now + tonumber(ARGV[3])
local att = best[3] + 1
redis.call('HSET', KEYS[1], best[1], best[2] .. '|' .. ARGV[1] .. '|' .. ARGV[2] .. '|'
  .. string.format('%d', exp) .. '|' .. string.format('%d', att) .. '|' .. best[4])
return {best[1], best[2], string.format('%d', exp), string.format('%d', att), best[4]}
"""
)

# KEYS: open. ARGV: lo, token, lease_ms
_RENEW = (
    _NOW
    + _PARSE
    + """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local hi, owner, token, exp, att, at = parse(v)
if token ~= ARGV[2] then return false end
local new = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], hi .. '|' .. owner .. '|' .. token .. '|'
  .. string.format('%d', new) .. '|' .. string.format('%d', att) .. '|' .. at)
return string.format('%d', new)
"""
)

# KEYS: open. ARGV: lo, token
_COMPLETE = (
    _PARSE
    + """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local hi, owner, token, exp, att = parse(v)
if token ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""
)

# KEYS: leader. ARGV: owner, lease_ms
_LEADER_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: leader. ARGV: owner
_LEADER_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 0
"""


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _ms(lease_s: float) -> int:
    return max(0, int(lease_s * 1000))


class RedisCoordinator:
    """Claims and leader leases in Redis (``redis://HOST:PORT/DB``); see the module docstring."""

    def __init__(self, url: str, *, prefix: str = "sightline:coord:") -> None:
        try:
            import redis
        except ImportError:  # pragma: no cover - redis is in the server extra
            raise ConfigError("--redis-url needs the redis package: pip install redis") from None
        try:
            self._r: Any = redis.Redis.from_url(url, socket_timeout=5.0)
        except ValueError as e:
            raise ConfigError(f"invalid redis URL {url!r}: {e}") from None
        self._p = prefix
        self._claim = self._r.register_script(_CLAIM)
        self._take_over = self._r.register_script(_TAKE_OVER)
        self._renew = self._r.register_script(_RENEW)
        self._complete = self._r.register_script(_COMPLETE)
        self._leader_renew = self._r.register_script(_LEADER_RENEW)
        self._leader_release = self._r.register_script(_LEADER_RELEASE)

    def ping(self) -> None:
        """Raise ConfigError when Redis cannot be reached (checked at start)."""
        from redis.exceptions import RedisError

        try:
            self._r.ping()
        except RedisError as e:
            raise ConfigError(f"cannot reach Redis: {e}") from None

    def _keys(self, name: str) -> list[str]:
        return [f"{self._p}claims:{name}:frontier", f"{self._p}claims:{name}:open"]

    def claims_state(self, name: str) -> ClaimsState:
        """See :class:`Coordinator`."""
        fk, ok = self._keys(name)
        f = self._r.get(fk)
        claims = []
        for lo, v in self._r.hgetall(ok).items():
            hi, owner, token, exp, att, at = _s(v).split("|")
            claims.append(
                Claim(
                    name,
                    int(_s(lo)),
                    int(hi),
                    owner,
                    token,
                    int(exp) / 1000,
                    int(att),
                    int(at) / 1000,
                )
            )
        claims.sort(key=lambda c: c.lo)
        return ClaimsState(int(_s(f)) if f is not None else None, tuple(claims))

    def claim_range(
        self, name: str, *, lo: int, hi: int, owner: str, lease_s: float, start_seq: int = 0
    ) -> Claim | None:
        """See :class:`Coordinator`."""
        import secrets

        if hi <= lo:
            return None
        token = secrets.token_hex(8)
        out = self._claim(
            keys=self._keys(name), args=[lo, hi, owner, token, _ms(lease_s), start_seq]
        )
        if out is None:
            return None
        exp, at = (int(_s(x)) for x in out)
        return Claim(name, lo, hi, owner, token, exp / 1000, 1, at / 1000)

    def take_over(self, name: str, *, owner: str, lease_s: float) -> Claim | None:
        """See :class:`Coordinator`."""
        import secrets

        token = secrets.token_hex(8)
        out = self._take_over(keys=self._keys(name)[1:], args=[owner, token, _ms(lease_s)])
        if out is None:
            return None
        lo, hi, exp, att, at = (int(_s(x)) for x in out)
        return Claim(name, lo, hi, owner, token, exp / 1000, att, at / 1000)

    def renew(self, claim: Claim, *, lease_s: float) -> Claim | None:
        """See :class:`Coordinator`."""
        exp = self._renew(
            keys=self._keys(claim.name)[1:], args=[claim.lo, claim.token, _ms(lease_s)]
        )
        if exp is None:
            return None
        return dataclasses.replace(claim, expires_at=int(_s(exp)) / 1000)

    def complete(self, claim: Claim) -> bool:
        """See :class:`Coordinator`."""
        return bool(self._complete(keys=self._keys(claim.name)[1:], args=[claim.lo, claim.token]))

    def acquire_leader(self, name: str, *, owner: str, lease_s: float) -> bool:
        """See :class:`Coordinator`."""
        key = f"{self._p}leader:{name}"
        ms = max(1, _ms(lease_s))
        if self._r.set(key, owner, nx=True, px=ms):
            return True
        return bool(self._leader_renew(keys=[key], args=[owner, ms]))

    def release_leader(self, name: str, *, owner: str) -> None:
        """See :class:`Coordinator`."""
        self._leader_release(keys=[f"{self._p}leader:{name}"], args=[owner])

    def close(self) -> None:
        """Close the connection pool."""
        self._r.close()
