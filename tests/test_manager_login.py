"""SessionManager.login/logout/device_token over accounts and limiters (the manager's wiring):
hooks that survive a manager, throttling on by default, device tokens against lock-out,
session data carried over, the hasher's bounded queue, and limiter state that a wipe keeps."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from asyncsess import (
    ConfigurationError,
    InvalidUsername,
    LoginThrottled,
    SessionManager,
    StoreUnavailable,
    User,
)
from asyncsess.accounts import Accounts, LoginLimits, PasswordHasher
from asyncsess.ratelimit import RateLimiter
from asyncsess.session import thaw
from asyncsess.stores.redis import RedisStore
from tests.conftest import SECRET, FakeClock

pytestmark = pytest.mark.anyio

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, max_waiting=64)
PASSWORD = "correct horse battery staple"
DATA = {"cart": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}], "prefs": {"lang": "fr"}}


async def test_login_logout_and_hooks(clock: FakeClock) -> None:
    limiter = RateLimiter("3/minute", clock=clock, cleanup_interval=0.01)
    async with (
        Accounts("memory://", hasher=FAST) as accounts,
        SessionManager("memory://", clock=clock, accounts=accounts, login_limiter=limiter) as mgr,
    ):
        user = await accounts.create_user("Alice", PASSWORD)
        token = await mgr.login("ALICE", PASSWORD, client="203.0.113.7", data=DATA)
        assert token is not None
        session = await mgr.validate(token)
        assert session is not None and session.user_id == user.id
        assert thaw(session.data) == {**DATA, "username": "alice"}
        spoofed = await mgr.login("alice", PASSWORD, data={"username": "root"})
        assert (await mgr.validate(spoofed)).data == {"username": "alice"}  # type: ignore[union-attr]
        with pytest.raises(TypeError):
            await mgr.login("alice", PASSWORD, data=["not", "a", "mapping"])  # type: ignore[arg-type]
        assert await mgr.login("alice", "wrong") is None
        assert await mgr.logout(token) is True
        assert await mgr.logout(token) is False
        for _ in range(2):
            assert await mgr.login("alice", "wrong") is None
        with pytest.raises(LoginThrottled) as caught:
            await mgr.login("alice", PASSWORD)
        assert caught.value.scope == "username" and caught.value.retry_after > 0
        clock.advance(60)
        tokens = [await mgr.login("alice", PASSWORD) for _ in range(2)]
        assert await accounts.change_password("alice", PASSWORD, "a new passphrase")
        assert [await mgr.validate(t) for t in tokens] == [None, None]
        token = await mgr.login("alice", "a new passphrase")
        assert await accounts.delete_user("alice")
        assert await mgr.validate(token) is None
        # the limiter's cleanup runs in the manager's task group
        clock.advance(3600)
        with anyio.fail_after(5):
            while limiter.tracked_keys():
                await anyio.sleep(0.01)


async def test_every_manager_and_the_apps_hooks_run(tmp_path: Path) -> None:
    """Browser sessions and API tokens in two stores, one Accounts, and the app's own hooks
    set before and after the managers attach: a password change or a deletion runs them all."""
    seen: list[tuple[str, str]] = []

    async def app_on_change(user: User) -> None:
        seen.append(("changed", user.username))

    async def app_on_delete(user: User) -> None:
        seen.append(("deleted", user.username))

    db = f"sqlite+aiosqlite:///{tmp_path / 'tokens.db'}"
    async with Accounts("memory://", hasher=FAST) as accounts:
        accounts.on_password_change = app_on_change  # before the managers
        async with (
            SessionManager("memory://", accounts=accounts) as browser,
            SessionManager(db, secret=SECRET, accounts=accounts) as api,
        ):
            accounts.on_delete = app_on_delete  # after them
            user = await accounts.create_user("alice", PASSWORD)
            tokens = [await m.login("alice", PASSWORD) for m in (browser, api, browser, api)]
            assert await accounts.change_password("alice", PASSWORD, "a new passphrase")
            assert seen == [("changed", "alice")]
            owners = [browser, api] * 2
            assert [await m.validate(t) for m, t in zip(owners, tokens, strict=True)] == [None] * 4
            tokens = [await m.login("alice", "a new passphrase") for m in (browser, api)]
            assert await browser.sessions(user.id) and await api.sessions(user.id)
            assert await accounts.delete_user("alice")
            assert seen == [("changed", "alice"), ("deleted", "alice")]
            assert await browser.validate(tokens[0]) is None
            assert await api.validate(tokens[1]) is None


async def test_subscribers_run_until_unsubscribed_and_every_hook_runs() -> None:
    calls: list[str] = []

    async def audit(user: User) -> None:
        calls.append(f"audit {user.username}")

    async def failing(user: User) -> None:
        calls.append("failing")
        raise RuntimeError("the app's hook failed")

    async with Accounts("memory://", hasher=FAST) as accounts:
        accounts.subscribe(failing)
        accounts.subscribe(audit)
        accounts.on_password_change = audit
        await accounts.create_user("alice", PASSWORD)
        with pytest.raises(RuntimeError):  # raised after every hook has run
            await accounts.change_password("alice", PASSWORD, "a new passphrase")
        assert calls == ["failing", "audit alice", "audit alice"]
        assert accounts.unsubscribe(failing) is True
        assert accounts.unsubscribe(failing) is False
        assert await accounts.change_password("alice", "a new passphrase", PASSWORD)
        assert calls[3:] == ["audit alice", "audit alice"]


async def test_login_is_throttled_by_default(clock: FakeClock) -> None:
    """No limiter configured: 100 failed attempts per normalised username an hour (ASVS
    2.2.1), known user or not, and 1000 per client address."""
    limits = LoginLimits(clock=clock)  # the defaults, on the test's clock
    async with (
        Accounts("memory://", hasher=FAST, limits=limits) as accounts,
        SessionManager("memory://", accounts=accounts) as mgr,
    ):
        await accounts.create_user("alice", PASSWORD)
        for name in ("alice", "nobody"):
            for i in range(100):
                spelled = name.upper() if i % 2 else name
                assert await mgr.login(spelled, "a wrong password", client=f"192.0.2.{i}") is None
            with pytest.raises(LoginThrottled) as caught:
                await mgr.login(name, PASSWORD if name == "alice" else "x")
            assert caught.value.scope == "username"
            assert caught.value.retry_after == pytest.approx(3600)
        clock.advance(3600)
        assert await mgr.login("alice", PASSWORD) is not None
    async with (
        Accounts("memory://", hasher=FAST) as accounts,  # the real defaults
        SessionManager("memory://", accounts=accounts) as mgr,
    ):
        for _ in range(100):
            assert await mgr.login("bob", "a wrong password") is None
        with pytest.raises(LoginThrottled):
            await mgr.login("bob", "a wrong password")
        with pytest.raises(LoginThrottled):  # the same limit guards authenticate
            await accounts.authenticate("BOB", "a wrong password")


async def test_change_password_is_throttled_like_a_login(clock: FakeClock) -> None:
    limits = LoginLimits(username="3/hour", clock=clock)
    async with Accounts("memory://", hasher=FAST, limits=limits) as accounts:
        await accounts.create_user("alice", PASSWORD)
        for _ in range(3):
            assert not await accounts.change_password("alice", "a guess", "a new passphrase")
        with pytest.raises(LoginThrottled):
            await accounts.change_password("alice", PASSWORD, "a new passphrase")
        with pytest.raises(LoginThrottled):
            await accounts.authenticate("alice", PASSWORD)
        clock.advance(3600)
        assert await accounts.change_password("alice", PASSWORD, "a new passphrase") is True


async def test_a_device_token_escapes_the_lock_out(clock: FakeClock) -> None:
    """OWASP device cookies: an attacker keeps alice's username limit exhausted; alice, on a
    browser she logged in from before, still logs in under that device's own allowance."""
    limits = LoginLimits(username="5/hour", device="3/hour", clock=clock)
    async with (
        Accounts("memory://", hasher=FAST, limits=limits) as accounts,
        SessionManager("memory://", clock=clock, accounts=accounts) as mgr,
    ):
        await accounts.create_user("alice", PASSWORD)
        await accounts.create_user("bob", PASSWORD)
        assert await mgr.login("alice", PASSWORD) is not None
        device = mgr.device_token("ALICE")
        for _ in range(5):  # the attacker
            assert await mgr.login("alice", "a guess") is None
        with pytest.raises(LoginThrottled) as caught:
            await mgr.login("alice", PASSWORD)
        assert caught.value.scope == "username"
        assert await mgr.login("Alice", PASSWORD, device=device) is not None
        # the device's own allowance: failures on it are limited too
        for _ in range(3):
            assert await mgr.login("alice", "a typo", device=device) is None
        with pytest.raises(LoginThrottled) as caught:
            await mgr.login("alice", PASSWORD, device=device)
        assert caught.value.scope == "device"
        # a token is bound to its username, and forged, damaged or stale ones count for nothing
        other = mgr.device_token("bob")
        for bad in (other, device[:-2] + "AA", "x.1.y", "", "é" * 50, device + "." * 200):
            with pytest.raises(LoginThrottled) as caught:
                await mgr.login("alice", PASSWORD, device=bad)
            assert caught.value.scope == "username"
        fresh = mgr.device_token("alice")
        clock.advance(31 * 86400)  # expired (30 days); by then the username limit is free
        assert await mgr.login("alice", "a guess", device=fresh) is None
        assert await mgr.login("alice", PASSWORD, device=fresh) is not None
        with pytest.raises(InvalidUsername):
            mgr.device_token("al\x00ice")


