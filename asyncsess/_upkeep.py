"""The store-wide part of :class:`~asyncsess.SessionManager`'s API: count, stats, sweep, wipe.

A mixin the manager inherits: these work on the whole store, not on one
session, and run in batches (:mod:`asyncsess._sweeper`) so a large store
never stalls the event loop. The periodic sweep, the background task the
manager runs, is here too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

import anyio
from anyio.abc import TaskStatus

from ._cache import DecodeCache
from ._sweeper import Progress, run_sweeper, sweep_until
from .exceptions import fail_closed
from .nearcache import NearCache
from .observe.observer import Observer, observed
from .session import Stats
from .stores.base import Store

__all__ = ["Upkeep"]

_FOREVER = 1000 * 366 * 86400.0  # every session expires before now + this


class Upkeep:
    """Counting, sweeping and wiping a manager's store (and its decode cache)."""

    store: Store
    sweep_batch: int
    sweep_interval: float
    _cache: DecodeCache
    _clock: Callable[[], float]
    _open: Callable[[], Awaitable[None]]
    _observer: Observer
    _near: NearCache | None

    async def count(self) -> tuple[int, int]:
        """Return how many sessions the store holds that are live, and expired (not swept)."""
        await self._open()
        with fail_closed:
            return await self.store.count(self._clock())

    async def stats(self) -> Stats:
        """The store's live and expired sessions (:meth:`count`) and the cache's figures."""
        live, expired = await self.count()
        cache, near = self._cache, self._near
        stats = Stats(live, expired, len(cache), cache.size, cache.hits, cache.misses)
        if near is not None:
            stats = replace(
                stats,
                near_cache_entries=len(near),
                near_cache_hits=near.hits,
                near_cache_misses=near.misses,
                near_cache_invalidations=near.invalidations,
                near_cache_resets=near.resets,
            )
        self._observer.saw_stats(stats)  # the sessions gauge reports the last figures
        return stats

    @observed("sweep")
    async def sweep(self, *, progress: Progress | None = None) -> int:
        """Delete expired sessions in batches of ``sweep_batch``; return the count.

        ``progress`` is called with the running total after each batch. The
        count is emitted as an ``expired`` event when it is not 0.
        """
        await self._open()
        swept = await sweep_until(self.store, self._clock(), self.sweep_batch, progress)
        if swept:
            self._observer.events.emit("expired", count=swept)
        return swept

    async def wipe(self, *, progress: Progress | None = None) -> int:
        """Delete every session in the store; return the count. Users stay (``Accounts.wipe``).

        Sessions go in batches of ``sweep_batch`` (``progress`` is called with
        the running total after each), then whatever else the store keeps.
        """
        await self._open()
        self._cache.clear()
        try:
            total = await sweep_until(
                self.store, self._clock() + _FOREVER, self.sweep_batch, progress
            )
            with fail_closed:
                total += await self.store.wipe()
        finally:
            if self._near is not None:
                self._near.clear()
        return total

    async def _sweeper(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Sweep about once per ``sweep_interval`` (see :mod:`asyncsess._sweeper`)."""
        await run_sweeper(self.store, self.sweep, self.sweep_interval, task_status=task_status)
