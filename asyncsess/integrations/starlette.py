"""Sessions for Starlette (and FastAPI: see :mod:`asyncsess.integrations.fastapi`).

::

    from asyncsess.integrations.starlette import SessionMiddleware, load_session

    app.add_middleware(SessionMiddleware, manager=mgr)

    async def cart(request: Request) -> Response:
        session = await load_session(request)     # request.session from now on
        session.setdefault("cart", []).append(request.path_params["item"])
        ...

:class:`SessionMiddleware` reads the token (``Authorization: Bearer`` first,
then the session cookie) without any I/O, refuses cross-site unsafe requests
(see :mod:`asyncsess.integrations._csrf`), and leaves a
:class:`~asyncsess.integrations._context.SessionContext` on the request. The
session is validated on the first :func:`load_session` (lazily), and
written back once, before the response starts, if the request changed it.

A :class:`~asyncsess.StoreUnavailable` escaping the application becomes a
503 with ``Retry-After`` (``on_store_error`` changes that answer; a FastAPI
``exception_handler(StoreUnavailable)`` sees it first, since the session is
loaded in a dependency). A write that loses a conflict under
``on_conflict="fail"`` becomes a 409.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from ..exceptions import MissingDependency, SessionConflict, StoreUnavailable

try:
    from starlette.datastructures import MutableHeaders
    from starlette.exceptions import HTTPException, WebSocketException
    from starlette.requests import HTTPConnection, Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ImportError as exc:  # pragma: no cover - exercised with the framework hidden
    raise MissingDependency(
        'asyncsess.integrations.starlette needs Starlette: pip install "asyncsess[fastapi]"'
    ) from exc

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
    "SessionMiddleware",
    "csrf_token",
    "flash",
    "get_flashed_messages",
    "get_session",
    "load_session",
    "login",
    "logout",
    "logout_device",
    "logout_others",
    "require_session",
    "rotate_session",
    "session_context",
    "start_session",
    "store_unavailable_response",
]

_STATE_KEY = "asyncsess"
_MAX_FORM = 1 << 20  # a form read for its csrf_token field (only requests with no Origin)
StoreErrorHandler = Callable[[HTTPConnection, StoreUnavailable], Awaitable[Response]]


async def store_unavailable_response(conn: HTTPConnection, exc: StoreUnavailable) -> Response:
    """The default answer while the store is down: 503 with ``Retry-After``."""
    ctx = session_context(conn)
    seconds = max(1, round(ctx.config.retry_after))
    return PlainTextResponse(
        "sessions are unavailable, try again shortly",
        503,
        headers={"Retry-After": str(seconds), "Cache-Control": "no-store"},
    )


class SessionMiddleware:
    """Lazily loaded sessions, CSRF checks and cookie changes for every HTTP/WebSocket request.

    ``config`` (a :class:`SessionConfig`) holds the cookie, CSRF and conflict
    settings; ``on_store_error`` builds the answer to a store outage
    (default :func:`store_unavailable_response`). A WebSocket handshake whose
    ``Origin`` is another site's is refused (code 1008); WebSocket routes can
    read the session (:func:`require_session` works) but their changes to it
    are not written back, as they send no response headers.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        manager: SessionManager,
        config: SessionConfig | None = None,
        on_store_error: StoreErrorHandler = store_unavailable_response,
    ) -> None:
        self.app = app
        self.manager = manager
        self.config = config if config is not None else SessionConfig()
        self.on_store_error = on_store_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        ctx = SessionContext.from_request(
            self.manager,
            self.config,
            scheme=scope.get("scheme", "http"),
            headers=conn.headers,
            cookies=conn.cookies,
        )
        scope.setdefault("state", {})[_STATE_KEY] = ctx
        scope["session"] = ctx.session  # request.session, once load_session has run
        if scope["type"] == "websocket":
            verdict, _ = ctx.csrf("POST", conn.headers)  # cross-site WebSocket hijacking
            if verdict == "refuse":
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        verdict, reason = ctx.csrf(scope["method"], conn.headers)
        if verdict == "token":
            receive, sent = await _read_token(scope, receive, ctx)
            verdict = "pass" if ctx.csrf_token_matches(sent) else "refuse"
            reason = "the csrf_token is missing or wrong"
        if verdict == "refuse":
            response = PlainTextResponse(f"CSRF check failed: {reason}", 403)
            await response(scope, receive, send)
            return
        await self._run(scope, receive, send, ctx)

    async def _run(self, scope: Scope, receive: Receive, send: Send, ctx: SessionContext) -> None:
        state = {"started": False, "replaced": False}

        async def send_with_session(message: Message) -> None:
            if state["replaced"]:
                return
            if message["type"] == "http.response.start":
                try:
                    await ctx.commit()
                except (StoreUnavailable, SessionConflict) as exc:
                    state["replaced"] = True
                    await self._error(scope, receive, send, exc)
                    return
                headers = MutableHeaders(scope=message)
                cookies, cache_control = ctx.response_headers(headers.get("cache-control"))
                for value in cookies:
                    headers.append("set-cookie", value)
                if cache_control is not None:
                    headers["cache-control"] = cache_control
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, receive, send_with_session)
        except (StoreUnavailable, SessionConflict) as exc:
            if state["started"] or state["replaced"]:
                raise
            await self._error(scope, receive, send, exc)

    async def _error(
        self, scope: Scope, receive: Receive, send: Send, exc: StoreUnavailable | SessionConflict
    ) -> None:
        if isinstance(exc, StoreUnavailable):
            response = await self.on_store_error(HTTPConnection(scope), exc)
        else:
            response = PlainTextResponse("the session changed meanwhile; try again", 409)
        await response(scope, receive, send)


