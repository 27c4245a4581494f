"""Login: rate limits, then authentication, then a new session (used by the manager).

:meth:`asyncsess.SessionManager.login` is a thin method over :func:`login`,
so the policy lives here once:

1. the client address (if given) is counted by ``client_limiter`` under
   ``"client:<address>"``; over its limit, :class:`~asyncsess.LoginThrottled`
   (``scope="client"``) is raised before anything else happens;
2. a username that no user can have (see :mod:`asyncsess.accounts.user`)
   fails (``None``) without being counted;
3. the normalised username is counted by ``user_limiter`` under
   ``"user:<username>"``, whether or not such a user exists (so throttling
   reveals nothing); over its limit, ``LoginThrottled`` (``scope="username"``);
4. :meth:`Accounts.authenticate <asyncsess.accounts.Accounts.authenticate>`
   (the same work for an unknown user as for a wrong password);
5. on success the username's counter is reset (the client's is not: one
   valid account must not buy a client more guesses at others) and a session
   is created for ``user.id`` with ``{"username": user.username}`` as data.

Limiters hash their keys, so neither usernames nor addresses are stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..exceptions import AccountError, LoginThrottled
from ..ratelimit import RateLimiter
from .core import Accounts
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
    user_limiter: RateLimiter | None = None,
    client_limiter: RateLimiter | None = None,
) -> str | None:
    """Authenticate and return a new session token, or ``None`` for bad credentials.

    Raises :class:`~asyncsess.LoginThrottled` (with ``retry_after`` seconds and
    ``scope`` ``"client"`` or ``"username"``) when a limiter refuses the attempt.
    """
    if client is not None and client_limiter is not None:
        decision = await client_limiter.hit(f"client:{client}")
        if not decision.allowed:
            raise LoginThrottled(decision.retry_after, "client")
    try:
        name = normalize_username(username)
    except AccountError:
        return None
    user_key = f"user:{name}"
    if user_limiter is not None:
        decision = await user_limiter.hit(user_key)
        if not decision.allowed:
            raise LoginThrottled(decision.retry_after, "username")
    user = await accounts.authenticate(name, password)
    if user is None:
        return None
    if user_limiter is not None:
        await user_limiter.reset(user_key)
    return await sessions.create(user.id, data={"username": user.username})
