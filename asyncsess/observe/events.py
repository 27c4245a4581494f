"""Lifecycle events for audit logs: what happened to which session, delivered off the request path.

A manager's :attr:`~asyncsess.SessionManager.events` (an :class:`Events`)
hands each :class:`Event` to every subscriber that wants its kind:

- :meth:`Events.subscribe` registers a callback (async, or plain and quick),
  run by a delivery task in the manager's task group (``async with mgr`` /
  ``mgr.running()``);
- :meth:`Events.stream` yields an async iterator for a task of the app's own.

Emitting never waits: each subscriber has a bounded queue (``queue_size``
events); when it is full, the new event is dropped for that subscriber,
counted (:attr:`Subscription.dropped`, :attr:`Events.dropped`) and logged
once per overflow. A callback that raises is logged and counted
(:attr:`Subscription.failed`), never raised into the call that emitted. When
the manager stops, each delivery task gets up to :data:`DRAIN_SECONDS` to
deliver what is queued; an event whose callback the stop interrupted is
handed over again first (at least once, never lost for that reason).

An event carries the session id (:attr:`Session.id`, never the token) and
the user id where the manager knows them, and the manager's clock reading.
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import anyio
from anyio.abc import TaskGroup, TaskStatus

__all__ = [
    "DRAIN_SECONDS",
    "EVENT_KINDS",
    "Event",
    "EventCallback",
    "EventKind",
    "EventStream",
    "Events",
    "Subscription",
]

log = logging.getLogger("asyncsess.events")

EventKind = Literal[
    "created",
    "renewed",
    "updated",
    "rotated",
    "revoked",
    "revoked_all",
    "expired",
    "login_succeeded",
    "login_failed",
    "login_throttled",
    "password_changed",
    "user_deleted",
]
#: Every kind of :class:`Event`, in the order of :data:`EventKind`.
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)
#: How long a delivery task may go on delivering queued events once the manager stops.
DRAIN_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to a session or a user.

    What each kind sets besides ``kind`` and ``occurred``:

    - ``created``: ``session_id``, ``user_id`` (``None`` for an anonymous session);
    - ``renewed``: ``session_id``, ``user_id`` (a validate extended the idle expiry);
    - ``updated``: ``session_id``, ``user_id``;
    - ``rotated``: ``session_id`` (the new one), ``previous_id``, ``user_id``;
    - ``revoked``: ``session_id``, ``user_id`` (``revoke``, ``logout``,
      ``revoke_session``, and ``max_sessions_per_user`` ending the oldest);
    - ``revoked_all``: ``user_id``, ``count``;
    - ``expired``: ``count``, the expired sessions one sweep deleted;
    - ``login_succeeded``: ``session_id``, ``user_id``, ``username``, ``client``;
    - ``login_failed``: ``username``, ``client``;
    - ``login_throttled``: ``username``, ``client``, ``scope`` (as in ``LoginThrottled``);
    - ``password_changed``, ``user_deleted``: ``user_id``, ``username``.

    A sweep deletes expired records in bulk without opening them, so
    ``expired`` carries a count only (a sealed record's user id opens only
    with its token; Redis and MongoDB drop expired records by themselves).
    ``occurred`` is the manager's clock (seconds since the epoch);
    :attr:`occurred_at` the same as an aware UTC datetime.
    """

    kind: EventKind
    occurred: float
    session_id: str | None = None
    user_id: str | None = None
    previous_id: str | None = None
    count: int | None = None
    username: str | None = None
    client: str | None = None
    scope: str | None = None

    @property
    def occurred_at(self) -> datetime:
        """When it happened (UTC)."""
        return datetime.fromtimestamp(self.occurred, UTC)

    def as_dict(self) -> dict[str, Any]:
        """The fields that are set, for a JSON audit log line."""
        return {k: v for k, v in asdict(self).items() if v is not None}


#: Called with each event; an awaitable it returns is awaited.
EventCallback = Callable[[Event], object]


def _kinds(kinds: Iterable[str] | None) -> frozenset[str]:
    if kinds is None:
        return frozenset(EVENT_KINDS)
    if isinstance(kinds, str):
        raise TypeError("kinds must be a collection of event kinds, not a str")
    chosen = frozenset(kinds)
    if unknown := chosen - set(EVENT_KINDS):
        raise ValueError(f"unknown event kinds {sorted(unknown)}; known: {', '.join(EVENT_KINDS)}")
    return chosen


