"""Login: throttling, then authentication, then a new session (used by the manager).

:meth:`asyncsess.SessionManager.login` is a thin method over :func:`login`,
so the policy lives here once:

1. a username or password that no user can have (see
   :mod:`asyncsess.accounts.user`) fails (``None``) without being counted;
2. a ``device`` token is checked against the normalised username
   (:mod:`asyncsess.accounts.devices`); a valid one puts the attempt under
   that device's own limit instead of the username's;
3. the attempt is counted by ``limits`` (:mod:`asyncsess.accounts.throttle`:
   per client address, and per username or device, whether or not such a
   user exists, so throttling reveals nothing); over a limit,
   :class:`~asyncsess.LoginThrottled` is raised before any hashing;
4. the password is verified (the same work for an unknown user as for a
   wrong password); a success takes the counts back: only failures count;
5. a session is created for ``user.id`` with ``data`` (e.g. an anonymous
   cart carried over) and ``{"username": user.username}`` as its data.

Limiters hash their keys under a secret, so neither usernames nor addresses
are stored. The manager's events get ``login_succeeded``, ``login_failed``
and ``login_throttled``, and the accounts' ``password_changed`` and
``user_deleted`` (:mod:`asyncsess.observe.events`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

from ..exceptions import AccountError, ConfigurationError, LoginThrottled
from ..observe.events import Events
from ..observe.observer import Observer, observed
from ..ratelimit import RateLimiter
from ..tokens import token_key
from .core import Accounts
from .devices import DeviceTokens
from .throttle import LoginLimits
from .user import User, normalize_username

__all__ = ["LoginDesk", "LoginMethods", "SessionCreator", "login"]


class SessionCreator(Protocol):
    """What :func:`login` needs from the manager."""

    async def create(self, user_id: str, data: Mapping[str, Any] | None = None) -> str:
        """Start a session and return its token."""
        ...


async def login(
    sessions: SessionCreator,
    accounts: Accounts,
    username: object,
    password: object,
    *,
    client: str | None = None,
    device: str | None = None,
    data: Mapping[str, Any] | None = None,
    limits: LoginLimits | None = None,
    devices: DeviceTokens | None = None,
) -> str | None:
    """Authenticate and return a new session token, or ``None`` for bad credentials.

    ``limits`` defaults to ``accounts.limits``; ``device`` is only honoured
    with ``devices`` to check it. Raises :class:`~asyncsess.LoginThrottled`
    (with ``retry_after`` seconds and ``scope`` ``"client"``, ``"username"``,
    ``"device"`` or ``"busy"``) when the attempt is refused unchecked, and
    ``TypeError`` for ``data`` that is not a mapping.
    """
    if data is not None and not isinstance(data, Mapping):
        raise TypeError(f"session data must be a mapping, not {type(data).__name__}")
    try:
        name = normalize_username(username)
    except AccountError:
        return None
    device_id = devices.check(device, name) if devices is not None and device else None
    user = await accounts._throttled(name, password, client, device_id, limits)
    if user is None:
        return None
    return await sessions.create(user.id, data={**(data or {}), "username": user.username})


class _Creator:
    """The manager's ``create``, noting the user a login started a session for."""

    __slots__ = ("sessions", "user_id")

    def __init__(self, sessions: SessionCreator) -> None:
        self.sessions = sessions
        self.user_id: str | None = None

    async def create(self, user_id: str, data: Mapping[str, Any] | None = None) -> str:
        self.user_id = user_id
        return await self.sessions.create(user_id, data)


def _username(username: object) -> str | None:
    try:
        return normalize_username(username)
    except AccountError:
        return None  # no user can have it: not worth an audit line's room


