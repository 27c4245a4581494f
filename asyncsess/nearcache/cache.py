"""The near cache itself: live sessions by lookup key, served while they cannot be stale.

An entry is served only while three things hold: it was read from the store
less than ``ttl`` seconds ago (time read *before* the read began), the
invalidation channel is known healthy (a heartbeat came back recently), and
the record is live and not due for renewal at the caller's clock. Anything
else is a miss: the manager reads the store as it would without the cache.

The race of a read and a write: a read begins with a :meth:`NearCache.ticket`
(the invalidation sequence number and the time); every invalidation, from
the channel or from this manager's own writes, appends its key (or its user
reference, or "everything") to a ring of the last :data:`RING` and bumps the
sequence. :meth:`NearCache.put` keeps the record only if nothing in the ring
since the ticket names it: a read in flight when its key was invalidated is
handed out (it was current when the store answered) but not kept. A ticket
older than the ring, or from before the channel was last lost or subscribed,
is refused whole. Nothing here awaits, so on the event loop each call is atomic.

Refresh ahead: an entry served after half its ``ttl`` is queued (:meth:`NearCache.due`)
for the channel's refresher, which reads such records again in batches, off the
callers' path, under a ticket of its own (:meth:`NearCache.refreshed`); one
found unchanged is served for a new ``ttl`` from that read, one changed is
dropped. So a session in use is never missed for its age alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ..session import Session
from ..stores.base import Record

__all__ = ["RING", "NearCache", "Ticket"]

#: Invalidations remembered for reads in flight; a read that outlives more is not kept.
RING = 1024
_MASK = RING - 1
#: A validate loop that answers from memory lets the event loop run this often (seconds),
#: so that the channel's reader is never starved of invalidations.
PUMP_EVERY = 0.002
#: The fraction of ``ttl`` after which an entry served is read again in the background.
REFRESH_AT = 0.5
#: (sequence number, monotonic time) taken when a store read begins.
Ticket = tuple[int, float]
# record, session opened from it, serve until, refresh once served after (monotonic times)
_Entry = tuple[Record, Session, float, float]
_NEVER = float("inf")
_monotonic = time.monotonic


class NearCache:
    """Up to ``size`` live sessions, each served for at most ``ttl`` seconds after its read.

    ``user_refs(user_id)`` gives the store references of a user (one per
    secret), for this manager's own per-user writes.
    """

    __slots__ = (
        "_due",
        "_entries",
        "_pump_at",
        "_ring",
        "_users",
        "healthy_until",
        "hits",
        "invalidations",
        "misses",
        "prepare",
        "resets",
        "run",
        "seq",
        "size",
        "starved",
        "ttl",
        "user_refs",
    )

    def __init__(self, size: int, ttl: float, user_refs: Callable[[str], Iterable[str]]) -> None:
        self.size, self.ttl, self.user_refs = size, ttl, user_refs
        self._entries: dict[str, _Entry] = {}
        self._users: dict[str, set[str]] = {}  # user reference -> keys kept
        self._due: dict[str, None] = {}  # keys to read again (an ordered set)
        self._ring: list[object] = [None] * RING
        #: Invalidations so far (plus a ring's worth at each loss and subscription).
        self.seq = RING
        #: Entries are served until this monotonic time: the channel's heartbeat moves it.
        self.healthy_until = 0.0
        self.hits = self.misses = self.invalidations = self.resets = 0
        #: Set by :meth:`get` when the caller should let the event loop run (:meth:`pump`).
        self.starved = False
        self._pump_at = 0.0
        #: The channel's task for the manager's task group (``task_status`` by keyword).
        self.run: Callable[..., Coroutine[Any, Any, None]] | None = None
        #: What the manager awaits once its store is open (the channel's set-up check).
        self.prepare: Callable[[], Awaitable[None]] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    # -- the hot path ---------------------------------------------------------

    def get(self, key: str, now: float, renew_at: float) -> Session | None:
        """The session kept for ``key`` if it may be served at clock ``now``, else ``None``.

        Served only if fresh (read within ``ttl``), the channel is healthy, the
        record is live at ``now`` and not due for renewal (its expiry at or after
        ``renew_at``: a due session goes to the store for its one write).
        """
        entry = self._entries.get(key)
        if entry is not None:
            record, session, until, refresh = entry
            m = _monotonic()
            if (
                m < until
                and m < self.healthy_until
                and record.expires_at >= renew_at
                and now < record.expires_at
                and now < record.absolute_at
            ):
                self.hits += 1
                if m >= refresh:  # in use and half its ttl old: read it again, off this path
                    self._entries[key] = (record, session, until, _NEVER)
                    self._due[key] = None
                if m >= self._pump_at:
                    self._pump_at = m + PUMP_EVERY
                    self.starved = True
                return session
        self.misses += 1
        return None

    async def pump(self) -> None:
        """Let the event loop run once (the channel's reader with it): see :attr:`starved`."""
        self.starved = False
        await asyncio.sleep(0)

    def ticket(self) -> Ticket:
        """Taken before a store read: what :meth:`put` checks the read against."""
        return self.seq, _monotonic()

    def put(self, ticket: Ticket, record: Record, session: Session) -> None:
        """Keep ``session`` (opened from ``record``, read under ``ticket``) unless stale."""
        seq, read_at = ticket
        if not self.size or _monotonic() >= self.healthy_until:
            return
        key, ref = record.key, record.user_ref
        if self._tainted(seq, key, ref):
            return
        entries = self._entries
        if key in entries:
            self._forget(key)
        elif len(entries) >= self.size:
            self._forget(next(iter(entries)))  # the oldest read: the first to go stale anyway
        entries[key] = (record, session, read_at + self.ttl, read_at + self.ttl * REFRESH_AT)
        if ref:
            self._users.setdefault(ref, set()).add(key)

    def _tainted(self, seq: int, key: str, ref: str) -> bool:
        """Whether an invalidation since ``seq`` may concern ``key`` (of user ``ref``)."""
        if seq == self.seq:
            return False
        if self.seq - seq >= RING:
            return True  # a reset, or more invalidations than remembered
        ring, user = self._ring, ("u", ref)
        for i in range(seq, self.seq):
            seen = ring[i & _MASK]
            if seen == key or (ref and seen == user):
                return True
        return False

    # -- refresh ahead ----------------------------------------------------------

    def due(self, most: int) -> list[str]:
        """Up to ``most`` keys queued to be read again (taken off the queue)."""
        keys: list[str] = []
        for key in self._due:
            keys.append(key)
            if len(keys) == most:
                break
        for key in keys:
            del self._due[key]
        return keys

    def refreshed(self, ticket: Ticket, keys: list[str], records: list[Record | None]) -> None:
        """The records of ``keys`` read again under ``ticket``: an entry whose record is
        unchanged is served for a new ``ttl`` from that read; a changed one is dropped."""
        seq, read_at = ticket
        healthy = _monotonic() < self.healthy_until
        for key, record in zip(keys, records, strict=True):
            entry = self._entries.get(key)
            if entry is None:
                continue
            if not healthy or record != entry[0] or self._tainted(seq, key, entry[0].user_ref):
                self._forget(key)
            else:
                until, refresh = read_at + self.ttl, read_at + self.ttl * REFRESH_AT
                del self._entries[key]  # to the back: entries stay in the order of their reads
                self._entries[key] = (entry[0], entry[1], until, refresh)

    # -- invalidation ---------------------------------------------------------

    def _forget(self, key: str) -> None:
        self._due.pop(key, None)
        entry = self._entries.pop(key, None)
        if entry is not None and (ref := entry[0].user_ref):
            keys = self._users.get(ref)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._users[ref]

    def _note(self, what: object) -> None:
        self._ring[self.seq & _MASK] = what
        self.seq += 1

    def invalidate(self, key: str) -> None:
        """Forget ``key`` and refuse every read of it in flight (this manager wrote it)."""
        self._note(key)
        self._forget(key)

    def received(self, key: str) -> None:
        """The channel says ``key`` changed: as :meth:`invalidate`, counted."""
        self.invalidations += 1
        self._note(key)
        self._forget(key)

    def invalidate_user(self, user_id: str) -> None:
        """Forget every session of ``user_id`` and refuse its reads in flight."""
        for ref in self.user_refs(user_id):
            self._note(("u", ref))
            for key in list(self._users.get(ref, ())):
                self._forget(key)

    @contextmanager
    def writing(self, key: str | None = None, user: str | None = None) -> Iterator[None]:
        """Around one of this manager's writes: once it is done (or failed), forget ``key``
        and ``user``'s sessions, so that this process's next validate reads the store."""
        try:
            yield
        finally:
            if key is not None:
                self.invalidate(key)
            if user is not None:
                self.invalidate_user(user)

    def clear(self) -> None:
        """Forget everything and refuse every read in flight."""
        self._entries.clear()
        self._users.clear()
        self._due.clear()
        self.seq += RING

    # -- the channel's state --------------------------------------------------

    def subscribed(self) -> None:
        """The channel listens from now on: reads that began before may have missed a change."""
        self.clear()

    def healthy(self, until: float) -> None:
        """A heartbeat came back: entries may be served until monotonic time ``until``."""
        self.healthy_until = until

    def lost(self) -> None:
        """The channel is gone: forget everything and serve nothing until it is back."""
        if self.healthy_until:
            self.resets += 1
        self.healthy_until = 0.0
        self.clear()
