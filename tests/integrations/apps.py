"""The same small app on Starlette/FastAPI and on aiohttp, so each behaviour is tested on both.

Routes (JSON in, JSON out unless said):

- ``GET /public``: never touches the session;
- ``GET /read``: the session's data and user;
- ``POST /set`` ``{"key", "value"}`` and ``POST /delete`` ``{"key"}``;
- ``POST /hold`` ``{"key", "value"}``: loads, waits for ``gate``, then sets
  (``loaded`` is set once it has loaded): for concurrent-write tests;
- ``POST /form``: a form post (``csrf_token`` field allowed), sets ``form=1``;
- ``POST /login`` ``{"username", "password", "remember"?}``, ``POST /logout``,
  ``POST /rotate``, ``POST /start/{user}``;
- ``POST /logout-others`` ``{"password"?}``, ``POST /logout-device`` ``{"id", "password"?}``;
- ``GET /me`` (require_session), ``GET /user`` (current_user);
- ``POST /flash`` ``{"message"}``, ``GET /flashes``;
- ``GET /csrf``: the synchronizer token;
- ``POST /cached`` ``{"cache_control"}``: writes the session, answers with that header.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from aiohttp import web
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse

from asyncsess import SessionManager
from asyncsess.integrations import RequestSession
from asyncsess.integrations import aiohttp as aio
from asyncsess.integrations import fastapi as fa
from asyncsess.integrations import starlette as st

Json = dict[str, Any]


@dataclass
class Gates:
    """Events a held request waits on and reports through (same event loop as the server)."""

    loaded: anyio.Event = field(default_factory=anyio.Event)
    gate: anyio.Event = field(default_factory=anyio.Event)


async def _hold(session: RequestSession, body: Mapping[str, Any], gates: Gates) -> None:
    gates.loaded.set()
    await gates.gate.wait()
    session[body["key"]] = body["value"]


def _read(session: RequestSession) -> Json:
    return {"data": session.data(), "user": session.user_id, "id": session.id}


def fastapi_app(manager: SessionManager, gates: Gates, **middleware: Any) -> FastAPI:
    """The test app on FastAPI."""
    app = FastAPI()
    app.add_middleware(st.SessionMiddleware, manager=manager, **middleware)

    @app.get("/public")
    async def public() -> Json:
        return {"ok": True}

    @app.get("/read")
    async def read(session: fa.SessionData) -> Json:
        return _read(session)

    @app.post("/set")
    async def set_(request: Request, session: fa.SessionData) -> Json:
        body = await request.json()
        session[body["key"]] = body["value"]
        return {}

    @app.post("/delete")
    async def delete(request: Request, session: fa.SessionData) -> Json:
        del session[(await request.json())["key"]]
        return {}

    @app.post("/hold")
    async def hold(request: Request, session: fa.SessionData) -> Json:
        await _hold(session, await request.json(), gates)
        return {}

    @app.post("/form")
    async def form(request: Request, session: fa.SessionData) -> Json:
        async with request.form() as fields:
            session["form"] = fields.get("value", "1")
        return {}

    @app.post("/login")
    async def log_in(request: Request) -> JSONResponse:
        body = await request.json()
        token = await st.login(
            request, body["username"], body["password"], remember=body.get("remember")
        )
        if token is None:
            return JSONResponse({"error": "wrong"}, 401)
        return JSONResponse({"token": token})

    @app.post("/logout")
    async def log_out(request: Request) -> Json:
        return {"ended": await st.logout(request)}

    @app.post("/rotate")
    async def rotate(request: Request) -> Json:
        return {"token": await st.rotate_session(request)}

    @app.post("/start/{user}")
    async def start(request: Request, user: str) -> Json:
        return {"token": await st.start_session(request, user, {"roles": ["reader"]})}

    @app.post("/logout-others")
    async def others(request: Request) -> Json:
        body = await request.json()
        return {"revoked": await st.logout_others(request, body.get("password"))}

    @app.post("/logout-device")
    async def device(request: Request) -> Json:
        body = await request.json()
        return {"ended": await st.logout_device(request, body["id"], body.get("password"))}

    @app.get("/me")
    async def me(session: fa.LoggedIn) -> Json:
        return {"user": session.user_id, "id": session.id}

    @app.get("/user")
    async def user(user: fa.CurrentUser) -> Json:
        return {"username": user.username}

    @app.post("/flash")
    async def flash(request: Request) -> Json:
        await st.flash(request, (await request.json())["message"])
        return {}

    @app.get("/flashes")
    async def flashes(request: Request) -> Json:
        return {"flashes": await st.get_flashed_messages(request)}

    @app.get("/csrf")
    async def csrf(request: Request) -> Json:
        await st.load_session(request)
        return {"token": st.csrf_token(request)}

    @app.post("/cached")
    async def cached(request: Request, session: fa.SessionData) -> JSONResponse:
        session["cached"] = True
        header = (await request.json())["cache_control"]
        return JSONResponse({}, headers={"Cache-Control": header})

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, session: fa.LoggedIn) -> None:
        await websocket.accept()
        await websocket.send_json({"user": session.user_id})
        await websocket.close()

    return app


def aiohttp_app(manager: SessionManager, gates: Gates, **middleware: Any) -> web.Application:
    """The test app on aiohttp."""
    Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
    routes: list[tuple[str, str, Handler]] = []

    def route(method: str, path: str) -> Callable[[Handler], Handler]:
        def add(handler: Handler) -> Handler:
            routes.append((method, path, handler))
            return handler

        return add

    def ok(body: Json | None = None, status: int = 200) -> web.Response:
        return web.json_response(body or {}, status=status)

    @route("GET", "/public")
    async def public(request: web.Request) -> web.StreamResponse:
        return ok({"ok": True})

    @route("GET", "/read")
    async def read(request: web.Request) -> web.StreamResponse:
        return ok(_read(await aio.get_session(request)))

    @route("POST", "/set")
    async def set_(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        (await aio.get_session(request))[body["key"]] = body["value"]
        return ok()

    @route("POST", "/delete")
    async def delete(request: web.Request) -> web.StreamResponse:
        del (await aio.get_session(request))[(await request.json())["key"]]
        return ok()

    @route("POST", "/hold")
    async def hold(request: web.Request) -> web.StreamResponse:
        await _hold(await aio.get_session(request), await request.json(), gates)
        return ok()

    @route("POST", "/form")
    async def form(request: web.Request) -> web.StreamResponse:
        fields = await request.post()
        (await aio.get_session(request))["form"] = fields.get("value", "1")
        return ok()

    @route("POST", "/login")
    async def log_in(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        token = await aio.login(
            request, body["username"], body["password"], remember=body.get("remember")
        )
        return ok({"error": "wrong"}, 401) if token is None else ok({"token": token})

    @route("POST", "/logout")
    async def log_out(request: web.Request) -> web.StreamResponse:
        return ok({"ended": await aio.logout(request)})

    @route("POST", "/rotate")
    async def rotate(request: web.Request) -> web.StreamResponse:
        return ok({"token": await aio.rotate_session(request)})

    @route("POST", "/start/{user}")
    async def start(request: web.Request) -> web.StreamResponse:
        user = request.match_info["user"]
        return ok({"token": await aio.start_session(request, user, {"roles": ["reader"]})})

    @route("POST", "/logout-others")
    async def others(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        return ok({"revoked": await aio.logout_others(request, body.get("password"))})

    @route("POST", "/logout-device")
    async def device(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        return ok({"ended": await aio.logout_device(request, body["id"], body.get("password"))})

    @route("GET", "/me")
    async def me(request: web.Request) -> web.StreamResponse:
        session = await aio.require_session(request)
        return ok({"user": session.user_id, "id": session.id})

    @route("GET", "/user")
    async def user(request: web.Request) -> web.StreamResponse:
        return ok({"username": (await aio.current_user(request)).username})

    @route("POST", "/flash")
    async def flash(request: web.Request) -> web.StreamResponse:
        await aio.flash(request, (await request.json())["message"])
        return ok()

    @route("GET", "/flashes")
    async def flashes(request: web.Request) -> web.StreamResponse:
        return ok({"flashes": await aio.get_flashed_messages(request)})

    @route("GET", "/csrf")
    async def csrf(request: web.Request) -> web.StreamResponse:
        await aio.get_session(request)
        return ok({"token": aio.csrf_token(request)})

    @route("POST", "/cached")
    async def cached(request: web.Request) -> web.StreamResponse:
        (await aio.get_session(request))["cached"] = True
        header = (await request.json())["cache_control"]
        return web.json_response({}, headers={"Cache-Control": header})

    @route("GET", "/ws")
    async def ws(request: web.Request) -> web.StreamResponse:
        session = await aio.require_session(request)
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_json({"user": session.user_id})
        await socket.close()
        return socket

    app = web.Application(middlewares=[aio.session_middleware(manager, **middleware)])
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    return app
