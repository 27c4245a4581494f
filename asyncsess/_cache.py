"""The decoded-session cache: sessions opened from records, by lookup key.

A manager over a persistent store still reads the store on every validate;
this cache only saves opening (decrypting, parsing) a record whose bytes are
the ones a session was opened from. Bounded in entries and in bytes (oldest
out first); an entry is counted as twice its record's payload plus a fixed
overhead, about what the payload and the decoded data take together.
"""

from __future__ import annotations

from .session import Session

__all__ = ["DecodeCache"]

_OVERHEAD = 512


def _cost(payload: bytes) -> int:
    return 2 * len(payload) + _OVERHEAD


class DecodeCache:
    """Lookup key -> (payload, user_ref, the session opened from them).

    ``entries`` is read directly on the validate path; every change goes
    through :meth:`put`, :meth:`drop` and :meth:`clear`, or replaces an entry
    with one of the same payload (the same cost).
    """

    __slots__ = ("entries", "max_bytes", "max_entries", "size")

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.entries: dict[str, tuple[bytes, str, Session]] = {}
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.size = 0

    def __len__(self) -> int:
        return len(self.entries)

    def put(self, key: str, payload: bytes, user_ref: str, session: Session) -> None:
        """Keep ``session``, evicting the oldest entries to stay within both bounds."""
        cost = _cost(payload)
        if not self.max_entries or cost > self.max_bytes:
            return
        self.drop(key)
        entries = self.entries
        while entries and (len(entries) >= self.max_entries or self.size + cost > self.max_bytes):
            self.drop(next(iter(entries)))
        entries[key] = (payload, user_ref, session)
        self.size += cost

    def drop(self, key: str) -> None:
        """Forget the session of ``key``, if kept."""
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.size -= _cost(entry[0])

    def clear(self) -> None:
        """Forget every session."""
        self.entries.clear()
        self.size = 0
