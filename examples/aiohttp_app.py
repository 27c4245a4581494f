"""asyncsess in an aiohttp app: register, log in, a protected page, log out, log out elsewhere.

Run it (``pip install "asyncsess[aiohttp,sql]"``)::

    python examples/aiohttp_app.py          # serves http://127.0.0.1:8080

Sessions and users live in ``ASYNCSESS_URL`` (default: the embedded SQLite
file ``asyncsess-example.db``), sealed with ``ASYNCSESS_SECRET`` (default: a
fresh secret each run, so restarting logs everyone out). The routes and
``curl`` session are those of ``examples/fastapi_app.py``, on port 8080.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from asyncsess import AccountError, SessionManager, UserExists
from asyncsess.accounts import Accounts
from asyncsess.integrations.aiohttp import (
    login,
    logout,
    logout_others,
    require_session,
    session_middleware,
)

DEFAULT_URL = "sqlite+aiosqlite:///asyncsess-example.db"
ACCOUNTS = web.AppKey("accounts", Accounts)
MANAGER = web.AppKey("manager", SessionManager)


async def credentials(request: web.Request) -> tuple[str, str]:
    """The ``{"username": ..., "password": ...}`` JSON body, or a 400."""
    try:
        body: Any = await request.json()
        username, password = body["username"], body["password"]
    except (ValueError, TypeError, KeyError):
        raise web.HTTPBadRequest(text="send JSON with a username and a password") from None
    if not (isinstance(username, str) and isinstance(password, str)):
        raise web.HTTPBadRequest(text="username and password must be strings")
    return username, password


async def register(request: web.Request) -> web.Response:
    """Create a user."""
    username, password = await credentials(request)
    try:
        user = await request.app[ACCOUNTS].create_user(username, password)
    except UserExists:
        raise web.HTTPConflict(text="this username is taken") from None
    except AccountError as exc:
        raise web.HTTPUnprocessableEntity(text=str(exc)) from None
    return web.json_response({"username": user.username}, status=201)


async def log_in(request: web.Request) -> web.Response:
    """Log in: a new session, in a cookie; the session the request came with ends."""
    username, password = await credentials(request)
    if await login(request, username, password) is None:
        raise web.HTTPUnauthorized(text="wrong username or password")
    return web.json_response({"username": username})


async def token(request: web.Request) -> web.Response:
    """Log in an API client: the token comes back in the body, for ``Authorization: Bearer``."""
    username, password = await credentials(request)
    new = await request.app[MANAGER].login(username, password, client=request.remote)
    if new is None:
        raise web.HTTPUnauthorized(text="wrong username or password")
    return web.json_response({"token": new, "token_type": "bearer"})


async def me(request: web.Request) -> web.Response:
    """The protected page."""
    session = await require_session(request)
    devices = await request.app[MANAGER].sessions(session.user_id)
    return web.json_response({"username": session.data.get("username"), "devices": len(devices)})


async def log_out_others(request: web.Request) -> web.Response:
    """Log out my other devices."""
    await require_session(request)
    return web.json_response({"revoked": await logout_others(request)})


async def log_out(request: web.Request) -> web.Response:
    """Log out: the session ends and the cookie is deleted."""
    return web.json_response({"logged_out": await logout(request)})


def create_app(url: str | None = None, secret: str | None = None) -> web.Application:
    """Build the app on the store at ``url`` (users in the same database)."""
    url = url or os.environ.get("ASYNCSESS_URL", DEFAULT_URL)
    secret = secret or os.environ.get("ASYNCSESS_SECRET") or secrets.token_urlsafe(32)
    accounts = Accounts(url)
    manager = SessionManager(url, secret=secret, accounts=accounts)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        async with accounts, manager:  # the manager runs the expiry sweeper
            yield

    app = web.Application(middlewares=[session_middleware(manager)])
    app[ACCOUNTS], app[MANAGER] = accounts, manager
    app.cleanup_ctx.append(lifespan)
    app.router.add_post("/register", register)
    app.router.add_post("/login", log_in)
    app.router.add_post("/token", token)
    app.router.add_get("/me", me)
    app.router.add_post("/logout-others", log_out_others)
    app.router.add_post("/logout", log_out)
    return app


if __name__ == "__main__":
    web.run_app(create_app(), host="127.0.0.1", port=8080)
