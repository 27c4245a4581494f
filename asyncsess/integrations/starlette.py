"""Sessions for Starlette and FastAPI: a pure ASGI middleware and request helpers.

::

    from asyncsess.integrations.starlette import SessionMiddleware, require_session

    app.add_middleware(SessionMiddleware, manager=mgr)

    @app.get("/me")                                   # FastAPI
    async def me(session: Annotated[Session, Depends(require_session)]) -> dict[str, str]:
        return {"user": session.user_id}

The middleware reads the token from ``Authorization: Bearer <token>`` or
from the session cookie (see :class:`CookieSettings`), validates it once per
request and leaves the result at ``request.state.asyncsess`` (a
:class:`~asyncsess.integrations._common.SessionContext` with ``session`` and
``token``). :func:`get_session` and :func:`require_session` are coroutine
functions taking the request, so they serve as FastAPI dependencies without a
thread hop. :func:`login`, :func:`start_session` and :func:`logout` queue the
cookie the middleware then adds to whatever response the endpoint returns.

A store failure propagates from the middleware (fail closed: no session is
ever assumed); map :class:`~asyncsess.StoreUnavailable` to a 503 in an
exception handler if you like.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..exceptions import LoginThrottled
from ..manager import SessionManager
from ..session import Session
from ._common import CookieSettings, SessionContext, retry_after

__all__ = [
    "CookieSettings",
    "SessionMiddleware",
    "get_session",
    "login",
    "logout",
    "logout_others",
    "require_session",
    "session_context",
    "start_session",
]

_STATE_KEY = "asyncsess"


class SessionMiddleware:
    """Validate the request's session token once and send back the cookie changes.

    ``bearer=False`` ignores ``Authorization`` headers (cookies only).
    HTTP and WebSocket connections get a session; only HTTP responses carry
    cookie changes.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        manager: SessionManager,
        cookie: CookieSettings | None = None,
        bearer: bool = True,
    ) -> None:
        self.app = app
        self.manager = manager
        self.cookie = cookie if cookie is not None else CookieSettings()
        self.bearer = bearer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        https = self.cookie.is_https(
            scope.get("scheme", "http"), conn.headers.get("x-forwarded-proto")
        )
        ctx = await SessionContext.load(
            self.manager,
            self.cookie,
            https=https,
            cookies=conn.cookies,
            authorization=conn.headers.get("authorization"),
            bearer=self.bearer,
        )
        scope.setdefault("state", {})[_STATE_KEY] = ctx
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and ctx.set_cookie is not None:
                MutableHeaders(scope=message).append("set-cookie", ctx.set_cookie)
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def session_context(request: HTTPConnection) -> SessionContext:
    """The request's :class:`SessionContext`; ``RuntimeError`` without the middleware."""
    ctx = request.scope.get("state", {}).get(_STATE_KEY)
    if not isinstance(ctx, SessionContext):
        raise RuntimeError("asyncsess: add SessionMiddleware to the app to use sessions")
    return ctx


async def get_session(request: Request) -> Session | None:
    """The request's valid session, or ``None`` (a FastAPI dependency too)."""
    return session_context(request).session


async def require_session(request: Request) -> Session:
    """The request's valid session; otherwise a 401 with ``WWW-Authenticate: Bearer``."""
    session = session_context(request).session
    if session is None:
        raise HTTPException(401, "not authenticated", headers={"WWW-Authenticate": "Bearer"})
    return session


async def login(
    request: Request, username: str, password: str, *, client: str | None = None
) -> str | None:
    """Check the password with ``SessionManager.login`` and start a session with a cookie.

    Returns the new token (for API clients), or ``None`` when the credentials
    are wrong. The request's previous session, if any, is revoked, so a token
    planted before login is worthless after it (no fixation). ``client``
    (for per-address rate limiting) defaults to the peer address. A
    rate-limited attempt raises ``HTTPException(429)`` with ``Retry-After``.
    """
    if client is None and request.client is not None:
        client = request.client.host
    try:
        return await session_context(request).login(username, password, client)
    except LoginThrottled as exc:
        raise HTTPException(429, str(exc), headers=retry_after(exc)) from exc


async def start_session(
    request: Request, user_id: str, data: Mapping[str, Any] | None = None
) -> str:
    """Start a session for a user the application authenticated itself (SSO, OAuth...).

    Like :func:`login`: the previous session is revoked and the cookie set.
    """
    return await session_context(request).create(user_id, data)


async def logout(request: Request) -> bool:
    """Revoke the request's session and delete the cookie; ``True`` if a session ended."""
    return await session_context(request).logout()


async def logout_others(request: Request) -> int:
    """Log out the user's other devices: revoke their sessions but this one; return the count."""
    return await session_context(request).logout_others()