class LoginDesk:
    """A manager's accounts wiring: login limits, device tokens, ending a deleted user's sessions.

    Built by :class:`~asyncsess.SessionManager` from its ``accounts``,
    ``login_limiter`` and ``client_limiter`` arguments. It subscribes
    ``end_sessions`` to the accounts (a deleted user's or a changed password's
    sessions end; the app's own hooks stay) and puts the manager's limiters in
    place of the accounts' own. Device tokens are signed under ``secrets``; an
    in-process manager without one signs with a per-process key; a persistent
    one without a secret issues none. Logins, password changes and deletions
    are emitted on ``events``.
    """

    __slots__ = (
        "accounts",
        "client_limiter",
        "devices",
        "events",
        "limits",
        "login_limiter",
        "sessions",
    )

    def __init__(
        self,
        sessions: SessionCreator,
        accounts: Accounts | None,
        *,
        end_sessions: Callable[[str], Coroutine[Any, Any, object]],
        secrets: Sequence[bytes],
        in_process: bool,
        clock: Callable[[], float],
        login_limiter: RateLimiter | None = None,
        client_limiter: RateLimiter | None = None,
        events: Events | None = None,
    ) -> None:
        if accounts is not None and not isinstance(accounts, Accounts):
            raise ConfigurationError(f"accounts must be an Accounts, not {type(accounts).__name__}")
        for name, limiter in (("login_limiter", login_limiter), ("client_limiter", client_limiter)):
            if limiter is not None and not isinstance(limiter, RateLimiter):
                raise ConfigurationError(f"{name} must be a RateLimiter, not {limiter!r}")
        self.sessions = sessions
        self.accounts = accounts
        self.login_limiter, self.client_limiter = login_limiter, client_limiter
        self.events = emitted = events if events is not None else Events(clock)
        self.limits: LoginLimits | None = None
        if accounts is not None:

            async def changed(user: User) -> None:
                emitted.emit("password_changed", user_id=user.id, username=user.username)

            async def deleted(user: User) -> None:
                emitted.emit("user_deleted", user_id=user.id, username=user.username)

            async def end(user: User) -> None:
                await end_sessions(user.id)

            accounts.subscribe(changed, on={"password_changed"})
            accounts.subscribe(deleted, on={"user_deleted"})
            accounts.subscribe(end)
            self.limits = accounts.limits.replace(username=login_limiter, client=client_limiter)
        self.devices = (
            DeviceTokens(secrets, clock=clock)
            if secrets
            else DeviceTokens.for_process(clock=clock)
            if in_process
            else None
        )

    def limiters(self) -> list[RateLimiter]:
        """The limiters in use, whose cleanup tasks the manager runs."""
        return self.limits.limiters() if self.limits is not None else []

    async def login(
        self,
        username: str,
        password: str,
        *,
        client: str | None,
        device: str | None,
        data: Mapping[str, Any] | None,
    ) -> str | None:
        """:func:`login` against the accounts, with these limits and device tokens."""
        if self.accounts is None:
            raise ConfigurationError(
                "login needs accounts: SessionManager(..., accounts=Accounts(store))"
            )
        creator = _Creator(self.sessions)
        try:
            token = await login(
                creator,
                self.accounts,
                username,
                password,
                client=client,
                device=device,
                data=data,
                limits=self.limits,
                devices=self.devices,
            )
        except LoginThrottled as exc:
            name = _username(username)
            self.events.emit("login_throttled", username=name, client=client, scope=exc.scope)
            raise
        if token is None:
            self.events.emit("login_failed", username=_username(username), client=client)
        else:
            self.events.emit(
                "login_succeeded",
                session_id=token_key(token),
                user_id=creator.user_id,
                username=_username(username),
                client=client,
            )
        return token

    def device_token(self, username: str) -> str:
        """Issue a device token for ``username`` (see ``SessionManager.device_token``)."""
        if self.devices is None:
            raise ConfigurationError(
                "device tokens are signed with the manager's secret: pass secret=... "
                "(a store's own key file is not used for them)"
            )
        return self.devices.issue(normalize_username(username))


class LoginMethods:
    """The accounts part of the manager's API (login, device tokens, logout), over its desk."""

    _desk: LoginDesk
    _observer: Observer
    revoke: Callable[[object], Awaitable[bool]]

    @property
    def accounts(self) -> Accounts | None:
        """The ``accounts`` the manager logs users in against (``None``: none)."""
        return self._desk.accounts

    @property
    def login_limiter(self) -> RateLimiter | None:
        """The ``login_limiter`` given (``None``: the accounts' own per-username limit)."""
        return self._desk.login_limiter

    @property
    def client_limiter(self) -> RateLimiter | None:
        """The ``client_limiter`` given (``None``: the accounts' own per-client limit)."""
        return self._desk.client_limiter

    @observed("login", miss="failed")
    async def login(
        self,
        username: str,
        password: str,
        *,
        client: str | None = None,
        device: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Authenticate against ``accounts`` and return a new session's token, or ``None``.

        Attempts are limited per username (``login_limiter``), per ``client``
        address (``client_limiter``) or per known ``device`` (a token from
        :meth:`device_token`); over a limit :class:`~asyncsess.LoginThrottled`
        is raised. The session's data is ``data`` with ``{"username": ...}``.
        See :mod:`asyncsess.accounts.login`.
        """
        return await self._desk.login(username, password, client=client, device=device, data=data)

    def device_token(self, username: str) -> str:
        """Issue a device token for ``username`` after a successful :meth:`login`.

        Signed under the newest ``secret`` (a ``memory://`` manager without one:
        a per-process key); :class:`~asyncsess.ConfigurationError` when a
        persistent store's manager has no ``secret``. See
        :mod:`asyncsess.accounts.devices`.
        """
        return self._desk.device_token(username)

    async def logout(self, token: object) -> bool:
        """End the session of ``token`` (``revoke``); ``True`` if it existed."""
        return await self.revoke(token)
