"""What each framework adds: WebSockets, OpenAPI, exception handlers, missing extras."""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse as StarletteJSON
from starlette.routing import Route

from asyncsess import MissingDependency, SessionManager, StoreUnavailable
from asyncsess.integrations.fastapi import SessionData
from asyncsess.integrations.starlette import SessionMiddleware, get_session, load_session
from asyncsess.tokens import new_token
from tests.redis_cluster import spare_port

from .apps import Gates, aiohttp_app, fastapi_app
from .helpers import browser, serve_aiohttp, serve_asgi


@pytest.fixture
async def manager() -> AsyncIterator[SessionManager]:
    async with SessionManager("memory://") as mgr:
        yield mgr


@pytest.mark.anyio
@pytest.mark.parametrize("framework", ["fastapi", "aiohttp"])
async def test_websocket_routes_require_a_session(manager: SessionManager, framework: str) -> None:
    token = await manager.create("alice", {"rooms": ["general"]})
    app = fastapi_app(manager, Gates()) if framework == "fastapi" else None
    server = serve_asgi(app) if app is not None else serve_aiohttp(aiohttp_app(manager, Gates()))
    async with server as url, aiohttp.ClientSession() as client:
        ws_url = url.replace("http", "ws") + "/ws"
        cookie = {"Cookie": f"__Host-session={token}", "Origin": url}
        async with client.ws_connect(ws_url, headers=cookie) as socket:
            assert await socket.receive_json() == {"user": "alice"}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(ws_url, headers={"Origin": url})
        assert refused.value.status in (401, 403)
        # Cross-site WebSocket hijacking: the cookie rides along, the Origin gives it away.
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await client.ws_connect(ws_url, headers={**cookie, "Origin": "http://evil.example"})


@pytest.mark.anyio
async def test_openapi_lists_the_cookie_and_bearer_schemes(manager: SessionManager) -> None:
    async with serve_asgi(fastapi_app(manager, Gates())) as url, httpx.AsyncClient() as client:
        spec = (await client.get(url + "/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert {"type": "apiKey", "in": "cookie", "name": "__Host-session"}.items() <= schemes[
        "session cookie"
    ].items()
    assert schemes["bearer token"]["scheme"] == "bearer"
    assert {"session cookie": []} in spec["paths"]["/me"]["get"]["security"]


@pytest.mark.anyio
async def test_fastapi_exception_handlers_see_store_outages() -> None:
    down = SessionManager(f"redis://127.0.0.1:{spare_port()}/0", secret="s" * 32)
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=down)

    @app.exception_handler(StoreUnavailable)
    async def outage(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "maintenance"}, 503, headers={"Retry-After": "120"})

    @app.get("/read")
    async def read(session: SessionData) -> dict[str, int]:
        return {"keys": len(session)}

    cookie = {"cookie": f"__Host-session={new_token()}"}
    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/read", headers=cookie)
        assert response.status_code == 503
        assert response.json() == {"error": "maintenance"}
        assert response.headers["retry-after"] == "120"
        assert (await client.get("/read")).json() == {"keys": 0}  # no cookie: no store needed


@pytest.mark.parametrize(
    ("module", "framework", "extra"),
    [
        ("asyncsess.integrations.starlette", "starlette", "fastapi"),
        ("asyncsess.integrations.fastapi", "fastapi", "fastapi"),
        ("asyncsess.integrations.aiohttp", "aiohttp", "aiohttp"),
    ],
)
def test_importing_without_the_framework_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, framework: str, extra: str
) -> None:
    for name in [m for m in sys.modules if m == framework or m.startswith(framework + ".")]:
        monkeypatch.setitem(sys.modules, name, None)  # makes ``import name`` fail
    monkeypatch.delitem(sys.modules, module)
    with pytest.raises(MissingDependency, match=rf"asyncsess\[{extra}\]"):
        importlib.import_module(module)


@pytest.mark.anyio
async def test_helpers_need_the_middleware() -> None:
    request = Request({"type": "http", "headers": []})
    with pytest.raises(RuntimeError, match="SessionMiddleware"):
        await get_session(request)


@pytest.mark.anyio
async def test_request_session_in_plain_starlette(manager: SessionManager) -> None:
    async def visit(request: StarletteRequest) -> StarletteJSON:
        with pytest.raises(RuntimeError, match="load_session"):
            request.session.get("visits")  # not loaded yet: no silent empty session
        session = await load_session(request)
        assert request.session is session
        request.session["visits"] = request.session.get("visits", 0) + 1
        request.session.setdefault("trail", []).append({"path": request.url.path})
        return StarletteJSON({"visits": session["visits"], "trail": session["trail"]})

    app = Starlette(
        routes=[Route("/visit", visit)], middleware=[Middleware(SessionMiddleware, manager=manager)]
    )
    async with serve_asgi(app) as url, browser(url) as (client, _):
        assert (await client.get("/visit")).json() == {"visits": 1, "trail": [{"path": "/visit"}]}
        second = (await client.get("/visit")).json()
        assert second == {"visits": 2, "trail": [{"path": "/visit"}] * 2}
