"""Sessions for aiohttp: a middleware and request helpers, as aiohttp-session users expect.

::

    from asyncsess.integrations.aiohttp import get_session, require_session, session_middleware

    app = web.Application(middlewares=[session_middleware(mgr)])

    async def cart(request: web.Request) -> web.Response:
        session = await get_session(request)          # a mutable mapping, loaded lazily
        session.setdefault("cart", []).append(request.match_info["item"])
        raise web.HTTPSeeOther("/cart")               # written back before the redirect

The same rules as the Starlette integration (one shared core): the token
comes from ``Authorization: Bearer`` or the session cookie; unsafe requests
go through the CSRF check; the session is validated on first use and
written back once, before the response, if the request changed it (also
for a raised ``web.HTTPException`` such as a redirect). A
:class:`~asyncsess.StoreUnavailable` becomes a 503 with ``Retry-After``
(``on_store_error`` changes that answer); a write that loses a conflict
under ``on_conflict="fail"`` a 409.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..exceptions import MissingDependency, SessionConflict, StoreUnavailable

try:
    from aiohttp import web
    from aiohttp.typedefs import Handler, Middleware
except ImportError as exc:  # pragma: no cover - exercised with the framework hidden
    raise MissingDependency(
        'asyncsess.integrations.aiohttp needs aiohttp: pip install "asyncsess[aiohttp]"'
    ) from exc

from ..accounts.user import User
from ..manager import SessionManager
from ..session import Session
from . import _actions
from ._common import CookieSettings
from ._context import Refusal, SessionConfig, SessionContext
from ._csrf import CsrfSettings
from ._request_session import RequestSession

__all__ = [
    "CookieSettings",
    "CsrfSettings",
    "RequestSession",
    "SessionConfig",
    "csrf_token",
    "current_user",
    "flash",
    "get_flashed_messages",
    "get_session",
    "login",
    "logout",
    "logout_device",
    "logout_others",
    "require_session",
    "rotate_session",
    "session_context",
    "session_middleware",
    "start_session",
    "store_unavailable_response",
]

log = logging.getLogger("asyncsess")
StoreErrorHandler = Callable[[web.Request, StoreUnavailable], Awaitable[web.StreamResponse]]
_KEY: Any
try:  # typed request keys arrived in aiohttp 3.14; older ones take a str
    _KEY = web.RequestKey("asyncsess", SessionContext)
except AttributeError:  # pragma: no cover - aiohttp < 3.14
    _KEY = "asyncsess"


async def store_unavailable_response(
    request: web.Request, exc: StoreUnavailable
) -> web.StreamResponse:
    """The default answer while the store is down: 503 with ``Retry-After``."""
    seconds = max(1, round(session_context(request).config.retry_after))
    return web.Response(
        status=503,
        text="sessions are unavailable, try again shortly",
        headers={"Retry-After": str(seconds), "Cache-Control": "no-store"},
    )


def session_middleware(
    manager: SessionManager,
    *,
    config: SessionConfig | None = None,
    on_store_error: StoreErrorHandler = store_unavailable_response,
) -> Middleware:
    """Build the middleware: lazy sessions, CSRF checks, cookie changes, 503 on outages."""
    settings = config if config is not None else SessionConfig()

    @web.middleware
    async def asyncsess_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        ctx = SessionContext.from_request(
            manager,
            settings,
            scheme=request.scheme,
            headers=request.headers,
            cookies=request.cookies,
        )
        request[_KEY] = ctx
        method = "POST" if _is_websocket(request) else request.method
        verdict, reason = ctx.csrf(method, request.headers)
        if verdict == "token" and not _is_websocket(request):
            sent = request.headers.get(settings.csrf.header)
            if sent is None and request.content_type in (
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            ):
                value = (await request.post()).get(settings.csrf.field)
                sent = value if isinstance(value, str) else None
            verdict = "pass" if ctx.csrf_token_matches(sent) else "refuse"
            reason = "the csrf_token is missing or wrong"
        if verdict == "refuse":
            return web.Response(status=403, text=f"CSRF check failed: {reason}")
        try:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                await _finish(ctx, exc)
                raise
            await _finish(ctx, response)
            return response
        except StoreUnavailable as exc:
            return await on_store_error(request, exc)
        except SessionConflict:
            return web.Response(status=409, text="the session changed meanwhile; try again")

    return asyncsess_middleware


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


async def _finish(ctx: SessionContext, response: web.StreamResponse) -> None:
    if response.prepared:  # streamed or a WebSocket: its headers are gone
        if ctx.loaded and any(ctx.session.changes()):
            log.warning("a prepared (streamed) response cannot carry the session's changes")
        return
    await ctx.commit()
    cookies, cache_control = ctx.response_headers(response.headers.get("Cache-Control"))
    for value in cookies:
        response.headers.add("Set-Cookie", value)
    if cache_control is not None:
        response.headers["Cache-Control"] = cache_control


def session_context(request: web.Request) -> SessionContext:
    """The request's :class:`SessionContext`; ``RuntimeError`` without the middleware."""
    ctx = request.get(_KEY)
    if not isinstance(ctx, SessionContext):
        raise RuntimeError("asyncsess: add session_middleware(manager) to the app's middlewares")
    return ctx