async def test_device_tokens_need_a_key(tmp_path: Path) -> None:
    async with SessionManager("memory://", secret=[SECRET, SECRET[::-1]]) as signer:
        token = signer.device_token("alice")
    async with Accounts("memory://", hasher=FAST, limits=LoginLimits(username="1/hour")) as acc:
        await acc.create_user("alice", PASSWORD)
        # a manager whose older secret signed the token still honours it
        async with SessionManager(
            "memory://", secret=[SECRET[::-1] + "-new", SECRET], accounts=acc
        ) as mgr:
            assert await mgr.login("alice", "a guess") is None
            assert await mgr.login("alice", PASSWORD, device=token) is not None
        # without a secret a memory manager signs with a per-process key
        async with SessionManager("memory://", accounts=acc) as mgr:
            with pytest.raises(LoginThrottled):
                await mgr.login("alice", PASSWORD, device=token)
            assert mgr.device_token("alice") != mgr.device_token("alice")
    mgr = SessionManager(tmp_path.as_uri())  # the file store's own key is not used for them
    try:
        with pytest.raises(ConfigurationError):
            mgr.device_token("alice")
    finally:
        await mgr.aclose()


async def test_a_burst_beyond_the_hashers_queue_is_refused_at_once() -> None:
    """1 hash at a time and 2 waiting: of 12 concurrent logins, 9 are refused ("busy")
    before the first hash has finished, rather than queueing."""
    hasher = PasswordHasher(time_cost=2, memory_cost=16 * 1024, max_concurrency=1, max_waiting=2)
    events: list[str] = []
    limits = LoginLimits(username="5/hour")
    async with (
        Accounts("memory://", hasher=hasher, limits=limits) as accounts,
        SessionManager("memory://", accounts=accounts) as mgr,
    ):
        await accounts.create_user("alice", PASSWORD)

        async def attempt() -> None:
            try:
                await mgr.login("alice", "a wrong password")
            except LoginThrottled as exc:
                events.append(exc.scope)
            else:
                events.append("checked")

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(12):
                    tg.start_soon(attempt)
        assert events == ["busy"] * 9 + ["checked"] * 3
        # the refused attempts were not counted against the username: 3 of 5 used
        for _ in range(2):
            assert await mgr.login("alice", "a wrong password") is None
        with pytest.raises(LoginThrottled):
            await mgr.login("alice", "a wrong password")


