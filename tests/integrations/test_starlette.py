"""The Starlette/FastAPI integration, through uvicorn on loopback and httpx with a cookie jar."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel

from asyncsess import ConfigurationError, Session, SessionManager
from asyncsess.integrations.starlette import (
    CookieSettings,
    SessionMiddleware,
    get_session,
    login,
    logout,
    logout_others,
    require_session,
    session_context,
    start_session,
)

from .helpers import (
    fast_accounts,
    load_example,
    manager_with_accounts,
    parse_set_cookies,
    serve_asgi,
)

IDLE, ABSOLUTE = 600, 3600
PASSWORD = "correct horse battery staple"


class Credentials(BaseModel):
    username: str
    password: str


def make_app(manager: SessionManager, **middleware: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=manager, **middleware)

    @app.post("/start/{user_id}")
    async def start(request: Request, user_id: str) -> dict[str, str]:
        return {"token": await start_session(request, user_id, {"n": 1})}

    @app.post("/login")
    async def log_in(request: Request, body: Credentials) -> dict[str, str | None]:
        token = await login(request, body.username, body.password)
        if token is None:
            raise HTTPException(401, "wrong username or password")
        return {"token": token}

    @app.get("/me")
    async def me(session: Annotated[Session, Depends(require_session)]) -> dict[str, Any]:
        return {"user": session.user_id, "data": dict(session.data)}

    @app.get("/maybe")
    async def maybe(session: Annotated[Session | None, Depends(get_session)]) -> dict[str, Any]:
        return {"user": None if session is None else session.user_id}

    @app.post("/logout")
    async def log_out(request: Request) -> dict[str, bool]:
        return {"ended": await logout(request)}

    @app.post("/logout-others")
    async def others(request: Request) -> dict[str, int]:
        return {"revoked": await logout_others(request)}

    @app.get("/source")
    async def source(request: Request) -> dict[str, str | None]:
        return {"source": session_context(request).source}

    return app


@pytest.fixture
async def manager() -> AsyncIterator[SessionManager]:
    async with SessionManager("memory://", idle_timeout=IDLE, absolute_timeout=ABSOLUTE) as mgr:
        yield mgr


@pytest.fixture
async def base_url(manager: SessionManager) -> AsyncIterator[str]:
    async with serve_asgi(make_app(manager)) as url:
        yield url


def cookies_of(response: httpx.Response) -> dict[str, Any]:
    return parse_set_cookies(response.headers.get_list("set-cookie"))


@pytest.mark.anyio
async def test_cookie_attributes_over_http(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        assert (await client.get("/maybe")).json() == {"user": None}
        response = await client.post("/start/alice")
        cookie = cookies_of(response)["session"]
        assert cookie["value"] == response.json()["token"]
        assert cookie["httponly"] == "true"
        assert cookie["samesite"] == "Lax"
        assert cookie["path"] == "/"
        assert IDLE - 5 <= int(cookie["max-age"]) <= IDLE
        assert "secure" not in cookie and "domain" not in cookie
        me = await client.get("/me")
        assert me.json() == {"user": "alice", "data": {"n": 1}}
        assert "set-cookie" not in me.headers  # no renewal due: nothing to refresh


@pytest.mark.anyio
async def test_https_gets_a_host_prefixed_secure_cookie(manager: SessionManager) -> None:
    https = {"X-Forwarded-Proto": "https"}
    async with serve_asgi(make_app(manager, cookie=CookieSettings(trust_forwarded=True))) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.post("/start/alice", headers=https)
            cookie = cookies_of(response)["__Host-session"]
            assert cookie["secure"] == "true" and cookie["httponly"] == "true"
            assert cookie["path"] == "/" and "domain" not in cookie
        token = cookie["value"]
        async with httpx.AsyncClient(base_url=url) as client:
            sent = {"Cookie": f"__Host-session={token}"}
            assert (await client.get("/me", headers=sent | https)).status_code == 200
            # Over plain HTTP the __Host- cookie is not the session cookie.
            assert (await client.get("/me", headers=sent)).status_code == 401
    # Without trust_forwarded, the header is the client's word: ignored.
    async with serve_asgi(make_app(manager)) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/start/alice", headers=https)
        assert set(cookies_of(response)) == {"session"}
        assert "secure" not in cookies_of(response)["session"]


@pytest.mark.anyio
async def test_revoked_session_gets_401(base_url: str, manager: SessionManager) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        token = (await client.post("/start/alice")).json()["token"]
        assert (await client.get("/me")).status_code == 200
        assert await manager.revoke(token)
        response = await client.get("/me")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.anyio
async def test_new_session_revokes_the_pre_login_cookie(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        planted = (await client.post("/start/visitor")).json()["token"]
        fresh = (await client.post("/start/alice")).json()["token"]
        assert fresh != planted
        assert (await client.get("/me")).json()["user"] == "alice"
    async with httpx.AsyncClient(base_url=base_url) as other:
        old = await other.get("/me", headers={"Cookie": f"session={planted}"})
        assert old.status_code == 401


@pytest.mark.anyio
async def test_login_rotates_and_wrong_password_keeps_the_session() -> None:
    accounts = fast_accounts()
    await accounts.create_user("alice", PASSWORD)
    manager = manager_with_accounts(accounts)
    async with accounts, manager, serve_asgi(make_app(manager)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            planted = (await client.post("/start/visitor")).json()["token"]
            wrong = {"username": "alice", "password": "wrong"}
            assert (await client.post("/login", json=wrong)).status_code == 401
            assert (await client.get("/me")).json()["user"] == "visitor"
            good = await client.post("/login", json={"username": "alice", "password": PASSWORD})
            assert good.status_code == 200
            assert cookies_of(good)["session"]["value"] == good.json()["token"]
            me = (await client.get("/me")).json()
            assert me["data"] == {"username": "alice"}
        assert await manager.validate(planted) is None


@pytest.mark.anyio
async def test_bearer_tokens(manager: SessionManager) -> None:
    token = await manager.create("api-user")
    bearer = {"Authorization": f"Bearer {token}"}
    async with serve_asgi(make_app(manager)) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/me", headers=bearer)
        assert response.json()["user"] == "api-user"
        assert (await client.get("/source", headers=bearer)).json() == {"source": "bearer"}
        assert (
            await client.get("/me", headers={"Authorization": "Bearer nope"})
        ).status_code == 401
        assert (
            await client.get("/me", headers={"Authorization": f"Basic {token}"})
        ).status_code == 401
    async with (
        serve_asgi(make_app(manager, bearer=False)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        assert (await client.get("/me", headers=bearer)).status_code == 401


@pytest.mark.anyio
async def test_logout_revokes_and_deletes_the_cookie(
    base_url: str, manager: SessionManager
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        token = (await client.post("/start/alice")).json()["token"]
        response = await client.post("/logout")
        assert response.json() == {"ended": True}
        cookie = cookies_of(response)["session"]
        assert cookie["value"] == "" and cookie["max-age"] == "0"
        assert not client.cookies
        assert (await client.get("/me")).status_code == 401
        assert await manager.validate(token) is None
        assert (await client.post("/logout")).json() == {"ended": False}


@pytest.mark.anyio
async def test_logout_others_keeps_this_device(base_url: str, manager: SessionManager) -> None:
    other = await manager.create("alice")
    async with httpx.AsyncClient(base_url=base_url) as client:
        await client.post("/start/alice")
        assert (await client.post("/logout-others")).json() == {"revoked": 1}
        assert (await client.get("/me")).status_code == 200
    assert await manager.validate(other) is None


@pytest.mark.anyio
async def test_sliding_renewal_refreshes_max_age() -> None:
    # renew_fraction=1: every validate renews, so every cookie request re-sends the cookie.
    async with (
        SessionManager("memory://", idle_timeout=IDLE, renew_fraction=1.0) as manager,
        serve_asgi(make_app(manager)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        token = (await client.post("/start/alice")).json()["token"]
        response = await client.get("/me")
        cookie = cookies_of(response)["session"]
        assert cookie["value"] == token
        assert IDLE - 5 <= int(cookie["max-age"]) <= IDLE
        bearer = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert "set-cookie" not in bearer.headers  # bearer clients get no cookies


@pytest.mark.anyio
async def test_absolute_and_browser_lifetimes(manager: SessionManager) -> None:
    absolute = CookieSettings(lifetime="absolute")
    async with (
        serve_asgi(make_app(manager, cookie=absolute)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        cookie = cookies_of(await client.post("/start/alice"))["session"]
        assert ABSOLUTE - 5 <= int(cookie["max-age"]) <= ABSOLUTE
    browser = CookieSettings(lifetime="browser", name="sid", samesite="strict")
    async with (
        serve_asgi(make_app(manager, cookie=browser)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        cookie = cookies_of(await client.post("/start/alice"))["sid"]
        assert "max-age" not in cookie and cookie["samesite"] == "Strict"
        assert (await client.get("/me")).status_code == 200


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
    domain = CookieSettings(domain="example.com")
    assert domain.name_for(https=True) == "__Secure-session"
    assert CookieSettings(samesite="none").secure_for(https=False)


@pytest.mark.anyio
async def test_helpers_need_the_middleware() -> None:
    request = Request({"type": "http", "headers": []})
    with pytest.raises(RuntimeError, match="SessionMiddleware"):
        await get_session(request)


@pytest.mark.anyio
async def test_fastapi_example() -> None:
    example = load_example("fastapi_app")
    alice = {"username": "alice", "password": PASSWORD}
    async with (
        serve_asgi(example.create_app("memory://")) as url,
        httpx.AsyncClient(base_url=url) as laptop,
        httpx.AsyncClient(base_url=url) as phone,
    ):
        assert (await laptop.post("/register", json=alice)).status_code == 201
        assert (await laptop.post("/register", json=alice)).status_code == 409
        assert (await laptop.get("/me")).status_code == 401
        wrong = {"username": "alice", "password": "nope"}
        assert (await laptop.post("/login", json=wrong)).status_code == 401
        response = await laptop.post("/login", json=alice)
        assert response.status_code == 200
        cookie = cookies_of(response)["session"]
        assert {"httponly", "samesite", "path", "max-age"} <= set(cookie)
        first = cookie["value"]
        assert (await phone.post("/login", json=alice)).status_code == 200
        assert (await laptop.get("/me")).json() == {"username": "alice", "devices": 2}
        # Logging in again on the laptop rotates: the first cookie is dead.
        assert (await laptop.post("/login", json=alice)).status_code == 200
        async with httpx.AsyncClient(base_url=url) as thief:
            stolen = await thief.get("/me", headers={"Cookie": f"session={first}"})
            assert stolen.status_code == 401
        assert (await laptop.post("/logout-others")).json() == {"revoked": 1}
        assert (await phone.get("/me")).status_code == 401
        token = (await phone.post("/token", json=alice)).json()["token"]
        async with httpx.AsyncClient(base_url=url) as api:
            bearer = {"Authorization": f"Bearer {token}"}
            assert (await api.get("/me", headers=bearer)).status_code == 200
        assert (await laptop.post("/logout")).json() == {"logged_out": True}
        assert (await laptop.get("/me")).status_code == 401
