"""A small shop on FastAPI with asyncsess: pages, an anonymous cart, logins, devices.

Run it (``pip install "asyncsess[fastapi,sql]" uvicorn jinja2 python-multipart``)::

    python examples/fastapi_app.py                      # http://127.0.0.1:8000
    ASYNCSESS_SECRET=... python examples/fastapi_app.py --workers 2

Open http://127.0.0.1:8000 in a browser: add to the cart, register, log in
(the cart comes along), see your devices, log the others out, log out. The
pages are plain HTML forms: no JavaScript. The session cookie is
``__Host-session`` with ``Secure``, which browsers accept on
http://127.0.0.1 and http://localhost. Logins are rate limited, every form
carries a CSRF token, and logging a device out asks for the password again.
See ``examples/webshop.py`` for the settings (``ASYNCSESS_URL``, ``ASYNCSESS_SECRET``).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException  # what the integration raises

from asyncsess import AccountError, SessionManager, UserExists
from asyncsess.accounts import Accounts
from asyncsess.integrations.fastapi import LoggedIn
from asyncsess.integrations.starlette import (
    SessionConfig,
    SessionMiddleware,
    csrf_token,
    flash,
    get_flashed_messages,
    load_session,
    login,
    logout,
    logout_device,
    logout_others,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import webshop  # the examples' shared module, beside this file


def create_app(settings: webshop.Settings | None = None) -> FastAPI:
    """Build the shop on ``settings`` (default: from the environment)."""
    settings = settings or webshop.load_settings()
    accounts = Accounts(settings.url)
    manager = SessionManager(settings.url, secret=settings.secret, accounts=accounts)
    pages = webshop.templates()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with accounts, manager:  # the manager runs the expiry sweeper
            yield

    app = FastAPI(title="asyncsess example shop", lifespan=lifespan)
    app.add_middleware(
        SessionMiddleware, manager=manager, config=SessionConfig(reauthenticate=True)
    )

    async def page(
        request: Request, template: str, title: str, status: int = 200, **extra: Any
    ) -> Response:
        session = await load_session(request)
        flashes = await get_flashed_messages(request)
        context = webshop.page_context(session, flashes, csrf_token(request), title, extra)
        return HTMLResponse(pages.get_template(template).render(context), status)

    async def fields(request: Request) -> dict[str, str]:
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}

    def see_other(url: str) -> Response:
        return RedirectResponse(url, status_code=303)

    @app.get("/")
    async def home(request: Request) -> Response:
        return await page(request, "home.html", "Shop")

    @app.post("/cart/add")
    async def cart_add(request: Request) -> Response:
        sku = (await fields(request)).get("sku", "")
        if webshop.add_to_cart(await load_session(request), sku):
            await flash(request, f"Added one {webshop.PRODUCTS[sku][0].lower()} to your cart.")
        return see_other("/")

    @app.get("/register")
    async def register_form(request: Request) -> Response:
        return await page(request, "register.html", "Register", name="")

    @app.post("/register")
    async def register(request: Request) -> Response:
        form = await fields(request)
        name = form.get("username", "")
        try:
            await accounts.create_user(name, form.get("password", ""))
        except UserExists:
            return await page(
                request,
                "register.html",
                "Register",
                409,
                name=name,
                error="This username is taken.",
            )
        except AccountError as exc:
            return await page(request, "register.html", "Register", 400, name=name, error=str(exc))
        await flash(request, "Your account is ready: log in.")
        return see_other("/login")

    @app.get("/login")
    async def login_form(request: Request) -> Response:
        return await page(request, "login.html", "Log in", name="")

    @app.post("/login")
    async def log_in(request: Request) -> Response:
        form = await fields(request)
        name = form.get("username", "")
        remember = form.get("remember") == "1"
        try:
            token = await login(request, name, form.get("password", ""), remember=remember)
        except HTTPException as exc:  # throttled: 429 with Retry-After
            return await page(
                request, "login.html", "Log in", exc.status_code, name=name, error=exc.detail
            )
        if token is None:
            return await page(
                request, "login.html", "Log in", 401, name=name, error="Wrong username or password."
            )
        await flash(request, f"Welcome, {name}.")
        return see_other("/account")

    @app.get("/account")
    async def account(request: Request) -> Response:
        if not (await load_session(request)).user_id:
            await flash(request, "Log in to see your account.")
            return see_other("/login")
        return await page(request, "account.html", "Your account")

    @app.get("/devices")
    async def devices(request: Request, session: LoggedIn) -> Response:
        assert session.user_id is not None
        rows = webshop.device_rows(await manager.sessions(session.user_id), session.id)
        return await page(request, "devices.html", "Your devices", devices=rows)

    @app.post("/devices/logout")
    async def device_logout(request: Request, session: LoggedIn) -> Response:
        form = await fields(request)
        this = form.get("session_id") == session.id
        try:
            ended = await logout_device(request, form.get("session_id", ""), form.get("password"))
        except HTTPException as exc:
            await flash(request, str(exc.detail), "error")
            return see_other("/devices")
        await flash(request, "That device is logged out." if ended else "Nothing to log out.")
        return see_other("/login" if this and ended else "/devices")

    @app.post("/devices/logout-others")
    async def others(request: Request, session: LoggedIn) -> Response:
        try:
            count = await logout_others(request, (await fields(request)).get("password"))
        except HTTPException as exc:
            await flash(request, str(exc.detail), "error")
        else:
            await flash(request, f"Logged out {count} other device(s).")
        return see_other("/devices")

    @app.post("/logout")
    async def log_out(request: Request) -> Response:
        await logout(request)
        await flash(request, "You are logged out.")
        return see_other("/")

    @app.exception_handler(401)
    async def not_logged_in(request: Request, exc: Exception) -> Response:
        return see_other("/login")

    return app


def main() -> None:
    """``python examples/fastapi_app.py [--host H] [--port P] [--workers N]``."""
    args = webshop.command_line(default_port=8000)
    webshop.load_settings(args.workers)  # refuse several workers without a shared secret now
    uvicorn.run(
        "fastapi_app:create_app",
        factory=True,
        app_dir=str(Path(__file__).resolve().parent),
        host=args.host,
        port=args.port,
        workers=args.workers,
    )


if __name__ == "__main__":
    main()
