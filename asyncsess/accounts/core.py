""":class:`Accounts`: users with argon2id passwords on memory, SQL or MongoDB."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import anyio

from ..exceptions import AccountError, StoreError, UserExists
from ..stores.base import Store
from .backends import UserStore, open_users
from .hashing import PasswordHasher
from .user import User, UserRecord, normalize_password, normalize_username

__all__ = ["Accounts", "UserHook"]

log = logging.getLogger("asyncsess.accounts")

#: An async callback given the user concerned (set by the manager to revoke sessions).
UserHook = Callable[[User], Awaitable[object]]


def _user(record: UserRecord) -> User:
    return User(record.id, record.username, datetime.fromtimestamp(record.created_at, UTC))


class Accounts:
    """Create, find, authenticate, re-password and delete users.

    ``store`` is ``memory://``, an SQLAlchemy async URL
    (``sqlite+aiosqlite:///app.db``, ``postgresql+asyncpg://...``), a
    ``mongodb://`` URL, or a session store or handle whose database to share:
    a ``SQLStore`` or ``AsyncEngine`` (table ``asyncsess_users``), a
    ``MongoStore`` or async Mongo database (collection ``asyncsess_users``).
    ``options`` go to the backend (``table=``/``collection=``, ``timeout=``, and
    engine or client options with a URL). Only what was built from a URL is
    closed by :meth:`aclose`.

    Bad input never reaches the database: :meth:`create_user` raises
    :class:`~asyncsess.InvalidUsername` / :class:`~asyncsess.InvalidPassword`
    (see :mod:`asyncsess.accounts.user` for the rules), and the other
    methods return ``None``/``False`` for a username or password that no
    user can have, as they do for a wrong one. :meth:`change_password` raises
    :class:`~asyncsess.InvalidPassword` for an unacceptable *new* password.

    ``on_password_change`` and ``on_delete`` are awaited with the user after a
    successful :meth:`change_password` / :meth:`delete_user` (a
    :class:`~asyncsess.SessionManager` sets them to revoke the user's sessions).
    """

    def __init__(
        self,
        store: str | Store | Any,
        *,
        hasher: PasswordHasher | None = None,
        **options: Any,
    ) -> None:
        self.users: UserStore = open_users(store, **options)
        self.hasher = hasher if hasher is not None else PasswordHasher()
        self.on_password_change: UserHook | None = None
        self.on_delete: UserHook | None = None
        self._opened = False
        self._open_lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"Accounts({type(self.users).__name__}, {self.hasher!r})"

    async def _ready(self) -> None:
        if self._opened:
            return
        async with self._open_lock:
            if not self._opened:
                await self.users.open()
                await self.hasher.prepare()
                self._opened = True

    async def create_user(self, username: str, password: str) -> User:
        """Create a user and return it.

        Raises :class:`~asyncsess.InvalidUsername`, :class:`~asyncsess.InvalidPassword`
        or, if the normalised username is taken, :class:`~asyncsess.UserExists`.
        """
        name = normalize_username(username)
        plain = normalize_password(password)
        await self._ready()
        if await self.users.get(name) is not None:  # spare the hash; the insert re-checks
            raise UserExists("a user with this username exists already")
        encoded = await self.hasher.hash(plain)
        record = UserRecord(secrets.token_urlsafe(16), name, encoded, time.time())
        await self.users.insert(record)
        return _user(record)

    async def get_user(self, username: object) -> User | None:
        """Return the user with this username (normalised first), or ``None``."""
        try:
            name = normalize_username(username)
        except AccountError:
            return None
        await self._ready()
        record = await self.users.get(name)
        return None if record is None else _user(record)

    async def get_user_by_id(self, user_id: object) -> User | None:
        """Return the user whose :attr:`User.id` is ``user_id``, or ``None``."""
        if not isinstance(user_id, str) or not 0 < len(user_id) <= 64:
            return None  # no user has it (ids are at most 64 characters)
        await self._ready()
        record = await self.users.get_by_id(user_id)
        return None if record is None else _user(record)

    async def _check(self, username: object, password: object) -> tuple[UserRecord, str] | None:
        """The user's record and normalised password if they match; the same work if no user."""
        try:
            name = normalize_username(username)
            plain = normalize_password(password)
        except AccountError:
            return None  # no user can have it: nothing to hide, nothing to hash
        await self._ready()
        record = await self.users.get(name)
        if record is None:
            await self.hasher.dummy_verify(plain)
            return None
        if not await self.hasher.verify(record.password_hash, plain):
            return None
        return record, plain

    async def authenticate(self, username: object, password: object) -> User | None:
        """Return the user if ``password`` is theirs, else ``None`` (never raises for input).

        An unknown username costs one verification against a dummy hash, as a
        wrong password does. On success, a hash made with other parameters than
        the hasher's is replaced by a new one.
        """
        found = await self._check(username, password)
        if found is None:
            return None
        record, plain = found
        if self.hasher.needs_rehash(record.password_hash):
            try:
                encoded = await self.hasher.hash(plain)
                await self.users.set_hash(record.id, record.password_hash, encoded)
            except StoreError as exc:  # the login is still good; retried on the next one
                log.warning("could not store the rehashed password of user %s: %s", record.id, exc)
        return _user(record)

    async def change_password(self, username: object, old: object, new: str) -> bool:
        """Set a new password if ``old`` is the current one; ``False`` otherwise.

        Raises :class:`~asyncsess.InvalidPassword` if ``new`` is unacceptable
        (before anything is checked or written). ``False`` also when a
        concurrent change won. Then awaits ``on_password_change(user)``.
        """
        plain = normalize_password(new)
        found = await self._check(username, old)
        if found is None:
            return False
        record = found[0]
        encoded = await self.hasher.hash(plain)
        if not await self.users.set_hash(record.id, record.password_hash, encoded):
            return False
        if self.on_password_change is not None:
            await self.on_password_change(_user(record))
        return True

    async def delete_user(self, username: object) -> bool:
        """Delete the user; ``True`` if this call deleted it. Then awaits ``on_delete(user)``."""
        try:
            name = normalize_username(username)
        except AccountError:
            return False
        await self._ready()
        record = await self.users.get(name)
        if record is None or not await self.users.delete(record.id):
            return False
        if self.on_delete is not None:
            await self.on_delete(_user(record))
        return True

    async def count_users(self) -> int:
        """Return how many users there are."""
        await self._ready()
        return await self.users.count()

    async def wipe(self) -> int:
        """Delete every user (without calling ``on_delete``); return the count."""
        await self._ready()
        return await self.users.wipe()

    async def aclose(self) -> None:
        """Close the connection this object opened from a URL (never one it was given)."""
        await self.users.aclose()
        self._opened = False

    async def __aenter__(self) -> Self:
        await self._ready()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
