"""The Redis side of :class:`asyncsess.RateLimiter`: one Lua script, atomic (imported lazily).

Each key ``{prefix}<HMAC of the key>`` is a list of the last ``count`` counted
hit times (integer microseconds, oldest first) and expires (``PEXPIRE``) one
period after its newest hit, i.e. as soon as it carries no information, so
Redis needs no cleanup. A refund is one ``LREM``. Works on Redis 6.2+/Valkey
and on Redis Cluster (one key per call). The client plumbing (URL, pool sizing,
bounded calls, error mapping) is the Redis store's: :mod:`asyncsess.stores.redis.client`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from ..exceptions import ConfigurationError
from ..stores._timeout import check_timeout
from ..stores.redis.client import Caller, client_from_url

__all__ = ["RedisBackend"]

# KEYS[1] the key (a list of counted hit times, oldest first). ARGV: now (µs, or "" for the
# server's clock), "1" to record an allowed hit, then (count, window µs) pairs, the first the
# longest. Returns {allowed, remaining, retry_after_us, now}: decide() in core.py, in Lua.
_STEP = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local log = redis.call('LRANGE', KEYS[1], 0, -1)
local len = #log
local retry, remaining = 0, 100000
for i = 3, #ARGV, 2 do
  local count, window = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local inside = 0
  for j = len, 1, -1 do
    if tonumber(log[j]) > now - window then inside = inside + 1 else break end
  end
  if inside >= count then
    local wait = tonumber(log[len - count + 1]) + window - now
    if wait > retry then retry = wait end
  elseif count - 1 - inside < remaining then
    remaining = count - 1 - inside
  end
end
local stamp = string.format('%d', now)
if retry > 0 then return {0, 0, retry, stamp} end
if ARGV[2] == '1' then
  redis.call('RPUSH', KEYS[1], stamp)
  redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[4]) / 1000))
end
return {1, remaining, 0, stamp}
"""


class RedisBackend:
    """Sliding-log steps as one ``EVALSHA`` each; see the module docstring."""

    def __init__(self, store: str | Any, *, prefix: str, timeout: float) -> None:
        if not prefix:
            raise ConfigurationError("the rate limiter's Redis prefix must be a non-empty str")
        timeout = check_timeout(timeout, "the rate limiter's Redis")
        self._owned = isinstance(store, str)
        if isinstance(store, str):
            client = client_from_url(store, timeout=timeout)
        elif isinstance(store, Redis | RedisCluster):
            client = store
        else:
            raise ConfigurationError(
                "rate limiter store must be memory://, a redis:// URL or a redis.asyncio client, "
                f"not {type(store).__name__}"
            )
        self._client: Redis | RedisCluster = client
        self._run = Caller(client, timeout=timeout, name="the rate limiter's Redis")
        self._prefix = prefix
        self._script = client.register_script(_STEP)

    async def step(
        self, key: str, now: int | None, limits: Sequence[tuple[int, int]], store: bool
    ) -> tuple[bool, int, int, int]:
        """Run the script once."""
        args: list[str | int] = ["" if now is None else now, "1" if store else "0"]
        args += [n for limit in limits for n in limit]
        reply = await self._run(lambda: self._script(keys=[self._prefix + key], args=args))
        allowed, remaining, retry, stamp = (int(x) for x in reply)
        return bool(allowed), remaining, retry, stamp

    async def refund(self, key: str, stamp: int) -> bool:
        """Remove the newest entry equal to ``stamp`` (LREM from the tail)."""
        removed = await self._run(lambda: self._client.lrem(self._prefix + key, -1, str(stamp)))
        return bool(removed)

    async def reset(self, key: str) -> bool:
        """DEL the key."""
        deleted = await self._run(lambda: self._client.delete(self._prefix + key))
        return bool(deleted)

    async def cleanup(self, now: Callable[[], int], window: int) -> int:
        """Nothing to do: keys expire by themselves."""
        return 0

    def tracked_keys(self) -> int | None:
        """Unknown without a scan: ``None``."""
        return None

    async def aclose(self) -> None:
        """Close the client if it was made from a URL."""
        if self._owned:
            await self._client.aclose()
