"""``SessionManager(db_url, session_duration_days)``: the older SQLAlchemy manager's API, async.

A thin layer over :class:`asyncsess.SessionManager` and
:class:`asyncsess.Accounts`, both in one SQL database: sessions in table
``asyncsess_sessions``, users in ``asyncsess_users`` (created on first use).

Differences from the older manager:

- every method is a coroutine; ``async with`` (or :meth:`aclose`) closes the
  engine, and ``async with`` also runs the expiry sweeper;
- user ids are ``str`` (:attr:`asyncsess.User.id`, random), not ``int``:
  pass what :meth:`create_user` returned (``user.id``, or the ``User``);
- a session lasts ``session_duration_days`` from its creation, used or not
  (idle and absolute timeouts are both that long, as the older manager had
  one duration);
- only a hash of each token is stored; session data (the user id and
  username) is encrypted at rest only when a ``secret`` is given, since the
  users table beside it holds both in the clear anyway;
- :meth:`create_user` raises :class:`~asyncsess.UserExists`,
  :class:`~asyncsess.InvalidUsername` or :class:`~asyncsess.InvalidPassword`;
  usernames are compared case-insensitively (normalised).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, Final, Self

from .. import manager as _manager
from ..accounts import Accounts, PasswordHasher, User
from ..exceptions import ConfigurationError, UnknownUser
from ..stores._registry import store_class

__all__ = ["DEFAULT_DB_URL", "SessionManager", "check_sql_url"]

#: The database used when ``db_url`` is ``None`` (a file in the working directory).
DEFAULT_DB_URL: Final = "sqlite+aiosqlite:///sessions.db"


def check_sql_url(url: str) -> None:
    """Raise :class:`~asyncsess.ConfigurationError` unless ``url`` is an SQL store's URL."""
    from ..stores.sql import SQLStore

    if not issubclass(store_class(url), SQLStore):
        raise ConfigurationError(
            "db_url must be an SQLAlchemy URL (sqlite://, postgresql://, mysql://), "
            f"not a {url.partition(':')[0]}: URL"
        )


def _user_id(user: str | User) -> str:
    if isinstance(user, User):
        return user.id
    if not isinstance(user, str):
        raise TypeError(f"user ids are str (User.id) in asyncsess, not {type(user).__name__}")
    return user


class SessionManager:
    """Users and their sessions in one SQL database (see the module docstring).

    ``db_url`` is any SQLAlchemy URL: ``sqlite:///``, ``postgresql://`` and
    ``mysql://`` get their async driver (aiosqlite, asyncpg, asyncmy). The
    keyword-only options go to the underlying objects: ``secret`` (seals
    sessions), ``clock``, ``hasher``, ``store_options`` (e.g. ``table``) and
    ``accounts_options`` (e.g. ``table`` for the users).
    """

    def __init__(
        self,
        db_url: str | None = None,
        session_duration_days: float = 30,
        *,
        secret: str | bytes | Sequence[str | bytes] | None = None,
        clock: Callable[[], float] | None = None,
        hasher: PasswordHasher | None = None,
        store_options: Mapping[str, Any] | None = None,
        accounts_options: Mapping[str, Any] | None = None,
    ) -> None:
        from ..stores.sql import SQLStore  # imports SQLAlchemy: only when a manager is made

        url = DEFAULT_DB_URL if db_url is None else db_url
        check_sql_url(url)
        self.store = SQLStore.from_url(url, **(store_options or {}))
        self.accounts = Accounts(self.store, hasher=hasher, **(accounts_options or {}))
        duration = timedelta(days=session_duration_days)
        self.sessions = _manager.SessionManager(
            self.store,
            secret=secret,
            privacy_mode=secret is not None,
            idle_timeout=duration,
            absolute_timeout=duration,
            clock=clock,
            accounts=self.accounts,
        )

    def __repr__(self) -> str:
        return f"compat.SessionManager({self.sessions!r})"

    # -- users -------------------------------------------------------------

    async def create_user(self, username: str, password: str) -> User:
        """Create a user with an argon2id password hash and return it."""
        return await self.accounts.create_user(username, password)

    async def get_user(self, username: str) -> User | None:
        """Return the user called ``username``, or ``None``."""
        return await self.accounts.get_user(username)

    async def authenticate_user(self, username: str, password: str) -> User | None:
        """Return the user if ``password`` is theirs, else ``None``."""
        return await self.accounts.authenticate(username, password)

    # -- sessions ----------------------------------------------------------

    async def create_session(self, user_id: str | User) -> str:
        """Start a session for the user with this id and return its token.

        Raises :class:`~asyncsess.UnknownUser` if there is no such user.
        """
        user = await self.accounts.get_user_by_id(_user_id(user_id))
        if user is None:
            raise UnknownUser("no user has this id")
        return await self.sessions.create(user.id, {"username": user.username})

    async def validate_session(self, token: str | None) -> User | None:
        """Return the user of a live session, or ``None`` (unknown, expired, revoked)."""
        session = await self.sessions.validate(token)
        if session is None:
            return None
        return await self.accounts.get_user_by_id(session.user_id)

    async def revoke_session(self, token: str | None) -> bool:
        """End the session of ``token``; ``True`` if it existed."""
        return await self.sessions.revoke(token)

    async def revoke_sessions(self, user_id: str | User) -> int:
        """End every session of the user; return how many there were."""
        return await self.sessions.revoke_all(_user_id(user_id))

    # -- convenience -------------------------------------------------------

    async def login(self, username: str, password: str) -> str | None:
        """Authenticate and start a session; its token, or ``None`` for bad credentials."""
        return await self.sessions.login(username, password)

    async def logout(self, token: str | None) -> bool:
        """End the session of ``token``; ``True`` if it existed."""
        return await self.sessions.logout(token)

    # -- lifecycle ---------------------------------------------------------

    async def aclose(self) -> None:
        """Close the database engine."""
        try:
            await self.sessions.aclose()
            await self.accounts.aclose()
        finally:
            await self.store.aclose()

    async def __aenter__(self) -> Self:
        await self.sessions.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.sessions.__aexit__(exc_type, exc, tb)
        finally:
            await self.store.aclose()
