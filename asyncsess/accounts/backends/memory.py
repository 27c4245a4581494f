"""``memory://`` users: a dict in this process, lost on exit (tests, demos, single process).

No method awaits between its check and its write, so each call is atomic on
the event loop: of two concurrent ``insert`` calls for one username, exactly
one succeeds.
"""

from __future__ import annotations

from typing import Any, Self

from ...exceptions import ConfigurationError, UserExists
from ..user import UserRecord
from . import UserStore

__all__ = ["MemoryUsers"]


class MemoryUsers(UserStore):
    """Users in two dicts: by normalised username and by id."""

    def __init__(self) -> None:
        self._by_name: dict[str, UserRecord] = {}
        self._by_id: dict[str, UserRecord] = {}

    @classmethod
    def create(cls, target: object, **options: Any) -> Self:
        """Build an empty backend (``memory://`` or a MemoryStore: nothing is shared)."""
        if options:
            raise ConfigurationError(f"memory accounts take no options, not {sorted(options)}")
        return cls()

    async def insert(self, record: UserRecord) -> None:
        """Add a user unless the username is taken."""
        if record.username in self._by_name:
            raise UserExists("a user with this username exists already")
        self._by_name[record.username] = self._by_id[record.id] = record

    async def get(self, username: str) -> UserRecord | None:
        """Return the user called ``username``."""
        return self._by_name.get(username)

    async def get_by_id(self, user_id: str) -> UserRecord | None:
        """Return the user with this id."""
        return self._by_id.get(user_id)

    async def set_hash(self, user_id: str, old: str, new: str) -> bool:
        """Swap the hash if it is still ``old``."""
        record = self._by_id.get(user_id)
        if record is None or record.password_hash != old:
            return False
        updated = UserRecord(record.id, record.username, new, record.created_at)
        self._by_name[record.username] = self._by_id[record.id] = updated
        return True

    async def delete(self, user_id: str) -> bool:
        """Delete the user with this id."""
        record = self._by_id.pop(user_id, None)
        if record is None:
            return False
        del self._by_name[record.username]
        return True

    async def count(self) -> int:
        """Return the number of users."""
        return len(self._by_id)

    async def wipe(self) -> int:
        """Forget every user."""
        count = len(self._by_id)
        self._by_name.clear()
        self._by_id.clear()
        return count
