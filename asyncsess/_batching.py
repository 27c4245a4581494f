"""Opportunistic batching of concurrent store lookups (the validate hot path).

A lookup goes straight to the store while fewer than ``limit`` lookups are in
flight, so a lone request pays nothing extra. Beyond that, lookups queue;
when an in-flight lookup finishes, the oldest queued one becomes the leader
and fetches every queued key in one ``Store.get_many`` call (one round trip
or one worker-thread hop), handing each waiter its record. No task is
spawned: the leader is one of the waiting callers.
"""

from __future__ import annotations

from collections import deque

import anyio

from .stores.base import Record, Renewal, Store

__all__ = ["Batcher"]


class _Waiter:
    __slots__ = ("error", "event", "gone", "key", "leader", "record")

    def __init__(self, key: str) -> None:
        self.key = key
        self.event = anyio.Event()
        self.leader = False
        self.gone = False  # its caller was cancelled
        self.record: Record | None = None
        self.error: BaseException | None = None


class Batcher:
    """Funnel concurrent ``get`` calls into at most ``limit`` in-flight store calls."""

    def __init__(self, store: Store, *, limit: int = 4, max_batch: int = 256) -> None:
        self.store = store
        self.limit = limit
        self.max_batch = max_batch
        self._in_flight = 0
        self._queue: deque[_Waiter] = deque()

    def claim(self) -> bool:
        """Take an in-flight slot for a lookup of one's own, if one is free and nobody queues.

        The caller then runs ``store.get`` itself and calls :meth:`release` after
        it, however it ends; if no slot is free, it awaits :meth:`queued` instead.
        (No coroutine wraps the two: the validate hot path calls them inline.)
        """
        if self._in_flight < self.limit and not self._queue:
            self._in_flight += 1
            return True
        return False

    async def queued(self, key: str, renew: Renewal | None) -> Record | None:
        """Wait in the queue for the record of ``key`` (when :meth:`claim` said no)."""
        waiter = _Waiter(key)
        self._queue.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            waiter.gone = True
            if waiter in self._queue:
                self._queue.remove(waiter)
            if waiter.leader:
                self.release()  # pass the turn on
            raise
        if waiter.leader:
            await self._lead(waiter, renew)
        if waiter.error is not None:
            raise waiter.error
        return waiter.record

    async def _lead(self, leader: _Waiter, renew: Renewal | None) -> None:
        followers = min(self.max_batch - 1, len(self._queue))
        batch = [leader, *(self._queue.popleft() for _ in range(followers))]
        try:
            records = await self.store.get_many([w.key for w in batch], renew=renew)
        except Exception as exc:  # noqa: BLE001 - every waiter raises it
            for w in batch:
                w.error = exc
        except BaseException:
            # the leader was cancelled: its followers go back to the front of the queue
            self._queue.extendleft(w for w in reversed(batch[1:]) if not w.gone)
            raise
        else:
            for w, record in zip(batch, records, strict=True):
                w.record = record
        finally:
            self.release()
        for w in batch[1:]:
            w.event.set()

    def release(self) -> None:
        """Give back an in-flight slot; the oldest queued lookup, if any, leads the next batch."""
        self._in_flight -= 1
        if self._queue and self._in_flight < self.limit:
            self._in_flight += 1
            leader = self._queue.popleft()
            leader.leader = True
            leader.event.set()
