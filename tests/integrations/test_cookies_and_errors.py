"""Cookie attributes, Cache-Control, dead cookies and store outages, through real servers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from asyncsess import ConfigurationError, SessionManager, StoreUnavailable
from asyncsess.integrations.starlette import CookieSettings, SessionConfig
from asyncsess.tokens import new_token
from tests.redis_cluster import spare_port

from .conftest import Serve
from .helpers import browser, set_cookies

IDLE = 600
VALUE = {"key": "cart", "value": [{"sku": "pear", "qty": 1}]}


@pytest.fixture
async def manager() -> AsyncIterator[SessionManager]:
    async with SessionManager("memory://", idle_timeout=IDLE) as mgr:
        yield mgr


@pytest.mark.anyio
async def test_secure_host_cookie_by_default_on_plain_http(
    serve: Serve, manager: SessionManager
) -> None:
    async with serve(manager) as url, browser(url) as (client, _):
        cookie = set_cookies(await client.post("/set", json=VALUE))["__Host-session"]
        assert cookie["secure"] == "true" and cookie["httponly"] == "true"
        assert cookie["samesite"] == "Lax" and cookie["path"] == "/"
        assert "domain" not in cookie
        assert IDLE - 5 <= int(cookie["max-age"]) <= IDLE
    # Behind a TLS-terminating proxy (the app sees http) the cookie is the same.
    proxied = SessionConfig(cookie=CookieSettings(trust_forwarded=True))
    async with serve(manager, config=proxied) as url, browser(url) as (client, _):
        forwarded = {"x-forwarded-proto": "https", "origin": url.replace("http:", "https:")}
        response = await client.post("/set", json=VALUE, headers=forwarded)
        cookie = set_cookies(response)["__Host-session"]
        assert cookie["secure"] == "true" and cookie["httponly"] == "true"


@pytest.mark.anyio
async def test_development_opt_out_warns(
    serve: Serve, manager: SessionManager, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="asyncsess"):
        config = SessionConfig(cookie=CookieSettings(secure=False))
    assert "development only" in caplog.text
    async with serve(manager, config=config) as url, browser(url) as (client, _):
        cookies = set_cookies(await client.post("/set", json=VALUE))
        assert set(cookies) == {"session"} and "secure" not in cookies["session"]


@pytest.mark.anyio
async def test_every_token_cookie_comes_with_no_store(
    serve: Serve, manager: SessionManager
) -> None:
    async with serve(manager) as url:
        for sent, kept in [
            ("public, max-age=3600", "no-store"),
            ("max-age=60", "no-store"),
            ("private, max-age=5", "private, max-age=5"),
            ("no-store, no-cache", "no-store, no-cache"),
        ]:
            async with browser(url) as (client, _):  # a new visitor: a new session's cookie
                response = await client.post("/cached", json={"cache_control": sent})
                assert "__Host-session" in set_cookies(response)
                assert response.headers["cache-control"] == kept, sent
                # An update without a new token sets no cookie: its caching is the app's.
                again = await client.post("/cached", json={"cache_control": sent})
                assert "set-cookie" not in again.headers
    # A renewal re-sends the token: no-store too.
    async with (
        SessionManager("memory://", idle_timeout=IDLE, renew_fraction=1.0) as renewing,
        serve(renewing) as url,
        browser(url) as (client, jar),
    ):
        await client.post("/set", json=VALUE)
        read = await client.get("/read")
        assert set_cookies(read)["__Host-session"]["value"] == jar.cookies["__Host-session"]
        assert read.headers["cache-control"] == "no-store"
        assert "set-cookie" not in (await client.get("/public")).headers  # lazy: no renewal


@pytest.mark.anyio
async def test_a_dead_cookie_is_cleared(serve: Serve, manager: SessionManager) -> None:
    async with serve(manager) as url, browser(url) as (client, jar):
        await client.post("/set", json=VALUE)
        assert await manager.revoke(jar.cookies["__Host-session"])
        response = await client.get("/me")
        assert response.status_code == 401
        cleared = set_cookies(response)["__Host-session"]
        assert cleared["value"] == "" and cleared["max-age"] == "0"
        assert not jar.cookies
        assert "set-cookie" not in (await client.get("/me")).headers
        garbage = {"cookie": "__Host-session=not-a-token"}
        async with httpx.AsyncClient(base_url=url) as raw:
            response = await raw.get("/read", headers=garbage)
            assert set_cookies(response)["__Host-session"]["max-age"] == "0"


@pytest.mark.anyio
async def test_store_down_is_503_and_public_routes_still_answer(serve: Serve) -> None:
    down = SessionManager(f"redis://127.0.0.1:{spare_port()}/0", secret="s" * 32)
    config = SessionConfig(retry_after=30)
    cookie = {"cookie": f"__Host-session={new_token()}"}
    async with serve(down, config=config) as url, httpx.AsyncClient(base_url=url) as raw:
        assert (await raw.get("/public")).status_code == 200
        assert (await raw.get("/public", headers=cookie)).status_code == 200  # never loaded
        for response in (
            await raw.get("/read", headers=cookie),
            await raw.get("/me", headers=cookie),
            await raw.post("/set", json=VALUE, headers={"origin": url}),  # creating one
        ):
            assert response.status_code == 503
            assert response.headers["retry-after"] == "30"
            assert "set-cookie" not in response.headers


def test_cookie_settings_refuse_what_browsers_would_drop() -> None:
    with pytest.raises(ConfigurationError, match="__Host-"):
        CookieSettings(name="__Host-sid", domain="example.com")
    with pytest.raises(ConfigurationError, match="__Host-"):
        CookieSettings(name="__Host-sid", path="/app")
    with pytest.raises(ConfigurationError, match="secure"):
        CookieSettings(samesite="none", secure=False)
    with pytest.raises(ConfigurationError, match="samesite"):
        CookieSettings(samesite="LAX")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="name"):
        CookieSettings(name="bad name;")
    with pytest.raises(ConfigurationError, match="path"):
        CookieSettings(path="/a;b")
    assert CookieSettings(domain="example.com").cookie_name == "__Secure-session"
    assert CookieSettings().device_cookie_name == "__Host-device"


@pytest.mark.anyio
async def test_the_outage_answer_can_be_replaced(serve: Serve, framework: str) -> None:
    down = SessionManager(f"redis://127.0.0.1:{spare_port()}/0", secret="s" * 32)
    hook: Any
    if framework == "fastapi":
        from starlette.requests import HTTPConnection
        from starlette.responses import PlainTextResponse, Response

        async def starlette_hook(conn: HTTPConnection, exc: StoreUnavailable) -> Response:
            return PlainTextResponse("down for maintenance", 503, {"Retry-After": "600"})

        hook = starlette_hook
    else:
        from aiohttp import web

        async def aiohttp_hook(request: web.Request, exc: StoreUnavailable) -> web.Response:
            headers = {"Retry-After": "600"}
            return web.Response(status=503, text="down for maintenance", headers=headers)

        hook = aiohttp_hook
    cookie = {"cookie": f"__Host-session={new_token()}"}
    async with serve(down, on_store_error=hook) as url, httpx.AsyncClient(base_url=url) as raw:
        response = await raw.get("/read", headers=cookie)
        assert (response.status_code, response.text) == (503, "down for maintenance")
        assert response.headers["retry-after"] == "600"
