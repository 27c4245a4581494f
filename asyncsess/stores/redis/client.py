"""Redis client plumbing shared by :class:`~asyncsess.stores.redis.RedisStore` and the
rate limiter's Redis backend: a client from a URL, pool sizing, and one bounded call
that maps driver errors to asyncsess's (fail closed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..._deadline import Deadlines
from ..._slots import Slots
from ...exceptions import ConfigurationError, StoreError, StoreUnavailable
from .._timeout import check_timeout

__all__ = ["REFUSED_FOR_NOW", "UNAVAILABLE", "Caller", "client_from_url", "pool_slots"]

T = TypeVar("T")
P = ParamSpec("P")
#: Driver errors that mean "Redis is not there right now".
UNAVAILABLE = (OSError, RedisConnectionError, RedisClusterException)
#: Server replies that mean "not now": a cluster without a quorum or mid-resharding
#: (CLUSTERDOWN, MASTERDOWN, TRYAGAIN), a primary turned replica by a failover
#: (READONLY), memory full (OOM).
REFUSED_FOR_NOW = (ClusterDownError, TryAgainError, ReadOnlyError, OutOfMemoryError)


def client_from_url(url: str, *, timeout: float, **options: Any) -> Redis | RedisCluster:
    """A client for ``redis[s][+cluster]://...`` (``+cluster``: a :class:`RedisCluster`).

    Connecting is bounded by ``timeout``; reads get no socket timeout of their
    own (redis-py would wrap every read in ``asyncio.wait_for``): each call is
    bounded as a whole by :class:`Caller`. Other ``options`` go to redis-py's
    ``from_url``; a URL or option it refuses is a :class:`ConfigurationError`.
    """
    scheme, sep, rest = url.partition("://")
    cluster = scheme.lower().endswith("+cluster")
    plain = f"{scheme[: -len('+cluster')] if cluster else scheme}{sep}{rest}"
    options.setdefault("socket_timeout", None)
    options.setdefault("socket_connect_timeout", timeout)
    factory: Callable[..., Redis | RedisCluster] = (
        RedisCluster.from_url if cluster else Redis.from_url
    )
    try:
        return factory(plain, **options)
    except (ValueError, TypeError, RedisError) as exc:
        raise ConfigurationError(f"invalid Redis URL or client option: {exc}") from exc


def pool_slots(client: Redis | RedisCluster) -> int:
    """How many commands may be in flight at once: the pool's size (per node on a cluster).

    redis-py raises rather than waits when its pool is exhausted, so callers
    never run more than this many commands at once.
    """
    if isinstance(client, RedisCluster):
        return int(client.connection_kwargs.get("max_connections") or 100)
    return int(client.connection_pool.max_connections)


class Caller:
    """Runs one step against a client: bounded by ``timeout`` (waiting for a pool slot
    included), a cluster client set up once before any concurrent use, and driver
    errors mapped to :class:`StoreUnavailable` / :class:`StoreError` (cause chained).
    ``name`` says whose Redis it is in error messages."""

    def __init__(self, client: Redis | RedisCluster, *, timeout: float, name: str) -> None:
        self.client = client
        self.timeout = timeout = check_timeout(timeout, name)
        self.name = name
        self._slots = Slots(pool_slots(client))
        self._deadlines = Deadlines(timeout)
        self._ready = not isinstance(client, RedisCluster)
        self._setup: asyncio.Lock | None = None

    async def _initialize(self) -> None:
        # lazy set-up races in redis-py: one task sets the cluster client up, the others wait
        if self._setup is None:
            self._setup = asyncio.Lock()
        async with self._setup:
            if not self._ready:
                await self.client.initialize()
                self._ready = True

    def read(
        self, step: Callable[P, Awaitable[T]], /, *args: P.args, **kw: P.kwargs
    ) -> Awaitable[T]:
        """:meth:`__call__` for an idempotent read, sent once more after a ``ConnectionError``:
        a pooled connection that a server restart left stale fails its first command, and
        redis-py (which retries nothing by default) has disconnected it, so the pool
        reconnects it. Not for writes: one whose reply was lost may have been applied."""
        return self._call(True, step, args, kw)

    def __call__(
        self, step: Callable[P, Awaitable[T]], /, *args: P.args, **kw: P.kwargs
    ) -> Awaitable[T]:
        """Run ``step(*args, **kw)`` within the timeout, mapping driver errors (fail closed)."""
        return self._call(False, step, args, kw)

    async def _call(
        self, again: bool, step: Callable[..., Awaitable[T]], args: Any, kw: dict[str, Any]
    ) -> T:
        # One coroutine for the whole call (a read's resend included): a shared deadline
        # ticker instead of a timer per call, and slots taken without a coroutine when one
        # is free (:mod:`asyncsess._slots`). redis.asyncio runs on asyncio
        # only, and neither yields to the loop when nothing waits (anyio's checkpoint would).
        try:
            with self._deadlines:
                if not self._slots.take():
                    await self._slots.wait()
                try:
                    if not self._ready:
                        await self._initialize()
                    try:
                        return await step(*args, **kw)
                    except RedisConnectionError:
                        if not again:
                            raise
                        return await step(*args, **kw)
                finally:
                    self._slots.give()
        except (TimeoutError, RedisTimeoutError) as exc:
            raise StoreUnavailable(
                f"{self.name} did not answer within {self.timeout:g} s; check that it is up"
            ) from exc
        except UNAVAILABLE as exc:
            raise StoreUnavailable(
                f"{self.name} is unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        except REFUSED_FOR_NOW as exc:
            raise StoreUnavailable(
                f"{self.name} cannot serve now: {type(exc).__name__}: {exc}"
            ) from exc
        except RedisError as exc:
            raise StoreError(f"{self.name} refused an operation: {exc}") from exc
