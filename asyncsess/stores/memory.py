"""``memory://``: sessions in this process's memory, lost on exit.

Every method runs without awaiting anything in between, so each call is
atomic on the event loop. Nothing here is at rest, so the manager does not
seal these records.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Self

from .base import Record, RecordExists, Renewal, Store

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    """A dict of records plus a per-user index."""

    persistent = False

    def __init__(self) -> None:
        self._records: dict[str, Record] = {}
        self._users: dict[str, set[str]] = {}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build an empty store; ``memory://`` takes no options."""
        return cls(**options)

    def __len__(self) -> int:
        return len(self._records)

    async def get(self, key: str, *, renew: Renewal | None = None) -> Record | None:
        """Return the record under ``key``, renewing it if due."""
        record = self._records.get(key)
        if record is not None and renew is not None:
            renewed = renew.apply(record)
            if renewed is not None:
                self._records[key] = record = renewed
        return record

    def _index(self, record: Record) -> None:
        if record.user_ref:
            self._users.setdefault(record.user_ref, set()).add(record.key)

    def _unindex(self, record: Record) -> None:
        keys = self._users.get(record.user_ref)
        if keys is not None:
            keys.discard(record.key)
            if not keys:
                del self._users[record.user_ref]

    async def insert(self, record: Record) -> None:
        """Store a new record (in its user's index unless it has no user).

        :class:`RecordExists` if the key is taken.
        """
        if record.key in self._records:
            raise RecordExists("a session record with this key exists already")
        self._records[record.key] = record
        self._index(record)

    async def replace(self, record: Record, *, expected_version: int) -> bool:
        """Overwrite ``record.key`` if it is at ``expected_version`` (moving its index entry)."""
        current = self._records.get(record.key)
        if current is None or current.version != expected_version:
            return False
        self._records[record.key] = record
        if current.user_ref != record.user_ref:
            self._unindex(current)
            self._index(record)
        return True

    def _forget(self, key: str, expected_version: int | None = None) -> bool:
        record = self._records.get(key)
        if record is None or expected_version not in (None, record.version):
            return False
        del self._records[key]
        self._unindex(record)
        return True

    async def delete(self, key: str, *, expected_version: int | None = None) -> bool:
        """Delete one record (if it is at ``expected_version``, when given)."""
        return self._forget(key, expected_version)

    async def delete_user(self, user_ref: str, *, keep: str | None = None) -> int:
        """Delete every record of ``user_ref`` but ``keep``."""
        keys = [k for k in self._users.get(user_ref, ()) if k != keep]
        return sum(self._forget(k) for k in keys)

    async def list_user(self, user_ref: str) -> list[Record]:
        """Return the records of ``user_ref``."""
        return [self._records[k] for k in self._users.get(user_ref, ())]

    async def sweep(self, now: float, *, limit: int) -> int:
        """Delete at most ``limit`` expired records."""
        expired = []
        for key, record in self._records.items():
            if record.expires_at <= now:
                expired.append(key)
                if len(expired) >= limit:
                    break
        return sum(self._forget(k) for k in expired)

    async def count(self, now: float) -> tuple[int, int]:
        """Count live and expired records."""
        live = sum(r.expires_at > now for r in self._records.values())
        return live, len(self._records) - live

    async def scan(self, batch: int) -> AsyncGenerator[list[Record]]:
        """Yield the records held when the scan started, ``batch`` at a time."""
        records = list(self._records.values())
        for start in range(0, len(records), batch):
            yield records[start : start + batch]

    async def wipe(self) -> int:
        """Delete everything."""
        count = len(self._records)
        self._records.clear()
        self._users.clear()
        return count
