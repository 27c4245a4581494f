from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

import asyncsess
from asyncsess.stores.base import Store
from tests.backends import StoreSpec

pytest_plugins = [
    "tests.backends.local",
    "tests.backends.redis",
    "tests.backends.sql",
    "tests.backends.mongo",
]

#: Every store the conformance suite runs on; each has a ``<name>_store_spec`` fixture.
BACKENDS = [
    "memory",
    "file",
    "redis",
    "redis_cluster",
    "sqlite",
    "postgresql",
    "mariadb",
    "mongodb",
]

SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
OTHER_SECRET = "other-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
IDLE = 600.0
ABSOLUTE = 3600.0


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


#: Blocking calls the guard lets through: the drivers' own, once per client or connection
#: (file, function), and asyncsess's configuration, which is synchronous by design.
ALLOWED_TO_BLOCK = [
    ("redis/utils.py", "get_lib_version"),  # its package metadata, for CLIENT SETINFO
    ("asyncpg/connect_utils.py", "_parse_connect_dsn_and_args"),  # ~/.pgpass..., at connect
    ("pymongo/pool_options.py", "get_container_env_info"),  # /.dockerenv, for its handshake
    ("sqlalchemy/dialects/sqlite/pysqlite.py", "create_connect_args"),  # the file's path
    ("asyncmy/version.py", "<module>"),  # imported at first connect
    ("asyncsess/compat/legacy.py", "_legacy_store"),  # resolves a configured directory
]


@pytest.fixture(autouse=True)
def blocking_guard() -> Iterator[BlockBuster]:
    """Fail any blocking call (file, socket, sleep...) asyncsess makes on the event loop."""
    with blockbuster_ctx("asyncsess") as guard:
        for function in guard.functions.values():
            for filename, name in ALLOWED_TO_BLOCK:
                function.can_block_in(filename, name)
        yield guard


@dataclass
class FakeClock:
    """An injected clock: tests move time instead of sleeping."""

    # Real "now" to start with: servers expire keys by wall-clock time (Redis PEXPIREAT,
    # MongoDB's TTL index), so fake times must never lie in the real past.
    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
def store_spec(request: pytest.FixtureRequest) -> StoreSpec:
    spec: StoreSpec = request.getfixturevalue(f"{request.param}_store_spec")
    return spec


@pytest.fixture
async def store(store_spec: StoreSpec) -> AsyncIterator[Store]:
    store = asyncsess.open_store(store_spec.url, **store_spec.options)
    try:
        yield store
    finally:
        try:
            await store.wipe()
        finally:
            await store.aclose()


@pytest.fixture
async def manager(store: Store, clock: FakeClock) -> AsyncIterator[asyncsess.SessionManager]:
    mgr = asyncsess.SessionManager(
        store, secret=SECRET, clock=clock, idle_timeout=IDLE, absolute_timeout=ABSOLUTE
    )
    try:
        yield mgr
    finally:
        await mgr.aclose()
