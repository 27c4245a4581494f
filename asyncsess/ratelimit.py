"""An async rate limiter (GCRA) in process memory or in Redis.

The generic cell rate algorithm keeps one number per key, its *theoretical
arrival time* (TAT): a rate of ``count/period`` with a burst of ``burst``
allows a hit at ``now`` when ``max(tat, now) + T - burst * T <= now`` (``T =
period / count``), and the hit moves the TAT to ``max(tat, now) + T``. So a
fresh key allows ``burst`` hits at once, then one every ``T``; nothing is
ever "reset at the top of the minute". Times are integer microseconds, so
the arithmetic is exact.

- ``memory://``: a dict; no ``await`` between reading and writing a key,
  so concurrent hits are exact. Keys whose TAT has passed carry no
  information and are dropped by :meth:`RateLimiter.cleanup_task`, meant to
  run in the manager's task group
  (``SessionManager.add_background_task(limiter.cleanup_task)``).
- ``redis://``, ``rediss://`` (``+cluster`` too) or an existing
  ``redis.asyncio`` client: one Lua script per call (atomic), keys under
  ``prefix`` that expire as soon as they carry no information. Without an
  injected clock the Redis server's clock is used, so every process agrees.

Keys are hashed (BLAKE2b-128, with the rate and burst) before being stored,
so no username or address is kept in the clear and a huge key costs no
memory. Limiters with the same rate and burst on one Redis and prefix share
their counters (as the processes of one app should); limiters with another
rate or burst never touch each other's keys.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
from anyio.abc import TaskStatus

from .config import duration
from .exceptions import AsyncsessError, ConfigurationError

__all__ = ["Decision", "Rate", "RateLimiter", "parse_rate"]

log = logging.getLogger("asyncsess.ratelimit")

_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
}
_RATE = re.compile(r"\s*(\d+)\s*(?:/|per\s)\s*(\d*)\s*([a-z]+)\s*", re.IGNORECASE)
_CLEANUP_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` hits per ``period`` seconds."""

    count: int
    period: float


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of a hit: allowed or not, hits left now, seconds to wait if refused."""

    allowed: bool
    remaining: int
    retry_after: float


def parse_rate(text: object) -> Rate:
    """Parse ``"5/minute"``, ``"100/hour"``, ``"10/second"``, ``"3/15minutes"``, ``"1 per day"``.

    Raises :class:`~asyncsess.ConfigurationError` for anything else.
    """
    match = _RATE.fullmatch(text) if isinstance(text, str) else None
    unit = _UNITS.get(match.group(3).lower()) if match else None
    if match is None or unit is None:
        raise ConfigurationError(
            f"rate must look like '5/minute', '100/hour' or '3/15minutes', not {text!r} "
            f"(units: {', '.join(sorted(_UNITS))})"
        )
    count, multiple = int(match.group(1)), int(match.group(2) or 1)
    if count < 1 or multiple < 1:
        raise ConfigurationError(f"rate {text!r} must allow at least 1 hit per non-empty period")
    return Rate(count, float(multiple * unit))


def _hashed(key: object, scope: bytes) -> str:
    if not isinstance(key, str):
        raise TypeError(f"a rate limit key must be a str, not {type(key).__name__}")
    return hashlib.blake2b(scope + key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def gcra(tat: int | None, now: int, interval: int, burst: int) -> tuple[bool, int, int, int]:
    """One GCRA step: ``(allowed, remaining, retry_after_us, new_tat)`` (the Lua mirrors it)."""
    start = now if tat is None or tat < now else tat
    new_tat = start + interval
    allow_at = new_tat - burst * interval
    if now < allow_at:
        return False, 0, allow_at - now, start
    return True, (now - allow_at) // interval, 0, new_tat


class _Backend(Protocol):
    async def step(
        self, key: str, now: int | None, interval: int, burst: int, store: bool
    ) -> tuple[bool, int, int]: ...

    async def reset(self, key: str) -> bool: ...

    async def cleanup(self, clock: Callable[[], int]) -> int: ...

    def tracked_keys(self) -> int | None: ...

    async def aclose(self) -> None: ...


class _Memory:
    """TATs in a dict; every step is atomic on the event loop."""

    def __init__(self) -> None:
        self.tats: dict[str, int] = {}

    async def step(
        self, key: str, now: int | None, interval: int, burst: int, store: bool
    ) -> tuple[bool, int, int]:
        assert now is not None
        allowed, remaining, retry, new_tat = gcra(self.tats.get(key), now, interval, burst)
        if allowed and store:
            self.tats[key] = new_tat
        return allowed, remaining, retry

    async def reset(self, key: str) -> bool:
        return self.tats.pop(key, None) is not None

    async def cleanup(self, clock: Callable[[], int]) -> int:
        removed, keys = 0, list(self.tats)
        for start in range(0, len(keys), _CLEANUP_BATCH):
            now = clock()
            for key in keys[start : start + _CLEANUP_BATCH]:
                tat = self.tats.get(key)
                if tat is not None and tat <= now:  # as good as absent: a full burst is back
                    del self.tats[key]
                    removed += 1
            await anyio.lowlevel.checkpoint()
        return removed

    def tracked_keys(self) -> int | None:
        return len(self.tats)

    async def aclose(self) -> None:
        return None


class RateLimiter:
    """``rate`` hits per period per key, up to ``burst`` at once (default: the rate's count).

    ``store`` is ``"memory://"``, a ``redis://`` URL or a ``redis.asyncio``
    client (never closed here). ``clock`` returns seconds (default: the
    monotonic clock in memory, the server's clock in Redis). Redis keys live
    under ``prefix``; each Redis call is bounded by ``timeout`` seconds and
    fails with :class:`~asyncsess.StoreUnavailable`.
    """

    def __init__(
        self,
        rate: str | Rate = "5/minute",
        *,
        burst: int | None = None,
        store: str | Any = "memory://",
        clock: Callable[[], float] | None = None,
        prefix: str = "asyncsess:rl:",
        timeout: float = 5.0,
        cleanup_interval: float = 60.0,
    ) -> None:
        self.rate = rate if isinstance(rate, Rate) else parse_rate(rate)
        if self.rate.count < 1 or not 0 < self.rate.period < math.inf:
            raise ConfigurationError(f"a rate needs count >= 1 and a finite period > 0: {rate!r}")
        if burst is None:
            burst = self.rate.count
        if type(burst) is not int or burst < 1:
            raise ConfigurationError(f"burst must be an int of at least 1, not {burst!r}")
        self.burst = burst
        self._interval = round(self.rate.period * 1_000_000 / self.rate.count)
        if self._interval < 1:
            raise ConfigurationError(f"rate {rate!r} is finer than one hit per microsecond")
        self._scope = f"{self._interval}/{burst}\x00".encode()
        self.cleanup_interval = duration(cleanup_interval, "cleanup_interval")
        self._clock = clock
        self._backend: _Backend
        if store == "memory://":
            self._backend = _Memory()
        elif isinstance(store, str) and not store.lower().startswith(("redis", "rediss")):
            raise ConfigurationError(
                "rate limiter store must be memory://, a redis:// URL or a Redis client, "
                f"not {store!r}"
            )
        else:
            from ._ratelimit_redis import RedisBackend

            self._backend = RedisBackend(store, prefix=prefix, timeout=timeout)

    def __repr__(self) -> str:
        return (
            f"RateLimiter({self.rate.count}/{self.rate.period:g}s, burst={self.burst}, "
            f"{type(self._backend).__name__.strip('_')})"
        )

    def _now(self) -> int | None:
        if self._clock is not None:
            return round(self._clock() * 1_000_000)
        if isinstance(self._backend, _Memory):
            return round(time.monotonic() * 1_000_000)
        return None  # the Redis server's clock

    async def _step(self, key: str, store: bool) -> tuple[bool, int, int]:
        return await self._backend.step(
            _hashed(key, self._scope), self._now(), self._interval, self.burst, store
        )

    async def hit(self, key: str) -> Decision:
        """Count one hit on ``key``; a refused hit is not counted."""
        allowed, remaining, retry = await self._step(key, True)
        return Decision(allowed, remaining, retry / 1_000_000)

    async def peek(self, key: str) -> Decision:
        """What a hit would get now, without counting it (``remaining`` includes it)."""
        allowed, remaining, retry = await self._step(key, False)
        return Decision(allowed, remaining + 1 if allowed else 0, retry / 1_000_000)

    async def reset(self, key: str) -> bool:
        """Forget ``key`` (a full burst is available again); ``True`` if it was tracked."""
        return await self._backend.reset(_hashed(key, self._scope))

    async def cleanup(self) -> int:
        """Drop the memory store's idle keys (in batches); return the count (0 for Redis)."""
        return await self._backend.cleanup(lambda: self._now() or 0)

    def tracked_keys(self) -> int | None:
        """How many keys the memory store holds (``None`` for Redis, which expires its own)."""
        return self._backend.tracked_keys()

    async def cleanup_task(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run :meth:`cleanup` every ``cleanup_interval`` seconds (returns at once for Redis)."""
        task_status.started()
        if self.tracked_keys() is None:
            return
        while True:
            await anyio.sleep(self.cleanup_interval)
            try:
                removed = await self.cleanup()
            except AsyncsessError as exc:  # pragma: no cover - memory cleanup cannot fail
                log.warning("rate limiter cleanup failed: %s", exc)
            else:
                if removed:
                    log.debug("rate limiter dropped %d idle keys", removed)

    async def aclose(self) -> None:
        """Close the Redis client made from a URL (never one that was passed in)."""
        await self._backend.aclose()
