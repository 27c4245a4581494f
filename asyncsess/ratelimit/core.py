"""The limiter: at most N hits in any window of one period, of which ``burst`` at once.

``RateLimiter("100/hour")`` keeps, per key, the times of its last 100
counted hits (a sliding log). A hit at ``now`` is allowed when fewer than
``count`` counted hits lie in ``(now - period, now]``; so no window of
length ``period``, wherever it starts, ever holds more than ``count``
allowed hits (a fixed window or a GCRA of the same rate lets through up to
``2 * count - 1``). ``burst`` (default: ``count``) bounds how many of them
may come at once: at most ``burst`` in any window of ``burst * period /
count``. A refused hit is not counted; :meth:`RateLimiter.refund` takes back
one counted hit (login counts failures only that way, exactly even under
concurrency). Times are integer microseconds, so the arithmetic is exact.

Keys never reach the store in the clear: each is an HMAC-SHA-256 (first 128
bits) under a key derived from ``secret``, so a dump of the limiter's store
cannot be tested against a list of usernames or addresses without it. A
memory limiter without a ``secret`` uses a random key made at import (per
process, as its counters are); a Redis limiter, shared by processes, needs
``secret``.

- ``memory://``: a dict; no ``await`` between reading and writing a key,
  so concurrent hits are exact. Keys with no hit inside the longest window
  are dropped by :meth:`RateLimiter.cleanup_task`, meant to run in the
  manager's task group (the manager runs it for its login limiters), and,
  two at a time, by every counted hit, so memory stays bounded without it.
- ``redis://``, ``rediss://`` (``+cluster`` too) or an existing
  ``redis.asyncio`` client: one Lua script per call (atomic), keys under
  ``prefix`` (default ``"asyncsess-rl:"``, disjoint from the session store's
  ``"asyncsess:"``, so wiping sessions never resets a limit), each expiring
  one period after its last counted hit. Without an injected clock the
  Redis server's clock is used, so every process agrees.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
from anyio.abc import TaskStatus

from ..config import duration
from ..exceptions import AsyncsessError, ConfigurationError
from ..sealing import normalize_secrets

__all__ = ["Decision", "Rate", "RateLimiter", "decide", "parse_rate"]

log = logging.getLogger("asyncsess.ratelimit")

_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
}
_RATE = re.compile(r"\s*(\d+)\s*(?:/|per\s)\s*(\d*)\s*([a-z]+)\s*", re.IGNORECASE)
_CLEANUP_BATCH = 1000
#: The longest log a key may keep (a limit's ``count``): bounds a key's memory.
MAX_COUNT = 100_000
#: Keys the limiters of this process hash with when given no secret.
_PROCESS_KEY = secrets.token_bytes(32)
#: A limit: at most ``count`` counted hits in any window of ``window`` microseconds.
Limit = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` hits per ``period`` seconds."""

    count: int
    period: float


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of a hit: allowed or not, hits left now, seconds to wait if refused.

    ``stamp`` identifies the counted hit for :meth:`RateLimiter.refund` (not compared).
    """

    allowed: bool
    remaining: int
    retry_after: float
    stamp: int | None = field(default=None, compare=False, repr=False)


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


def decide(log: Sequence[int], now: int, limits: Sequence[Limit]) -> tuple[bool, int, int]:
    """``(allowed, remaining, retry_after_us)`` of a hit at ``now`` (the Lua mirrors it).

    ``log`` holds the counted hits' times, oldest first.
    """
    retry, remaining = 0, MAX_COUNT
    for count, window in limits:
        inside = len(log) - bisect.bisect_right(log, now - window)
        if inside >= count:  # the count-th newest hit is inside: wait until it leaves
            retry = max(retry, log[-count] + window - now)
        else:
            remaining = min(remaining, count - 1 - inside)
    if retry:
        return False, 0, retry
    return True, remaining, 0


class _Backend(Protocol):
    async def step(
        self, key: str, now: int | None, limits: Sequence[Limit], store: bool
    ) -> tuple[bool, int, int, int]: ...

    async def refund(self, key: str, stamp: int) -> bool: ...

    async def reset(self, key: str) -> bool: ...

    async def cleanup(self, now: Callable[[], int], window: int) -> int: ...

    def tracked_keys(self) -> int | None: ...

    async def aclose(self) -> None: ...


class _Memory:
    """Hit logs in a dict; every step is atomic on the event loop."""

    def __init__(self) -> None:
        self.logs: dict[str, list[int]] = {}

    async def step(
        self, key: str, now: int | None, limits: Sequence[Limit], store: bool
    ) -> tuple[bool, int, int, int]:
        assert now is not None
        log = self.logs.get(key, [])
        allowed, remaining, retry = decide(log, now, limits)
        if allowed and store:
            self._evict(now - limits[0][1])
            self.logs[key] = log
            bisect.insort(log, now)
            del log[: -limits[0][0]]
        return allowed, remaining, retry, now

    def _evict(self, oldest_kept: int) -> None:
        """Look at the two keys at the front: drop an idle one, send a live one to the back.

        So a limiter without :meth:`RateLimiter.cleanup_task` (an ``Accounts``
        used alone) still holds little more than the keys hit within a period.
        """
        for _ in range(2):
            key = next(iter(self.logs), None)
            if key is None:
                return
            log = self.logs.pop(key)
            if log[-1] > oldest_kept:
                self.logs[key] = log

    async def refund(self, key: str, stamp: int) -> bool:
        log = self.logs.get(key)
        if log is None:
            return False
        at = bisect.bisect_left(log, stamp)
        if at == len(log) or log[at] != stamp:
            return False
        del log[at]
        if not log:
            del self.logs[key]
        return True

    async def reset(self, key: str) -> bool:
        return self.logs.pop(key, None) is not None

    async def cleanup(self, now: Callable[[], int], window: int) -> int:
        removed, keys = 0, list(self.logs)
        for start in range(0, len(keys), _CLEANUP_BATCH):
            oldest_kept = now() - window
            for key in keys[start : start + _CLEANUP_BATCH]:
                log = self.logs.get(key)
                if log is not None and log[-1] <= oldest_kept:  # no hit inside any window
                    del self.logs[key]
                    removed += 1
            await anyio.lowlevel.checkpoint()
        return removed

    def tracked_keys(self) -> int | None:
        return len(self.logs)

    async def aclose(self) -> None:
        return None


class RateLimiter:
    """At most ``rate``'s count hits per key in any window of its period, ``burst`` at once.

    ``store`` is ``"memory://"``, a ``redis://`` URL or a ``redis.asyncio``
    client (never closed here). ``secret`` (at least 32 bytes) keys the
    hashing of keys; required with Redis. ``clock`` returns seconds
    (default: the monotonic clock in memory, the server's clock in Redis).
    Redis keys live under ``prefix``; each Redis call is bounded by
    ``timeout`` seconds and fails with :class:`~asyncsess.StoreUnavailable`.
    """

    def __init__(
        self,
        rate: str | Rate = "5/minute",
        *,
        burst: int | None = None,
        store: str | Any = "memory://",
        secret: str | bytes | None = None,
        clock: Callable[[], float] | None = None,
        prefix: str = "asyncsess-rl:",
        timeout: float = 5.0,
        cleanup_interval: float = 60.0,
    ) -> None:
        self.rate = rate if isinstance(rate, Rate) else parse_rate(rate)
        count, period = self.rate.count, self.rate.period
        if not 1 <= count <= MAX_COUNT or not 0 < period < math.inf:
            raise ConfigurationError(
                f"a rate needs 1 <= count <= {MAX_COUNT} and a finite period > 0: {rate!r}"
            )
        if burst is None:
            burst = count
        if type(burst) is not int or not 1 <= burst <= count:
            raise ConfigurationError(
                f"burst must be an int from 1 to the rate's count ({count}), not {burst!r}"
            )
        self.burst = burst
        window = round(period * 1_000_000)
        if window < count:
            raise ConfigurationError(f"rate {rate!r} is finer than one hit per microsecond")
        # the first limit is the longest log kept; the burst's window is burst/count of the period
        self._limits: list[Limit] = [(count, window)]
        if burst < count:
            self._limits.append((burst, window * burst // count))
        self.cleanup_interval = duration(cleanup_interval, "cleanup_interval")
        self._clock = clock
        self._backend: _Backend
        keys = normalize_secrets(secret)
        if store == "memory://":
            self._backend = _Memory()
        elif isinstance(store, str) and not store.lower().startswith(("redis", "rediss")):
            raise ConfigurationError(
                "rate limiter store must be memory://, a redis:// URL or a Redis client, "
                f"not {store!r}"
            )
        else:
            if not keys:
                raise ConfigurationError(
                    "a Redis rate limiter needs secret=... (at least 32 bytes, the same in every "
                    "process) to key the hashing of usernames and addresses"
                )
            from .redis import RedisBackend

            self._backend = RedisBackend(store, prefix=prefix, timeout=timeout)
        base = keys[0] if keys else _PROCESS_KEY
        self._key = hmac.digest(base, b"asyncsess rate limiter keys v1", "sha256")
        self._scope = f"{count}/{window}/{burst}\x00".encode()

    def __repr__(self) -> str:
        return (
            f"RateLimiter({self.rate.count}/{self.rate.period:g}s, burst={self.burst}, "
            f"{type(self._backend).__name__.strip('_')})"
        )

    def _hashed(self, key: object) -> str:
        if not isinstance(key, str):
            raise TypeError(f"a rate limit key must be a str, not {type(key).__name__}")
        message = self._scope + key.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def _now(self) -> int | None:
        if self._clock is not None:
            return round(self._clock() * 1_000_000)
        if isinstance(self._backend, _Memory):
            return round(time.monotonic() * 1_000_000)
        return None  # the Redis server's clock

    async def hit(self, key: str) -> Decision:
        """Count one hit on ``key``; a refused hit is not counted."""
        allowed, remaining, retry, stamp = await self._backend.step(
            self._hashed(key), self._now(), self._limits, True
        )
        return Decision(allowed, remaining, retry / 1_000_000, stamp if allowed else None)

    async def peek(self, key: str) -> Decision:
        """What a hit would get now, without counting it (``remaining`` includes it)."""
        allowed, remaining, retry, _ = await self._backend.step(
            self._hashed(key), self._now(), self._limits, False
        )
        return Decision(allowed, remaining + 1 if allowed else 0, retry / 1_000_000)

    async def refund(self, key: str, decision: Decision) -> bool:
        """Take back the hit ``decision`` counted on ``key``; ``True`` if it was still there."""
        if decision.stamp is None:
            return False
        return await self._backend.refund(self._hashed(key), decision.stamp)

    async def reset(self, key: str) -> bool:
        """Forget ``key`` (a full burst is available again); ``True`` if it was tracked."""
        return await self._backend.reset(self._hashed(key))

    async def cleanup(self) -> int:
        """Drop the memory store's idle keys (in batches); return the count (0 for Redis)."""
        return await self._backend.cleanup(lambda: self._now() or 0, self._limits[0][1])

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