async def _read_token(
    scope: Scope, receive: Receive, ctx: SessionContext
) -> tuple[Receive, str | None]:
    """Find the synchronizer token in the header or the form, keeping the body for the app."""
    headers = HTTPConnection(scope).headers
    sent = headers.get(ctx.config.csrf.header)
    if sent is not None:
        return receive, sent
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    size = headers.get("content-length", "")
    form = ("application/x-www-form-urlencoded", "multipart/form-data")
    if content_type not in form or not size.isdigit() or int(size) > _MAX_FORM:
        return receive, None
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    if content_type == "application/x-www-form-urlencoded":
        body = b"".join(m.get("body", b"") for m in messages)
        values = parse_qs(body.decode("latin-1"), max_num_fields=1000).get(ctx.config.csrf.field)
        sent = values[0] if values else None
    else:
        async with Request(scope, _replay(messages, receive)).form() as parsed:
            value = parsed.get(ctx.config.csrf.field)
            sent = value if isinstance(value, str) else None
    return _replay(messages, receive), sent


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def session_context(conn: HTTPConnection) -> SessionContext:
    """The request's :class:`SessionContext`; ``RuntimeError`` without the middleware."""
    ctx = conn.scope.get("state", {}).get(_STATE_KEY)
    if not isinstance(ctx, SessionContext):
        raise RuntimeError("asyncsess: add SessionMiddleware to the app to use sessions")
    return ctx


def refused(conn: HTTPConnection, refusal: Refusal) -> Exception:
    """The framework's exception for a core :class:`Refusal` (WebSocket: close code 1008)."""
    if conn.scope["type"] == "websocket":
        return WebSocketException(code=1008, reason=refusal.reason)
    return HTTPException(refusal.status, refusal.reason, headers=refusal.headers)


async def load_session(conn: HTTPConnection) -> RequestSession:
    """Load the request's session (once) and return it as a mutable mapping.

    Also ``request.session`` afterwards. A FastAPI dependency too.
    """
    return await session_context(conn).load()


async def get_session(conn: HTTPConnection) -> Session | None:
    """The request's validated session, or ``None`` (anonymous sessions included)."""
    return await session_context(conn).record()


async def require_session(conn: HTTPConnection) -> Session:
    """The request's session of a logged-in user; otherwise 401 (WebSocket: close 1008)."""
    record = await session_context(conn).record()
    if record is None or record.user_id is None:
        refusal = _actions.not_authenticated()
        raise refused(conn, refusal)
    return record


async def _call(conn: HTTPConnection, action: Awaitable[Any]) -> Any:
    try:
        return await action
    except Refusal as refusal:
        raise refused(conn, refusal) from None


async def login(
    request: Request,
    username: str,
    password: str,
    *,
    client: str | None = None,
    remember: bool | None = None,
) -> str | None:
    """Check the password (``SessionManager.login``) and start a session with a cookie.

    Returns the new token, or ``None`` for wrong credentials. The anonymous
    session's data is carried over and its token ended (no fixation).
    ``client`` (per-address rate limiting) defaults to the peer address;
    ``remember=False`` gives a cookie that ends with the browser session. A
    throttled attempt raises ``HTTPException(429)`` with ``Retry-After``.
    """
    if client is None and request.client is not None:
        client = request.client.host
    ctx = session_context(request)
    token: str | None = await _call(
        request, _actions.login(ctx, username, password, client=client, remember=remember)
    )
    return token


async def start_session(
    request: Request,
    user_id: str,
    data: Mapping[str, Any] | None = None,
    *,
    remember: bool | None = None,
) -> str:
    """Start a session for a user the application authenticated itself (SSO, OAuth...)."""
    return await _actions.start(session_context(request), user_id, data, remember=remember)


async def logout(request: Request) -> bool:
    """End the request's session and delete the cookie; ``True`` if a session ended."""
    return await _actions.logout(session_context(request))


async def rotate_session(request: Request) -> str:
    """Give the session a new token after a privilege change, and re-set the cookie."""
    token: str = await _call(request, _actions.rotate(session_context(request)))
    return token


async def logout_others(request: Request, password: str | None = None) -> int:
    """End the user's other sessions; return how many (``password`` when reauthenticating)."""
    count: int = await _call(request, _actions.logout_others(session_context(request), password))
    return count


async def logout_device(request: Request, session_id: str, password: str | None = None) -> bool:
    """End one of the user's sessions by its id; ``False`` if it is not theirs or gone."""
    ended: bool = await _call(
        request, _actions.logout_device(session_context(request), session_id, password)
    )
    return ended


def csrf_token(request: HTTPConnection) -> str:
    """The synchronizer token to put in forms (``csrf_token``) or ``X-CSRF-Token``."""
    return session_context(request).csrf_token()


async def flash(request: Request, message: str, category: str = "info") -> None:
    """Keep ``message`` for the next page this browser shows."""
    await _actions.flash(session_context(request), message, category)


async def get_flashed_messages(request: Request) -> list[dict[str, str]]:
    """Return and forget the pending flash messages (``message`` and ``category``)."""
    return await _actions.pop_flashes(session_context(request))
