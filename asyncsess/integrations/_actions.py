"""What a request does to its session beyond reading and writing data, free of any framework.

Logging in (carrying an anonymous session's data over), starting a session
for a user authenticated elsewhere, rotating, logging out this device, one
device or the others (with the password again when configured: ASVS 3.3.4),
and flash messages. Each integration wraps these in functions of its
request type and turns a :class:`~asyncsess.integrations._context.Refusal`
into its framework's error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..accounts.user import User
from ..exceptions import LoginThrottled
from ._common import DEVICE_COOKIE_MAX_AGE, retry_after, throttled_status
from ._context import BROWSER_KEY, FLASH_KEY, Refusal, SessionContext

__all__ = [
    "flash",
    "login",
    "logout",
    "logout_device",
    "logout_others",
    "pop_flashes",
    "rotate",
    "start",
]


def not_authenticated() -> Refusal:
    """The 401 answer to a request that needs a logged-in user."""
    return Refusal(401, "not authenticated", {"WWW-Authenticate": "Bearer"})


def _throttled(exc: LoginThrottled) -> Refusal:
    return Refusal(throttled_status(exc), str(exc), retry_after(exc.retry_after))


async def _carry(ctx: SessionContext, remember: bool | None) -> dict[str, Any]:
    """The data a new session of this browser starts with: the anonymous session's."""
    rs = await ctx.load()
    carried = rs.data() if rs.user_id is None else {}  # another user's data stays behind
    carried.pop(BROWSER_KEY, None)
    if remember is False and ctx.config.cookie.lifetime != "browser":
        carried[BROWSER_KEY] = True
    return carried


async def login(
    ctx: SessionContext,
    username: str,
    password: str,
    *,
    client: str | None,
    remember: bool | None = None,
) -> str | None:
    """Log in through ``SessionManager.login``; ``None`` if the credentials are wrong.

    The anonymous session's data is carried into the new session, whose new
    token replaces the old one (ended: no fixation). ``remember=False`` makes
    the cookie a browser-session cookie; ``True`` or ``None`` follows
    ``CookieSettings.lifetime``. A success also sets the device cookie the
    login limiter recognises. A throttled attempt raises :class:`Refusal`
    (429, or 503 when the server is busy) with ``Retry-After``.
    """
    carried = await _carry(ctx, remember)
    try:
        token = await ctx.manager.login(
            username, password, client=client, device=ctx.device, data=carried
        )
    except LoginThrottled as exc:
        raise _throttled(exc) from exc
    if token is None:
        return None
    await ctx.adopt(token)
    device = ctx.manager.device_token(username)
    ctx.add_cookie(ctx.config.cookie.device_cookie_name, device, DEVICE_COOKIE_MAX_AGE)
    return token


async def start(
    ctx: SessionContext,
    user_id: str,
    data: Mapping[str, Any] | None = None,
    *,
    remember: bool | None = None,
) -> str:
    """Start a session for a user the application authenticated (SSO...), as :func:`login`."""
    carried = await _carry(ctx, remember)
    token = await ctx.manager.create(user_id, {**carried, **(data or {})})
    await ctx.adopt(token)
    return token


async def rotate(ctx: SessionContext) -> str:
    """Give the session a new token (after a privilege change) and re-set the cookie."""
    await ctx.load()
    new = await ctx.manager.rotate(ctx.token) if ctx.token else None
    if new is None:
        raise not_authenticated()
    ctx.retoken(new)
    return new


async def logout(ctx: SessionContext) -> bool:
    """End the session and delete the browser's cookie; ``True`` if a session ended."""
    token = ctx.forget()
    return await ctx.manager.revoke(token) if token is not None else False


async def _password_ok(ctx: SessionContext, user_id: str, password: str | None) -> bool:
    accounts = ctx.manager.accounts
    if accounts is None or not password:
        return False
    user = await accounts.get_user_by_id(user_id)
    if user is None:
        return False
    username = user.username

    async def check() -> User | None:
        return await accounts.authenticate(username, password)

    try:  # a wrong password counts against the user's login budget, as at login
        found = await accounts.limits.guard(username, check)
    except LoginThrottled as exc:
        raise _throttled(exc) from exc
    return found is not None


async def _user(ctx: SessionContext, password: str | None) -> str:
    """The logged-in user's id, after the password check when ``reauthenticate`` is on."""
    record = await ctx.record()
    if record is None or record.user_id is None:
        raise not_authenticated()
    if ctx.config.reauthenticate and not await _password_ok(ctx, record.user_id, password):
        raise Refusal(403, "Enter your password again to do this.")
    return record.user_id


async def logout_others(ctx: SessionContext, password: str | None = None) -> int:
    """End every other session of this user; return how many ended."""
    user_id = await _user(ctx, password)
    return await ctx.manager.revoke_all(user_id, keep=ctx.token)


async def logout_device(ctx: SessionContext, session_id: str, password: str | None = None) -> bool:
    """End one session of this user by its id (see ``SessionManager.sessions``)."""
    user_id = await _user(ctx, password)
    if session_id == ctx.session.id:
        return await logout(ctx)
    return await ctx.manager.revoke_session(session_id, user_id=user_id)


async def flash(ctx: SessionContext, message: str, category: str = "info") -> None:
    """Keep ``message`` for the next page this browser shows (stored in the session)."""
    rs = await ctx.load()
    rs[FLASH_KEY] = [*rs.get(FLASH_KEY, []), {"message": message, "category": category}]


async def pop_flashes(ctx: SessionContext) -> list[dict[str, str]]:
    """Return and forget the flash messages (``{"message", "category"}`` dicts)."""
    rs = await ctx.load()
    flashes: list[dict[str, str]] = rs.pop(FLASH_KEY, [])
    return flashes
