"""Keeping an invalidation channel up: subscribe, prove it with heartbeats, reset on any loss.

A channel (:mod:`.redis`, :mod:`.postgres`) opens a :class:`Link`: connections
subscribed to the store's changes, one per node that can hold sessions.
:func:`keep_up` runs in the manager's task group. Once the link is subscribed
it sends each node a heartbeat every :data:`HEARTBEAT` seconds, a change the
node itself reports back through the very path invalidations take; entries
are served only until :data:`SILENCE` seconds after the last heartbeat that
came back was sent. So a write acknowledged before a heartbeat was sent has
been seen before that heartbeat comes back (each node reports changes in the
order it made them), and a channel lost without a sound (a paused server, a
dead network path) stops the cache within :data:`SILENCE` seconds. A heartbeat
missing that long, a closed connection, a changed topology: the link is torn
down, the cache dropped whole (:meth:`NearCache.lost`), and the link opened
again, retrying with a growing pause of at most :data:`RETRY_MAX` seconds;
validates read the store meanwhile. While the link is up, a refresher reads
again, every :data:`REFRESH_EVERY` seconds and in batches, the entries the
cache queued for refresh ahead (:meth:`NearCache.due`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import anyio
from anyio.abc import TaskStatus

from ..exceptions import ConfigurationError
from ..stores.base import Record
from .cache import NearCache

__all__ = ["HEARTBEAT", "RETRY_MAX", "SILENCE", "Channel", "ChannelLost", "Link", "keep_up"]

log = logging.getLogger("asyncsess.nearcache")

#: Seconds between two heartbeats of one node.
HEARTBEAT = 0.2
#: Seconds after a heartbeat was sent by which it must be back; entries are served no longer.
SILENCE = 0.8
#: The first and the longest pause (seconds) before opening a lost link again.
RETRY_FIRST, RETRY_MAX = 0.05, 1.0
#: Seconds between two batches of refresh-ahead reads, and the most keys in one.
REFRESH_EVERY, REFRESH_BATCH = 0.05, 500

Echo = Callable[[int], None]
#: Reads records again, without renewing them (the store's ``get_many``).
Read = Callable[[Sequence[str]], Awaitable[list[Record | None]]]


class ChannelLost(Exception):
    """The channel stopped delivering (or could not start): the cache is dropped."""


class Link(Protocol):
    """A channel's subscription, live: changes flow into the cache until it fails."""

    #: How many nodes it listens to (each gets heartbeats).
    nodes: int

    async def watch(self, echo: Echo) -> None:
        """Deliver changes to the cache, and ``echo(node)`` for each heartbeat back,
        until the link fails (then raise)."""

    async def ping(self, node: int) -> None:
        """Send ``node`` a heartbeat (its echo comes through :meth:`watch`)."""


class Channel(Protocol):
    """Where a store's changes are heard: opens :class:`Link` objects."""

    async def prepare(self) -> None:
        """Check (or set up) what the channel needs in the store, when the store opens.

        Raises :class:`~asyncsess.ConfigurationError` for what the app must fix.
        """

    def open(self, cache: NearCache) -> AbstractAsyncContextManager[Link]:
        """Connect and subscribe (calling ``cache.subscribed()`` once listening); close on exit.

        Raises :class:`~asyncsess.ConfigurationError` for what no retry can fix.
        """
        ...


def _reason(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


class _Heartbeats:
    """One heartbeat loop per node; the cache is healthy until the earliest node's bound."""

    def __init__(self, cache: NearCache, link: Link) -> None:
        self.cache, self.link = cache, link
        self.until = [0.0] * link.nodes
        self.waiting: list[anyio.Event | None] = [None] * link.nodes
        self.ready = anyio.Event()

    def echo(self, node: int) -> None:
        event = self.waiting[node]
        if event is not None:
            event.set()

    async def run(self, node: int) -> None:
        while True:
            event = self.waiting[node] = anyio.Event()
            sent = time.monotonic()
            try:
                with anyio.fail_after(SILENCE):
                    await self.link.ping(node)
                    await event.wait()
            except TimeoutError:
                raise ChannelLost(f"a heartbeat was not back within {SILENCE:g} s") from None
            self.until[node] = sent + SILENCE
            self.cache.healthy(min(self.until))
            if not self.ready.is_set() and all(self.until):
                self.ready.set()
            await anyio.sleep(HEARTBEAT)


async def _refresh(cache: NearCache, read: Read) -> None:
    """Read again what the cache queued, in batches (a failed read: the entries just age)."""
    while True:
        await anyio.sleep(REFRESH_EVERY)
        while keys := cache.due(REFRESH_BATCH):
            ticket = cache.ticket()
            try:
                records = await read(keys)
            except Exception as exc:  # noqa: BLE001 - the store's trouble surfaces in validates
                log.debug("near cache: a refresh read failed (%s)", _reason(exc))
                break
            cache.refreshed(ticket, keys, records)


async def _serve(cache: NearCache, link: Link, read: Read, ready: Callable[[], None]) -> None:
    beats = _Heartbeats(cache, link)
    async with anyio.create_task_group() as tg:
        tg.start_soon(link.watch, beats.echo)
        for node in range(link.nodes):
            tg.start_soon(beats.run, node)
        await beats.ready.wait()
        tg.start_soon(_refresh, cache, read)
        ready()


async def keep_up(
    cache: NearCache,
    channel: Channel,
    what: str,
    read: Read,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Keep ``channel`` feeding ``cache`` until cancelled (see the module docstring);
    ``read`` reads records again for the refresher.

    Reports started once the cache is first healthy, or once the first try
    failed (validates read the store until a later one succeeds); a
    :class:`~asyncsess.ConfigurationError` on the first try is raised.
    """
    started = False
    delay = RETRY_FIRST

    def ready() -> None:
        nonlocal started, delay
        log.info("near cache: listening to %s", what)
        delay = RETRY_FIRST
        if not started:
            started = True
            task_status.started()

    while True:
        try:
            async with channel.open(cache) as link:
                await _serve(cache, link, read, ready)
        except ConfigurationError as exc:
            if not started:
                raise
            log.error("near cache on %s: %s", what, exc)
        except Exception as exc:  # noqa: BLE001 - any failure is a loss: logged, retried
            log.warning(
                "near cache: the channel of %s is lost (%s); validates read the store until "
                "it is back",
                what,
                _reason(exc),
            )
        finally:
            cache.lost()
        if not started:
            started = True
            task_status.started()
        await anyio.sleep(delay)
        delay = min(2 * delay, RETRY_MAX)
