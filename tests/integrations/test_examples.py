"""The example shops through real servers: pages, forms, the cart across login, devices; workers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.redis_cluster import spare_port

from .helpers import EXAMPLES, PASSWORD, browser, load_example, serve_aiohttp, serve_asgi

SECRET = "example-secret-0123456789-abcdefghijklmnop"
Serve = Callable[[], AbstractAsyncContextManager[str]]


@pytest.fixture(params=["fastapi_app", "aiohttp_app"])
def example(request: pytest.FixtureRequest) -> Serve:
    """Serve one example app in this process, on the memory store."""
    name = str(request.param)

    @asynccontextmanager
    async def run() -> AsyncIterator[str]:
        module = load_example(name)
        app = module.create_app(module.webshop.Settings("memory://", SECRET))
        server = serve_asgi(app) if name == "fastapi_app" else serve_aiohttp(app)
        async with server as url:
            yield url

    return run


def form(**fields: str) -> dict[str, Any]:
    return {"data": fields}


@pytest.mark.anyio
async def test_the_shop_from_cart_to_logout(example: Serve) -> None:
    alice = {"username": "alice", "password": PASSWORD}
    async with example() as url, browser(url) as (laptop, jar), browser(url) as (phone, _):
        home = await laptop.get("/")
        assert home.status_code == 200 and "Your cart is empty" in home.text
        assert not jar.cookies  # a visitor who only looks gets no session
        for _ in range(2):
            added = await laptop.post("/cart/add", **form(sku="apple"))
            assert added.status_code == 303
        assert "__Host-session" in jar.cookies
        page = (await laptop.get("/")).text
        assert 'class="qty-apple">2<' in page and "Added one apple" in page
        short = await laptop.post("/register", **form(username="alice", password="short pw"))
        assert short.status_code == 400 and "short pw" not in short.text  # no password echo
        assert (await laptop.post("/register", **form(**alice))).status_code == 303
        assert (await laptop.post("/register", **form(**alice))).status_code == 409
        wrong = await laptop.post("/login", **form(username="alice", password="wrong password!"))
        assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
        assert (await laptop.get("/account")).headers["location"] == "/login"
        logged_in = await laptop.post("/login", **form(**alice, remember="1"))
        assert logged_in.status_code == 303 and logged_in.headers["location"] == "/account"
        account = (await laptop.get("/account")).text
        assert "Welcome, alice" in account and 'class="qty-apple">2<' in account  # cart kept
        assert (await phone.post("/login", **form(**alice))).status_code == 303
        devices = (await laptop.get("/devices")).text
        assert devices.count('<form method="post" action="/devices/logout">') == 2
        assert "(this device)" in devices
        refused = await laptop.post("/devices/logout-others", **form(password="not it at all"))
        assert refused.status_code == 303, refused.text
        assert (await phone.get("/account")).status_code == 200
        await laptop.post("/devices/logout-others", **form(password=PASSWORD))
        assert "Logged out 1 other device" in (await laptop.get("/devices")).text
        assert (await phone.get("/account")).headers["location"] == "/login"
        assert (await laptop.post("/logout")).status_code == 303
        assert (await laptop.get("/account")).headers["location"] == "/login"


@pytest.mark.anyio
async def test_the_shop_refuses_cross_site_forms(example: Serve) -> None:
    async with example() as url, browser(url) as (client, jar):
        await client.post("/cart/add", **form(sku="fig"))
        evil = {"origin": "http://evil.example", "sec-fetch-site": "cross-site"}
        forged = await client.post("/cart/add", **form(sku="fig"), headers=evil)
        assert forged.status_code == 403
        login = await client.post("/login", **form(username="x", password="y"), headers=evil)
        assert login.status_code == 403
        async with httpx.AsyncClient(base_url=url) as raw:  # no Origin: the token decides
            cookie = {"cookie": f"__Host-session={jar.cookies['__Host-session']}"}
            assert (
                await raw.post("/cart/add", data={"sku": "fig"}, headers=cookie)
            ).status_code == 403
            page = (await raw.get("/", headers=cookie)).text
            token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            ok = await raw.post(
                "/cart/add", data={"sku": "fig", "csrf_token": token}, headers=cookie
            )
            assert ok.status_code == 303


def _run(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=EXAMPLES.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ASYNCSESS_SECRET", "ASYNCSESS_URL")}
    return env | extra


@pytest.mark.parametrize("name", ["fastapi_app", "aiohttp_app"])
def test_several_workers_without_a_secret_refuse_to_start(name: str, tmp_path: Path) -> None:
    env = _env(ASYNCSESS_URL=f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}")
    args = [f"examples/{name}.py", "--workers", "2", "--port", str(spare_port())]
    proc = _run(args, env)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "several workers need one shared ASYNCSESS_SECRET" in output


def _wait_for(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(url)


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("name", ["fastapi_app", "aiohttp_app"])
async def test_an_example_under_two_workers(name: str, tmp_path: Path) -> None:
    """Two workers (uvicorn's; aiohttp's on SO_REUSEPORT), one secret, one SQLite file."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    port = spare_port()
    env = _env(ASYNCSESS_SECRET=SECRET, ASYNCSESS_URL=url)
    proc = _run([f"examples/{name}.py", "--workers", "2", "--port", str(port)], env)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base + "/", proc)
        alice = {"username": "alice", "password": PASSWORD}
        async with browser(base) as (client, jar):
            await client.post("/cart/add", data={"sku": "pear"})
            assert (await client.post("/register", data=alice)).status_code == 303
            assert (await client.post("/login", data=alice)).status_code == 303
            cookie = {"cookie": "; ".join(f"{k}={v}" for k, v in jar.cookies.items())}
        # A new connection each time, so both workers serve: all must know the session.
        statuses = []
        for _ in range(16):
            async with httpx.AsyncClient(base_url=base) as fresh:
                response = await fresh.get("/account", headers=cookie)
                statuses.append((response.status_code, "qty-pear" in response.text))
        assert statuses == [(200, True)] * 16
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
