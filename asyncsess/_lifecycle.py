"""The lifecycle part of :class:`~asyncsess.SessionManager`: opening, background tasks, closing.

A mixin the manager inherits. The store opens on first use (or on entering
``async with``); ``async with`` (or :meth:`Lifecycle.running`) runs the
background tasks (the sweeper, limiter cleanup, telemetry's stats, the near
cache's invalidation channel) in one task group; :meth:`Lifecycle.aclose`
closes a store the manager built from a URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any, Self

import anyio

from ._codec import Codec
from ._setup import KeyFile, open_parts
from .exceptions import fail_closed
from .nearcache import NearCache
from .stores.base import Store

__all__ = ["BackgroundTask", "Lifecycle"]

#: A coroutine function taking ``task_status`` by keyword, as ``TaskGroup.start`` wants.
BackgroundTask = Callable[..., Coroutine[Any, Any, None]]


class Lifecycle:
    """Opening the store once, running the background tasks, closing what the manager owns."""

    store: Store
    _codec: Codec
    _key_file: KeyFile | None
    _near: NearCache | None
    _opened: bool
    _owns_store: bool
    _open_lock: anyio.Lock
    _background: list[BackgroundTask]
    _exit_stack: AsyncExitStack | None

    async def _open(self) -> None:
        if self._opened:
            return
        async with self._open_lock:
            if not self._opened:
                await open_parts(self.store, self._codec, self._key_file)
                if self._near is not None and self._near.prepare is not None:
                    await self._near.prepare()  # e.g. PostgreSQL's notify trigger
                self._opened = True

    def add_background_task(self, task: BackgroundTask) -> None:
        """Run ``task`` in the manager's task group (``async with`` / :meth:`running`)."""
        self._background.append(task)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Self]:
        """Run the background tasks (sweeper, limiter cleanup) for the duration of the block."""
        await self._open()
        async with anyio.create_task_group() as tg:
            for task in self._background:
                await tg.start(task)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(self.running())
        except BaseException:  # e.g. a ConfigurationError on opening: leave nothing open
            await self.aclose()
            raise
        self._exit_stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._exit_stack = self._exit_stack, None
        try:
            if stack is not None:
                await stack.aclose()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the store if this manager opened it from a URL."""
        if self._owns_store:
            with fail_closed:
                await self.store.aclose()
        self._opened = False
