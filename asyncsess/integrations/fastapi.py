"""FastAPI dependencies over the Starlette integration, with OpenAPI security schemes.

::

    from asyncsess.integrations.fastapi import CurrentUser, LoggedIn, SessionData
    from asyncsess.integrations.starlette import SessionMiddleware

    app.add_middleware(SessionMiddleware, manager=mgr)

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, str]:      # 401 without a login
        return {"username": user.username}

    @app.post("/cart")
    async def add(session: SessionData, item: str) -> None:  # request.session, loaded
        session.setdefault("cart", []).append(item)

:func:`require_session` and :func:`current_user` declare the cookie and the
bearer scheme, so Swagger UI's *Authorize* button works; they work on
WebSocket routes too (a refusal closes with code 1008). A
:class:`~asyncsess.StoreUnavailable` raised while loading goes through
FastAPI's exception handlers (``@app.exception_handler(StoreUnavailable)``);
without one, the middleware answers 503.
"""

from __future__ import annotations

from typing import Annotated

from ..exceptions import MissingDependency

try:
    from fastapi import Depends, Security
    from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
except ImportError as exc:  # pragma: no cover - exercised with the framework hidden
    raise MissingDependency(
        'asyncsess.integrations.fastapi needs FastAPI: pip install "asyncsess[fastapi]"'
    ) from exc

from starlette.requests import HTTPConnection

from ..accounts.user import User
from ..session import Session
from . import starlette as _starlette
from ._actions import not_authenticated
from ._common import CookieSettings
from ._request_session import RequestSession

__all__ = [
    "CurrentUser",
    "LoggedIn",
    "SessionData",
    "bearer_scheme",
    "cookie_scheme",
    "current_user",
    "require_session",
]

#: The session cookie as an OpenAPI security scheme (the default cookie name).
cookie_scheme = APIKeyCookie(
    name=CookieSettings().cookie_name,
    scheme_name="session cookie",
    description="The session cookie set by logging in.",
    auto_error=False,
)
#: ``Authorization: Bearer <token>`` as an OpenAPI security scheme.
bearer_scheme = HTTPBearer(
    scheme_name="bearer token", description="A session token.", auto_error=False
)


async def require_session(
    conn: HTTPConnection,
    _cookie: Annotated[str | None, Security(cookie_scheme)],
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Session:
    """The session of a logged-in user; otherwise 401 (WebSocket: close 1008)."""
    return await _starlette.require_session(conn)


async def current_user(
    conn: HTTPConnection, session: Annotated[Session, Depends(require_session)]
) -> User:
    """The logged-in :class:`~asyncsess.User` (the manager needs ``accounts``); else 401."""
    accounts = _starlette.session_context(conn).manager.accounts
    if accounts is None:
        raise RuntimeError("current_user needs SessionManager(..., accounts=Accounts(...))")
    user = await accounts.get_user_by_id(session.user_id)
    if user is None:  # deleted since: its sessions are being ended
        raise _starlette.refused(conn, not_authenticated())
    return user


#: A parameter typed ``SessionData`` gets the request's session as a mutable mapping.
SessionData = Annotated[RequestSession, Depends(_starlette.load_session)]
#: A parameter typed ``LoggedIn`` gets the logged-in user's session, or the request a 401.
LoggedIn = Annotated[Session, Depends(require_session)]
#: A parameter typed ``CurrentUser`` gets the logged-in user, or the request a 401.
CurrentUser = Annotated[User, Depends(current_user)]
