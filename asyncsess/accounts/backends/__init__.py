"""User persistence behind :class:`~asyncsess.accounts.Accounts`: one module per backend.

A backend stores :class:`~asyncsess.accounts.user.UserRecord` rows keyed by id
with a unique normalised username, and holds no policy (no hashing, no
validation). Backends are imported lazily by :func:`open_users`, so importing
:mod:`asyncsess.accounts` imports no database driver.
"""

from __future__ import annotations

import abc
import importlib
from typing import Any

from ...exceptions import ConfigurationError, MissingDependency
from ...stores._registry import store_class
from ...stores.base import Store
from ..user import UserRecord

__all__ = ["UserStore", "open_users"]


class UserStore(abc.ABC):
    """The internal protocol of a user backend.

    Every method may raise :class:`~asyncsess.StoreUnavailable` or
    :class:`~asyncsess.StoreError` with the driver's error chained.
    """

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Create the table, collection or indexes if missing; called once before first use."""

    @abc.abstractmethod
    async def insert(self, record: UserRecord) -> None:
        """Add a user; raise :class:`~asyncsess.UserExists` if the username is taken."""

    @abc.abstractmethod
    async def get(self, username: str) -> UserRecord | None:
        """Return the user with this normalised username, or ``None``."""

    @abc.abstractmethod
    async def get_by_id(self, user_id: str) -> UserRecord | None:
        """Return the user with this id, or ``None``."""

    @abc.abstractmethod
    async def set_hash(self, user_id: str, old: str, new: str) -> bool:
        """Replace the user's hash by ``new`` only if it is still ``old`` (compare-and-set)."""

    @abc.abstractmethod
    async def delete(self, user_id: str) -> bool:
        """Delete the user; ``True`` if this call deleted it."""

    @abc.abstractmethod
    async def count(self) -> int:
        """Return how many users there are."""

    @abc.abstractmethod
    async def wipe(self) -> int:
        """Delete every user; return the count."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what this backend opened itself (never an engine or client it was given)."""


# kind -> "module:Class", the extra that installs its driver
_BACKENDS: dict[str, tuple[str, str | None]] = {
    "memory": ("asyncsess.accounts.backends.memory:MemoryUsers", None),
    "sql": ("asyncsess.accounts.backends.sql:SQLUsers", "sql"),
    "mongo": ("asyncsess.accounts.backends.mongo:MongoUsers", "mongo"),
}
_KINDS = {
    "MemoryStore": "memory",
    "SQLStore": "sql",
    "MongoStore": "mongo",
    "AsyncEngine": "sql",
    "AsyncDatabase": "mongo",  # PyMongo's async API
}
_HELP = (
    "Accounts need memory://, an SQLAlchemy async URL (sqlite+aiosqlite:///app.db, "
    "postgresql+asyncpg://...), a mongodb:// URL, or a SQLStore, MongoStore, MemoryStore, "
    "AsyncEngine or async Mongo database"
)


def _kind(target: object) -> str:
    if isinstance(target, str):
        cls = store_class(target)  # raises for an unknown scheme or a missing driver
        kind = _KINDS.get(cls.__name__)
    else:
        kind = next(
            (_KINDS[c.__name__] for c in type(target).__mro__ if c.__name__ in _KINDS), None
        )
    if kind is None:
        what = repr(target) if isinstance(target, str) else type(target).__name__
        raise ConfigurationError(f"{_HELP}, not {what}")
    return kind


def open_users(target: str | Store | Any, **options: Any) -> UserStore:
    """Build the user backend for a URL, a session store (sharing its database) or a handle."""
    kind = _kind(target)
    module_name, _, class_name = _BACKENDS[kind][0].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # pragma: no cover - store_class checks drivers first
        raise MissingDependency(
            f'accounts on {kind} need {exc.name!r}: pip install "asyncsess[{_BACKENDS[kind][1]}]"'
        ) from exc
    users: UserStore = getattr(module, class_name).create(target, **options)
    return users
