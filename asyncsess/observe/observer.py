"""The one object a :class:`~asyncsess.SessionManager` reports to: telemetry and events.

The manager holds an :class:`Observer` and touches it in few places: the
:func:`observed` decorator on its operations (a span and metrics when an
OpenTelemetry SDK records, see :mod:`asyncsess.observe.telemetry`), and
``validate``, which reads :attr:`Observer.on` once per call and does
nothing more while it is false: no OpenTelemetry SDK recording and no
subscriber to ``renewed`` events. Events are emitted where the manager
knows what happened (:mod:`asyncsess.observe.events`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from time import monotonic
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

import anyio
from anyio.abc import TaskStatus

from ..exceptions import AsyncsessError
from .events import Events
from .telemetry import Outcome, Telemetry, Tracing, resolve

if TYPE_CHECKING:
    from ..session import Session, Stats
    from ..stores.base import Record

__all__ = ["POLL_SECONDS", "Observer", "observed"]

log = logging.getLogger("asyncsess")

#: How often the global providers are checked again until an SDK's are configured.
POLL_SECONDS = 1.0

S = TypeVar("S", bound="_Observed")
P = ParamSpec("P")
R = TypeVar("R")
BackgroundTask = Callable[..., Coroutine[Any, Any, None]]


class _Note:
    """What one traced validate saw, for its outcome."""

    __slots__ = ("cache_hit", "now", "record", "seen")

    def __init__(self) -> None:
        self.seen = self.cache_hit = False
        self.record: Record | None = None
        self.now = 0.0

    def outcome(self, session: Session | None) -> Outcome:
        if not self.seen:
            return "malformed"  # returned before any lookup
        if self.cache_hit:
            return "cache_hit"
        if session is not None:
            return "valid"
        record = self.record
        if record is None:
            return "unknown"
        if record.expires_at <= self.now or record.absolute_at <= self.now:
            return "expired"
        return "invalid"  # a live record that does not open


_NOTE: ContextVar[_Note | None] = ContextVar("asyncsess_validate_note", default=None)


class Observer:
    """A manager's telemetry (:class:`Tracing`, or ``None``) and its :class:`Events`.

    :attr:`on` is true while a validate has something to report: an SDK
    records, or some subscriber wants ``renewed`` events.
    """

    __slots__ = ("_idle", "_next_poll", "events", "on", "telemetry", "traced")

    def __init__(
        self,
        telemetry: bool | Telemetry | None,
        *,
        store: str,
        clock: Callable[[], float],
        idle_timeout: float,
    ) -> None:
        self.events = Events(clock)
        self.telemetry: Tracing | None = resolve(telemetry, store)
        self._idle = idle_timeout
        self._next_poll = 0.0  # the first operation checks
        self.traced = self.on = False
        self.events.on_change(self._update)
        self._update()

    def _update(self) -> None:
        self.traced = self.telemetry is not None and self.telemetry.live
        self.on = self.traced or "renewed" in self.events.wanted

    def poll(self, *, now: bool = False) -> None:
        """Check the global providers again, at most once per :data:`POLL_SECONDS` (or ``now``)."""
        telemetry = self.telemetry
        if telemetry is None or not telemetry.pending:
            return
        clock = monotonic()
        if now or clock >= self._next_poll:
            self._next_poll = clock + POLL_SECONDS
            telemetry.refresh()
            self._update()

    def wraps(self) -> bool:
        """Whether the validate now starting is to be traced here (it is not traced yet)."""
        return self.traced and _NOTE.get() is None

    async def validate(
        self, validate: Callable[[object], Awaitable[Session | None]], token: object
    ) -> Session | None:
        """``validate(token)`` in a span, timed, its outcome from what :meth:`validated` saw."""
        assert self.telemetry is not None
        note = _Note()
        reset = _NOTE.set(note)
        try:
            return await self.telemetry.run("validate", validate(token), note.outcome)
        finally:
            _NOTE.reset(reset)

    def validated(
        self, record: Record | None, session: Session | None, now: float, *, cache_hit: bool = False
    ) -> None:
        """Called by validate (when :attr:`on`) with the record it read and what it returns.

        ``record`` is ``None`` when the store had none; ``cache_hit`` when the
        session came from the near cache without a lookup.
        """
        note = _NOTE.get()
        if note is not None:
            note.seen, note.record, note.now, note.cache_hit = True, record, now, cache_hit
        if (
            session is not None
            and record is not None
            and "renewed" in self.events.wanted
            and record.created_at < now
            and record.expires_at == min(now + self._idle, record.absolute_at)
            and not self.events.written_at(session.id, now)
        ):  # the expiry a renewal at this instant gives, and not written at this instant
            self.events.emit("renewed", session_id=session.id, user_id=session.user_id)

    def saw_stats(self, stats: Stats) -> None:
        """Keep the figures of a ``stats()`` call for the sessions gauge."""
        if self.telemetry is not None:
            self.telemetry.sessions = (stats.live, stats.expired)

    def tasks(self, stats: Callable[[], Awaitable[Stats]]) -> list[BackgroundTask]:
        """The background tasks: event delivery, and with telemetry its upkeep."""
        telemetry = self.telemetry
        if telemetry is None:
            return [self.events.run]

        async def upkeep(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            """Pick up providers configured later; call ``stats()`` for the gauge."""
            task_status.started()
            interval = telemetry.config.stats_interval
            stats_due = 0.0
            while True:
                self.poll(now=True)
                if interval is not None and telemetry.meters is not None:
                    if monotonic() >= stats_due:
                        stats_due = monotonic() + interval
                        try:
                            await stats()
                        except AsyncsessError as exc:
                            log.warning("session stats for telemetry failed: %s", exc)
                elif not telemetry.pending:
                    return  # everything records and no stats are due: nothing left to do
                await anyio.sleep(POLL_SECONDS if telemetry.pending else interval or POLL_SECONDS)

        return [self.events.run, upkeep]


class _Observed(Protocol):
    _observer: Observer


def observed(
    operation: str, *, miss: Outcome = "unknown"
) -> Callable[
    [Callable[Concatenate[S, P], Coroutine[Any, Any, R]]],
    Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
]:
    """Trace and measure a manager method as ``operation`` when an SDK records.

    Its outcome is ``miss`` when it returns ``None`` or ``False``, ``ok``
    otherwise, or the failure's (:func:`~asyncsess.observe.telemetry.failure`).
    """

    def outcome(result: object) -> Outcome:
        return miss if result is None or result is False else "ok"

    def decorate(
        method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
    ) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
        @functools.wraps(method)
        async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            observer = self._observer
            observer.poll()
            if not observer.traced:
                return await method(self, *args, **kwargs)
            assert observer.telemetry is not None
            return await observer.telemetry.run(operation, method(self, *args, **kwargs), outcome)

        return wrapper

    return decorate
