"""SessionManager.login/logout over accounts and limiters (the manager's thin wiring)."""

from __future__ import annotations

import anyio
import pytest

from asyncsess import ConfigurationError, LoginThrottled, SessionManager
from asyncsess.accounts import Accounts, PasswordHasher
from asyncsess.ratelimit import RateLimiter
from tests.conftest import FakeClock

pytestmark = pytest.mark.anyio

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


async def test_login_logout_and_hooks(clock: FakeClock) -> None:
    limiter = RateLimiter("3/minute", clock=clock, cleanup_interval=0.01)
    async with (
        Accounts("memory://", hasher=FAST) as accounts,
        SessionManager("memory://", clock=clock, accounts=accounts, login_limiter=limiter) as mgr,
    ):
        user = await accounts.create_user("Alice", "pw")
        token = await mgr.login("ALICE", "pw", client="203.0.113.7")
        assert token is not None
        session = await mgr.validate(token)
        assert session is not None and session.user_id == user.id
        assert session.data == {"username": "alice"}
        assert await mgr.login("alice", "wrong") is None
        assert await mgr.logout(token) is True
        assert await mgr.logout(token) is False
        for _ in range(2):
            assert await mgr.login("alice", "wrong") is None
        with pytest.raises(LoginThrottled) as caught:
            await mgr.login("alice", "pw")
        assert caught.value.scope == "username" and caught.value.retry_after > 0
        clock.advance(60)
        tokens = [await mgr.login("alice", "pw") for _ in range(2)]
        assert await accounts.change_password("alice", "pw", "new")
        assert [await mgr.validate(t) for t in tokens] == [None, None]
        token = await mgr.login("alice", "new")
        assert await accounts.delete_user("alice")
        assert await mgr.validate(token) is None
        # the limiter's cleanup runs in the manager's task group
        clock.advance(3600)
        with anyio.fail_after(5):
            while limiter.tracked_keys():
                await anyio.sleep(0.01)


async def test_login_without_accounts_is_a_configuration_error() -> None:
    async with SessionManager("memory://") as mgr:
        with pytest.raises(ConfigurationError):
            await mgr.login("alice", "pw")
    with pytest.raises(ConfigurationError):
        SessionManager("memory://", accounts=object())  # type: ignore[arg-type]


async def test_wipe_deletes_sessions_and_accounts() -> None:
    async with (
        Accounts("memory://", hasher=FAST) as accounts,
        SessionManager("memory://", accounts=accounts) as mgr,
    ):
        await accounts.create_user("alice", "pw")
        token = await mgr.login("alice", "pw")
        assert await mgr.wipe() == 1
        assert await mgr.validate(token) is None
        assert await accounts.get_user("alice") is None
