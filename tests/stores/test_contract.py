"""The store contract kit (asyncsess.testing) on every store: built from its URL, and
around a client, engine or database the application owns; the driver bypasses off too."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine

import asyncsess
from asyncsess.stores.base import Store
from asyncsess.stores.mongo import MongoStore
from asyncsess.stores.redis import RedisStore
from asyncsess.stores.sql import SQLStore
from asyncsess.testing import StoreContract, check_store
from tests.backends import StoreSpec

pytestmark = pytest.mark.anyio

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "mariadb": "mysql+asyncmy",
}


class TestEveryStoreFromItsURL(StoreContract):
    """``open_store(url)`` for memory, file, Redis, Redis Cluster, SQLite, PostgreSQL,
    MariaDB and MongoDB (the ``store_spec`` fixture's parameters)."""

    @pytest.fixture
    async def store(self, store_spec: StoreSpec) -> AsyncIterator[Store]:
        store = asyncsess.open_store(store_spec.url, **store_spec.options)
        yield store
        await store.aclose()


@pytest.fixture(params=["redis", "sqlite", "postgresql", "mariadb", "mongodb"])
def server_spec(request: pytest.FixtureRequest) -> tuple[str, StoreSpec]:
    spec: StoreSpec = request.getfixturevalue(f"{request.param}_store_spec")
    return request.param, spec


@pytest.fixture
async def app_owned(server_spec: tuple[str, StoreSpec]) -> AsyncIterator[Store]:
    """Each server store around a client, engine or database the test owns (and closes)."""
    backend, spec = server_spec
    if backend == "redis":
        client = Redis.from_url(spec.url)
        yield RedisStore(client, **spec.options)
        await client.aclose()
    elif backend == "mongodb":
        mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(spec.url)
        yield MongoStore(mongo.get_default_database(), **spec.options)
        await mongo.close()
    else:
        scheme, _, rest = spec.url.partition("://")
        engine = create_async_engine(f"{_DRIVERS[scheme]}://{rest}")
        yield SQLStore(engine=engine, **spec.options)
        await engine.dispose()


class TestAppOwnedClients(StoreContract):
    """``RedisStore(client)``, ``SQLStore(engine=...)`` on SQLite, PostgreSQL and MariaDB,
    ``MongoStore(database)``."""

    @pytest.fixture
    async def store(self, app_owned: Store) -> AsyncIterator[Store]:
        yield app_owned
        await app_owned.aclose()  # leaves the app's client, engine or database open


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def bypassing_spec(request: pytest.FixtureRequest) -> StoreSpec:
    """The stores with a driver bypass (the SQL stores)."""
    spec: StoreSpec = request.getfixturevalue(f"{request.param}_store_spec")
    return spec


async def test_the_contract_holds_with_the_driver_bypasses_off(bypassing_spec: StoreSpec) -> None:
    spec = bypassing_spec
    """``direct_reads=False``: every read goes through SQLAlchemy's execute."""
    await check_store(lambda: asyncsess.open_store(spec.url, direct_reads=False, **spec.options))


async def test_an_app_owned_client_outlives_the_store(redis_store_spec: StoreSpec) -> None:
    client = Redis.from_url(redis_store_spec.url)
    try:
        await check_store(lambda: RedisStore(client, **redis_store_spec.options))
        assert await client.ping() is True  # every store closed, the client still works
    finally:
        await client.aclose()
