"""A bound on calls in flight whose free path is no coroutine.

``async with asyncio.Semaphore(n)`` costs two coroutines and a generator
even when a slot is free: some microseconds that a store read one hop away
pays on every validate. :class:`Slots` takes a free slot with one
comparison; only when none is free does a caller queue, on an
``asyncio.Semaphore`` that :meth:`Slots.give` hands slots to, first come
first served. asyncio only (the stores that use it drive asyncio-only clients).
"""

from __future__ import annotations

import asyncio

__all__ = ["Slots"]


class Slots:
    """At most ``size`` holders: ``if not slots.take(): await slots.wait()``, then
    ``slots.give()`` once done, however the call ended."""

    __slots__ = ("_free", "_handed", "_waiting")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiting = 0
        self._handed = asyncio.Semaphore(0)  # slots given to waiters, in the order they came

    def take(self) -> bool:
        """Take a free slot: ``False`` when there is none (then :meth:`wait` for one)."""
        if self._free > 0:
            self._free -= 1
            return True
        return False

    async def wait(self) -> None:
        """Queue for a slot (when :meth:`take` found none)."""
        self._waiting += 1
        try:
            await self._handed.acquire()
        finally:
            self._waiting -= 1

    def give(self) -> None:
        """Give a slot back: to the oldest waiter if one queues, else to the free ones."""
        if self._waiting:
            self._handed.release()
        else:
            self._free += 1
