""":class:`Accounts`: users with argon2id passwords on memory, SQL or MongoDB."""

from __future__ import annotations

import inspect
import logging
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self

import anyio

from ..exceptions import AccountError, ConfigurationError, InvalidPassword, StoreError, UserExists
from ..stores.base import Store
from .backends import UserStore, open_users
from .hashing import PasswordHasher
from .throttle import LoginLimits
from .user import (
    MIN_PASSWORD,
    User,
    UserRecord,
    check_new_password,
    normalize_password,
    normalize_username,
)

__all__ = ["AccountChange", "Accounts", "PasswordCheck", "UserHook"]

log = logging.getLogger("asyncsess.accounts")

#: An async callback given the user concerned.
UserHook = Callable[[User], Awaitable[object]]
#: Awaited with a new password (normalised); ``False`` refuses it (e.g. found in a breach).
PasswordCheck = Callable[[str], Awaitable[bool]]
#: What :meth:`Accounts.subscribe` hooks can be told of.
AccountChange = Literal["password_changed", "user_deleted"]
_CHANGES: frozenset[AccountChange] = frozenset({"password_changed", "user_deleted"})


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

    A new password needs ``min_password_length`` characters (default 12, ASVS
    2.1.1), must not be the username, and must pass ``password_check`` if
    given (an async callable returning ``False`` to refuse it, e.g. a
    breached-password lookup: ASVS 2.1.7).

    ``limits`` (default :class:`~asyncsess.accounts.LoginLimits`: 100 failed
    attempts per username an hour, 1000 per client) throttle
    :meth:`authenticate`, :meth:`change_password` and the manager's login
    alike; see :mod:`asyncsess.accounts.throttle`.

    ``on_password_change`` and ``on_delete`` are the app's own hooks, awaited
    with the user after a successful :meth:`change_password` /
    :meth:`delete_user`. Every :class:`~asyncsess.SessionManager` given these
    accounts :meth:`subscribe` s besides, to end the user's sessions in its
    store; neither replaces the other.
    """

    def __init__(
        self,
        store: str | Store | Any,
        *,
        hasher: PasswordHasher | None = None,
        limits: LoginLimits | None = None,
        min_password_length: int = MIN_PASSWORD,
        password_check: PasswordCheck | None = None,
        **options: Any,
    ) -> None:
        if type(min_password_length) is not int or min_password_length < 1:
            raise ConfigurationError(
                f"min_password_length must be an int of at least 1, not {min_password_length!r}"
            )
        if limits is not None and not isinstance(limits, LoginLimits):
            raise ConfigurationError(f"limits must be a LoginLimits, not {limits!r}")
        self.users: UserStore = open_users(store, **options)
        self.hasher = hasher if hasher is not None else PasswordHasher()
        self.limits = limits if limits is not None else LoginLimits()
        self.min_password_length = min_password_length
        self.password_check = password_check
        self.on_password_change: UserHook | None = None
        self.on_delete: UserHook | None = None
        self._subscribers: list[tuple[Callable[[], UserHook | None], frozenset[AccountChange]]] = []
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

    def subscribe(self, hook: UserHook, *, on: Collection[AccountChange] = _CHANGES) -> None:
        """Also await ``hook(user)`` after every password change and deletion (or those in ``on``).

        Subscribers run before the app's ``on_password_change`` / ``on_delete``;
        a bound method is held weakly (a manager that is gone drops out). Each
        hook runs even if an earlier one raised; the first error is raised after.
        """
        changes = frozenset(on)
        if not changes <= _CHANGES:
            raise ValueError(f"on must name some of {sorted(_CHANGES)}, not {sorted(changes)}")
        if inspect.ismethod(hook):
            self._subscribers.append((weakref.WeakMethod(hook), changes))
        else:
            self._subscribers.append(((lambda: hook), changes))

    def unsubscribe(self, hook: UserHook) -> bool:
        """Stop awaiting ``hook`` (as given to :meth:`subscribe`); ``True`` if it was there."""
        before = len(self._subscribers)
        self._subscribers = [sub for sub in self._subscribers if sub[0]() not in (hook, None)]
        return len(self._subscribers) < before

    async def _notify(self, user: User, own: UserHook | None, change: AccountChange) -> None:
        hooks = [
            hook for ref, on in self._subscribers if change in on and (hook := ref()) is not None
        ]
        self._subscribers = [sub for sub in self._subscribers if sub[0]() is not None]
        error: Exception | None = None
        for hook in [*hooks, own] if own is not None else hooks:
            try:
                await hook(user)
            except Exception as exc:  # noqa: BLE001 - every hook runs; the first error follows
                log.warning("a hook for user %s failed: %r", user.id, exc)
                error = error or exc
        if error is not None:
            raise error

    async def _new_password(self, name: str, password: object) -> str:
        """The normalised new password, or :class:`~asyncsess.InvalidPassword`."""
        plain = normalize_password(password)
        check_new_password(plain, name, self.min_password_length)
        if self.password_check is not None and not await self.password_check(plain):
            raise InvalidPassword(
                "this password is not allowed (it is known from a data breach or otherwise "
                "refused); choose another"
            )
        return plain

    async def create_user(self, username: str, password: str) -> User:
        """Create a user and return it.

        Raises :class:`~asyncsess.InvalidUsername`, :class:`~asyncsess.InvalidPassword`
        or, if the normalised username is taken, :class:`~asyncsess.UserExists`;
        :class:`~asyncsess.LoginThrottled` (``"busy"``) when the hasher's queue is full.
        """
        name = normalize_username(username)
        plain = await self._new_password(name, password)
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

    async def _check(self, name: str, plain: str) -> tuple[UserRecord, str] | None:
        """The user's record and normalised password if they match; the same work if no user."""
        await self._ready()
        record = await self.users.get(name)
        if record is None:
            await self.hasher.dummy_verify(plain)
            return None
        if not await self.hasher.verify(record.password_hash, plain):
            return None
        return record, plain

    async def authenticate(
        self, username: object, password: object, *, client: str | None = None
    ) -> User | None:
        """Return the user if ``password`` is theirs, else ``None`` (never raises for input).

        Throttled by :attr:`limits` (per username, and per ``client`` address if
        given): :class:`~asyncsess.LoginThrottled` when over a limit. An unknown
        username costs one verification against a dummy hash, as a wrong
        password does. On success, a hash made with other parameters than the
        hasher's is replaced by a new one.
        """
        return await self._throttled(username, password, client, None, None)

    async def _throttled(
        self,
        username: object,
        password: object,
        client: str | None,
        device: str | None,
        limits: LoginLimits | None,
    ) -> User | None:
        """:meth:`authenticate` for :func:`~asyncsess.accounts.login.login`.

        ``device`` is a verified device id; ``limits`` replaces :attr:`limits`.
        """
        try:
            name = normalize_username(username)
            plain = normalize_password(password)
        except AccountError:
            return None  # no user can have it: nothing to hide, nothing to hash, nothing to count
        return await (limits or self.limits).guard(
            name, lambda: self._authenticate(name, plain), client=client, device=device
        )

    async def _authenticate(self, name: str, plain: str) -> User | None:
        found = await self._check(name, plain)
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

    async def change_password(
        self, username: object, old: object, new: str, *, client: str | None = None
    ) -> bool:
        """Set a new password if ``old`` is the current one; ``False`` otherwise.

        Raises :class:`~asyncsess.InvalidPassword` if ``new`` is unacceptable
        (before anything is checked or written). Wrong ``old`` passwords count
        against :attr:`limits` as failed logins do
        (:class:`~asyncsess.LoginThrottled` over a limit), so a stolen session
        cannot guess the password without limit. ``False`` also when a
        concurrent change won. Then ends the user's sessions in every
        subscribed manager and awaits ``on_password_change(user)``.
        """
        try:
            name = normalize_username(username)
            old_plain = normalize_password(old)
        except AccountError:
            normalize_password(new)  # an unacceptable new password is still reported
            return False
        plain = await self._new_password(name, new)
        found = await self.limits.guard(name, lambda: self._check(name, old_plain), client=client)
        if found is None:
            return False
        record = found[0]
        encoded = await self.hasher.hash(plain)
        if not await self.users.set_hash(record.id, record.password_hash, encoded):
            return False
        await self._notify(_user(record), self.on_password_change, "password_changed")
        return True

    async def delete_user(self, username: object) -> bool:
        """Delete the user; ``True`` if this call deleted it.

        Then ends the user's sessions in every subscribed manager and awaits
        ``on_delete(user)``.
        """
        try:
            name = normalize_username(username)
        except AccountError:
            return False
        await self._ready()
        record = await self.users.get(name)
        if record is None or not await self.users.delete(record.id):
            return False
        await self._notify(_user(record), self.on_delete, "user_deleted")
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
