"""The decoded-session cache: sessions opened from records, by lookup key.

Every store goes through it, in process or not: a validate still asks the
store for the record every time, but a record byte-for-byte the same as the
one a session was opened from is not decrypted and parsed again. The session
handed out is deeply immutable (:mod:`asyncsess.session`), so the very same
object is handed out again, whatever its data's shape.

Least recently used out first, bounded in entries and in bytes; an entry is
counted as twice its record's payload plus a fixed overhead, about what the
payload and the decoded data take together.
"""

from __future__ import annotations

from .session import Session
from .stores.base import Record

__all__ = ["DecodeCache"]

_OVERHEAD = 512


def _cost(payload: bytes) -> int:
    return 2 * len(payload) + _OVERHEAD


class DecodeCache:
    """Lookup key -> (the record last seen, the session opened from it), in LRU order."""

    __slots__ = ("_entries", "hits", "max_bytes", "max_entries", "misses", "size")

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._entries: dict[str, tuple[Record, Session]] = {}
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, record: Record) -> Session | None:
        """The session opened from ``record``'s very bytes, or ``None`` (open it).

        Records are immutable: the very record seen before (an in-process store
        hands it out again) or one equal to it in every field the session was
        opened from is a hit. A record that differs only in its sliding expiry
        (renewed) gives the kept session with the new expiry; any other
        difference is a miss.
        """
        entry = self._entries.pop(record.key, None)
        if entry is not None:
            seen, session = entry
            if seen is record:
                self._entries[record.key] = entry  # now the most recently used
                self.hits += 1
                return session
            if (
                seen.payload == record.payload
                and seen.user_ref == record.user_ref
                and seen.version == record.version
                and seen.created_at == record.created_at
                and seen.absolute_at == record.absolute_at
            ):
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
                self._entries[record.key] = (record, session)
                self.hits += 1
                return session
            self.size -= _cost(seen.payload)
        self.misses += 1
        return None

    def put(self, record: Record, session: Session) -> None:
        """Keep ``session``, evicting the least recently used to stay within both bounds."""
        cost = _cost(record.payload)
        if not self.max_entries or cost > self.max_bytes:
            return
        self.drop(record.key)
        entries = self._entries
        while entries and (len(entries) >= self.max_entries or self.size + cost > self.max_bytes):
            self.drop(next(iter(entries)))
        entries[record.key] = (record, session)
        self.size += cost

    def drop(self, key: str) -> None:
        """Forget the session of ``key``, if kept."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size -= _cost(entry[0].payload)

    def clear(self) -> None:
        """Forget every session."""
        self._entries.clear()
        self.size = 0
