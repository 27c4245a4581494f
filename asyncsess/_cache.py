"""The decoded-session cache: sessions opened from records, by lookup key.

Every store goes through it, in process or not: a validate still asks the
store for the record every time, but a record byte-for-byte the same as the
one a session was opened from is not decrypted and parsed again. The session
handed out is deeply immutable (:mod:`asyncsess.session`), so the very same
object is handed out again, whatever its data's shape.

Bounded in entries and in bytes, evicting by "second chance" (CLOCK), an
approximation of least recently used that costs a hit no reordering: a hit
only marks its entry used; eviction takes the oldest entry not used since it
was last passed over, moving used ones to the back. An entry is counted as
twice its record's payload plus a fixed overhead, about what the payload and
the decoded data take together.
"""

from __future__ import annotations

from typing import Any

from .session import Session
from .stores.base import Record

__all__ = ["DecodeCache"]

_OVERHEAD = 512
# An entry is a list [record last seen, session opened from it, used since last passed over].
_RECORD, _SESSION, _USED = 0, 1, 2


def _cost(payload: bytes) -> int:
    return 2 * len(payload) + _OVERHEAD


class DecodeCache:
    """Lookup key -> [the record last seen, the session opened from it, used], oldest first."""

    __slots__ = ("entries", "hits", "max_bytes", "max_entries", "misses", "size")

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        #: Lookup key -> [record, session, used]; the validate hot path reads it directly.
        self.entries: dict[str, list[Any]] = {}
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, record: Record) -> Session | None:
        """The session opened from ``record``'s very bytes, or ``None`` (open it).

        Records are immutable: one equal to the record seen before in every
        field the session was opened from is a hit. A record that differs only
        in its sliding expiry (renewed) gives the kept session with the new
        expiry; any other difference is a miss. (The very record seen before,
        which an in-process store hands out again, is a hit too: the validate
        hot path checks that first, inline, with :attr:`entries`.)
        """
        entry = self.entries.get(record.key)
        if entry is None:
            self.misses += 1
            return None
        seen: Record = entry[_RECORD]
        if (
            seen.payload == record.payload
            and seen.user_ref == record.user_ref
            and seen.version == record.version
            and seen.created_at == record.created_at
            and seen.absolute_at == record.absolute_at
        ):
            session: Session = entry[_SESSION]
            if session.expires != record.expires_at:  # renewed
                session = Session(
                    session.id,
                    session.user_id,
                    session.data,
                    session.version,
                    session.created,
                    record.expires_at,
                    session.absolute_expires,
                )
            entry[:] = (record, session, True)
            self.hits += 1
            return session
        self.drop(record.key)
        self.misses += 1
        return None

    def put(self, record: Record, session: Session) -> None:
        """Keep ``session``, evicting (second chance) to stay within both bounds."""
        cost = _cost(record.payload)
        if not self.max_entries or cost > self.max_bytes:
            return
        self.drop(record.key)
        entries = self.entries
        while entries and (len(entries) >= self.max_entries or self.size + cost > self.max_bytes):
            oldest = next(iter(entries))
            entry = entries[oldest]
            if entry[_USED]:  # a second chance: to the back, unmarked
                entry[_USED] = False
                del entries[oldest]
                entries[oldest] = entry
            else:
                self.drop(oldest)
        entries[record.key] = [record, session, False]
        self.size += cost

    def drop(self, key: str) -> None:
        """Forget the session of ``key``, if kept."""
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.size -= _cost(entry[_RECORD].payload)

    def clear(self) -> None:
        """Forget every session."""
        self.entries.clear()
        self.size = 0
