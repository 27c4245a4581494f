"""asyncsess in a FastAPI app: register, log in, a protected page, log out, log out elsewhere.

Run it (``pip install "asyncsess[fastapi,sql]" fastapi uvicorn``)::

    python examples/fastapi_app.py          # serves http://127.0.0.1:8000

Sessions and users live in ``ASYNCSESS_URL`` (default: the embedded SQLite
file ``asyncsess-example.db``), sealed with ``ASYNCSESS_SECRET`` (default: a
fresh secret each run, so restarting logs everyone out). Then::

    curl -c jar -b jar -H 'content-type: application/json' \\
         -d '{"username": "alice", "password": "correct horse"}' localhost:8000/register
    curl -c jar -b jar -H 'content-type: application/json' \\
         -d '{"username": "alice", "password": "correct horse"}' localhost:8000/login
    curl -b jar localhost:8000/me                       # the protected page
    curl -b jar -X POST localhost:8000/logout-others    # log out my other devices
    curl -b jar -c jar -X POST localhost:8000/logout

API clients get a token from ``POST /token`` and send ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel

from asyncsess import AccountError, Session, SessionManager, UserExists
from asyncsess.accounts import Accounts
from asyncsess.integrations.starlette import (
    SessionMiddleware,
    login,
    logout,
    logout_others,
    require_session,
)

DEFAULT_URL = "sqlite+aiosqlite:///asyncsess-example.db"
#: An endpoint parameter typed ``LoggedIn`` gets the session, or the request gets a 401.
LoggedIn = Annotated[Session, Depends(require_session)]


class Credentials(BaseModel):
    """A username and a password, as JSON."""

    username: str
    password: str


def create_app(url: str | None = None, secret: str | None = None) -> FastAPI:
    """Build the app on the store at ``url`` (users in the same database)."""
    url = url or os.environ.get("ASYNCSESS_URL", DEFAULT_URL)
    secret = secret or os.environ.get("ASYNCSESS_SECRET") or secrets.token_urlsafe(32)
    accounts = Accounts(url)
    manager = SessionManager(url, secret=secret, accounts=accounts)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with accounts, manager:  # the manager runs the expiry sweeper
            yield

    app = FastAPI(title="asyncsess example", lifespan=lifespan)
    app.add_middleware(SessionMiddleware, manager=manager)

    @app.post("/register", status_code=201)
    async def register(body: Credentials) -> dict[str, str]:
        try:
            user = await accounts.create_user(body.username, body.password)
        except UserExists:
            raise HTTPException(409, "this username is taken") from None
        except AccountError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"username": user.username}

    @app.post("/login")
    async def log_in(request: Request, body: Credentials) -> dict[str, str]:
        if await login(request, body.username, body.password) is None:
            raise HTTPException(401, "wrong username or password")
        return {"username": body.username}

    @app.post("/token")
    async def token(request: Request, body: Credentials) -> dict[str, str]:
        client = request.client.host if request.client else None
        new = await manager.login(body.username, body.password, client=client)
        if new is None:
            raise HTTPException(401, "wrong username or password")
        return {"token": new, "token_type": "bearer"}

    @app.get("/me")
    async def me(session: LoggedIn) -> dict[str, object]:
        devices = await manager.sessions(session.user_id)
        return {"username": session.data.get("username"), "devices": len(devices)}

    @app.post("/logout-others", dependencies=[Depends(require_session)])
    async def log_out_others(request: Request) -> dict[str, int]:
        return {"revoked": await logout_others(request)}

    @app.post("/logout")
    async def log_out(request: Request) -> dict[str, bool]:
        return {"logged_out": await logout(request)}

    return app


if __name__ == "__main__":
    uvicorn.run(create_app(), host="127.0.0.1", port=8000)
