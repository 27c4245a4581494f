"""New passwords: at least 12 characters by default (ASVS 2.1.1), configurable; never the
username; the app's async breached-password check. Old short passwords still log in."""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncsess import ConfigurationError, InvalidPassword
from asyncsess.accounts import MIN_PASSWORD, Accounts, PasswordHasher

pytestmark = pytest.mark.anyio

FAST = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}


def accounts(url: str = "memory://", **options: object) -> Accounts:
    return Accounts(url, hasher=PasswordHasher(**FAST), **options)  # type: ignore[arg-type]


async def test_a_new_password_needs_12_characters_by_default() -> None:
    assert MIN_PASSWORD == 12
    async with accounts() as acc:
        for short in ("pw", "elevenchars", "é" * 11, "e\u0301" * 6):  # NFKC: 6 characters
            with pytest.raises(InvalidPassword, match="at least 12 characters"):
                await acc.create_user("alice", short)
        assert await acc.count_users() == 0
        await acc.create_user("alice", "twelve chars")
        with pytest.raises(InvalidPassword, match="at least 12"):
            await acc.change_password("alice", "twelve chars", "too short")
        assert await acc.authenticate("alice", "twelve chars") is not None


async def test_the_minimum_is_configurable() -> None:
    async with accounts(min_password_length=20) as acc:
        with pytest.raises(InvalidPassword, match="at least 20"):
            await acc.create_user("alice", "nineteen characters")
        await acc.create_user("alice", "twenty characters ok")
    for bad in (0, -1, 1.5, "12", True):
        with pytest.raises(ConfigurationError):
            accounts(min_password_length=bad)


async def test_the_username_is_refused_as_a_password() -> None:
    async with accounts() as acc:
        wide = "\uff41\uff4c\uff49\uff43\uff45.liddell.1865"  # full-width "alice"
        for password in ("alice.liddell.1865", "ALICE.LIDDELL.1865", wide):
            with pytest.raises(InvalidPassword, match="not be the username"):
                await acc.create_user("Alice.Liddell.1865", password)
        await acc.create_user("alice.liddell.1865", "down the rabbit hole")
        with pytest.raises(InvalidPassword, match="not be the username"):
            await acc.change_password(
                "alice.liddell.1865", "down the rabbit hole", "Alice.Liddell.1865"
            )


async def test_the_apps_breached_password_check() -> None:
    breached = {"correct horse battery staple", "password1234"}
    checked: list[str] = []

    async def not_breached(password: str) -> bool:
        checked.append(password)
        return password not in breached

    async with accounts(password_check=not_breached) as acc:
        with pytest.raises(InvalidPassword, match="data breach"):
            await acc.create_user("alice", "correct horse battery staple")
        await acc.create_user("alice", "a fine fresh passphrase")
        with pytest.raises(InvalidPassword, match="data breach"):
            await acc.change_password("alice", "a fine fresh passphrase", "password1234")
        assert await acc.change_password("alice", "a fine fresh passphrase", "another one, fresh")
        assert await acc.authenticate("alice", "another one, fresh") is not None
    # too short is refused before the check is asked
    assert checked == [
        "correct horse battery staple",
        "a fine fresh passphrase",
        "password1234",
        "another one, fresh",
    ]


async def test_an_existing_short_password_still_logs_in(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'users.db'}"
    async with accounts(url, min_password_length=1) as old:
        await old.create_user("alice", "short")
    async with accounts(url) as acc:
        assert await acc.authenticate("alice", "short") is not None
        with pytest.raises(InvalidPassword):
            await acc.change_password("alice", "short", "still short")
        assert await acc.change_password("alice", "short", "long enough now")