def _refused(refusal: Refusal) -> web.HTTPException:
    status = {401: web.HTTPUnauthorized, 403: web.HTTPForbidden, 429: web.HTTPTooManyRequests}
    kind = status.get(refusal.status, web.HTTPServiceUnavailable)
    return kind(text=refusal.reason, headers=refusal.headers)


async def _call(action: Awaitable[Any]) -> Any:
    try:
        return await action
    except Refusal as refusal:
        raise _refused(refusal) from None


async def get_session(request: web.Request) -> RequestSession:
    """Load the request's session (once) and return it as a mutable mapping."""
    return await session_context(request).load()


async def require_session(request: web.Request) -> Session:
    """The session of a logged-in user; otherwise a 401 with ``WWW-Authenticate: Bearer``."""
    record = await session_context(request).record()
    if record is None or record.user_id is None:
        raise _refused(_actions.not_authenticated())
    return record


async def current_user(request: web.Request) -> User:
    """The logged-in :class:`~asyncsess.User` (the manager needs ``accounts``); else 401."""
    session = await require_session(request)
    accounts = session_context(request).manager.accounts
    if accounts is None:
        raise RuntimeError("current_user needs SessionManager(..., accounts=Accounts(...))")
    user = await accounts.get_user_by_id(session.user_id)
    if user is None:
        raise _refused(_actions.not_authenticated())
    return user


async def login(
    request: web.Request,
    username: str,
    password: str,
    *,
    client: str | None = None,
    remember: bool | None = None,
) -> str | None:
    """Check the password and start a session with a cookie; ``None`` for wrong credentials.

    As the Starlette :func:`~asyncsess.integrations.starlette.login`: the
    anonymous session's data is carried over and its token ended; a
    throttled attempt raises ``HTTPTooManyRequests`` with ``Retry-After``.
    """
    ctx = session_context(request)
    action = _actions.login(
        ctx, username, password, client=client or request.remote, remember=remember
    )
    token: str | None = await _call(action)
    return token


async def start_session(
    request: web.Request,
    user_id: str,
    data: Mapping[str, Any] | None = None,
    *,
    remember: bool | None = None,
) -> str:
    """Start a session for a user the application authenticated itself (SSO, OAuth...)."""
    return await _actions.start(session_context(request), user_id, data, remember=remember)


async def logout(request: web.Request) -> bool:
    """End the request's session and delete the cookie; ``True`` if a session ended."""
    return await _actions.logout(session_context(request))


async def rotate_session(request: web.Request) -> str:
    """Give the session a new token after a privilege change, and re-set the cookie."""
    token: str = await _call(_actions.rotate(session_context(request)))
    return token


async def logout_others(request: web.Request, password: str | None = None) -> int:
    """End the user's other sessions; return how many (``password`` when reauthenticating)."""
    count: int = await _call(_actions.logout_others(session_context(request), password))
    return count


async def logout_device(request: web.Request, session_id: str, password: str | None = None) -> bool:
    """End one of the user's sessions by its id; ``False`` if it is not theirs or gone."""
    ended: bool = await _call(
        _actions.logout_device(session_context(request), session_id, password)
    )
    return ended


def csrf_token(request: web.Request) -> str:
    """The synchronizer token to put in forms (``csrf_token``) or ``X-CSRF-Token``."""
    return session_context(request).csrf_token()


async def flash(request: web.Request, message: str, category: str = "info") -> None:
    """Keep ``message`` for the next page this browser shows."""
    await _actions.flash(session_context(request), message, category)


async def get_flashed_messages(request: web.Request) -> list[dict[str, str]]:
    """Return and forget the pending flash messages (``message`` and ``category``)."""
    return await _actions.pop_flashes(session_context(request))
