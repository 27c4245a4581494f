"""Real servers on loopback for the HTTP integration tests, and a cookie-keeping HTTP client."""

from __future__ import annotations

import importlib.util
import socket
import sys
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import uvicorn
from aiohttp import web
from starlette.types import ASGIApp

from asyncsess import SessionManager
from asyncsess.accounts import Accounts, PasswordHasher

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PASSWORD = "correct horse battery staple"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (the examples are scripts beside their shared module)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fast_accounts() -> Accounts:
    """In-memory accounts with the cheapest argon2id parameters (tests only)."""
    return Accounts("memory://", hasher=PasswordHasher(time_cost=1, memory_cost=8))


def manager_with_accounts(accounts: Accounts, **options: Any) -> SessionManager:
    """A memory-store manager that logs users in against ``accounts``."""
    return SessionManager("memory://", accounts=accounts, **options)


def loopback_socket() -> socket.socket:
    """A TCP socket bound to a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serve_asgi(app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yield its base URL."""
    sock = loopback_socket()
    port = sock.getsockname()[1]
    # proxy_headers=False: uvicorn would otherwise trust X-Forwarded-Proto from loopback.
    config = uvicorn.Config(app, lifespan="on", log_level="warning", proxy_headers=False)
    server = uvicorn.Server(config)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(10):
                while not server.started:
                    await anyio.sleep(0.01)
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True
    finally:
        sock.close()


@asynccontextmanager
async def serve_aiohttp(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` with aiohttp's own server on a free loopback port; yield its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def parse_set_cookies(values: Iterable[str]) -> dict[str, Mapping[str, str]]:
    """Parse ``Set-Cookie`` values: name -> {"value": ..., lower-cased attribute: value}.

    A flag attribute (``Secure``, ``HttpOnly``) maps to ``"true"``.
    """
    found: dict[str, Mapping[str, str]] = {}
    for raw in values:
        name_value, *attributes = (part.strip() for part in raw.split(";"))
        name, _, value = name_value.partition("=")
        cookie = {"value": value}
        for attribute in attributes:
            key, _, val = attribute.partition("=")
            cookie[key.lower()] = val or "true"
        found[name] = cookie
    return found


def set_cookies(response: httpx.Response) -> dict[str, Mapping[str, str]]:
    """The cookies a response sets, parsed."""
    return parse_set_cookies(response.headers.get_list("set-cookie"))


class Jar:
    """A browser's cookie jar for httpx: keeps ``Secure`` cookies over http://127.0.0.1 too.

    (Browsers treat loopback as a secure context; Python's cookie jar does not.)
    As a browser does, unsafe requests carry ``Origin`` unless the test sets it.
    """

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.cookies: dict[str, str] = {}

    async def on_request(self, request: httpx.Request) -> None:
        if self.cookies and "cookie" not in request.headers:
            request.headers["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if request.method in UNSAFE and "origin" not in request.headers:
            request.headers["origin"] = self.origin

    async def on_response(self, response: httpx.Response) -> None:
        for name, cookie in set_cookies(response).items():
            if cookie.get("max-age") == "0":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = cookie["value"]


@asynccontextmanager
async def browser(base_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Jar]]:
    """An httpx client that keeps cookies and sends ``Origin`` as a browser would."""
    jar = Jar(base_url)
    hooks: dict[str, list[Any]] = {"request": [jar.on_request], "response": [jar.on_response]}
    async with httpx.AsyncClient(base_url=base_url, event_hooks=hooks) as client:
        client.cookies = _NoCookies()
        yield client, jar


class _NoCookies(httpx.Cookies):
    """httpx's own jar, kept empty so only :class:`Jar` sends cookies."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None