class Subscription:
    """One subscriber: the kinds it wants, its bounded queue and its counts.

    ``dropped`` counts events lost to a full queue, ``delivered`` those handed
    over, ``failed`` those whose callback raised.
    """

    __slots__ = (
        "_buffer",
        "_hub",
        "_overflowing",
        "_wakeup",
        "callback",
        "closed",
        "delivered",
        "dropped",
        "failed",
        "kinds",
        "queue_size",
    )

    def __init__(
        self, hub: Events, callback: EventCallback | None, kinds: frozenset[str], queue_size: int
    ) -> None:
        if type(queue_size) is not int or queue_size < 1:
            raise ValueError(f"queue_size must be an int of at least 1, not {queue_size!r}")
        self._hub = hub
        self.callback = callback
        self.kinds = kinds
        self.queue_size = queue_size
        self._buffer: deque[Event] = deque()
        self._wakeup: anyio.Event | None = None
        self._overflowing = False
        self.closed = False
        self.dropped = self.delivered = self.failed = 0

    def __repr__(self) -> str:
        what = getattr(self.callback, "__qualname__", "stream")
        return f"<Subscription {what} queued={len(self._buffer)} dropped={self.dropped}>"

    def close(self) -> None:
        """Stop receiving events (what is queued is still delivered)."""
        self._hub._remove(self)
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    def _put(self, event: Event) -> None:
        if len(self._buffer) >= self.queue_size:
            self.dropped += 1
            if not self._overflowing:
                self._overflowing = True
                log.warning("event subscriber %r is behind: dropping events", self)
            return
        self._buffer.append(event)
        self._wake()

    async def _next(self) -> Event | None:
        """The next event, waiting for one; ``None`` once closed and empty."""
        while not self._buffer:
            if self.closed:
                return None
            self._wakeup = wakeup = anyio.Event()
            await wakeup.wait()
        if self._overflowing and len(self._buffer) <= self.queue_size // 2:
            self._overflowing = False
            log.warning("event subscriber %r caught up: %d dropped so far", self, self.dropped)
        self.delivered += 1
        return self._buffer.popleft()

    async def _call(self, event: Event) -> None:
        assert self.callback is not None
        try:
            result = self.callback(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.failed += 1
            log.exception("event subscriber %r failed on a %s event", self, event.kind)

    async def _deliver(self) -> None:
        """Hand each queued event to the callback until closed; drain for a while on cancel."""
        event: Event | None = None
        try:
            while (event := await self._next()) is not None:
                await self._call(event)
                event = None
        except anyio.get_cancelled_exc_class():
            with anyio.move_on_after(DRAIN_SECONDS, shield=True):
                if event is not None:  # its callback was interrupted: hand it over again
                    await self._call(event)
                while self._buffer:
                    self.delivered += 1
                    await self._call(self._buffer.popleft())
            raise


class EventStream:
    """An async iterator over the events of one :meth:`Events.stream` subscription."""

    __slots__ = ("subscription",)

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        event = await self.subscription._next()
        if event is None:
            raise StopAsyncIteration
        return event


class Events:
    """A manager's lifecycle events: subscribe to them; the manager emits them.

    See the module docstring for delivery, queues and drops.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._subscriptions: list[Subscription] = []
        #: The kinds some subscriber wants: emitting any other costs a set lookup.
        self.wanted: frozenset[str] = frozenset()
        self._group: TaskGroup | None = None
        self._dropped_before = 0
        self._changed: list[Callable[[], None]] = []
        self._write_instant = 0.0
        self._written: set[str] = set()

    def __repr__(self) -> str:
        return f"<Events subscribers={len(self._subscriptions)} dropped={self.dropped}>"

    @property
    def dropped(self) -> int:
        """Events dropped for a full queue, over every subscriber this hub has had."""
        return self._dropped_before + sum(s.dropped for s in self._subscriptions)

    def subscribe(
        self,
        callback: EventCallback,
        *,
        kinds: Collection[EventKind] | None = None,
        queue_size: int = 1000,
    ) -> Subscription:
        """Call ``callback(event)`` for every event of ``kinds`` (default: all).

        The callback runs in a delivery task of the manager's task group, one
        event after the other, never in the call that emitted; it may be a
        coroutine function (awaited) or a plain function (which runs on the
        event loop, so it must not block). Events wait in a queue of
        ``queue_size``; beyond it they are dropped and counted. Close the
        returned :class:`Subscription` to stop.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        subscription = Subscription(self, callback, _kinds(kinds), queue_size)
        self._add(subscription)
        if self._group is not None:
            self._group.start_soon(subscription._deliver)
        return subscription

    @asynccontextmanager
    async def stream(
        self, *, kinds: Collection[EventKind] | None = None, queue_size: int = 1000
    ) -> AsyncIterator[EventStream]:
        """Subscribe for the duration of the block; iterate over the events in a task of yours.

        ``async with mgr.events.stream(kinds={"revoked"}) as events: async for e in events:``.
        Queueing and drops as in :meth:`subscribe`.
        """
        subscription = Subscription(self, None, _kinds(kinds), queue_size)
        self._add(subscription)
        try:
            yield EventStream(subscription)
        finally:
            subscription.close()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` whenever :attr:`wanted` changes (the manager's observer)."""
        self._changed.append(listener)

    def _add(self, subscription: Subscription) -> None:
        self._subscriptions.append(subscription)
        self._update()

    def _remove(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            self._dropped_before += subscription.dropped
            self._update()

    def _update(self) -> None:
        self.wanted = frozenset().union(*(s.kinds for s in self._subscriptions))
        for listener in self._changed:
            listener()

    def emit(self, kind: EventKind, **fields: Any) -> None:
        """Queue an event of ``kind`` for its subscribers, now; never waits, never raises.

        ``fields`` are :class:`Event` fields; ``occurred`` defaults to the clock.
        """
        if kind not in self.wanted:
            return
        fields.setdefault("occurred", self._clock())
        event = Event(kind, **fields)
        for subscription in self._subscriptions:
            if kind in subscription.kinds:
                subscription._put(event)

    def wrote(self, session_id: str, at: float) -> None:
        """Note that a session was written with its idle expiry counted from ``at``.

        A validate at that very clock reading finds the expiry a renewal would
        give, yet renewed nothing (:meth:`written_at`); only kept while some
        subscriber wants ``renewed`` events, and only for the latest instant.
        """
        if "renewed" in self.wanted:
            if at != self._write_instant:
                self._write_instant, self._written = at, set()
            self._written.add(session_id)

    def written_at(self, session_id: str, at: float) -> bool:
        """Whether :meth:`wrote` noted ``session_id`` at ``at``."""
        return at == self._write_instant and session_id in self._written

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Deliver to the callbacks until cancelled (a background task of the manager)."""
        async with anyio.create_task_group() as group:
            for subscription in self._subscriptions:
                if subscription.callback is not None:
                    group.start_soon(subscription._deliver)
            self._group = group
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._group = None
