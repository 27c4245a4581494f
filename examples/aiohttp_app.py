"""The example shop of ``examples/fastapi_app.py``, on aiohttp.

Run it (``pip install "asyncsess[aiohttp,sql]" jinja2``)::

    python examples/aiohttp_app.py                      # http://127.0.0.1:8080
    ASYNCSESS_SECRET=... python examples/aiohttp_app.py --workers 2

Several workers share the port (``SO_REUSEPORT``), the store (``ASYNCSESS_URL``)
and the secret (``ASYNCSESS_SECRET``, required then). The pages, the cart,
the CSRF tokens and the devices page are those of the FastAPI example.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from jinja2 import Environment

from asyncsess import AccountError, SessionManager, UserExists
from asyncsess.accounts import Accounts
from asyncsess.integrations.aiohttp import (
    SessionConfig,
    csrf_token,
    flash,
    get_flashed_messages,
    get_session,
    login,
    logout,
    logout_device,
    logout_others,
    require_session,
    session_middleware,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import webshop  # the examples' shared module, beside this file

ACCOUNTS = web.AppKey("accounts", Accounts)
MANAGER = web.AppKey("manager", SessionManager)
PAGES = web.AppKey("pages", Environment)


async def page(
    request: web.Request, template: str, title: str, status: int = 200, **extra: Any
) -> web.Response:
    """Render a page with what every page shows (user, flash messages, CSRF token, cart)."""
    session = await get_session(request)
    flashes = await get_flashed_messages(request)
    context = webshop.page_context(session, flashes, csrf_token(request), title, extra)
    html = request.app[PAGES].get_template(template).render(context)
    return web.Response(text=html, status=status, content_type="text/html")


async def fields(request: web.Request) -> dict[str, str]:
    """The posted form's text fields."""
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}


async def home(request: web.Request) -> web.Response:
    """The shop: products and the cart (no session is made for a visitor who only looks)."""
    return await page(request, "home.html", "Shop")


async def cart_add(request: web.Request) -> web.Response:
    """Add one product to the cart (the first write makes an anonymous session)."""
    sku = (await fields(request)).get("sku", "")
    if webshop.add_to_cart(await get_session(request), sku):
        await flash(request, f"Added one {webshop.PRODUCTS[sku][0].lower()} to your cart.")
    raise web.HTTPSeeOther("/")


async def register_form(request: web.Request) -> web.Response:
    """The registration form."""
    return await page(request, "register.html", "Register", name="")


async def register(request: web.Request) -> web.Response:
    """Create an account."""
    form = await fields(request)
    name = form.get("username", "")
    try:
        await request.app[ACCOUNTS].create_user(name, form.get("password", ""))
    except UserExists:
        return await page(
            request, "register.html", "Register", 409, name=name, error="This username is taken."
        )
    except AccountError as exc:
        return await page(request, "register.html", "Register", 400, name=name, error=str(exc))
    await flash(request, "Your account is ready: log in.")
    raise web.HTTPSeeOther("/login")


async def login_form(request: web.Request) -> web.Response:
    """The login form."""
    return await page(request, "login.html", "Log in", name="")


async def log_in(request: web.Request) -> web.Response:
    """Log in: a new session carrying the cart; the anonymous one ends."""
    form = await fields(request)
    name = form.get("username", "")
    remember = form.get("remember") == "1"
    try:
        token = await login(request, name, form.get("password", ""), remember=remember)
    except web.HTTPException as exc:  # throttled: 429 with Retry-After
        return await page(request, "login.html", "Log in", exc.status, name=name, error=exc.text)
    if token is None:
        return await page(
            request, "login.html", "Log in", 401, name=name, error="Wrong username or password."
        )
    await flash(request, f"Welcome, {name}.")
    raise web.HTTPSeeOther("/account")


async def account(request: web.Request) -> web.Response:
    """The protected page."""
    if not (await get_session(request)).user_id:
        await flash(request, "Log in to see your account.")
        raise web.HTTPSeeOther("/login")
    return await page(request, "account.html", "Your account")


async def devices(request: web.Request) -> web.Response:
    """The sessions of this user, each with a button to log it out."""
    session = await require_session(request)
    assert session.user_id is not None
    rows = webshop.device_rows(await request.app[MANAGER].sessions(session.user_id), session.id)
    return await page(request, "devices.html", "Your devices", devices=rows)


async def device_logout(request: web.Request) -> web.Response:
    """Log out one device (this one included); asks for the password again."""
    session = await require_session(request)
    form = await fields(request)
    this = form.get("session_id") == session.id
    try:
        ended = await logout_device(request, form.get("session_id", ""), form.get("password"))
    except web.HTTPForbidden as exc:
        await flash(request, exc.text or "refused", "error")
        raise web.HTTPSeeOther("/devices") from None
    await flash(request, "That device is logged out." if ended else "Nothing to log out.")
    raise web.HTTPSeeOther("/login" if this and ended else "/devices")


async def others(request: web.Request) -> web.Response:
    """Log out every other device; asks for the password again."""
    await require_session(request)
    try:
        count = await logout_others(request, (await fields(request)).get("password"))
    except web.HTTPForbidden as exc:
        await flash(request, exc.text or "refused", "error")
    else:
        await flash(request, f"Logged out {count} other device(s).")
    raise web.HTTPSeeOther("/devices")


async def log_out(request: web.Request) -> web.Response:
    """Log out this device."""
    await logout(request)
    await flash(request, "You are logged out.")
    raise web.HTTPSeeOther("/")


@web.middleware
async def login_redirect(request: web.Request, handler: Any) -> web.StreamResponse:
    """Send a browser that is not logged in to the login page instead of a bare 401."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPUnauthorized:
        raise web.HTTPSeeOther("/login") from None
    return response


def create_app(settings: webshop.Settings | None = None) -> web.Application:
    """Build the shop on ``settings`` (default: from the environment)."""
    settings = settings or webshop.load_settings()
    accounts = Accounts(settings.url)
    manager = SessionManager(settings.url, secret=settings.secret, accounts=accounts)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        async with accounts, manager:  # the manager runs the expiry sweeper
            yield

    config = SessionConfig(reauthenticate=True)
    app = web.Application(middlewares=[session_middleware(manager, config=config), login_redirect])
    app[ACCOUNTS], app[MANAGER], app[PAGES] = accounts, manager, webshop.templates()
    app.cleanup_ctx.append(lifespan)
    app.router.add_get("/", home)
    app.router.add_post("/cart/add", cart_add)
    app.router.add_get("/register", register_form)
    app.router.add_post("/register", register)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", log_in)
    app.router.add_get("/account", account)
    app.router.add_get("/devices", devices)
    app.router.add_post("/devices/logout", device_logout)
    app.router.add_post("/devices/logout-others", others)
    app.router.add_post("/logout", log_out)
    return app


def serve(host: str, port: int, reuse_port: bool) -> None:
    """Run one worker."""
    web.run_app(create_app(), host=host, port=port, reuse_port=reuse_port)


def main() -> None:
    """``python examples/aiohttp_app.py [--host H] [--port P] [--workers N]``."""
    args = webshop.command_line(default_port=8080)
    webshop.load_settings(args.workers)  # refuse several workers without a shared secret now
    if args.workers == 1:
        serve(args.host, args.port, reuse_port=False)
        return
    workers = [
        multiprocessing.Process(target=serve, args=(args.host, args.port, True))
        for _ in range(args.workers)
    ]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the workers with us
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join()
    finally:
        for worker in workers:
            worker.terminate()
            worker.join()


if __name__ == "__main__":
    main()
