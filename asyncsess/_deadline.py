"""Bounding store calls in time without one event-loop timer per call.

``asyncio.timeout`` schedules a timer for every call and cancels it after:
a heap push, a handle and the loop's bookkeeping, some microseconds that a
store read one hop away pays on every validate. :class:`Deadlines` instead
notes each call in flight (its task, under the number of the current tick)
and checks them from one ticker, scheduled while any call is in flight,
every quarter of the timeout: a call still running four ticks after the one
it started under is cancelled (so after 1 to 1.25 times the timeout) and
raises :class:`TimeoutError`, exactly as ``asyncio.timeout`` would (the
cancellation is taken back, and one from elsewhere is left alone). Reading
no clock per call keeps the bound cheap. asyncio only (the stores that use
it drive asyncio-only clients).
"""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["Deadlines"]

_running_loop = asyncio.get_running_loop
_current_task = asyncio.current_task
#: Ticks a call may see begin after the one it started under: 4 quarters of the timeout
#: (and up to one more quarter, as the call started between two ticks).
_TICKS = 5


class Deadlines:
    """Calls bounded by ``timeout`` seconds: ``with deadlines:`` around each, in a task.

    One bounded call per task at a time (a task's calls follow one another), on one
    event loop at a time (a later loop starts afresh).
    """

    __slots__ = ("_calls", "_expired", "_loop", "_tick", "_ticker", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start_afresh(None)

    def _start_afresh(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop
        # task -> (the tick it started under, its count of cancellation requests then)
        self._calls: dict[asyncio.Task[object], tuple[int, int]] = {}
        self._expired: dict[asyncio.Task[object], int] = {}  # cancelled here: the count then
        self._tick = 0
        self._ticker: asyncio.TimerHandle | None = None

    def __enter__(self) -> None:
        # the loop of the last call first: asyncio.get_running_loop() costs a getpid()
        # system call on Python 3.11
        loop = self._loop
        task = _current_task(loop) if loop is not None else None
        if task is None:  # first use, a new event loop, or not in a task
            loop = _running_loop()
            task = _current_task(loop)
            if task is None:
                raise RuntimeError("a bounded store call must run in a task")
            if loop is not self._loop:
                self._start_afresh(loop)
        self._calls[task] = (self._tick, task.cancelling())
        if self._ticker is None:
            self._ticker = _running_loop().call_later(self.timeout / 4, self._on_tick)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = _current_task(self._loop)
        assert task is not None
        del self._calls[task]
        if self._expired and task in self._expired:
            cancelling = self._expired.pop(task)
            if exc_type is asyncio.CancelledError and task.uncancel() <= cancelling:
                raise TimeoutError from exc

    def _on_tick(self) -> None:
        assert self._loop is not None
        self._tick += 1
        for task, (started, cancelling) in self._calls.items():
            if self._tick - started >= _TICKS and task not in self._expired:
                self._expired[task] = cancelling
                task.cancel()
        self._ticker = (
            self._loop.call_later(self.timeout / 4, self._on_tick) if self._calls else None
        )
