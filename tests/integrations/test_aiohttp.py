"""The aiohttp integration, through aiohttp's server on loopback and a client with a cookie jar."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from asyncsess import SessionManager
from asyncsess.integrations.aiohttp import (
    CookieSettings,
    get_session,
    login,
    logout,
    logout_others,
    require_session,
    session_middleware,
    start_session,
)

from .helpers import (
    fast_accounts,
    load_example,
    manager_with_accounts,
    parse_set_cookies,
    serve_aiohttp,
)

IDLE = 600
PASSWORD = "correct horse battery staple"


def make_app(manager: SessionManager, **options: Any) -> web.Application:
    async def start(request: web.Request) -> web.Response:
        token = await start_session(request, request.match_info["user"])
        return web.json_response({"token": token})

    async def start_and_redirect(request: web.Request) -> web.Response:
        await start_session(request, request.match_info["user"])
        raise web.HTTPSeeOther("/me")

    async def log_in(request: web.Request) -> web.Response:
        body = await request.json()
        token = await login(request, body["username"], body["password"])
        if token is None:
            raise web.HTTPUnauthorized(text="wrong username or password")
        return web.json_response({"token": token})

    async def me(request: web.Request) -> web.Response:
        session = await require_session(request)
        return web.json_response({"user": session.user_id})

    async def maybe(request: web.Request) -> web.Response:
        session = await get_session(request)
        return web.json_response({"user": None if session is None else session.user_id})

    async def log_out(request: web.Request) -> web.Response:
        return web.json_response({"ended": await logout(request)})

    async def others(request: web.Request) -> web.Response:
        return web.json_response({"revoked": await logout_others(request)})

    app = web.Application(middlewares=[session_middleware(manager, **options)])
    app.router.add_post("/start/{user}", start)
    app.router.add_post("/redirect/{user}", start_and_redirect)
    app.router.add_post("/login", log_in)
    app.router.add_get("/me", me)
    app.router.add_get("/maybe", maybe)
    app.router.add_post("/logout", log_out)
    app.router.add_post("/logout-others", others)
    return app


def client(url: str) -> aiohttp.ClientSession:
    # unsafe=True: keep cookies for an IP-address host such as 127.0.0.1.
    return aiohttp.ClientSession(url, cookie_jar=aiohttp.CookieJar(unsafe=True))


class Reply:
    """A response read in full: status, headers, body (JSON when it is JSON), Set-Cookie."""

    def __init__(self, response: aiohttp.ClientResponse, body: Any) -> None:
        self.status, self.headers, self.body = response.status, response.headers, body
        self.history = response.history
        self.cookies = parse_set_cookies(response.headers.getall("Set-Cookie", []))


async def call(http: aiohttp.ClientSession, method: str, path: str, **options: Any) -> Reply:
    async with http.request(method, path, **options) as response:
        json = response.content_type == "application/json"
        return Reply(response, await response.json() if json else await response.text())


@pytest.fixture
async def manager() -> AsyncIterator[SessionManager]:
    async with SessionManager("memory://", idle_timeout=IDLE) as mgr:
        yield mgr


@pytest.fixture
async def base_url(manager: SessionManager) -> AsyncIterator[str]:
    async with serve_aiohttp(make_app(manager)) as url:
        yield url


@pytest.mark.anyio
async def test_cookie_attributes_and_session(base_url: str) -> None:
    async with client(base_url) as http:
        assert (await call(http, "GET", "/maybe")).body == {"user": None}
        started = await call(http, "POST", "/start/alice")
        cookie = started.cookies["session"]
        assert cookie["value"] == started.body["token"]
        assert cookie["httponly"] == "true" and cookie["samesite"] == "Lax"
        assert cookie["path"] == "/" and IDLE - 5 <= int(cookie["max-age"]) <= IDLE
        assert "secure" not in cookie
        me = await call(http, "GET", "/me")
        assert me.body == {"user": "alice"}
        assert "Set-Cookie" not in me.headers  # no renewal due: nothing to refresh


@pytest.mark.anyio
async def test_cookie_on_a_raised_redirect(base_url: str) -> None:
    async with client(base_url) as http:
        reply = await call(http, "POST", "/redirect/alice")
    assert reply.status == 200 and reply.history[0].status == 303
    assert "session" in parse_set_cookies(reply.history[0].headers.getall("Set-Cookie", []))
    assert reply.body == {"user": "alice"}


@pytest.mark.anyio
async def test_https_via_trusted_forwarded_proto(manager: SessionManager) -> None:
    https = {"X-Forwarded-Proto": "https"}
    app = make_app(manager, cookie=CookieSettings(trust_forwarded=True))
    async with serve_aiohttp(app) as url, client(url) as http:
        cookie = (await call(http, "POST", "/start/alice", headers=https)).cookies["__Host-session"]
        assert cookie["secure"] == "true" and cookie["path"] == "/"
        sent = {"Cookie": f"__Host-session={cookie['value']}"}
        assert (await call(http, "GET", "/me", headers=sent | https)).status == 200
    async with serve_aiohttp(make_app(manager)) as url, client(url) as http:
        untrusted = await call(http, "POST", "/start/alice", headers=https)
        assert set(untrusted.cookies) == {"session"}


@pytest.mark.anyio
async def test_revoked_and_pre_login_tokens_get_401(base_url: str, manager: SessionManager) -> None:
    async with client(base_url) as http:
        planted = (await call(http, "POST", "/start/visitor")).body["token"]
        fresh = (await call(http, "POST", "/start/alice")).body["token"]
        assert (await call(http, "GET", "/me")).body == {"user": "alice"}
        assert await manager.revoke(fresh)
        refused = await call(http, "GET", "/me")
        assert refused.status == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
    async with client(base_url) as other:
        old = await call(other, "GET", "/me", headers={"Cookie": f"session={planted}"})
        assert old.status == 401


@pytest.mark.anyio
async def test_bearer_tokens(manager: SessionManager) -> None:
    token = await manager.create("api-user")
    bearer = {"Authorization": f"Bearer {token}"}
    async with serve_aiohttp(make_app(manager)) as url, client(url) as http:
        assert (await call(http, "GET", "/me", headers=bearer)).body == {"user": "api-user"}
    async with serve_aiohttp(make_app(manager, bearer=False)) as url, client(url) as http:
        assert (await call(http, "GET", "/me", headers=bearer)).status == 401


@pytest.mark.anyio
async def test_login_logout_and_other_devices() -> None:
    accounts = fast_accounts()
    user = await accounts.create_user("alice", PASSWORD)
    manager = manager_with_accounts(accounts)
    alice = {"username": "alice", "password": PASSWORD}
    async with accounts, manager, serve_aiohttp(make_app(manager)) as url, client(url) as http:
        other = await manager.create(user.id)
        planted = (await call(http, "POST", "/start/visitor")).body["token"]
        wrong = alice | {"password": "wrong"}
        assert (await call(http, "POST", "/login", json=wrong)).status == 401
        assert "session" in (await call(http, "POST", "/login", json=alice)).cookies
        assert await manager.validate(planted) is None
        assert (await call(http, "POST", "/logout-others")).body == {"revoked": 1}
        assert await manager.validate(other) is None
        out = await call(http, "POST", "/logout")
        assert out.body == {"ended": True}
        assert out.cookies["session"]["value"] == "" and out.cookies["session"]["max-age"] == "0"
        assert (await call(http, "GET", "/me")).status == 401


@pytest.mark.anyio
async def test_aiohttp_example() -> None:
    example = load_example("aiohttp_app")
    alice = {"username": "alice", "password": PASSWORD}
    app = example.create_app("memory://")
    async with serve_aiohttp(app) as url, client(url) as laptop, client(url) as phone:
        assert (await call(laptop, "POST", "/register", json=alice)).status == 201
        assert (await call(laptop, "POST", "/register", json=alice)).status == 409
        assert (await call(laptop, "GET", "/me")).status == 401
        first = await call(laptop, "POST", "/login", json=alice)
        assert first.status == 200
        cookie = first.cookies["session"]
        assert {"httponly", "samesite", "path", "max-age"} <= set(cookie)
        assert (await call(phone, "POST", "/login", json=alice)).status == 200
        me = await call(laptop, "GET", "/me")
        assert me.body == {"username": "alice", "devices": 2}
        # Logging in again on the laptop rotates: the first cookie is dead.
        assert (await call(laptop, "POST", "/login", json=alice)).status == 200
        async with client(url) as thief:
            stolen = {"Cookie": f"session={cookie['value']}"}
            assert (await call(thief, "GET", "/me", headers=stolen)).status == 401
        assert (await call(laptop, "POST", "/logout-others")).body == {"revoked": 1}
        assert (await call(phone, "GET", "/me")).status == 401
        token = (await call(phone, "POST", "/token", json=alice)).body["token"]
        async with client(url) as api:
            bearer = {"Authorization": f"Bearer {token}"}
            assert (await call(api, "GET", "/me", headers=bearer)).status == 200
        assert (await call(laptop, "POST", "/logout")).body == {"logged_out": True}
        assert (await call(laptop, "GET", "/me")).status == 401