async def test_a_limiter_that_cannot_count_fails_the_login_closed() -> None:
    dead = RateLimiter("100/hour", store="redis://127.0.0.1:1/0", secret=SECRET, timeout=0.5)
    async with (
        Accounts("memory://", hasher=FAST, limits=LoginLimits(username=dead)) as accounts,
        SessionManager("memory://", accounts=accounts) as mgr,
    ):
        await accounts.create_user("alice", PASSWORD)
        with pytest.raises(StoreUnavailable):
            await mgr.login("alice", PASSWORD)
        with pytest.raises(StoreUnavailable):
            await accounts.authenticate("alice", PASSWORD)
        assert await mgr.count() == (0, 0)
    await dead.aclose()


async def test_wipe_deletes_sessions_and_accounts_wipe_deletes_users() -> None:
    """Each wipe deletes what it owns: the manager's its sessions, the accounts' their users."""
    async with (
        Accounts("memory://", hasher=FAST) as accounts,
        SessionManager("memory://", accounts=accounts) as mgr,
    ):
        await accounts.create_user("alice", PASSWORD)
        token = await mgr.login("alice", PASSWORD)
        assert await mgr.wipe() == 1
        assert await mgr.validate(token) is None
        assert await accounts.get_user("alice") is not None  # users are not the manager's
        assert await mgr.login("alice", PASSWORD) is not None
        assert await accounts.wipe() == 1
        assert await accounts.get_user("alice") is None


async def test_login_without_accounts_is_a_configuration_error() -> None:
    async with SessionManager("memory://") as mgr:
        with pytest.raises(ConfigurationError):
            await mgr.login("alice", PASSWORD)
    with pytest.raises(ConfigurationError):
        SessionManager("memory://", accounts=object())  # type: ignore[arg-type]


REDIS_DB = "redis://127.0.0.1:6379/11"  # the default prefixes, in a database of this test's own


async def test_wiping_sessions_keeps_limiter_state_on_redis() -> None:
    """The default prefixes are disjoint: mgr.wipe() and the CLI's wipe delete sessions,
    never a rate limit (a wipe must not hand an attacker a fresh allowance)."""
    key = f"user:{uuid.uuid4().hex}"
    limiter = RateLimiter("2/hour", store=REDIS_DB, secret=SECRET)
    options: dict[str, Any] = {"secret": SECRET}
    try:
        for _ in range(2):
            await limiter.hit(key)
        async with SessionManager(REDIS_DB, **options) as mgr:
            assert isinstance(mgr.store, RedisStore)
            await mgr.create("alice", data=DATA)
            assert await mgr.wipe() == 1
        assert not (await limiter.hit(key)).allowed
        env = {"ASYNCSESS_URL": REDIS_DB, "PATH": "/usr/bin:/bin"}
        await anyio.to_thread.run_sync(
            lambda: subprocess.run(
                [sys.executable, "-m", "asyncsess", "wipe", "--yes"], env=env, check=True
            )
        )
        assert not (await limiter.hit(key)).allowed
        async with Redis.from_url(REDIS_DB) as client:
            assert [k async for k in client.scan_iter(match="asyncsess-rl:*")]
    finally:
        await limiter.reset(key)
        await limiter.aclose()
