"""Bounding store calls in time without one event-loop timer per call.

``asyncio.timeout`` schedules a timer for every call and cancels it after:
a heap push, a handle and the loop's bookkeeping, some microseconds that a
store read one hop away pays on every validate. :class:`Deadlines` keeps the
calls in flight in a set instead and checks them from one ticker, scheduled
while any call is in flight, every quarter of the timeout: a call that
overruns is cancelled at the first tick after its deadline (so within 1.25 times
the timeout) and raises :class:`TimeoutError`, exactly as ``asyncio.timeout``
would (the cancellation is taken back, and one from elsewhere is left alone).
asyncio only (the stores that use it drive asyncio-only clients).
"""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["Deadlines"]


class Deadlines:
    """Calls bounded by ``timeout`` seconds: ``with deadlines.bound():`` around each, in a task."""

    __slots__ = ("_calls", "_loop", "_ticker", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._calls: set[_Bound] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.TimerHandle | None = None

    def bound(self) -> _Bound:
        """A context manager bounding the block: :class:`TimeoutError` once it overruns."""
        return _Bound(self)

    def _start(self, call: _Bound) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new event loop: start afresh
            self._loop, self._calls, self._ticker = loop, set(), None
        self._calls.add(call)
        if self._ticker is None:
            self._ticker = loop.call_later(self.timeout / 4, self._tick)
        return loop

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for call in self._calls:
            if not call.expired and call.deadline <= now:
                call.expired = True
                call.task.cancel()
        self._ticker = self._loop.call_later(self.timeout / 4, self._tick) if self._calls else None


class _Bound:
    __slots__ = ("cancelling", "deadline", "expired", "owner", "task")

    task: asyncio.Task[object]

    def __init__(self, owner: Deadlines) -> None:
        self.owner = owner
        self.expired = False

    def __enter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a bounded store call must run in a task")
        self.task = task
        self.cancelling = task.cancelling()
        self.deadline = self.owner._start(self).time() + self.owner.timeout

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.owner._calls.discard(self)
        if (
            self.expired
            and exc_type is asyncio.CancelledError
            and self.task.uncancel() <= self.cancelling
        ):
            raise TimeoutError from exc
