"""Logins, logouts, devices, rotation, lifetimes and flash messages through real servers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from asyncsess import RateLimiter, SessionManager
from asyncsess.accounts import Accounts, LoginLimits, PasswordHasher
from asyncsess.integrations.starlette import SessionConfig

from .conftest import Serve
from .helpers import PASSWORD, browser, fast_accounts, manager_with_accounts, set_cookies

ALICE = {"username": "alice", "password": PASSWORD}
CART = {"key": "cart", "value": [{"sku": "apple", "qty": 3, "tags": ["red"]}]}


@pytest.fixture
async def accounts() -> AsyncIterator[Accounts]:
    accounts = fast_accounts()
    await accounts.create_user("alice", PASSWORD)
    async with accounts:
        yield accounts


@pytest.fixture
async def manager(accounts: Accounts) -> AsyncIterator[SessionManager]:
    async with manager_with_accounts(accounts) as mgr:
        yield mgr


@pytest.mark.anyio
async def test_login_carries_the_anonymous_cart_and_ends_its_token(
    serve: Serve, manager: SessionManager
) -> None:
    async with serve(manager) as url, browser(url) as (client, jar):
        await client.post("/set", json=CART)
        anonymous = jar.cookies["__Host-session"]
        assert (
            await client.post("/login", json=ALICE | {"password": "wrong password!"})
        ).status_code == 401
        assert jar.cookies["__Host-session"] == anonymous  # a failed login changes nothing
        response = await client.post("/login", json=ALICE)
        assert response.status_code == 200
        cookies = set_cookies(response)
        assert cookies["__Host-session"]["value"] == response.json()["token"] != anonymous
        assert response.headers["cache-control"] == "no-store"
        assert cookies["__Host-device"]["secure"] == "true"  # the login limiter's device proof
        read = (await client.get("/read")).json()
        assert read["data"] == {"cart": CART["value"], "username": "alice"}
        assert read["user"] is not None
        assert await manager.validate(anonymous) is None  # no fixation
        assert (await client.get("/user")).json() == {"username": "alice"}


@pytest.mark.anyio
async def test_another_users_data_is_not_carried(serve: Serve, manager: SessionManager) -> None:
    async with serve(manager) as url, browser(url) as (client, _):
        await client.post("/start/bob")
        await client.post("/set", json=CART)
        await client.post("/login", json=ALICE)
        assert (await client.get("/read")).json()["data"] == {"username": "alice"}


@pytest.mark.anyio
async def test_throttled_login_is_429_with_retry_after(serve: Serve, accounts: Accounts) -> None:
    limiter = RateLimiter("2/minute")
    async with (
        manager_with_accounts(accounts, login_limiter=limiter) as manager,
        serve(manager) as url,
        browser(url) as (client, _),
    ):
        wrong = ALICE | {"password": "not the password"}
        statuses = [(await client.post("/login", json=wrong)).status_code for _ in range(3)]
        assert statuses[:2] == [401, 401]
        response = await client.post("/login", json=wrong)
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1


@pytest.mark.anyio
async def test_remember_me_or_a_browser_session(serve: Serve, manager: SessionManager) -> None:
    async with serve(manager) as url:
        async with browser(url) as (client, _):
            cookie = set_cookies(await client.post("/login", json=ALICE | {"remember": True}))
            assert int(cookie["__Host-session"]["max-age"]) > 0
        async with browser(url) as (client, _):
            response = await client.post("/login", json=ALICE | {"remember": False})
            assert "max-age" not in set_cookies(response)["__Host-session"]
            assert (await client.get("/me")).status_code == 200
            rotated = await client.post("/rotate")  # later cookies stay browser-session ones
            assert "max-age" not in set_cookies(rotated)["__Host-session"]


@pytest.mark.anyio
async def test_rotation_after_a_privilege_change(serve: Serve, manager: SessionManager) -> None:
    async with serve(manager) as url, browser(url) as (client, jar):
        await client.post("/login", json=ALICE)
        await client.post("/set", json=CART)
        old = jar.cookies["__Host-session"]
        response = await client.post("/rotate")
        new = response.json()["token"]
        assert set_cookies(response)["__Host-session"]["value"] == new != old
        assert response.headers["cache-control"] == "no-store"
        assert await manager.validate(old) is None
        assert (await client.get("/read")).json()["data"]["cart"] == CART["value"]
    async with serve(manager) as url, browser(url) as (client, _):
        assert (await client.post("/rotate")).status_code == 401
        api = await manager.create("api-user", {"scopes": ["read", "write"]})
        rotated = await client.post("/rotate", headers={"authorization": f"Bearer {api}"})
        assert "set-cookie" not in rotated.headers  # a bearer client gets its token in the body
        assert await manager.validate(api) is None
        assert await manager.validate(rotated.json()["token"]) is not None


@pytest.mark.anyio
@pytest.mark.parametrize("reauthenticate", [False, True])
async def test_log_out_other_devices_and_one_device(
    serve: Serve, manager: SessionManager, reauthenticate: bool
) -> None:
    config = SessionConfig(reauthenticate=reauthenticate)
    password = {"password": PASSWORD} if reauthenticate else {}
    async with (
        serve(manager, config=config) as url,
        browser(url) as (laptop, _),
        browser(url) as (phone, _),
        browser(url) as (tablet, _),
        browser(url) as (mallory, _),
    ):
        for device in (laptop, phone, tablet):
            assert (await device.post("/login", json=ALICE)).status_code == 200
        await mallory.post("/start/mallory")
        phone_id = (await phone.get("/me")).json()["id"]
        mallory_id = (await mallory.get("/me")).json()["id"]
        if reauthenticate:
            for bad in ({}, {"password": "wrong password!"}):
                refused = await laptop.post("/logout-device", json={"id": phone_id} | bad)
                assert refused.status_code == 403
            assert (await phone.get("/me")).status_code == 200
        # Another user's session id is not this user's to end.
        other = await laptop.post("/logout-device", json={"id": mallory_id} | password)
        assert other.json() == {"ended": False}
        assert (await mallory.get("/me")).status_code == 200
        ended = await laptop.post("/logout-device", json={"id": phone_id} | password)
        assert ended.json() == {"ended": True}
        assert (await phone.get("/me")).status_code == 401
        revoked = await laptop.post("/logout-others", json=password)
        assert revoked.json() == {"revoked": 1}
        assert (await tablet.get("/me")).status_code == 401
        assert (await laptop.get("/me")).status_code == 200
        assert (await laptop.post("/logout")).json() == {"ended": True}
        assert (await laptop.get("/me")).status_code == 401


@pytest.mark.anyio
async def test_flash_messages_show_once(serve: Serve, manager: SessionManager) -> None:
    async with serve(manager) as url, browser(url) as (client, _):
        await client.post("/flash", json={"message": "saved"})
        await client.post("/flash", json={"message": "and again"})
        flashes = (await client.get("/flashes")).json()["flashes"]
        assert [f["message"] for f in flashes] == ["saved", "and again"]
        assert (await client.get("/flashes")).json() == {"flashes": []}


@pytest.mark.anyio
async def test_password_checks_for_devices_are_rate_limited(serve: Serve) -> None:
    accounts = Accounts(
        "memory://",
        hasher=PasswordHasher(time_cost=1, memory_cost=8),
        limits=LoginLimits(username="2/minute"),
    )
    await accounts.create_user("alice", PASSWORD)
    config = SessionConfig(reauthenticate=True)
    async with (
        accounts,
        manager_with_accounts(accounts) as manager,
        serve(manager, config=config) as url,
        browser(url) as (client, _),
    ):
        assert (await client.post("/login", json=ALICE)).status_code == 200
        wrong = {"password": "not the password"}
        responses = [await client.post("/logout-others", json=wrong) for _ in range(3)]
        assert responses[0].status_code == 403  # a wrong password, counted
        assert responses[-1].status_code == 429  # guessing is limited as logins are
        assert int(responses[-1].headers["retry-after"]) >= 1
