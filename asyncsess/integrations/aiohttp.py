"""Sessions for aiohttp: a middleware and request helpers.

::

    from asyncsess.integrations.aiohttp import require_session, session_middleware

    app = web.Application(middlewares=[session_middleware(mgr)])

    async def me(request: web.Request) -> web.Response:
        session = await require_session(request)       # or get_session: Session | None
        return web.json_response({"user": session.user_id})

The same rules as the Starlette integration: the token comes from
``Authorization: Bearer <token>`` or the session cookie (see
:class:`CookieSettings`) and is validated once per request; :func:`login`,
:func:`start_session` and :func:`logout` queue the cookie the middleware adds
to the handler's response, including a raised ``web.HTTPException`` such as
a redirect. A response the handler prepared (streamed) itself has sent its
headers already and gets no cookie.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..exceptions import LoginThrottled
from ..manager import SessionManager
from ..session import Session
from ._common import CookieSettings, SessionContext, retry_after

__all__ = [
    "CookieSettings",
    "get_session",
    "login",
    "logout",
    "logout_others",
    "require_session",
    "session_context",
    "session_middleware",
    "start_session",
]

log = logging.getLogger("asyncsess")

_KEY: Any
try:  # typed request keys arrived in aiohttp 3.14; older ones take a str without warning
    _KEY = web.RequestKey("asyncsess", SessionContext)
except AttributeError:  # pragma: no cover - aiohttp < 3.14
    _KEY = "asyncsess"


def session_middleware(
    manager: SessionManager, *, cookie: CookieSettings | None = None, bearer: bool = True
) -> Middleware:
    """Build the middleware that validates each request's token and sends cookie changes.

    ``bearer=False`` ignores ``Authorization`` headers (cookies only).
    """
    settings = cookie if cookie is not None else CookieSettings()

    @web.middleware
    async def asyncsess_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        https = settings.is_https(request.scheme, request.headers.get("X-Forwarded-Proto"))
        ctx = await SessionContext.load(
            manager,
            settings,
            https=https,
            cookies=request.cookies,
            authorization=request.headers.get("Authorization"),
            bearer=bearer,
        )
        request[_KEY] = ctx
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _add_cookie(ctx, exc)
            raise
        _add_cookie(ctx, response)
        return response

    return asyncsess_middleware


def _add_cookie(ctx: SessionContext, response: web.StreamResponse) -> None:
    if ctx.set_cookie is None:
        return
    if response.prepared:
        log.warning("the response was sent before asyncsess could set the session cookie")
        return
    response.headers.add("Set-Cookie", ctx.set_cookie)


def session_context(request: web.Request) -> SessionContext:
    """The request's :class:`SessionContext`; ``RuntimeError`` without the middleware."""
    ctx = request.get(_KEY)
    if not isinstance(ctx, SessionContext):
        raise RuntimeError("asyncsess: add session_middleware(manager) to the app's middlewares")
    return ctx


async def get_session(request: web.Request) -> Session | None:
    """The request's valid session, or ``None``."""
    return session_context(request).session


async def require_session(request: web.Request) -> Session:
    """The request's valid session; otherwise a 401 with ``WWW-Authenticate: Bearer``."""
    session = session_context(request).session
    if session is None:
        raise web.HTTPUnauthorized(text="not authenticated", headers={"WWW-Authenticate": "Bearer"})
    return session


async def login(
    request: web.Request, username: str, password: str, *, client: str | None = None
) -> str | None:
    """Check the password with ``SessionManager.login`` and start a session with a cookie.

    Returns the new token (for API clients), or ``None`` when the credentials
    are wrong. The request's previous session, if any, is revoked (no
    fixation). ``client`` defaults to the peer address. A rate-limited attempt
    raises ``HTTPTooManyRequests`` with ``Retry-After``.
    """
    try:
        return await session_context(request).login(username, password, client or request.remote)
    except LoginThrottled as exc:
        raise web.HTTPTooManyRequests(text=str(exc), headers=retry_after(exc)) from exc


async def start_session(
    request: web.Request, user_id: str, data: Mapping[str, Any] | None = None
) -> str:
    """Start a session for a user the application authenticated itself (SSO, OAuth...).

    Like :func:`login`: the previous session is revoked and the cookie set.
    """
    return await session_context(request).create(user_id, data)


async def logout(request: web.Request) -> bool:
    """Revoke the request's session and delete the cookie; ``True`` if a session ended."""
    return await session_context(request).logout()


async def logout_others(request: web.Request) -> int:
    """Log out the user's other devices: revoke their sessions but this one; return the count."""
    return await session_context(request).logout_others()
