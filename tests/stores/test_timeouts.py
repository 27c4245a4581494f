"""Every backend reads its ``timeout`` option the same way (one shared check): seconds as
a number, a numeric string or a timedelta, above zero; anything else is a
ConfigurationError that names the timeout, raised before any client is built."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

import asyncsess
from asyncsess.accounts import Accounts
from asyncsess.ratelimit import RateLimiter
from asyncsess.stores.mongo import MongoStore
from asyncsess.stores.redis import RedisStore
from asyncsess.stores.sql import SQLStore

from ..conftest import SECRET

pytestmark = pytest.mark.anyio

REDIS = "redis://127.0.0.1:6379/0"
MONGO = "mongodb://127.0.0.1:1/db"  # never contacted: building a store connects nowhere
BAD = [0, -1, "0", "soon", "", True, None, [5], timedelta(0)]


def query(timeout: object) -> str:
    """``timeout`` as a URL query carries it: text."""
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    return f"?timeout={seconds}"


STORES: dict[str, Callable[[Any], Any]] = {
    "SQLStore.from_url": lambda t: SQLStore.from_url("sqlite+aiosqlite://", timeout=t),
    "SQLStore(engine=...)": lambda t: SQLStore(
        engine=create_async_engine("sqlite+aiosqlite://"), timeout=t
    ),
    "RedisStore.from_url": lambda t: RedisStore.from_url(REDIS, timeout=t),
    "RedisStore ?timeout=": lambda t: RedisStore.from_url(REDIS + query(t)),
    "MongoStore.from_url": lambda t: MongoStore.from_url(MONGO, timeout=t),
    "MongoStore ?timeout=": lambda t: MongoStore.from_url(MONGO + query(t)),
}
OTHERS: dict[str, Callable[[Any], Any]] = {
    "Accounts on SQL": lambda t: Accounts("sqlite+aiosqlite://", timeout=t),
    "Accounts on MongoDB": lambda t: Accounts(MONGO, timeout=t),
    "RateLimiter on Redis": lambda t: RateLimiter(
        "5/minute", store=REDIS, secret=SECRET, timeout=t
    ),
}


@pytest.mark.parametrize("build", [*STORES.values(), *OTHERS.values()], ids=[*STORES, *OTHERS])
@pytest.mark.parametrize("timeout", BAD, ids=repr)
def test_a_timeout_that_is_not_positive_seconds_is_a_configuration_error(
    build: Callable[[Any], Any], timeout: object
) -> None:
    with pytest.raises(asyncsess.ConfigurationError, match="timeout must be a number of seconds"):
        build(timeout)


@pytest.mark.parametrize("build", STORES.values(), ids=list(STORES))
@pytest.mark.parametrize("seconds", [2.5, "2.5", timedelta(seconds=2.5)], ids=repr)
async def test_seconds_as_a_number_a_string_or_a_timedelta(
    build: Callable[[Any], Any], seconds: object
) -> None:
    store = build(seconds)
    try:
        assert store.timeout == 2.5
    finally:
        await store.aclose()


@pytest.mark.parametrize("build", OTHERS.values(), ids=list(OTHERS))
async def test_the_other_backends_take_a_timedelta(build: Callable[[Any], Any]) -> None:
    await build(timedelta(seconds=2.5)).aclose()
