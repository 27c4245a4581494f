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
are stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..exceptions import AccountError
from .core import Accounts
from .devices import DeviceTokens
from .throttle import LoginLimits
from .user import normalize_username

__all__ = ["SessionCreator", "login"]


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
