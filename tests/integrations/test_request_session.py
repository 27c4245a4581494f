"""``request.session`` through real servers: lazy load, one write at the end, merging."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from asyncsess import SessionManager
from asyncsess.session import thaw

from .apps import Gates
from .conftest import Serve
from .helpers import browser, set_cookies

CART = {"items": [{"sku": "apple", "qty": 2}], "coupon": {"code": "X", "tags": ["a"]}}


@pytest.fixture
async def manager() -> AsyncIterator[SessionManager]:
    async with SessionManager("memory://") as mgr:
        yield mgr


@pytest.mark.anyio
async def test_a_visitor_who_only_reads_writes_nothing(
    serve: Serve, manager: SessionManager
) -> None:
    async with serve(manager) as url, browser(url) as (client, jar):
        assert (await client.get("/public")).json() == {"ok": True}
        read = await client.get("/read")
        assert read.json() == {"data": {}, "user": None, "id": None}
        assert "set-cookie" not in read.headers
        assert await manager.count() == (0, 0)  # no anonymous session for a reader
        assert not jar.cookies


@pytest.mark.anyio
async def test_first_write_creates_an_anonymous_session(
    serve: Serve, manager: SessionManager
) -> None:
    async with serve(manager) as url, browser(url) as (client, _):
        response = await client.post("/set", json={"key": "cart", "value": CART})
        cookie = set_cookies(response)["__Host-session"]
        assert response.headers["cache-control"] == "no-store"
        assert await manager.count() == (1, 0)
        session = await manager.validate(cookie["value"])
        assert session is not None and session.user_id is None
        assert thaw(session.data["cart"]) == CART
        read = (await client.get("/read")).json()
        assert read["data"] == {"cart": CART} and read["user"] is None
        assert read["id"] == session.id


@pytest.mark.anyio
async def test_written_once_and_only_when_changed(serve: Serve, manager: SessionManager) -> None:
    async with serve(manager) as url, browser(url) as (client, jar):
        await client.post("/set", json={"key": "cart", "value": CART})
        token = jar.cookies["__Host-session"]
        first = await manager.validate(token)
        assert first is not None
        await client.get("/read")
        await client.post("/set", json={"key": "cart", "value": CART})  # the same value
        unchanged = await manager.validate(token)
        assert unchanged is not None and unchanged.version == first.version
        await client.post("/set", json={"key": "n", "value": [1, {"deep": True}]})
        changed = await manager.validate(token)
        assert changed is not None and changed.version == first.version + 1
        await client.post("/delete", json={"key": "n"})
        deleted = await manager.validate(token)
        assert deleted is not None and thaw(deleted.data) == {"cart": CART}


async def _held_write(
    client_url: str, cookies: dict[str, str], key: str, value: object, status: list[int]
) -> None:
    async with browser(client_url) as (client, jar):
        jar.cookies.update(cookies)
        status.append((await client.post("/hold", json={"key": key, "value": value})).status_code)


@pytest.mark.anyio
async def test_concurrent_writes_to_different_keys_merge(
    serve: Serve, manager: SessionManager, gates: Gates
) -> None:
    async with serve(manager) as url, browser(url) as (client, jar):
        await client.post("/set", json={"key": "base", "value": {"x": [1]}})
        status: list[int] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_held_write, url, dict(jar.cookies), "held", ["h"], status)
            await gates.loaded.wait()  # the held request has read version 1
            await client.post("/set", json={"key": "other", "value": {"y": 2}})
            gates.gate.set()
        assert status == [200]
        data = (await client.get("/read")).json()["data"]
        assert data == {"base": {"x": [1]}, "held": ["h"], "other": {"y": 2}}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("policy", "status", "winner"), [("win", 200, "held"), ("fail", 409, "fast")]
)
async def test_concurrent_writes_to_one_key_win_or_fail(
    serve: Serve,
    manager: SessionManager,
    gates: Gates,
    policy: str,
    status: int,
    winner: str,
) -> None:
    from asyncsess.integrations.starlette import SessionConfig

    config = SessionConfig(on_conflict=policy)  # type: ignore[arg-type]
    async with serve(manager, config=config) as url, browser(url) as (client, jar):
        await client.post("/set", json={"key": "k", "value": "start"})
        statuses: list[int] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_held_write, url, dict(jar.cookies), "k", "held", statuses)
            await gates.loaded.wait()
            await client.post("/set", json={"key": "k", "value": "fast"})
            gates.gate.set()
        assert statuses == [status]
        assert (await client.get("/read")).json()["data"] == {"k": winner}
